//! Egress (issue #14) on one Geneve lab running rovn: pods reach the outside as their node
//! (`natOutgoing`) or as themselves (`natOutgoing: false`), reach every node's own address (from both kinds of Subnet), and
//! a private Subnet refuses other Subnets' pods but not its own, its nodes or `allowSubnets`.

mod common;

use rovn_e2e::lab::LabSpec;
use rovn_e2e::scenario::egress;
use rovn_e2e::scenario::harness::{run_on_lab, step};

#[test]
fn egress_scenarios_on_geneve() {
    let name = common::unique_name("eg");
    let spec = LabSpec::with_rovn(name.clone(), 2);
    let namespaces = ["e1", "e2", "e3", "e4", "e4-other"];
    let result = run_on_lab(&spec, &namespaces, async |cluster| {
        step("e1 masqueraded to the node", async || {
            egress::masqueraded_to_node(cluster, "e1").await.map(|_| ())
        })
        .await?;
        step("e2 natOutgoing false", async || {
            egress::unmasqueraded(cluster, "e2").await
        })
        .await?;
        step("e3 pods reach nodes", async || {
            egress::pods_reach_nodes(cluster, "e3", "e2").await
        })
        .await?;
        step("e4 private subnet", async || {
            egress::private_subnet(cluster, "e4", "e4-other").await
        })
        .await?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("lab {name}: {e}");
    }
    common::assert_gone(&name);
}
