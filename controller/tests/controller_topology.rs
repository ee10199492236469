//! The controller in-process against an in-process API server and a real NB + SB +
//! ovn-northd: topology, pod ports, annotations, and what northd makes of them.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::Ovn;
use common::kube::{InProcess, Kube, allocated_ip, annotation, wait_for};
use rovn_api::names::annotations as keys;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_and_pod_ports_reach_nb_and_sb() -> Result<()> {
    let ovn = Ovn::with_northd()?;
    let kube = Kube::start().await?;
    kube.namespace("web").await?;
    for node in ["n1", "n2"] {
        kube.node(node).await?;
    }
    for i in 0..4 {
        let node = if i % 2 == 0 { "n1" } else { "n2" };
        kube.pod("web", &format!("p{i}"), node, &[]).await?;
    }
    let controller = InProcess::start(kube.config(&ovn.nb_remote()));

    let routed = wait_for(Duration::from_secs(20), || async {
        let pods = kube.pods().await?;
        Ok(pods.len() == 4
            && pods
                .iter()
                .all(|p| annotation(p, keys::ROUTED) == Some("true")))
    })
    .await?;
    ensure!(routed, "pods not routed: {:#?}", kube.pods().await?);

    let show = ovn.nbctl(&["show"])?;
    for needle in [
        "router",
        "(ovn-cluster)",
        "(join)",
        "(ovn-default)",
        "node-n1",
        "node-n2",
        "p0.web",
        "p3.web",
    ] {
        ensure!(
            show.contains(needle),
            "{needle} missing from ovn-nbctl show:\n{show}"
        );
    }
    for pod in kube.pods().await? {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ip = allocated_ip(&pod).context("no address")?;
        ensure!(
            "10.16.0.0/16".parse::<ipnet::Ipv4Net>()?.contains(&ip),
            "{name}: {ip} outside ovn-default"
        );
        let mac = annotation(&pod, keys::MAC_ADDRESS).context("no mac")?;
        ensure!(annotation(&pod, keys::CIDR) == Some("10.16.0.0/16"));
        ensure!(annotation(&pod, keys::GATEWAY) == Some("10.16.0.1"));
        ensure!(annotation(&pod, keys::LOGICAL_SWITCH) == Some("ovn-default"));
        let port = format!("{name}.web");
        let addresses = ovn.nbctl(&["lsp-get-addresses", &port])?;
        ensure!(
            addresses.trim() == format!("{mac} {ip}"),
            "{port}: addresses {addresses:?}, annotations say {mac} {ip}"
        );
    }
    let node = kube.client.clone();
    let n1 = kube::Api::<k8s_openapi::api::core::v1::Node>::all(node)
        .get("n1")
        .await?;
    let join_ip = n1
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(keys::JOIN_IP))
        .context("node n1 has no join_ip")?;
    ensure!(join_ip.starts_with("100.64.0."), "join ip {join_ip}");

    let bound = wait_for(Duration::from_secs(20), || async {
        let out = ovn.sbctl(&["--bare", "--columns=logical_port", "list", "Port_Binding"])?;
        Ok((0..4).all(|i| out.contains(&format!("p{i}.web"))) && out.contains("node-n1"))
    })
    .await?;
    ensure!(
        bound,
        "SB lacks port bindings: {}",
        ovn.sbctl(&["show"]).unwrap_or_default()
    );

    let default = kube
        .get_subnet("ovn-default")
        .await?
        .context("no ovn-default")?;
    let status = default.status.context("ovn-default has no status")?;
    ensure!(status.used_ips >= 4, "status {status:?}");
    controller.stop().await
}
