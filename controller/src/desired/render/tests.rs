use rovn_ovsdb::Model;

use super::*;
use crate::desired::{DesiredState, JoinSubnet, Subnet};
use crate::tables::Managed;

/// A desired row as its model, with the key of its parent.
struct Placed<M> {
    parent: String,
    row: M,
}

fn placed<M: Managed>(state: &DesiredState, key: &str) -> Placed<M> {
    let key = RowKey::name(key);
    let parent = state
        .row::<M>(&key)
        .and_then(|r| r.parent.as_ref())
        .map(ToString::to_string)
        .unwrap_or_default();
    let row = state.model::<M>(&key).unwrap_or_default();
    Placed { parent, row }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap_or_default()
}

fn cluster() -> ClusterState {
    ClusterState {
        join: JoinSubnet {
            cidr: net("100.64.0.0/16"),
            gateway: ip("100.64.0.1"),
        },
        service_cidr: net("10.96.0.0/12"),
        subnets: vec![Subnet {
            name: "ovn-default".into(),
            cidr: net("10.16.0.0/16"),
            gateway: ip("10.16.0.1"),
            private: false,
            allow_subnets: Vec::new(),
        }],
        nodes: vec![Node {
            name: "n1".into(),
            join_ip: ip("100.64.0.2"),
            join_mac: MacAddr::derived_from(ip("100.64.0.2")),
            chassis: None,
            internal_ip: None,
        }],
        pods: vec![PodPort {
            namespace: "default".into(),
            name: "web".into(),
            uid: "u1".into(),
            node: "n1".into(),
            switch: "ovn-default".into(),
            ip: ip("10.16.0.5"),
            mac: MacAddr::derived_from(ip("10.16.0.5")),
        }],
        services: Vec::new(),
        policies: Vec::new(),
        policy_pods: Default::default(),
    }
}

#[test]
fn topology_rows_follow_the_design_names_and_owners() {
    let state = desired_state(&cluster());
    assert!(state.problems.is_empty(), "{:?}", state.problems);
    let keys = |table| {
        state
            .table(table)
            .into_iter()
            .flat_map(|rows| rows.keys())
            .map(RowKey::as_str)
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(LogicalRouter::TABLE), ["ovn-cluster"]);
    assert_eq!(keys(LogicalSwitch::TABLE), ["join", "ovn-default"]);
    let join = &placed::<LogicalSwitch>(&state, "join").row;
    assert_eq!(join.other_config["subnet"], "100.64.0.0/16");
    assert_eq!(join.external_ids["rovn.io/owner"], "Cluster/ovn-cluster");
    assert_eq!(join.external_ids["rovn.io/vendor"], "rovn");

    let lrp = &placed::<LogicalRouterPort>(&state, "ovn-cluster-ovn-default");
    assert_eq!(lrp.parent, "ovn-cluster");
    assert_eq!(lrp.row.mac, "0a:58:0a:10:00:01");
    assert_eq!(
        lrp.row.networks.iter().collect::<Vec<_>>(),
        ["10.16.0.1/16"]
    );
    assert_eq!(lrp.row.external_ids["rovn.io/owner"], "Subnet/ovn-default");

    let peer = &placed::<LogicalSwitchPort>(&state, "ovn-default-ovn-cluster");
    assert_eq!(peer.parent, "ovn-default");
    assert_eq!(peer.row.type_, "router");
    assert_eq!(peer.row.options["router-port"], "ovn-cluster-ovn-default");
    assert!(peer.row.addresses.contains("router"));
}

#[test]
fn node_and_pod_ports_carry_addresses_security_and_identity() {
    let state = desired_state(&cluster());
    let node = &placed::<LogicalSwitchPort>(&state, "node-n1");
    assert_eq!(node.parent, "join");
    assert!(node.row.addresses.contains("0a:58:64:40:00:02 100.64.0.2"));
    assert_eq!(
        node.row.port_security.iter().collect::<Vec<_>>(),
        ["0a:58:64:40:00:02"]
    );
    assert_eq!(node.row.external_ids["rovn.io/owner"], "Node/n1");

    let pod = &placed::<LogicalSwitchPort>(&state, "web.default");
    assert_eq!(pod.parent, "ovn-default");
    assert!(pod.row.addresses.contains("0a:58:0a:10:00:05 10.16.0.5"));
    assert_eq!(pod.row.addresses, pod.row.port_security);
    assert_eq!(pod.row.options["requested-chassis"], "n1");
    assert_eq!(pod.row.external_ids["rovn.io/owner"], "Pod/default/web");
    assert_eq!(pod.row.external_ids["pod-uid"], "u1");
    assert_eq!(pod.row.external_ids["node"], "n1");
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(desired_state(&cluster()), desired_state(&cluster()));
}

#[test]
fn bad_objects_are_left_out_and_their_owners_held() {
    let mut c = cluster();
    c.pods[0].ip = ip("10.17.0.5");
    c.pods.push(PodPort {
        switch: "nope".into(),
        name: "lost".into(),
        ..c.pods[0].clone()
    });
    c.subnets.push(Subnet {
        name: "bad".into(),
        cidr: net("10.20.0.0/16"),
        gateway: ip("10.21.0.1"),
        private: false,
        allow_subnets: Vec::new(),
    });
    c.subnets.push(Subnet {
        name: "join".into(),
        cidr: net("10.30.0.0/16"),
        gateway: ip("10.30.0.1"),
        private: false,
        allow_subnets: Vec::new(),
    });
    let state = desired_state(&c);
    assert!(
        state
            .row::<LogicalSwitchPort>(&RowKey::name("web.default"))
            .is_none()
    );
    assert!(state.row::<LogicalSwitch>(&RowKey::name("bad")).is_none());
    assert_eq!(
        placed::<LogicalSwitch>(&state, "join").row.other_config["subnet"],
        "100.64.0.0/16"
    );
    for owner in [
        "Pod/default/web",
        "Pod/default/lost",
        "Subnet/bad",
        "Subnet/join",
    ] {
        assert!(
            state.held_owners.iter().any(|o| o.to_string() == owner),
            "{owner} not held"
        );
    }
    assert_eq!(state.problems.len(), 4, "{:?}", state.problems);
    assert!(state.problems.iter().any(|p| p.to_string()
        == "Pod/default/web: address 10.17.0.5 is outside ovn-default (10.16.0.0/16)"));
}

#[test]
fn colliding_port_names_keep_the_first_and_report_the_second() {
    let mut c = cluster();
    c.nodes.push(Node {
        name: "a.b".into(),
        join_ip: ip("100.64.0.3"),
        join_mac: MacAddr::derived_from(ip("100.64.0.3")),
        chassis: None,
        internal_ip: None,
    });
    c.pods.push(PodPort {
        namespace: "b".into(),
        name: "node-a".into(),
        ip: ip("10.16.0.6"),
        ..c.pods[0].clone()
    });
    let state = desired_state(&c);
    assert_eq!(
        placed::<LogicalSwitchPort>(&state, "node-a.b")
            .row
            .external_ids["rovn.io/owner"],
        "Node/a.b"
    );
    assert!(state.held_owners.contains(&Owner::pod("b", "node-a")));
}

#[test]
fn ports_are_bound_to_the_reported_chassis_when_known() {
    let mut c = cluster();
    c.nodes[0].chassis = Some("chassis-7".into());
    let state = desired_state(&c);
    assert_eq!(
        placed::<LogicalSwitchPort>(&state, "web.default")
            .row
            .options["requested-chassis"],
        "chassis-7"
    );
    assert_eq!(
        placed::<LogicalSwitchPort>(&state, "node-n1").row.options["requested-chassis"],
        "chassis-7"
    );
}
