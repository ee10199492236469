//! Two replicas of the real binary with leader election: one works, killing it hands over.

mod common;

use std::time::Duration;

use anyhow::{Result, ensure};
use common::Ovn;
use common::kube::{Binary, Kube, annotation, wait_for};
use rovn_api::names::annotations as keys;

async fn routed(kube: &Kube, ns: &str, name: &str) -> Result<bool> {
    wait_for(Duration::from_secs(20), || async {
        Ok(kube
            .get_pod(ns, name)
            .await?
            .is_some_and(|p| annotation(&p, keys::ROUTED) == Some("true")))
    })
    .await
}

fn replica(kube: &Kube, ovn: &Ovn, identity: &str) -> Result<Binary> {
    kube.spawn_binary(
        &ovn.nb_remote(),
        &format!("{identity}.log"),
        &[
            "--leader-elect=true",
            "--lease-duration=2s",
            "--lease-name",
            "rovn-test",
            "--identity",
            identity,
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_works_and_killing_it_hands_over() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let kube = Kube::start().await?;
    kube.namespace("ha").await?;
    kube.node("n1").await?;
    let mut a = replica(&kube, &ovn, "replica-a")?;
    a.wait_ready(Duration::from_secs(20)).await?;
    let mut b = replica(&kube, &ovn, "replica-b")?;
    kube.pod("ha", "before", "n1", &[]).await?;
    ensure!(
        routed(&kube, "ha", "before").await?,
        "leader did not route the pod"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let b_log = b.log_text();
    ensure!(
        !b_log.contains("became leader") && !b_log.contains("ready after"),
        "the second replica worked while the first led:\n{b_log}"
    );
    ensure!(!b.exited(), "the follower exited:\n{b_log}");
    // A healthy standby is Ready (a rollout must not wait on it), and says it stands by.
    let standby = b.http_get("/readyz").await?;
    ensure!(
        standby.contains(" 200 ") && standby.trim_end().ends_with("standby"),
        "{standby}"
    );

    a.kill();
    b.wait_ready(Duration::from_secs(20)).await?;
    ensure!(b.log_text().contains("became leader"));
    let leading = b.http_get("/readyz").await?;
    ensure!(leading.trim_end().ends_with("leading"), "{leading}");
    kube.pod("ha", "after", "n1", &[]).await?;
    ensure!(
        routed(&kube, "ha", "after").await?,
        "new leader did not route the pod"
    );
    Ok(())
}
