//! A lab whose OVSDB traffic over the underlay is TLS only (`rovn-lab up --tls`): NB and SB
//! listen with `ssl:` and certificates of the lab's own PKI, plain `tcp:` is refused, and
//! rovn-controller (NB) and every ovn-controller (SB, configured by rovn-node) still build a
//! working network: pods reach pods and Services.

mod common;

use std::process::Command;

use rovn_e2e::lab::{LabSpec, Place, tls};
use rovn_e2e::scenario::harness::{run_on_lab, step};
use rovn_e2e::scenario::{pod_network, services};

fn in_central(names: &rovn_e2e::lab::LabNames, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &names.netns(Place::Central),
            "timeout",
            "5",
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

#[test]
fn a_tls_only_lab_carries_pods_and_services() {
    let name = common::unique_name("tl");
    let spec = LabSpec {
        tls: true,
        ..LabSpec::with_rovn(name.clone(), 2)
    };
    let result = run_on_lab(&spec, &["t1", "t7"], async |cluster| {
        let names = cluster.lab().names().clone();
        for (db, port) in [("ovnnb_db", 6641), ("ovnsb_db", 6642)] {
            let ctl = names.place_dir(Place::Central).join(format!("{db}.ctl"));
            let remotes = in_central(
                &names,
                &[
                    "ovs-appctl",
                    "-t",
                    &ctl.display().to_string(),
                    "ovsdb-server/list-remotes",
                ],
            );
            let remotes = String::from_utf8_lossy(&remotes.stdout);
            rovn_e2e::ensure!(
                remotes.contains(&format!("pssl:{port}:")) && !remotes.contains("ptcp"),
                "{db} listens on {remotes}"
            );
            let plain = in_central(
                &names,
                &[
                    "ovsdb-client",
                    "list-dbs",
                    &format!("tcp:172.30.0.1:{port}"),
                ],
            );
            rovn_e2e::ensure!(!plain.status.success(), "{db} answered plain tcp");
            let files = tls::files(&names, tls::CONTROLLER).ok_or_else(|| {
                rovn_e2e::scenario::ScenarioError::Check("the lab has no PKI".into())
            })?;
            let key = format!("--private-key={}", files.private_key.display());
            let cert = format!("--certificate={}", files.certificate.display());
            let ca = format!("--ca-cert={}", files.ca_cert.display());
            let secure = in_central(
                &names,
                &[
                    "ovsdb-client",
                    &key,
                    &cert,
                    &ca,
                    "list-dbs",
                    &format!("ssl:172.30.0.1:{port}"),
                ],
            );
            rovn_e2e::ensure!(
                secure.status.success(),
                "{db} refused the lab's certificate: {}",
                String::from_utf8_lossy(&secure.stderr)
            );
        }
        step("1 pod-to-pod over TLS", async || {
            pod_network::pod_to_pod(cluster, "t1").await
        })
        .await?;
        step("7 cluster IP over TLS", async || {
            services::cluster_ip(cluster, "t7").await
        })
        .await
    });
    if let Err(e) = result {
        panic!("lab {name}: {e}");
    }
    common::assert_gone(&name);
}
