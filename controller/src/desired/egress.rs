//! Pods' traffic to the world outside the cluster: it leaves through the pod's own node (local
//! gateway mode, Kube-OVN's `natOutgoing`, ovn-kubernetes' local gateway), whose nftables
//! masquerade it (`natOutgoing` Subnets) or pass it on unchanged.
//!
//! OVN routes before it applies router policies (`lr_in_ip_routing` runs before
//! `lr_in_policy`), and a packet with no route is dropped in routing, before any policy sees it
//! (checked with `ovn-trace` on OVN 23.03). So the cluster router gets a default static route
//! to the join gateway, and then two kinds of policies decide:
//! - [`IN_CLUSTER_PRIORITY`], owned by the cluster: `allow` for destinations inside the cluster
//!   (pod Subnets, `join`, the Service range), which keeps their normal route;
//! - [`NODE_ADDRESS_PRIORITY`], one per node, owned by the Node: traffic for the node's own
//!   `InternalIP` `reroute`s to its join IP, so a pod's packets to a node and the node's replies
//!   cross that node's `join` port both ways (through the pod's own node, the replies would
//!   come back into OVN through a port whose conntrack zone never saw the connection start,
//!   and be dropped as invalid when the pod's Subnet does not masquerade);
//! - [`REROUTE_PRIORITY`], one per node, owned by the Node: its pods (the node port group's
//!   implicit `$<group>_ip4` address set) `reroute` to the node's join IP.
//!
//! A pod whose node has no reroute yet follows the default route to the router's own join
//! address, which resolves to nothing: its outside traffic is dropped, as before egress existed.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rovn_api::{Owner, names};
use rovn_ovsdb_schemas::nb::{
    LogicalRouterPolicy, LogicalRouterPolicyAction, LogicalRouterStaticRoute,
};

use super::cluster::Node;
use super::state::{DesiredState, RowKey};

/// The priority of the cluster's `allow` for in-cluster destinations: above every node's
/// reroute, so pod → pod, pod → node join IP and pod → Service traffic is never rerouted.
pub const IN_CLUSTER_PRIORITY: i64 = 1010;

/// The priority of each node's reroute of its pods' traffic to the outside. Below
/// [`IN_CLUSTER_PRIORITY`]; 1000 leaves room below for policies that should lose to it and
/// above (up to the in-cluster allow) for per-destination exceptions.
pub const REROUTE_PRIORITY: i64 = 1000;

/// The priority of each node's reroute of traffic for its own address: above every node's
/// reroute of its pods (a pod on node A reaching node B goes to B), below the in-cluster allow.
pub const NODE_ADDRESS_PRIORITY: i64 = 1005;

const _: () = assert!(REROUTE_PRIORITY < NODE_ADDRESS_PRIORITY);
const _: () = assert!(NODE_ADDRESS_PRIORITY < IN_CLUSTER_PRIORITY);

/// The default route's prefix: every destination, so routing reaches the policy stage.
const DEFAULT_PREFIX: &str = "0.0.0.0/0";

/// Adds the cluster's egress rows: the default route to `join_gateway` (the router's own
/// address on `join`) and the `allow` keeping traffic to `ranges` (the cluster's pod Subnets,
/// join and Service CIDRs) on its normal route.
pub fn render_cluster_egress(
    state: &mut DesiredState,
    owner: &Owner,
    join_gateway: Ipv4Addr,
    ranges: &[Ipv4Net],
) {
    let router = Some(RowKey::name(names::CLUSTER_ROUTER));
    let route = LogicalRouterStaticRoute {
        ip_prefix: DEFAULT_PREFIX.to_string(),
        nexthop: join_gateway.to_string(),
        ..Default::default()
    };
    state.add(owner, &route, names::DEFAULT_ROUTE_ID, router.clone());
    let allow = LogicalRouterPolicy {
        priority: IN_CLUSTER_PRIORITY,
        match_: format!("ip4.dst == {}", address_list(ranges)),
        action: LogicalRouterPolicyAction::Allow,
        ..Default::default()
    };
    state.add(owner, &allow, names::IN_CLUSTER_POLICY_ID, router);
}

/// Adds `node`'s reroutes: traffic for its own address, and its pods' traffic that no higher
/// policy kept in the cluster, go to its join IP, where the node's kernel and nftables take it.
pub fn render_node_egress(state: &mut DesiredState, node: &Node) {
    let owner = Owner::node(&node.name);
    if let Some(address) = node.internal_ip {
        let to_node = LogicalRouterPolicy {
            priority: NODE_ADDRESS_PRIORITY,
            match_: format!("ip4.dst == {address}"),
            action: LogicalRouterPolicyAction::Reroute,
            nexthops: [node.join_ip.to_string()].into(),
            ..Default::default()
        };
        state.add(
            &owner,
            &to_node,
            names::NODE_ADDRESS_REROUTE_ID,
            Some(RowKey::name(names::CLUSTER_ROUTER)),
        );
    }
    let reroute = LogicalRouterPolicy {
        priority: REROUTE_PRIORITY,
        match_: format!("ip4.src == ${}_ip4", names::node_port_group(&node.name)),
        action: LogicalRouterPolicyAction::Reroute,
        nexthops: [node.join_ip.to_string()].into(),
        ..Default::default()
    };
    state.add(
        &owner,
        &reroute,
        names::EGRESS_REROUTE_ID,
        Some(RowKey::name(names::CLUSTER_ROUTER)),
    );
}

/// `ranges` merged (overlaps and neighbours joined) and sorted, as an OVN address list.
fn address_list(ranges: &[Ipv4Net]) -> String {
    let merged = Ipv4Net::aggregate(&ranges.to_vec());
    let items: Vec<String> = merged.iter().map(ToString::to_string).collect();
    format!("{{{}}}", items.join(", "))
}

#[cfg(test)]
mod tests;
