//! Running scenarios on a fresh lab: bring it up (torn down on drop, even on panic), connect,
//! run, and on failure print the cluster dump while the lab still exists.

use std::time::Instant;

use super::cluster::Cluster;
use super::error::{Result, ScenarioError};
use super::lab_cluster::LabCluster;
use crate::lab::{LabGuard, LabSpec};

/// Brings up a lab from `spec` and runs `body` on it; a failure is returned with the dump of
/// `namespaces` (pods, OVN, OVS, logs) appended. The lab is torn down either way.
pub fn run_on_lab(
    spec: &LabSpec,
    namespaces: &[&str],
    body: impl AsyncFnOnce(&LabCluster<'_>) -> Result<()>,
) -> Result<()> {
    let started = Instant::now();
    let lab = LabGuard::up(spec)?;
    eprintln!(
        "lab {} up in {:.2}s",
        spec.name,
        started.elapsed().as_secs_f64()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ScenarioError::Exec {
            what: "starting the async runtime".into(),
            detail: e.to_string(),
        })?;
    let result = runtime.block_on(async {
        let cluster = LabCluster::connect_lab(&lab).await?;
        run_on_cluster(&cluster, namespaces, body).await
    });
    drop(runtime);
    let scenarios_done = started.elapsed();
    let down = lab.down();
    eprintln!(
        "lab {}: scenarios done after {:.2}s, down after {:.2}s",
        spec.name,
        scenarios_done.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    result?;
    down?;
    Ok(())
}

/// Runs `body` on `cluster`; a failure is returned with the dump of `namespaces`.
pub async fn run_on_cluster<C: Cluster>(
    cluster: &C,
    namespaces: &[&str],
    body: impl AsyncFnOnce(&C) -> Result<()>,
) -> Result<()> {
    match body(cluster).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let dump = cluster.dump(namespaces).await;
            Err(ScenarioError::WithDump {
                source: Box::new(e),
                dump,
            })
        }
    }
}

/// Runs one named step, logging how long it took.
pub async fn step(name: &str, body: impl AsyncFnOnce() -> Result<()>) -> Result<()> {
    let started = Instant::now();
    let result = body().await;
    eprintln!(
        "scenario {name}: {} in {:.2}s",
        if result.is_ok() { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    result.map_err(|e| ScenarioError::InScenario {
        scenario: name.to_string(),
        source: Box::new(e),
    })
}
