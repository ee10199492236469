//! Services → load balancers: one per Service and protocol, every one in the cluster's load
//! balancer group, which every switch carries, so pods, nodes (through `join`) and hostNetwork
//! pods reach every ClusterIP without a per-switch reference per Service.
//!
//! `internalTrafficPolicy: Local` needs a client's backends to depend on the client's node,
//! while switches span nodes. The Service's balancer is then an OVN template: each VIP's
//! backends are a chassis template variable, and each node's `Chassis_Template_Var` row (owned
//! by the Node) gives it that node's own endpoints. One balancer and one row per node, instead
//! of a balancer per node and Service that no switch could be scoped to.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use rovn_api::Owner;
use rovn_api::names::{self, CLUSTER_LB_GROUP};
use rovn_ovsdb_schemas::nb::{
    ChassisTemplateVar, LoadBalancer, LoadBalancerGroup, LoadBalancerProtocol,
    LoadBalancerSelectionFields,
};

use super::cluster::{Endpoint, Node, Protocol, Service, ServicePort};
use super::state::{DesiredState, RowKey};
use rovn_ovsdb::Model;

/// OVN's largest `affinity_timeout` (seconds); Kubernetes allows up to a day.
const MAX_AFFINITY_TIMEOUT: u32 = 65_535;

/// Adds `service`'s load balancers to `state` and to the cluster's load balancer group. A
/// VIP without a usable endpoint has no backends and `reject=true`, so its clients are
/// refused at once instead of timing out.
pub fn render_service(state: &mut DesiredState, service: &Service) {
    let owner = Owner::service(&service.namespace, &service.name);
    let mut vips: BTreeMap<Protocol, BTreeMap<String, String>> = BTreeMap::new();
    for port in &service.ports {
        // A node-local Service's backends are each chassis's own (`render_local_backends`).
        let backends = (!service.local_only).then(|| backends(service, port, |_| true));
        for ip in &service.cluster_ips {
            let vip = format!("{ip}:{}", port.port);
            let value = match &backends {
                Some(backends) => backends.clone(),
                None => format!("^{}", local_variable(service, port, &vip)),
            };
            vips.entry(port.protocol).or_default().insert(vip, value);
        }
    }
    let group = RowKey::name(CLUSTER_LB_GROUP);
    for (protocol, vips) in vips {
        let name =
            names::service_load_balancer(&service.namespace, &service.name, protocol.as_str());
        let mut options = BTreeMap::from([("reject".to_string(), "true".to_string())]);
        let mut selection_fields = BTreeSet::new();
        if let Some(timeout) = service.affinity_timeout {
            let timeout = timeout.clamp(1, MAX_AFFINITY_TIMEOUT);
            options.insert("affinity_timeout".to_string(), timeout.to_string());
            selection_fields.insert(LoadBalancerSelectionFields::IpSrc);
        }
        if service.local_only {
            options.insert("template".to_string(), "true".to_string());
            options.insert("address-family".to_string(), "ipv4".to_string());
        }
        let lb = LoadBalancer {
            name: name.clone(),
            protocol: Some(match protocol {
                Protocol::Tcp => LoadBalancerProtocol::Tcp,
                Protocol::Udp => LoadBalancerProtocol::Udp,
                Protocol::Sctp => LoadBalancerProtocol::Sctp,
            }),
            vips,
            selection_fields,
            options,
            ..Default::default()
        };
        if state.add(&owner, &lb, "", None).is_some()
            && let Some(row) = state.row_mut::<LoadBalancerGroup>(&group)
        {
            row.refer(
                LoadBalancerGroup::LOAD_BALANCER,
                LoadBalancer::TABLE,
                [RowKey::name(name)],
            );
        }
    }
}

/// Forgets everything the Service `owner` wants, including its place in the load balancer
/// group: the first step of rendering it again, and all of deleting it.
pub fn remove_service(state: &mut DesiredState, owner: &Owner) {
    let balancers: Vec<RowKey> = state
        .keys_of(owner)
        .iter()
        .filter(|(table, _)| *table == LoadBalancer::TABLE)
        .map(|(_, key)| key.clone())
        .collect();
    if let Some(row) = state.row_mut::<LoadBalancerGroup>(&RowKey::name(CLUSTER_LB_GROUP)) {
        for key in &balancers {
            row.unrefer(LoadBalancerGroup::LOAD_BALANCER, key);
        }
    }
    state.remove_owner(owner);
}

/// The chassis template variable of one VIP of a node-local Service.
fn local_variable(service: &Service, port: &ServicePort, vip: &str) -> String {
    names::local_backends_variable(
        &service.namespace,
        &service.name,
        port.protocol.as_str(),
        vip,
    )
}

/// Adds `node`'s `Chassis_Template_Var` row: for every VIP of the node-local Services in
/// `services`, the endpoints on this node. A node whose agent has not reported its chassis
/// yet has no row (its clients reach no node-local Service until it has).
pub fn render_local_backends(state: &mut DesiredState, node: &Node, services: &[Service]) {
    let Some(chassis) = &node.chassis else {
        return;
    };
    let mut variables = BTreeMap::new();
    for service in services.iter().filter(|s| s.local_only) {
        for port in &service.ports {
            let here = |e: &Endpoint| e.node.as_deref() == Some(node.name.as_str());
            let backends = backends(service, port, here);
            for ip in &service.cluster_ips {
                let vip = format!("{ip}:{}", port.port);
                variables.insert(local_variable(service, port, &vip), backends.clone());
            }
        }
    }
    let row = ChassisTemplateVar {
        chassis: chassis.clone(),
        variables,
        ..Default::default()
    };
    state.add(&Owner::node(&node.name), &row, "", None);
}

/// The backends of `port` among the endpoints `eligible` accepts, as OVN writes them
/// (`ip:port,…`, sorted, each once): the ready ones, or when none is ready the serving
/// terminating ones, as kube-proxy chooses. An address listed by several slices counts once,
/// as ready if any copy is.
fn backends(service: &Service, port: &ServicePort, eligible: impl Fn(&Endpoint) -> bool) -> String {
    let mut found: BTreeMap<(Ipv4Addr, u16), (bool, bool)> = BTreeMap::new();
    for endpoint in service.endpoints.iter().filter(|e| eligible(e)) {
        let Some(target) = endpoint
            .ports
            .iter()
            .find(|(name, protocol, _)| *name == port.name && *protocol == port.protocol)
            .map(|(_, _, target)| *target)
        else {
            continue;
        };
        let (ready, fallback) = found.entry((endpoint.ip, target)).or_default();
        *ready |= endpoint.ready;
        *fallback |= endpoint.serving && endpoint.terminating;
    }
    let any_ready = found.values().any(|(ready, _)| *ready);
    found
        .into_iter()
        .filter(|(_, (ready, fallback))| if any_ready { *ready } else { *fallback })
        .map(|((ip, target), _)| format!("{ip}:{target}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests;
