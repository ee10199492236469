//! Scenario 6 on its own lab: controller, agent and NB database restarts disturb nothing, and
//! neither does a rolling update of every agent and then the controller.

mod common;

use rovn_e2e::lab::LabSpec;
use rovn_e2e::scenario::harness::{run_on_lab, step};
use rovn_e2e::scenario::restarts;

#[test]
fn restarts_keep_pods_connections_and_leave_nothing_stale() {
    let name = common::unique_name("sr");
    let spec = LabSpec::with_rovn(name.clone(), 2);
    let result = run_on_lab(&spec, &["s6", "s6r"], async |cluster| {
        step("6 restarts", async || {
            restarts::survive_restarts(cluster, "s6").await
        })
        .await?;
        step("6r rolling update", async || {
            restarts::rolling_update(cluster, "s6r").await
        })
        .await
    });
    if let Err(e) = result {
        panic!("lab {name}: {e}");
    }
    common::assert_gone(&name);
}
