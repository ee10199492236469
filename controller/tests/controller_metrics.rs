//! What an operator's dashboards read: the gauges of refused pods and rejected Subnets follow
//! the cluster, through the real binary's `/metrics`.

mod common;

use std::time::Duration;

use anyhow::{Result, ensure};
use common::Ovn;
use common::kube::{Kube, metric, wait_for};
use rovn_api::names::annotations as keys;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_pods_and_rejected_subnets_are_counted() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let kube = Kube::start().await?;
    kube.namespace("m").await?;
    kube.node("n1").await?;
    let mut controller = kube.spawn_binary(&ovn.nb_remote(), "metrics.log", &[])?;
    controller.wait_ready(Duration::from_secs(20)).await?;
    let gauges = async |controller: &common::kube::Binary| -> Result<(Option<f64>, Option<f64>)> {
        let text = controller.http_get("/metrics").await?;
        Ok((
            metric(&text, "rovn_controller_pods_refused"),
            metric(&text, "rovn_controller_subnets_rejected"),
        ))
    };
    ensure!(
        wait_for(Duration::from_secs(10), || async {
            Ok(gauges(&controller).await? == (Some(0.0), Some(0.0)))
        })
        .await?,
        "a healthy cluster: {:?}",
        gauges(&controller).await?
    );
    // A Subnet overlapping ovn-default is rejected; a pod asking for an address outside every
    // Subnet is refused.
    kube.subnet("overlap", "10.16.5.0/24", &[], &[]).await?;
    kube.pod("m", "outside", "n1", &[(keys::IP_ADDRESS, "192.0.2.7")])
        .await?;
    ensure!(
        wait_for(Duration::from_secs(15), || async {
            Ok(gauges(&controller).await? == (Some(1.0), Some(1.0)))
        })
        .await?,
        "after a rejection and a refusal: {:?}\n{}",
        gauges(&controller).await?,
        controller.log_text()
    );
    kube.delete_pod("m", "outside").await?;
    ensure!(
        wait_for(Duration::from_secs(15), || async {
            Ok(gauges(&controller).await?.0 == Some(0.0))
        })
        .await?,
        "the refused pod is gone: {:?}",
        gauges(&controller).await?
    );
    Ok(())
}
