//! Scenarios 7–10 on one Geneve lab running rovn, no kube-proxy anywhere: ClusterIP from pods,
//! nodes and hostNetwork pods, hairpin; endpoints following readiness, termination and
//! scaling; ClientIP affinity; node-local traffic policy; a deleted Service and a controller
//! restart (last, over everything the others left).

mod common;

use rovn_e2e::lab::LabSpec;
use rovn_e2e::scenario::harness::{run_on_lab, step};
use rovn_e2e::scenario::services;

#[test]
fn service_scenarios_on_geneve() {
    let name = common::unique_name("sv");
    let spec = LabSpec::with_rovn(name.clone(), 2);
    let namespaces = ["s7", "s8", "s9", "s10", "s11"];
    let result = run_on_lab(&spec, &namespaces, async |cluster| {
        step("7 cluster IP", async || {
            services::cluster_ip(cluster, "s7").await
        })
        .await?;
        step("8 endpoint changes", async || {
            services::endpoint_changes(cluster, "s8").await
        })
        .await?;
        step("9 affinity", async || {
            services::affinity(cluster, "s9").await
        })
        .await?;
        step("11 node-local", async || {
            services::node_local(cluster, "s11").await
        })
        .await?;
        step("10 service lifecycle", async || {
            services::service_lifecycle(cluster, "s10").await
        })
        .await?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("lab {name}: {e}");
    }
    common::assert_gone(&name);
}
