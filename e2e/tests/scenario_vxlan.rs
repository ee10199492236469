//! Scenario 7: scenarios 1–5 again on a VXLAN lab (the pod paths across nodes, node → pod,
//! deletion and reuse, static addresses and a second Subnet over the other tunnel type).

mod common;

use rovn_e2e::lab::{Encap, LabSpec, node};
use rovn_e2e::scenario::harness::{run_on_lab, step};
use rovn_e2e::scenario::pod_network;

#[test]
fn pod_network_scenarios_on_vxlan() {
    let name = common::unique_name("sv");
    let spec = LabSpec {
        encap: Encap::Vxlan,
        ..LabSpec::with_rovn(name.clone(), 2)
    };
    let namespaces = ["v1", "v2", "v3", "v4", "v4-peer", "v5", "v5-b"];
    let result = run_on_lab(&spec, &namespaces, async |cluster| {
        step("7.1 pod-to-pod on vxlan", async || {
            pod_network::pod_to_pod(cluster, "v1").await
        })
        .await?;
        step("7.2 node-to-pod on vxlan", async || {
            pod_network::node_to_pod(cluster, "v2").await
        })
        .await?;
        step("7.3 shared sandbox on vxlan", async || {
            pod_network::shared_sandbox(cluster, "v3").await
        })
        .await?;
        step("7.4 pod lifecycle on vxlan", async || {
            pod_network::pod_lifecycle(cluster, "v4").await
        })
        .await?;
        step("7.5 static and subnets on vxlan", async || {
            pod_network::static_and_subnets(cluster, "v5").await
        })
        .await?;
        // The traffic above crossed VXLAN tunnels only.
        node::ensure_only_tunnels(cluster.lab().names(), 2, Encap::Vxlan)?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("lab {name}: {e}");
    }
    common::assert_gone(&name);
}
