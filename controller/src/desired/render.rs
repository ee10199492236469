//! Cluster snapshot → desired rows. Pure: no I/O, no clock, no randomness.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rovn_ovsdb_schemas::nb::{
    LoadBalancer, LoadBalancerGroup, LogicalRouter, LogicalRouterPort, LogicalSwitch,
    LogicalSwitchPort, PortGroup,
};

use rovn_api::Owner;

use super::cluster::{ClusterState, Node, PodPort, Policy, Service};
use super::egress::{render_cluster_egress, render_node_egress};
use super::policies::{
    PolicyPods, render_log_meter, render_namespace, render_node_group, render_policy,
};
use super::private::render_private_subnet;
use super::services::{render_local_backends, render_service};
use super::state::{DesiredError, DesiredState, RowKey};
use rovn_api::MacAddr;
use rovn_api::names::{
    self, NODE_KEY, POD_UID_KEY, REQUESTED_CHASSIS, ROUTER_PORT_OPTION, SUBNET_CONFIG,
};
use rovn_ovsdb::Model;

/// The owner of the cluster router and the `join` switch.
fn cluster_owner() -> Owner {
    Owner::cluster(names::CLUSTER_ROUTER)
}

/// The rows rovn wants for `cluster`. Objects that cannot be rendered are left out, listed in
/// [`DesiredState::problems`] and their owners put in [`DesiredState::held_owners`], so the
/// rest of the cluster still converges.
pub fn desired_state(cluster: &ClusterState) -> DesiredState {
    render_cluster(cluster).0
}

/// [`desired_state`] with what [`render_pod`] needs to render one pod again later.
pub fn render_cluster(cluster: &ClusterState) -> (DesiredState, PodContext) {
    let (mut state, pods) = desired_topology(cluster);
    for node in &cluster.nodes {
        render_node(
            &mut state,
            &pods,
            node,
            &cluster.services,
            &cluster.policy_pods,
        );
    }
    for pod in &cluster.pods {
        render_pod(&mut state, &pods, pod);
    }
    for service in &cluster.services {
        render_service(&mut state, service);
    }
    let mut by_namespace: BTreeMap<&str, Vec<&Policy>> = BTreeMap::new();
    for policy in &cluster.policies {
        render_policy(&mut state, policy, &cluster.policy_pods);
        by_namespace
            .entry(policy.namespace.as_str())
            .or_default()
            .push(policy);
    }
    for (namespace, policies) in by_namespace {
        render_namespace(&mut state, namespace, &policies, &cluster.policy_pods);
    }
    (state, pods)
}

/// What a pod's port depends on besides the pod itself: its switch's CIDR and its node's
/// chassis. Kept from the last full render, so one pod can be rendered again on its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodContext {
    cidrs: BTreeMap<String, Ipv4Net>,
    chassis: BTreeMap<String, String>,
    /// The private Subnets' switches and their pods' port groups.
    private: BTreeMap<String, String>,
}

/// Everything of `cluster` but its nodes, pods and Services (the router, the load balancer
/// group, the switches and their router ports), and what [`render_node`] and [`render_pod`]
/// need to add them one by one.
fn desired_topology(cluster: &ClusterState) -> (DesiredState, PodContext) {
    let mut state = DesiredState::default();
    let cluster_owner = cluster_owner();
    let router = LogicalRouter {
        name: names::CLUSTER_ROUTER.to_string(),
        ..Default::default()
    };
    state.add(&cluster_owner, &router, "", None);
    let group = LoadBalancerGroup {
        name: names::CLUSTER_LB_GROUP.to_string(),
        ..Default::default()
    };
    if let Some(row) = state.add(&cluster_owner, &group, "", None) {
        row.refer(LoadBalancerGroup::LOAD_BALANCER, LoadBalancer::TABLE, []);
    }
    render_log_meter(&mut state, &cluster_owner);

    let mut cidrs: BTreeMap<String, Ipv4Net> = BTreeMap::new();
    let mut private = BTreeMap::new();
    let switches = std::iter::once((
        names::JOIN_SWITCH,
        cluster.join.cidr,
        cluster.join.gateway,
        cluster_owner.clone(),
        None,
    ))
    .chain(cluster.subnets.iter().map(|s| {
        (
            s.name.as_str(),
            s.cidr,
            s.gateway,
            Owner::subnet(&s.name),
            Some(s),
        )
    }));
    for (name, cidr, gateway, owner, subnet) in switches {
        if let Err(reason) = check_subnet(cidr, gateway) {
            let problem = DesiredError::BadSubnet {
                owner: owner.clone(),
                reason,
            };
            state.hold(&owner, problem);
            continue;
        }
        if render_switch(&mut state, name, cidr, gateway, &owner) {
            cidrs.insert(name.to_string(), cidr.trunc());
            if let Some(subnet) = subnet.filter(|s| s.private) {
                let group = render_private_subnet(&mut state, subnet, cluster.join.cidr);
                private.insert(name.to_string(), group);
            }
        }
    }

    let ranges: Vec<Ipv4Net> = std::iter::once(cluster.join.cidr)
        .chain(std::iter::once(cluster.service_cidr))
        .chain(cluster.subnets.iter().map(|s| s.cidr))
        .map(|c| c.trunc())
        .collect();
    render_cluster_egress(&mut state, &cluster_owner, cluster.join.gateway, &ranges);

    let chassis = cluster
        .nodes
        .iter()
        .filter_map(|n| Some((n.name.clone(), n.chassis.clone()?)))
        .collect();
    (
        state,
        PodContext {
            cidrs,
            chassis,
            private,
        },
    )
}

/// Why a switch cannot hold ports with this addressing, if it cannot.
fn check_subnet(cidr: Ipv4Net, gateway: Ipv4Addr) -> Result<(), String> {
    if cidr.prefix_len() > 30 {
        return Err(format!("CIDR {cidr} is too small to hold ports"));
    }
    if !cidr.contains(&gateway) || gateway == cidr.network() || gateway == cidr.broadcast() {
        return Err(format!("gateway {gateway} is not a host address of {cidr}"));
    }
    Ok(())
}

/// `addresses` / `port_security` value of a port with one MAC and one IPv4 address.
pub(crate) fn mac_ip(mac: MacAddr, ip: Ipv4Addr) -> String {
    format!("{mac} {ip}")
}

/// The switch (carrying the cluster's load balancer group), its router port and the router
/// port's peer; false (and `owner` held) when the
/// switch's name is already taken.
fn render_switch(
    state: &mut DesiredState,
    name: &str,
    cidr: Ipv4Net,
    gateway: Ipv4Addr,
    owner: &Owner,
) -> bool {
    let switch = LogicalSwitch {
        name: name.to_string(),
        other_config: BTreeMap::from([(SUBNET_CONFIG.to_string(), cidr.trunc().to_string())]),
        ..Default::default()
    };
    let Some(row) = state.add(owner, &switch, "", None) else {
        return false;
    };
    row.refer(
        LogicalSwitch::LOAD_BALANCER_GROUP,
        LoadBalancerGroup::TABLE,
        [RowKey::name(names::CLUSTER_LB_GROUP)],
    );
    let router_port = names::router_port(name);
    let lrp = LogicalRouterPort {
        name: router_port.clone(),
        mac: MacAddr::derived_from(gateway).to_string(),
        networks: BTreeSet::from([format!("{gateway}/{}", cidr.prefix_len())]),
        ..Default::default()
    };
    state.add(owner, &lrp, "", Some(RowKey::name(names::CLUSTER_ROUTER)));
    let peer = LogicalSwitchPort {
        name: names::switch_router_port(name),
        type_: "router".to_string(),
        addresses: BTreeSet::from(["router".to_string()]),
        options: BTreeMap::from([(ROUTER_PORT_OPTION.to_string(), router_port)]),
        ..Default::default()
    };
    state.add(owner, &peer, "", Some(RowKey::name(name)));
    true
}

/// Adds `node`'s rows: its port on `join`, its chassis's values of the node-local
/// `services`' template balancers, the port group of its pods (from `pods`) and the reroute
/// of their traffic to the outside through the node.
pub fn render_node(
    state: &mut DesiredState,
    context: &PodContext,
    node: &Node,
    services: &[Service],
    pods: &PolicyPods,
) {
    let Some(join_cidr) = context.cidrs.get(names::JOIN_SWITCH).copied() else {
        return;
    };
    let owner = Owner::node(&node.name);
    if !join_cidr.contains(&node.join_ip) {
        let problem = DesiredError::OutsideSubnet {
            owner: owner.clone(),
            ip: node.join_ip,
            switch: names::JOIN_SWITCH.to_string(),
            cidr: join_cidr,
        };
        state.hold(&owner, problem);
        return;
    }
    // L2-only port security: the node is trusted, and what it forwards into OVN (replies
    // de-masqueraded back to a pod, NodePort and hostPort traffic DNATed with the client's
    // address kept) carries sources other than its join IP. Pods' ports keep MAC and IP.
    let port = LogicalSwitchPort {
        name: names::node_port(&node.name),
        addresses: BTreeSet::from([mac_ip(node.join_mac, node.join_ip)]),
        port_security: BTreeSet::from([node.join_mac.to_string()]),
        options: BTreeMap::from([(
            REQUESTED_CHASSIS.to_string(),
            node.chassis.clone().unwrap_or_else(|| node.name.clone()),
        )]),
        external_ids: BTreeMap::from([(NODE_KEY.to_string(), node.name.clone())]),
        ..Default::default()
    };
    state.add(&owner, &port, "", Some(RowKey::name(names::JOIN_SWITCH)));
    render_local_backends(state, node, services);
    render_node_group(state, node, pods);
    render_node_egress(state, node);
}

/// Adds `pod`'s port to `state`. Its port is bound to its node's chassis when the agent has
/// reported it, else to the node's name (which OVN also matches against the chassis hostname).
/// On a private Subnet the port also joins the Subnet's port group: the Subnet's owner is
/// returned, since its row changed too and must be diffed with the pod's.
pub fn render_pod(state: &mut DesiredState, context: &PodContext, pod: &PodPort) -> Option<Owner> {
    let cidr = context
        .cidrs
        .get(&pod.switch)
        .filter(|_| pod.switch != names::JOIN_SWITCH)
        .copied();
    let chassis = context.chassis.get(&pod.node).unwrap_or(&pod.node);
    let owner = Owner::pod(&pod.namespace, &pod.name);
    let Some(cidr) = cidr else {
        let problem = DesiredError::UnknownSwitch {
            owner: owner.clone(),
            switch: pod.switch.clone(),
        };
        state.hold(&owner, problem);
        return None;
    };
    if !cidr.contains(&pod.ip) {
        let problem = DesiredError::OutsideSubnet {
            owner: owner.clone(),
            ip: pod.ip,
            switch: pod.switch.clone(),
            cidr,
        };
        state.hold(&owner, problem);
        return None;
    }
    let address = mac_ip(pod.mac, pod.ip);
    let port = LogicalSwitchPort {
        name: names::pod_port(&pod.namespace, &pod.name),
        addresses: BTreeSet::from([address.clone()]),
        port_security: BTreeSet::from([address]),
        options: BTreeMap::from([(REQUESTED_CHASSIS.to_string(), chassis.to_string())]),
        external_ids: BTreeMap::from([
            (POD_UID_KEY.to_string(), pod.uid.clone()),
            (NODE_KEY.to_string(), pod.node.clone()),
        ]),
        ..Default::default()
    };
    state.add(&owner, &port, "", Some(RowKey::name(&pod.switch)))?;
    let group = context.private.get(&pod.switch)?;
    let port_key = RowKey::name(names::pod_port(&pod.namespace, &pod.name));
    state.row_mut::<PortGroup>(&RowKey::name(group))?.refer(
        PortGroup::PORTS,
        LogicalSwitchPort::TABLE,
        [port_key],
    );
    Some(Owner::subnet(&pod.switch))
}

/// Takes the pod `owner` out of `state`, with its place in its private Subnet's port group;
/// returns that Subnet's owner when there was one (its row changed, as for [`render_pod`]).
pub fn remove_pod(state: &mut DesiredState, context: &PodContext, owner: &Owner) -> Option<Owner> {
    let namespace = owner.namespace().unwrap_or_default();
    let port_key = RowKey::name(names::pod_port(namespace, owner.name()));
    let switch = state
        .row::<LogicalSwitchPort>(&port_key)
        .filter(|row| &row.owner == owner)
        .and_then(|row| row.parent.clone());
    state.remove_owner(owner);
    let switch = switch?;
    let group = context.private.get(switch.as_str())?;
    state
        .row_mut::<PortGroup>(&RowKey::name(group))?
        .unrefer(PortGroup::PORTS, &port_key);
    Some(Owner::subnet(switch.as_str()))
}

#[cfg(test)]
mod tests;
