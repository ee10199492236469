//! The real binary killed with SIGKILL mid-churn and restarted, and restarted on a converged
//! cluster: no duplicate, stale or leaked addresses; a converged restart writes nothing to NB.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::Ovn;
use common::kube::{Kube, allocated_ip, annotation, metric, restart_writing_nothing, wait_for};
use futures::StreamExt;
use rovn_api::names::annotations as keys;

/// Every pod routed, addresses distinct, LSPs exactly the live pods, Subnet usage == pods.
async fn assert_converged(kube: &Kube, ovn: &Ovn, namespace: &str) -> Result<()> {
    let done = wait_for(Duration::from_secs(30), || async {
        let pods = kube.pods().await?;
        Ok(pods
            .iter()
            .all(|p| annotation(p, keys::ROUTED) == Some("true")))
    })
    .await?;
    ensure!(done, "pods not all routed");
    let pods = kube.pods().await?;
    let ips: BTreeSet<_> = pods.iter().filter_map(allocated_ip).collect();
    ensure!(
        ips.len() == pods.len(),
        "{} addresses for {} pods",
        ips.len(),
        pods.len()
    );
    let wanted: BTreeSet<String> = pods
        .iter()
        .map(|p| {
            format!(
                "{}.{namespace}",
                p.metadata.name.clone().unwrap_or_default()
            )
        })
        .collect();
    let ok = wait_for(Duration::from_secs(15), || async {
        let names = ovn.nbctl(&["--bare", "--columns=name", "list", "Logical_Switch_Port"])?;
        let pod_ports: BTreeSet<String> = names
            .split_whitespace()
            .filter(|n| n.ends_with(&format!(".{namespace}")))
            .map(str::to_string)
            .collect();
        Ok(pod_ports == wanted)
    })
    .await?;
    ensure!(ok, "NB pod ports differ from the live pods");
    let used = wait_for(Duration::from_secs(15), || async {
        let status = kube.get_subnet("ovn-default").await?.and_then(|s| s.status);
        Ok(status.is_some_and(|s| s.used_ips == pods.len() as u64))
    })
    .await?;
    ensure!(
        used,
        "ovn-default usage {:?} != {} live pods",
        kube.get_subnet("ovn-default").await?.and_then(|s| s.status),
        pods.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_churn_and_restarted_leaves_no_duplicates_stale_ports_or_leaks() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let kube = Kube::start().await?;
    kube.namespace("churn").await?;
    kube.node("n1").await?;
    let mut first = kube.spawn_binary(&ovn.nb_remote(), "first.log", &[])?;
    first.wait_ready(Duration::from_secs(20)).await?;

    let creating = async {
        futures::stream::iter(0..150)
            .map(|i| {
                let kube = &kube;
                async move { kube.pod("churn", &format!("p{i}"), "n1", &[]).await }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
    };
    let allocated = || async {
        Ok::<_, anyhow::Error>(
            kube.pods()
                .await?
                .iter()
                .filter(|p| allocated_ip(p).is_some())
                .count(),
        )
    };
    // SIGKILL once the controller is part-way through: some pods allocated, not all.
    let killing = async {
        let started = wait_for(Duration::from_secs(20), || async {
            Ok(allocated().await? >= 10)
        })
        .await;
        first.kill();
        started.and(allocated().await)
    };
    let (created, at_kill) = tokio::join!(creating, killing);
    for c in created {
        c?;
    }
    let at_kill = at_kill?;
    ensure!(
        (10..150).contains(&at_kill),
        "{at_kill} of 150 pods were allocated when the controller was killed: not mid-churn"
    );
    // While it is down: some pods go away, more arrive.
    for i in (0..150).step_by(3) {
        kube.delete_pod("churn", &format!("p{i}")).await?;
    }
    for i in 150..170 {
        kube.pod("churn", &format!("p{i}"), "n1", &[]).await?;
    }
    let mut second = kube.spawn_binary(&ovn.nb_remote(), "second.log", &[])?;
    second.wait_ready(Duration::from_secs(20)).await?;
    assert_converged(&kube, &ovn, "churn")
        .await
        .with_context(|| format!("second controller log:\n{}", second.log_text()))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_a_converged_cluster_writes_nothing_to_nb() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let kube = Kube::start().await?;
    kube.namespace("calm").await?;
    kube.node("n1").await?;
    kube.node("n2").await?;
    for i in 0..40 {
        kube.pod(
            "calm",
            &format!("p{i}"),
            if i % 2 == 0 { "n1" } else { "n2" },
            &[],
        )
        .await?;
    }
    let mut first = kube.spawn_binary(&ovn.nb_remote(), "first.log", &[])?;
    first.wait_ready(Duration::from_secs(20)).await?;
    assert_converged(&kube, &ovn, "calm").await?;
    let second = restart_writing_nothing(&kube, &ovn, first).await?;
    let metrics = second.http_get("/metrics").await?;
    ensure!(
        metric(&metrics, "rovn_controller_nb_transactions_total") == Some(0.0),
        "metrics:\n{metrics}"
    );
    ensure!(
        metric(&metrics, "rovn_controller_reconcile_rounds_total").is_some_and(|r| r >= 1.0),
        "metrics:\n{metrics}"
    );
    let ready = second.http_get("/readyz").await?;
    ensure!(
        ready.starts_with("HTTP/1.0 200") || ready.starts_with("HTTP/1.1 200"),
        "{ready}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_created_while_nb_is_down_are_routed_once_it_is_back() -> Result<()> {
    let mut ovn = Ovn::nb_only()?;
    let kube = Kube::start().await?;
    kube.namespace("outage").await?;
    kube.node("n1").await?;
    let mut controller = kube.spawn_binary(&ovn.nb_remote(), "controller.log", &[])?;
    controller.wait_ready(Duration::from_secs(20)).await?;

    // NB crashes; pods keep coming. They get addresses (IPAM needs no NB) but no port yet.
    ovn.nb.stop();
    for i in 0..20 {
        kube.pod("outage", &format!("p{i}"), "n1", &[]).await?;
    }
    let allocated = wait_for(Duration::from_secs(15), || async {
        Ok(kube
            .pods()
            .await?
            .iter()
            .filter(|p| allocated_ip(p).is_some())
            .count()
            == 20)
    })
    .await?;
    ensure!(allocated, "pods were not allocated while NB was down");
    let routed = kube
        .pods()
        .await?
        .iter()
        .filter(|p| annotation(p, keys::ROUTED) == Some("true"))
        .count();
    ensure!(routed == 0, "{routed} pods marked routed with NB down");
    tokio::time::sleep(Duration::from_secs(2)).await;

    ovn.nb.restart()?;
    assert_converged(&kube, &ovn, "outage")
        .await
        .with_context(|| format!("controller log:\n{}", controller.log_text()))?;
    ensure!(
        !controller.exited(),
        "the controller died over the NB outage"
    );
    Ok(())
}
