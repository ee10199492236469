//! Kubernetes Services and EndpointSlices → the [`Service`]s load balancers are rendered from:
//! pure, so the view of a Service depends only on its objects.
//!
//! The API server validates both kinds, but EndpointSlices of selector-less Services are
//! written by users: every field is read as untrusted, and what cannot be used is left out
//! and said ([`ServiceView::ignored`]), never guessed.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service as KubeService;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::desired::{Endpoint, Protocol, Service, ServicePort};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The `sessionAffinityConfig.clientIP.timeoutSeconds` default (3 hours), as upstream.
const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

/// A Service as its load balancers see it, and what of its objects had to be left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    /// The Service; `None` when it has no load balancer (headless, ExternalName, no IPv4
    /// ClusterIP, no usable port).
    pub service: Option<Service>,
    /// What was left out, each naming the object and the field.
    pub ignored: Vec<String>,
}

/// The name of the Service `slice` belongs to, from its label.
pub fn service_of_slice(slice: &EndpointSlice) -> Option<&str> {
    slice
        .metadata
        .labels
        .as_ref()?
        .get(SERVICE_NAME_LABEL)
        .map(String::as_str)
        .filter(|name| !name.is_empty())
}

/// `service` with the endpoints of `slices` (the slices labelled with its name).
pub fn service_view<'a>(
    service: &KubeService,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> ServiceView {
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    let name = service.metadata.name.clone().unwrap_or_default();
    let mut ignored = Vec::new();
    let Some(spec) = service.spec.as_ref() else {
        return ServiceView {
            service: None,
            ignored,
        };
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return ServiceView {
            service: None,
            ignored,
        };
    }
    let listed = spec
        .cluster_ips
        .clone()
        .filter(|ips| !ips.is_empty())
        .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
        .unwrap_or_default();
    let cluster_ips: Vec<Ipv4Addr> = listed
        .iter()
        .filter_map(|ip| ip.parse::<std::net::IpAddr>().ok())
        .filter_map(|ip| match ip {
            std::net::IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
            _ => None,
        })
        .collect();
    let mut ports = Vec::new();
    for (index, port) in spec.ports.iter().flatten().enumerate() {
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        match (
            Protocol::from_kubernetes(protocol),
            u16::try_from(port.port).ok().filter(|p| *p != 0),
        ) {
            (Some(protocol), Some(number)) => ports.push(ServicePort {
                name: port.name.clone().unwrap_or_default(),
                protocol,
                port: number,
            }),
            _ => ignored.push(format!(
                "Service {namespace}/{name}: spec.ports[{index}] ({protocol} {}) is not a port a load balancer can serve",
                port.port
            )),
        }
    }
    if cluster_ips.is_empty() || ports.is_empty() {
        return ServiceView {
            service: None,
            ignored,
        };
    }
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let local_only = spec.internal_traffic_policy.as_deref() == Some("Local");
    let mut endpoints = Vec::new();
    for slice in slices {
        endpoints_of(slice, &mut endpoints, &mut ignored);
    }
    ServiceView {
        service: Some(Service {
            namespace,
            name,
            cluster_ips,
            ports,
            affinity_timeout,
            local_only,
            endpoints,
        }),
        ignored,
    }
}

/// Adds the IPv4 endpoints of `slice` to `endpoints`. Slices of other address types are not
/// for IPv4 load balancers and are skipped silently.
fn endpoints_of(slice: &EndpointSlice, endpoints: &mut Vec<Endpoint>, ignored: &mut Vec<String>) {
    if slice.address_type != "IPv4" {
        return;
    }
    let slice_name = format!(
        "EndpointSlice {}/{}",
        slice.metadata.namespace.as_deref().unwrap_or_default(),
        slice.metadata.name.as_deref().unwrap_or_default()
    );
    let mut ports = Vec::new();
    for (index, port) in slice.ports.iter().flatten().enumerate() {
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        match (
            Protocol::from_kubernetes(protocol),
            port.port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0),
        ) {
            (Some(protocol), Some(number)) => {
                ports.push((port.name.clone().unwrap_or_default(), protocol, number))
            }
            _ => ignored.push(format!(
                "{slice_name}: ports[{index}] ({protocol} {:?}) is not a port a backend can listen on",
                port.port
            )),
        }
    }
    for (index, endpoint) in slice.endpoints.iter().enumerate() {
        let conditions = endpoint.conditions.clone().unwrap_or_default();
        let ready = conditions.ready.unwrap_or(true);
        let serving = conditions.serving.unwrap_or(ready);
        let terminating = conditions.terminating.unwrap_or(false);
        for address in &endpoint.addresses {
            match address.parse::<Ipv4Addr>() {
                Ok(ip) if !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast() => {
                    endpoints.push(Endpoint {
                        ip,
                        ready,
                        serving,
                        terminating,
                        node: endpoint.node_name.clone(),
                        ports: ports.clone(),
                    })
                }
                _ => ignored.push(format!(
                    "{slice_name}: endpoints[{index}] address {address:?} is not a unicast IPv4 address"
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests;
