//! Cluster snapshot → desired rows. Pure: no I/O, no clock, no randomness.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rovn_api::MacAddr;
use rovn_api::Owner;
use rovn_api::names::{
    self, NODE_KEY, POD_UID_KEY, REQUESTED_CHASSIS, ROUTER_PORT_OPTION, SUBNET_CONFIG,
};
use rovn_ovsdb_schemas::nb::{LogicalRouter, LogicalRouterPort, LogicalSwitch, LogicalSwitchPort};

use super::cluster::{ClusterState, Node, PodPort};
use super::state::{Attached, DesiredError, DesiredState};

/// The owner of the cluster router and the `join` switch.
fn cluster_owner() -> String {
    Owner::cluster(names::CLUSTER_ROUTER).to_string()
}

fn owned_ids(owner: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (names::VENDOR_KEY.to_string(), names::VENDOR.to_string()),
        (names::OWNER_KEY.to_string(), owner.to_string()),
    ])
}

/// The rows rovn wants for `cluster`. Objects that cannot be rendered are left out, listed in
/// [`DesiredState::problems`] and their owners put in [`DesiredState::held_owners`], so the
/// rest of the cluster still converges.
pub fn desired_state(cluster: &ClusterState) -> DesiredState {
    let mut state = DesiredState::default();
    let cluster_owner = cluster_owner();
    state.routers.insert(
        names::CLUSTER_ROUTER.to_string(),
        LogicalRouter {
            name: names::CLUSTER_ROUTER.to_string(),
            external_ids: owned_ids(&cluster_owner),
            ..Default::default()
        },
    );

    let mut cidrs: BTreeMap<String, Ipv4Net> = BTreeMap::new();
    let switches = std::iter::once((
        names::JOIN_SWITCH,
        cluster.join.cidr,
        cluster.join.gateway,
        cluster_owner.clone(),
    ))
    .chain(cluster.subnets.iter().map(|s| {
        (
            s.name.as_str(),
            s.cidr,
            s.gateway,
            Owner::subnet(&s.name).to_string(),
        )
    }));
    for (name, cidr, gateway, owner) in switches {
        if let Err(problem) = check_subnet(&owner, cidr, gateway) {
            state.hold(&owner, problem);
            continue;
        }
        if let Some(other) = state.switches.get(name).and_then(owner_of_switch) {
            let problem = DesiredError::Duplicate {
                owner: owner.clone(),
                name: name.to_string(),
                other,
            };
            state.hold(&owner, problem);
            continue;
        }
        cidrs.insert(name.to_string(), cidr.trunc());
        render_switch(&mut state, name, cidr, gateway, &owner);
    }

    if let Some(join_cidr) = cidrs.get(names::JOIN_SWITCH).copied() {
        for node in &cluster.nodes {
            render_node(&mut state, node, join_cidr);
        }
    }
    let chassis: BTreeMap<&str, &str> = cluster
        .nodes
        .iter()
        .filter_map(|n| Some((n.name.as_str(), n.chassis.as_deref()?)))
        .collect();
    for pod in &cluster.pods {
        let cidr = cidrs
            .get(&pod.switch)
            .filter(|_| pod.switch != names::JOIN_SWITCH)
            .copied();
        let bound_to = chassis.get(pod.node.as_str()).copied().unwrap_or(&pod.node);
        render_pod(&mut state, pod, cidr, bound_to);
    }
    state
}

impl DesiredState {
    fn hold(&mut self, owner: &str, problem: DesiredError) {
        self.held_owners.insert(owner.to_string());
        self.problems.push(problem);
    }

    /// Adds a switch port unless its name is taken, in which case the owner is held.
    fn add_switch_port(&mut self, owner: &str, port: Attached<LogicalSwitchPort>) {
        if let Some(existing) = self.switch_ports.get(&port.row.name) {
            let other = existing
                .row
                .external_ids
                .get(names::OWNER_KEY)
                .cloned()
                .unwrap_or_default();
            let problem = DesiredError::Duplicate {
                owner: owner.to_string(),
                name: port.row.name.clone(),
                other,
            };
            self.hold(owner, problem);
            return;
        }
        self.switch_ports.insert(port.row.name.clone(), port);
    }
}

fn owner_of_switch(switch: &LogicalSwitch) -> Option<String> {
    switch.external_ids.get(names::OWNER_KEY).cloned()
}

fn check_subnet(owner: &str, cidr: Ipv4Net, gateway: Ipv4Addr) -> Result<(), DesiredError> {
    let bad = |reason: String| DesiredError::BadSubnet {
        owner: owner.to_string(),
        reason,
    };
    if cidr.prefix_len() > 30 {
        return Err(bad(format!("CIDR {cidr} is too small to hold ports")));
    }
    if !cidr.contains(&gateway) || gateway == cidr.network() || gateway == cidr.broadcast() {
        return Err(bad(format!(
            "gateway {gateway} is not a host address of {cidr}"
        )));
    }
    Ok(())
}

/// `addresses` / `port_security` value of a port with one MAC and one IPv4 address.
pub(crate) fn mac_ip(mac: MacAddr, ip: Ipv4Addr) -> String {
    format!("{mac} {ip}")
}

fn render_switch(
    state: &mut DesiredState,
    name: &str,
    cidr: Ipv4Net,
    gateway: Ipv4Addr,
    owner: &str,
) {
    let ids = owned_ids(owner);
    state.switches.insert(
        name.to_string(),
        LogicalSwitch {
            name: name.to_string(),
            other_config: BTreeMap::from([(SUBNET_CONFIG.to_string(), cidr.trunc().to_string())]),
            external_ids: ids.clone(),
            ..Default::default()
        },
    );
    let router_port = names::router_port(name);
    state.router_ports.insert(
        router_port.clone(),
        Attached {
            parent: names::CLUSTER_ROUTER.to_string(),
            row: LogicalRouterPort {
                name: router_port.clone(),
                mac: MacAddr::derived_from(gateway).to_string(),
                networks: BTreeSet::from([format!("{gateway}/{}", cidr.prefix_len())]),
                external_ids: ids.clone(),
                ..Default::default()
            },
        },
    );
    state.add_switch_port(
        owner,
        Attached {
            parent: name.to_string(),
            row: LogicalSwitchPort {
                name: names::switch_router_port(name),
                type_: "router".to_string(),
                addresses: BTreeSet::from(["router".to_string()]),
                options: BTreeMap::from([(ROUTER_PORT_OPTION.to_string(), router_port)]),
                external_ids: ids,
                ..Default::default()
            },
        },
    );
}

fn render_node(state: &mut DesiredState, node: &Node, join_cidr: Ipv4Net) {
    let owner = Owner::node(&node.name).to_string();
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
    let address = mac_ip(node.join_mac, node.join_ip);
    let mut ids = owned_ids(&owner);
    ids.insert(NODE_KEY.to_string(), node.name.clone());
    state.add_switch_port(
        &owner,
        Attached {
            parent: names::JOIN_SWITCH.to_string(),
            row: LogicalSwitchPort {
                name: names::node_port(&node.name),
                addresses: BTreeSet::from([address.clone()]),
                port_security: BTreeSet::from([address]),
                options: BTreeMap::from([(
                    REQUESTED_CHASSIS.to_string(),
                    node.chassis.clone().unwrap_or_else(|| node.name.clone()),
                )]),
                external_ids: ids,
                ..Default::default()
            },
        },
    );
}

/// `chassis` is the node's chassis name when the agent has reported it, else the node's name
/// (which OVN also matches against the chassis hostname).
fn render_pod(state: &mut DesiredState, pod: &PodPort, cidr: Option<Ipv4Net>, chassis: &str) {
    let owner = Owner::pod(&pod.namespace, &pod.name).to_string();
    let Some(cidr) = cidr else {
        let problem = DesiredError::UnknownSwitch {
            owner: owner.clone(),
            switch: pod.switch.clone(),
        };
        state.hold(&owner, problem);
        return;
    };
    if !cidr.contains(&pod.ip) {
        let problem = DesiredError::OutsideSubnet {
            owner: owner.clone(),
            ip: pod.ip,
            switch: pod.switch.clone(),
            cidr,
        };
        state.hold(&owner, problem);
        return;
    }
    let address = mac_ip(pod.mac, pod.ip);
    let mut ids = owned_ids(&owner);
    ids.insert(POD_UID_KEY.to_string(), pod.uid.clone());
    ids.insert(NODE_KEY.to_string(), pod.node.clone());
    state.add_switch_port(
        &owner,
        Attached {
            parent: pod.switch.clone(),
            row: LogicalSwitchPort {
                name: names::pod_port(&pod.namespace, &pod.name),
                addresses: BTreeSet::from([address.clone()]),
                port_security: BTreeSet::from([address]),
                options: BTreeMap::from([(REQUESTED_CHASSIS.to_string(), chassis.to_string())]),
                external_ids: ids,
                ..Default::default()
            },
        },
    );
}

#[cfg(test)]
mod tests;
