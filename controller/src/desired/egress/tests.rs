use rovn_api::{Owner, names};
use rovn_ovsdb_schemas::nb::{
    LogicalRouterPolicy, LogicalRouterPolicyAction, LogicalRouterStaticRoute,
};

use super::*;
use crate::desired::fixtures::{self, node, subnet};
use crate::desired::state::{DesiredState, RowKey};
use crate::desired::{ClusterState, desired_state};

fn cluster() -> ClusterState {
    fixtures::cluster(
        vec![
            subnet("ovn-default", "10.16.0.0/16", "10.16.0.1"),
            subnet("next-door", "10.17.0.0/16", "10.17.0.1"),
        ],
        vec![node("n1", "100.64.0.2"), node("n2", "100.64.0.3")],
        Vec::new(),
    )
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
    grown
        .subnets
        .push(subnet("far", "192.168.5.0/24", "192.168.5.1"));
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

#[test]
fn a_node_with_an_address_takes_the_traffic_for_it_through_its_own_join_port() {
    let mut cluster = cluster();
    cluster.nodes[1].internal_ip = Some(
        "172.30.0.12"
            .parse()
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
    );
    let state = desired_state(&cluster);
    let (to_node, parent) = policy(&state, &Owner::node("n2"), names::NODE_ADDRESS_REROUTE_ID)
        .unwrap_or_else(|| panic!("n2 has no reroute for its address"));
    assert_eq!(parent, names::CLUSTER_ROUTER);
    assert_eq!(to_node.priority, NODE_ADDRESS_PRIORITY);
    assert_eq!(to_node.match_, "ip4.dst == 172.30.0.12");
    assert_eq!(to_node.action, LogicalRouterPolicyAction::Reroute);
    assert_eq!(to_node.nexthops.iter().collect::<Vec<_>>(), ["100.64.0.3"]);
    // A node that reports no address gets none.
    assert!(policy(&state, &Owner::node("n1"), names::NODE_ADDRESS_REROUTE_ID).is_none());
}
