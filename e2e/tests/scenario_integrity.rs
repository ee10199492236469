//! Issue #12's scenarios on one Geneve lab running rovn, each followed by the audit (no shared
//! IP or MAC in annotations or NB, NB pod ports equal the live pods, Subnet usage equals its
//! pods) and a reachability check: edits of rovn's annotations on running pods, and a new pod
//! whose annotations claim a running pod's address, before and after a controller restart; a
//! Subnet in use edited and deleted under a pod that keeps answering.

mod common;

use rovn_e2e::lab::LabSpec;
use rovn_e2e::scenario::harness::{run_on_lab, step};
use rovn_e2e::scenario::integrity;

#[test]
fn annotation_and_subnet_edits_cut_no_pod_off_on_geneve() {
    let name = common::unique_name("ig");
    let spec = LabSpec::with_rovn(name.clone(), 2);
    let result = run_on_lab(&spec, &["s12", "s13"], async |cluster| {
        step("12 annotation edits", async || {
            integrity::annotation_edits(cluster, "s12").await
        })
        .await?;
        step("13 subnet edits and deletion", async || {
            integrity::subnet_changes(cluster, "s13").await
        })
        .await
    });
    if let Err(e) = result {
        panic!("lab {name}: {e}");
    }
    common::assert_gone(&name);
}
