//! The controller's Events against the lab's API server and the machine's kubectl: a repeated
//! reason on an object carries the current message, count and lastTimestamp, so
//! `kubectl get events --sort-by=.lastTimestamp` lists it and `kubectl describe` is not stale.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::kube::{Kube, wait_for};
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;
use rovn_controller::runtime::Events;

async fn core_events(kube: &Kube, namespace: &str) -> Result<Vec<Event>> {
    Ok(Api::<Event>::namespaced(kube.client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .context("listing core/v1 events")?
        .items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_event_says_what_is_true_now() -> Result<()> {
    let kube = Kube::start().await?;
    kube.namespace("t1").await?;
    kube.node("n1").await?;
    let pod = kube.pod("t1", "p7", "n1", &[]).await?;
    let events = Events::new(kube.client.clone(), Some("replica-a".into()));
    let reference = kube::Resource::object_ref(&pod, &());

    events.warn(
        reference.clone(),
        "Refused",
        "Allocate",
        "Subnet blue is full".into(),
    );
    ensure!(
        wait_for(Duration::from_secs(10), || async {
            Ok(core_events(&kube, "t1").await?.len() == 1)
        })
        .await?,
        "the first Event never arrived"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    events.warn(
        reference,
        "Refused",
        "Allocate",
        "Subnet green is full".into(),
    );
    ensure!(
        wait_for(Duration::from_secs(10), || async {
            let all = core_events(&kube, "t1").await?;
            Ok(all.len() == 1 && all[0].count == Some(2))
        })
        .await?,
        "the repeat never patched the Event: {:?}",
        core_events(&kube, "t1").await?
    );
    let event = core_events(&kube, "t1").await?.pop().context("one event")?;
    assert_eq!(event.message.as_deref(), Some("Subnet green is full"));
    assert_eq!(event.reason.as_deref(), Some("Refused"));
    let (first, last) = (
        event.first_timestamp.context("firstTimestamp")?,
        event.last_timestamp.context("lastTimestamp")?,
    );
    assert!(
        last.0 > first.0,
        "lastTimestamp {last:?} follows firstTimestamp {first:?}"
    );
    assert_eq!(
        event.source.and_then(|s| s.component).as_deref(),
        Some("rovn-controller")
    );
    // The events.k8s.io view (what kube-rs and `kubectl events` read) agrees.
    let seen = kube.events_about("t1", "p7").await?;
    assert_eq!(
        seen,
        vec![("Refused".to_string(), "Subnet green is full".to_string())]
    );

    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kube.kubeconfig)
        .arg("--cache-dir")
        .arg(kube.dir().join("kubectl-cache"))
        .args(["get", "events", "-n", "t1", "--sort-by=.lastTimestamp"])
        .output()
        .context("running kubectl")?;
    let table = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        table.contains("Refused")
            && table.contains("Subnet green is full")
            && table.contains("pod/p7"),
        "kubectl get events --sort-by=.lastTimestamp:\n{table}"
    );
    Ok(())
}
