use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rovn_api::{MacAddr, Owner, names};
use rovn_ovsdb_schemas::nb::{
    LogicalRouterPolicy, LogicalRouterPolicyAction, LogicalRouterStaticRoute,
};

use super::*;
use crate::desired::state::{DesiredState, RowKey};
use crate::desired::{ClusterState, JoinSubnet, Subnet, desired_state};

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap_or_default()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
}

fn node(name: &str, join_ip: &str) -> Node {
    Node {
        name: name.into(),
        join_ip: ip(join_ip),
        join_mac: MacAddr::derived_from(ip(join_ip)),
        chassis: None,
    }
}

fn cluster() -> ClusterState {
    ClusterState {
        join: JoinSubnet {
            cidr: net("100.64.0.0/16"),
            gateway: ip("100.64.0.1"),
        },
        service_cidr: net("10.96.0.0/12"),
        subnets: vec![
            Subnet {
                name: "ovn-default".into(),
                cidr: net("10.16.0.0/16"),
                gateway: ip("10.16.0.1"),
                private: false,
                allow_subnets: Vec::new(),
            },
            Subnet {
                name: "next-door".into(),
                cidr: net("10.17.0.0/16"),
                gateway: ip("10.17.0.1"),
                private: false,
                allow_subnets: Vec::new(),
            },
        ],
        nodes: vec![node("n1", "100.64.0.2"), node("n2", "100.64.0.3")],
        pods: Vec::new(),
        services: Vec::new(),
        policies: Vec::new(),
        policy_pods: Default::default(),
    }
}

fn policy(state: &DesiredState, owner: &Owner, id: &str) -> Option<(LogicalRouterPolicy, String)> {
    let key = RowKey::owned(&owner.to_string(), id);
    let parent = state
        .row::<LogicalRouterPolicy>(&key)?
        .parent
        .as_ref()?
        .to_string();
    Some((state.model::<LogicalRouterPolicy>(&key)?, parent))
}

#[test]
fn every_node_reroutes_its_own_pods_to_its_join_ip() {
    let state = desired_state(&cluster());
    assert!(state.problems.is_empty(), "{:?}", state.problems);
    for (name, join_ip) in [("n1", "100.64.0.2"), ("n2", "100.64.0.3")] {
        let owner = Owner::node(name);
        let (reroute, parent) =
            policy(&state, &owner, names::EGRESS_REROUTE_ID).unwrap_or_default();
        assert_eq!(parent, names::CLUSTER_ROUTER);
        assert_eq!(reroute.priority, REROUTE_PRIORITY);
        assert_eq!(reroute.action, LogicalRouterPolicyAction::Reroute);
        assert_eq!(
            reroute.match_,
            format!("ip4.src == ${}_ip4", names::node_port_group(name))
        );
        assert_eq!(reroute.nexthops.iter().collect::<Vec<_>>(), [join_ip]);
        assert_eq!(
            reroute.external_ids[names::OWNER_KEY],
            format!("Node/{name}")
        );
        assert_eq!(
            reroute.external_ids[names::ID_KEY],
            names::EGRESS_REROUTE_ID
        );
    }
}

#[test]
fn the_cluster_keeps_its_own_ranges_routed_and_has_a_default_route() {
    let state = desired_state(&cluster());
    let owner = Owner::cluster(names::CLUSTER_ROUTER);
    let (allow, parent) = policy(&state, &owner, names::IN_CLUSTER_POLICY_ID).unwrap_or_default();
    assert_eq!(parent, names::CLUSTER_ROUTER);
    assert_eq!(allow.action, LogicalRouterPolicyAction::Allow);
    assert!(allow.priority > REROUTE_PRIORITY);
    // The two neighbouring /16 Subnets merge into one /15.
    assert_eq!(
        allow.match_,
        "ip4.dst == {10.16.0.0/15, 10.96.0.0/12, 100.64.0.0/16}"
    );
    let key = RowKey::owned(&owner.to_string(), names::DEFAULT_ROUTE_ID);
    let route = state
        .model::<LogicalRouterStaticRoute>(&key)
        .unwrap_or_default();
    assert_eq!(route.ip_prefix, "0.0.0.0/0");
    assert_eq!(route.nexthop, "100.64.0.1");
}

#[test]
fn a_new_subnet_widens_the_in_cluster_allow_and_leaves_reroutes_alone() {
    let before = desired_state(&cluster());
    let mut grown = cluster();
    grown.subnets.push(Subnet {
        name: "far".into(),
        cidr: net("192.168.5.0/24"),
        gateway: ip("192.168.5.1"),
        private: false,
        allow_subnets: Vec::new(),
    });
    let after = desired_state(&grown);
    let owner = Owner::cluster(names::CLUSTER_ROUTER);
    let (allow, _) = policy(&after, &owner, names::IN_CLUSTER_POLICY_ID).unwrap_or_default();
    assert!(allow.match_.contains("192.168.5.0/24"), "{}", allow.match_);
    for name in ["n1", "n2"] {
        let owner = Owner::node(name);
        assert_eq!(
            policy(&before, &owner, names::EGRESS_REROUTE_ID),
            policy(&after, &owner, names::EGRESS_REROUTE_ID)
        );
    }
}

#[test]
fn the_node_join_port_checks_only_its_mac() {
    let state = desired_state(&cluster());
    let port = state
        .model::<rovn_ovsdb_schemas::nb::LogicalSwitchPort>(&RowKey::name("node-n1"))
        .unwrap_or_default();
    assert_eq!(
        port.port_security.iter().collect::<Vec<_>>(),
        ["0a:58:64:40:00:02"]
    );
    assert!(port.addresses.contains("0a:58:64:40:00:02 100.64.0.2"));
}
