//! The lab with rovn but without kubelets, as the benchmarks use it: the lab registers the
//! Nodes itself, rovn-controller is ready, every rovn-node has written its conflist and
//! answers `/healthz`, the controller gave every node its join address, and `down` leaves
//! nothing of rovn behind.

mod common;

use rovn_e2e::lab::kube::http_get;
use rovn_e2e::lab::probe::http_get_in_netns;
use rovn_e2e::lab::{LabGuard, LabSpec, Place};

#[test]
fn rovn_lab_without_kubelets_registers_nodes_and_runs_rovn() {
    let name = common::unique_name("sn");
    let spec = LabSpec {
        kubelets: false,
        ..LabSpec::with_rovn(name.clone(), 2)
    };
    let lab = LabGuard::up(&spec).unwrap_or_else(|e| panic!("bringing up lab {name}: {e}"));
    let names = lab.names().clone();
    assert!(lab.info().rovn && !lab.info().kubelets, "{:?}", lab.info());
    assert!(
        lab.daemons()
            .iter()
            .all(|d| !d.label.ends_with("rovn-kubelet")),
        "a kubelet runs: {:?}",
        lab.daemons()
    );

    let api = lab
        .info()
        .api
        .clone()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("lab {name} recorded no API address"));
    for i in 1..=2 {
        let node = Place::Node(i).label();
        let body = http_get(api, &format!("/api/v1/nodes/{node}"))
            .unwrap_or_else(|e| panic!("reading Node {node}: {e}"));
        let object: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("Node {node}: {e}: {body}"));
        let ip = Place::Node(i).underlay_ip().to_string();
        let addresses = object["status"]["addresses"].to_string();
        assert!(
            addresses.contains(&ip),
            "Node {node} lacks InternalIP {ip}: {addresses}"
        );
        let join_ip = &object["metadata"]["annotations"][rovn_api::names::annotations::JOIN_IP];
        assert!(
            join_ip.as_str().is_some_and(|j| j.starts_with("100.64.")),
            "Node {node} has no join address from the controller: {join_ip}"
        );
        assert!(
            names.cni_conflist(i).is_file(),
            "{} was not written",
            names.cni_conflist(i).display()
        );
        http_get_in_netns(
            &names.netns(Place::Node(i)),
            names.agent_listen(i),
            "/healthz",
        )
        .unwrap_or_else(|e| panic!("rovn-node on {node}: {e}"));
    }
    http_get_in_netns(
        &names.netns(Place::Central),
        names.controller_listen(),
        "/readyz",
    )
    .unwrap_or_else(|e| panic!("rovn-controller: {e}"));

    lab.down()
        .unwrap_or_else(|e| panic!("tearing down lab {name}: {e}"));
    common::assert_gone(&name);
}
