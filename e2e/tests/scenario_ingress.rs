//! Issue #14's ingress scenarios on one Geneve lab running rovn: the lab's outside namespace
//! reaches NodePorts (Cluster policy on every node, TCP and UDP), an externalIP, a hostPort
//! and a Local Service (health checks, drops, the client's address kept) through the nodes'
//! `ip rovn` tables; a NodePort connection survives an agent restart; a deleted Service leaves
//! no frontend behind.

mod common;

use rovn_e2e::lab::LabSpec;
use rovn_e2e::scenario::harness::{run_on_lab, step};
use rovn_e2e::scenario::ingress;

#[test]
fn ingress_scenarios_on_geneve() {
    let name = common::unique_name("in");
    let spec = LabSpec::with_rovn(name.clone(), 2);
    let namespaces = ["i1", "i2", "i3", "i4", "i5", "i6"];
    let result = run_on_lab(&spec, &namespaces, async |cluster| {
        step("I1 NodePort, Cluster policy", async || {
            ingress::node_port_cluster(cluster, "i1").await
        })
        .await?;
        step("I2 externalIP", async || {
            ingress::external_ip(cluster, "i2").await
        })
        .await?;
        step("I3 hostPort", async || {
            ingress::host_port(cluster, "i3").await
        })
        .await?;
        step("I4 Local policy and health checks", async || {
            ingress::local_policy(cluster, "i4").await
        })
        .await?;
        step("I5 agent restart", async || {
            ingress::agent_restart(cluster, "i5").await
        })
        .await?;
        step("I6 deleted Service", async || {
            ingress::deleted_service(cluster, "i6").await
        })
        .await?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("lab {name}: {e}");
    }
    common::assert_gone(&name);
}
