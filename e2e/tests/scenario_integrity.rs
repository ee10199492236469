//! Issue #12's scenarios on one Geneve lab running rovn, each followed by the audit (no shared
//! IP or MAC in annotations or NB, NB pod ports equal the live pods, Subnet usage equals its
//! pods) and a reachability check: edits of rovn's annotations on running pods, and a new pod
//! whose annotations claim a running pod's address, before and after a controller restart; a
//! Subnet in use edited and deleted under a pod that keeps answering; Subnets that must not be
//! routed, as the operator sees them; the CNI sockets' permissions.

mod common;

use rovn_e2e::lab::LabSpec;
use rovn_e2e::scenario::harness::{run_on_lab, step};
use rovn_e2e::scenario::integrity;

#[test]
fn annotation_and_subnet_edits_cut_no_pod_off_on_geneve() {
    let name = common::unique_name("ig");
    let spec = LabSpec::with_rovn(name.clone(), 2);
    let result = run_on_lab(&spec, &["s12", "s13", "s14"], async |cluster| {
        step("12 annotation edits", async || {
            integrity::annotation_edits(cluster, "s12").await
        })
        .await?;
        step("13 subnet edits and deletion", async || {
            integrity::subnet_changes(cluster, "s13").await
        })
        .await?;
        step("14 operator view", async || {
            integrity::operator_view(cluster, "s14").await
        })
        .await?;
        // The CNI socket of every node is its owner's alone.
        use std::os::unix::fs::PermissionsExt;
        let names = cluster.lab().names().clone();
        for i in 1..=2 {
            let socket = names.cni_socket(i);
            let mode = std::fs::metadata(&socket)
                .map(|m| m.permissions().mode() & 0o777)
                .map_err(|e| {
                    rovn_e2e::scenario::ScenarioError::Check(format!("{}: {e}", socket.display()))
                })?;
            rovn_e2e::ensure!(mode & 0o077 == 0, "{} has mode {mode:o}", socket.display());
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("lab {name}: {e}");
    }
    common::assert_gone(&name);
}
