//! Services → load balancers: one per Service and protocol, every one in the cluster's load
//! balancer group, which every switch carries, so pods, nodes (through `join`) and hostNetwork
//! pods reach every ClusterIP without a per-switch reference per Service.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use rovn_api::Owner;
use rovn_api::names::{self, CLUSTER_LB_GROUP};
use rovn_ovsdb_schemas::nb::{
    LoadBalancer, LoadBalancerGroup, LoadBalancerProtocol, LoadBalancerSelectionFields,
};

use super::cluster::{Protocol, Service, ServicePort};
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
        let backends = backends(service, port);
        for ip in &service.cluster_ips {
            vips.entry(port.protocol)
                .or_default()
                .insert(format!("{ip}:{}", port.port), backends.clone());
        }
    }
    let group = RowKey::name(CLUSTER_LB_GROUP);
    for (protocol, vips) in vips {
        let name =
            names::service_load_balancer(&service.namespace, &service.name, protocol.as_ovn());
        let mut options = BTreeMap::from([("reject".to_string(), "true".to_string())]);
        let mut selection_fields = BTreeSet::new();
        if let Some(timeout) = service.affinity_timeout {
            let timeout = timeout.clamp(1, MAX_AFFINITY_TIMEOUT);
            options.insert("affinity_timeout".to_string(), timeout.to_string());
            selection_fields.insert(LoadBalancerSelectionFields::IpSrc);
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

/// The backends of `port` as OVN writes them (`ip:port,…`, sorted, each once): the ready
/// endpoints, or when none is ready the serving terminating ones, as kube-proxy chooses. An
/// address listed by several slices counts once, as ready if any copy is.
fn backends(service: &Service, port: &ServicePort) -> String {
    let mut found: BTreeMap<(Ipv4Addr, u16), (bool, bool)> = BTreeMap::new();
    for endpoint in &service.endpoints {
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
