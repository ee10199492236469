//! LoadBalancer Services on one Geneve lab running rovn (issue #14): pool addresses reached
//! from the outside namespace, a foreign class left alone, conflicts, release and a
//! controller restart; then the announcing node taken out and the address following.

mod common;

use rovn_e2e::lab::LabSpec;
use rovn_e2e::scenario::harness::{run_on_lab, step};
use rovn_e2e::scenario::loadbalancer;

#[test]
fn loadbalancer_scenarios_on_geneve() {
    let name = common::unique_name("lb");
    let spec = LabSpec::with_rovn(name.clone(), 2);
    let namespaces = ["lb1", "lb2"];
    let result = run_on_lab(&spec, &namespaces, async |cluster| {
        step("lb addresses", async || {
            loadbalancer::addresses(cluster, "lb1").await
        })
        .await?;
        step("lb failover", async || {
            loadbalancer::failover(cluster, "lb2").await
        })
        .await?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("lab {name}: {e}");
    }
    common::assert_gone(&name);
}
