//! Scenarios 1–5 on one Geneve lab running rovn (each in its own namespace, so they share the
//! lab): pod ↔ pod, node → pod, shared sandbox, pod deletion and address reuse, static
//! addresses and a second Subnet.

mod common;

use rovn_e2e::lab::{Encap, LabSpec, node};
use rovn_e2e::scenario::harness::{run_on_lab, step};
use rovn_e2e::scenario::pod_network;

#[test]
fn pod_network_scenarios_on_geneve() {
    let name = common::unique_name("sg");
    let spec = LabSpec::with_rovn(name.clone(), 2);
    let namespaces = ["s1", "s2", "s3", "s4", "s4-peer", "s5", "s5-b"];
    let result = run_on_lab(&spec, &namespaces, async |cluster| {
        step("1 pod-to-pod", async || {
            pod_network::pod_to_pod(cluster, "s1").await
        })
        .await?;
        step("2 node-to-pod", async || {
            pod_network::node_to_pod(cluster, "s2").await
        })
        .await?;
        step("3 shared sandbox", async || {
            pod_network::shared_sandbox(cluster, "s3").await
        })
        .await?;
        step("4 pod lifecycle", async || {
            pod_network::pod_lifecycle(cluster, "s4").await
        })
        .await?;
        step("5 static and subnets", async || {
            pod_network::static_and_subnets(cluster, "s5").await
        })
        .await?;
        // The traffic above crossed Geneve tunnels only.
        node::ensure_only_tunnels(cluster.lab().names(), 2, Encap::Geneve)?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("lab {name}: {e}");
    }
    common::assert_gone(&name);
}
