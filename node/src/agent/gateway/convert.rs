//! Kubernetes objects → the gateway's desired state (pure). Every field comes from users or
//! other controllers, so each is checked: a bad port, protocol or address skips that entry with
//! a [`Skipped`] naming the object (the caller logs it), never the whole object and never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rovn_api::Owner;
use rovn_api::annotations::{self, Ipv4PodAllocation};
use rovn_api::subnet::Subnet;

use crate::agent::kube::subnets::{Routing, routing};
use crate::gateway::{Frontend, PodRange, Protocol, Target};

/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// An entry left out, and why; logged once by the caller.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skipped {
    /// The object, as `Kind/namespace/name`.
    pub object: String,
    /// What is wrong with it.
    pub reason: String,
}

fn skip(skipped: &mut Vec<Skipped>, object: &str, reason: String) {
    skipped.push(Skipped {
        object: object.to_string(),
        reason,
    });
}

/// A frontend with the object it came from, so a conflict can name both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// `Service/ns/name` or `Pod/ns/name`.
    pub owner: String,
    /// Where the connection arrives.
    pub frontend: Frontend,
    /// Where it goes.
    pub target: Target,
}

/// A LoadBalancer Service with `externalTrafficPolicy: Local` whose `healthCheckNodePort` the
/// agent answers, so load balancers send traffic only to nodes holding an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// `healthCheckNodePort`.
    pub port: u16,
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// Its ready endpoints on this node.
    pub local_endpoints: usize,
}

fn port(value: i32) -> Option<u16> {
    u16::try_from(value).ok().filter(|p| *p != 0)
}

fn protocol_of(value: Option<&str>) -> Option<Protocol> {
    Protocol::from_kubernetes(value.unwrap_or("TCP"))
}

/// The Service port's target port on each of this node's ready endpoints (the slices' own port
/// numbers, which resolve named target ports per pod), sorted and without duplicates.
fn local_endpoints(
    service_port: &ServicePort,
    protocol: Protocol,
    slices: &[&EndpointSlice],
    node: &str,
    skipped: &mut Vec<Skipped>,
) -> Vec<SocketAddrV4> {
    let wanted_name = service_port.name.as_deref().unwrap_or("");
    let mut found = BTreeSet::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let slice_owner = format!(
            "EndpointSlice/{}/{}",
            slice.metadata.namespace.as_deref().unwrap_or(""),
            slice.metadata.name.as_deref().unwrap_or("")
        );
        let number = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == wanted_name
                && protocol_of(p.protocol.as_deref()) == Some(protocol)
        });
        let Some(number) = number.and_then(|p| p.port) else {
            continue;
        };
        let Some(number) = port(number) else {
            skip(
                skipped,
                &slice_owner,
                format!("port {number} is not a valid port"),
            );
            continue;
        };
        for endpoint in &slice.endpoints {
            // kube-proxy's reading: a missing `ready` means ready.
            let ready = endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false);
            if !ready || endpoint.node_name.as_deref() != Some(node) {
                continue;
            }
            match endpoint.addresses.first().map(|a| a.parse::<Ipv4Addr>()) {
                Some(Ok(ip)) => {
                    found.insert(SocketAddrV4::new(ip, number));
                }
                Some(Err(_)) | None => skip(
                    skipped,
                    &slice_owner,
                    format!(
                        "endpoint address {:?} is not IPv4",
                        endpoint.addresses.first()
                    ),
                ),
            }
        }
    }
    found.into_iter().collect()
}

/// The frontends a Service opens on this node: its NodePorts on `node_ip`, its externalIPs and
/// its LoadBalancer ingress IPs (not those in `ipMode: Proxy`, which the load balancer itself
/// terminates), each to the ClusterIP or, with `externalTrafficPolicy: Local`, to this node's
/// ready endpoints from `slices` (the Service's own).
pub fn service_forwards(
    service: &Service,
    slices: &[&EndpointSlice],
    node: &str,
    node_ip: Ipv4Addr,
    skipped: &mut Vec<Skipped>,
) -> Vec<Forward> {
    let namespace = service.metadata.namespace.as_deref().unwrap_or("");
    let name = service.metadata.name.as_deref().unwrap_or("");
    let owner = Owner::service(namespace, name).to_string();
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if kind == "ExternalName" {
        return Vec::new();
    }
    let opens_node_ports = kind == "NodePort" || kind == "LoadBalancer";
    let local = opens_node_ports && spec.external_traffic_policy.as_deref() == Some("Local");

    let mut addresses = Vec::new();
    for text in spec.external_ips.iter().flatten() {
        match text.parse::<Ipv4Addr>() {
            Ok(ip) => addresses.push(ip),
            Err(_) => skip(
                skipped,
                &owner,
                format!("externalIP {text:?} is not an IPv4 address"),
            ),
        }
    }
    if kind == "LoadBalancer" {
        let ingress = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        for entry in ingress.into_iter().flatten() {
            if entry.ip_mode.as_deref() == Some("Proxy") {
                continue;
            }
            let Some(text) = entry.ip.as_deref() else {
                continue;
            };
            match text.parse::<Ipv4Addr>() {
                Ok(ip) => addresses.push(ip),
                Err(_) => skip(
                    skipped,
                    &owner,
                    format!("LoadBalancer ingress IP {text:?} is not an IPv4 address"),
                ),
            }
        }
    }
    let cluster_ip = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None");
    let cluster_ip = match cluster_ip.map(str::parse::<Ipv4Addr>) {
        Some(Ok(ip)) => Some(ip),
        Some(Err(_)) => {
            skip(
                skipped,
                &owner,
                format!("clusterIP {cluster_ip:?} is not an IPv4 address"),
            );
            None
        }
        None => None,
    };

    let mut forwards = Vec::new();
    for service_port in spec.ports.iter().flatten() {
        let Some(protocol) = protocol_of(service_port.protocol.as_deref()) else {
            skip(
                skipped,
                &owner,
                format!(
                    "port protocol {:?} is not TCP, UDP or SCTP",
                    service_port.protocol
                ),
            );
            continue;
        };
        let Some(number) = port(service_port.port) else {
            skip(
                skipped,
                &owner,
                format!("port {} is not a valid port", service_port.port),
            );
            continue;
        };
        let target = if local {
            Target::Local {
                owner: format!("{owner}:{number}/{protocol}"),
                endpoints: local_endpoints(service_port, protocol, slices, node, skipped),
            }
        } else if let Some(ip) = cluster_ip {
            Target::ClusterIp(SocketAddrV4::new(ip, number))
        } else {
            if opens_node_ports || !addresses.is_empty() {
                skip(
                    skipped,
                    &owner,
                    "no IPv4 clusterIP to forward to".to_string(),
                );
            }
            continue;
        };
        let mut frontends: Vec<Frontend> = addresses
            .iter()
            .map(|addr| Frontend {
                addr: *addr,
                protocol,
                port: number,
            })
            .collect();
        if opens_node_ports && let Some(node_port) = service_port.node_port {
            match port(node_port) {
                Some(node_port) => frontends.push(Frontend {
                    addr: node_ip,
                    protocol,
                    port: node_port,
                }),
                None => skip(
                    skipped,
                    &owner,
                    format!("nodePort {node_port} is not a valid port"),
                ),
            }
        }
        forwards.extend(frontends.into_iter().map(|frontend| Forward {
            owner: owner.clone(),
            frontend,
            target: target.clone(),
        }));
    }
    forwards
}

/// The health check a Service asks this node to answer, if any: `type: LoadBalancer`,
/// `externalTrafficPolicy: Local` and a valid `healthCheckNodePort`.
pub fn health_check(
    service: &Service,
    slices: &[&EndpointSlice],
    node: &str,
    skipped: &mut Vec<Skipped>,
) -> Option<HealthCheck> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer")
        || spec.external_traffic_policy.as_deref() != Some("Local")
    {
        return None;
    }
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    let name = service.metadata.name.clone().unwrap_or_default();
    let requested = spec.health_check_node_port?;
    let Some(port) = port(requested) else {
        skip(
            skipped,
            &Owner::service(&namespace, &name).to_string(),
            format!("healthCheckNodePort {requested} is not a valid port"),
        );
        return None;
    };
    let mut ignored = Vec::new();
    let mut addresses = BTreeSet::new();
    for service_port in spec.ports.iter().flatten() {
        if let Some(protocol) = protocol_of(service_port.protocol.as_deref()) {
            for endpoint in local_endpoints(service_port, protocol, slices, node, &mut ignored) {
                addresses.insert(*endpoint.ip());
            }
        }
    }
    Some(HealthCheck {
        port,
        namespace,
        name,
        local_endpoints: addresses.len(),
    })
}

/// A pod's hostPorts, forwarded from `node_ip` (or the port's own `hostIP`) to the pod's address
/// from rovn's allocation annotation. Read from the pod spec, not from the CNI `portMappings`
/// capability: the agent sees every pod of its node in the API anyway, so hostPorts follow the
/// same level-triggered table as Services, survive agent restarts without the runtime
/// re-sending them, and need no per-ADD state. hostNetwork pods (their ports are the node's
/// already), finished pods and pods not allocated yet have none.
pub fn host_port_forwards(
    pod: &Pod,
    node_ip: Ipv4Addr,
    skipped: &mut Vec<Skipped>,
) -> Vec<Forward> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let owner = Owner::pod(namespace, name).to_string();
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if spec.host_network == Some(true) || matches!(phase, Some("Succeeded" | "Failed")) {
        return Vec::new();
    }
    let wanted = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .any(|p| p.host_port.is_some_and(|h| h != 0));
    if !wanted {
        return Vec::new();
    }
    let empty = BTreeMap::new();
    let parsed =
        annotations::parse_pod_allocation(pod.metadata.annotations.as_ref().unwrap_or(&empty))
            .and_then(|a| a.map(Ipv4PodAllocation::try_from).transpose());
    let pod_ip = match parsed {
        Ok(Some(allocation)) => allocation.ip,
        Ok(None) => return Vec::new(),
        Err(e) => {
            skip(skipped, &owner, format!("allocation annotations: {e}"));
            return Vec::new();
        }
    };
    let mut forwards = Vec::new();
    for container_port in spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
    {
        let Some(host_port) = container_port.host_port.filter(|h| *h != 0) else {
            continue;
        };
        let (Some(host), Some(to), Some(protocol)) = (
            port(host_port),
            port(container_port.container_port),
            protocol_of(container_port.protocol.as_deref()),
        ) else {
            skip(
                skipped,
                &owner,
                format!(
                    "hostPort {host_port} → containerPort {} ({:?}) is not a valid port mapping",
                    container_port.container_port, container_port.protocol
                ),
            );
            continue;
        };
        let addr = match container_port.host_ip.as_deref() {
            None | Some("") | Some("0.0.0.0") => node_ip,
            Some(text) => match text.parse::<Ipv4Addr>() {
                Ok(ip) => ip,
                Err(_) => {
                    skip(
                        skipped,
                        &owner,
                        format!("hostIP {text:?} is not an IPv4 address"),
                    );
                    continue;
                }
            },
        };
        forwards.push(Forward {
            owner: owner.clone(),
            frontend: Frontend {
                addr,
                protocol,
                port: host,
            },
            target: Target::HostPort(SocketAddrV4::new(pod_ip, to)),
        });
    }
    forwards
}

/// The pod Subnets the gateway knows: the CIDR in effect of each Subnet the node would route
/// (the same decision as `ovn0`'s routes), with its `natOutgoing` flag. A Subnet whose edit is
/// not judged yet and whose status names no CIDR in effect is left out until it is.
pub fn pod_ranges<'a>(subnets: impl IntoIterator<Item = &'a Subnet>) -> Vec<PodRange> {
    let mut ranges: Vec<PodRange> = subnets
        .into_iter()
        .filter_map(|subnet| match routing(subnet) {
            Routing::Route(cidr) => Some(PodRange {
                cidr,
                nat_outgoing: subnet.spec.nat_outgoing,
            }),
            Routing::Skip | Routing::Keep => None,
        })
        .collect();
    ranges.sort();
    ranges
}

/// Folds forwards into one frontend → target map: the first claim of a frontend wins (callers
/// pass Services before hostPorts, each sorted by name, so the winner is stable), a later one is
/// skipped naming both objects.
pub fn merge(
    forwards: impl IntoIterator<Item = Forward>,
    skipped: &mut Vec<Skipped>,
) -> BTreeMap<Frontend, Target> {
    let mut owners: BTreeMap<Frontend, String> = BTreeMap::new();
    let mut merged = BTreeMap::new();
    for forward in forwards {
        if let Some(first) = owners.get(&forward.frontend) {
            if *first != forward.owner {
                skip(
                    skipped,
                    &forward.owner,
                    format!("{} is already taken by {first}", forward.frontend),
                );
            }
            continue;
        }
        owners.insert(forward.frontend, forward.owner);
        merged.insert(forward.frontend, forward.target);
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NODE_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 11);

    fn service(value: serde_json::Value) -> Service {
        serde_json::from_value(value).unwrap()
    }

    fn slice(value: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(value).unwrap()
    }

    fn web_slice() -> EndpointSlice {
        slice(json!({
            "metadata": {"namespace": "ns", "name": "web-abc", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.16.0.6"], "nodeName": "node1", "conditions": {"ready": true}},
                {"addresses": ["10.16.0.5"], "nodeName": "node1"},
                {"addresses": ["10.16.0.7"], "nodeName": "node1", "conditions": {"ready": false}},
                {"addresses": ["10.16.0.8"], "nodeName": "node2", "conditions": {"ready": true}},
                {"addresses": ["not-an-ip"], "nodeName": "node1"}
            ]
        }))
    }

    fn web(policy: &str) -> Service {
        service(json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {
                "type": "LoadBalancer", "clusterIP": "10.96.0.10", "externalTrafficPolicy": policy,
                "externalIPs": ["192.0.2.50", "bad"], "healthCheckNodePort": 32100,
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
                    {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 70000},
                    {"name": "x", "port": 81, "protocol": "ICMP", "nodePort": 30081}
                ]
            },
            "status": {"loadBalancer": {"ingress": [
                {"ip": "192.0.2.200"}, {"ip": "192.0.2.201", "ipMode": "Proxy"}, {"hostname": "lb.example"}
            ]}}
        }))
    }

    fn frontends(forwards: &[Forward]) -> Vec<String> {
        forwards.iter().map(|f| f.frontend.to_string()).collect()
    }

    #[test]
    fn a_cluster_policy_service_forwards_every_frontend_to_its_cluster_ip() {
        let mut skipped = Vec::new();
        let slices = web_slice();
        let forwards =
            service_forwards(&web("Cluster"), &[&slices], "node1", NODE_IP, &mut skipped);
        let mut seen = frontends(&forwards);
        seen.sort();
        assert_eq!(
            seen,
            [
                "172.30.0.11:30080/tcp",
                "192.0.2.200:53/udp",
                "192.0.2.200:80/tcp",
                "192.0.2.50:53/udp",
                "192.0.2.50:80/tcp",
            ]
        );
        let to_http = forwards
            .iter()
            .find(|f| f.frontend.port == 30080)
            .map(|f| f.target.clone());
        assert_eq!(
            to_http,
            Some(Target::ClusterIp("10.96.0.10:80".parse().unwrap()))
        );
        let reasons: Vec<&str> = skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(
            skipped
                .iter()
                .filter(|s| s.object == "Service/ns/web")
                .count(),
            3,
            "{reasons:?}"
        );
        assert!(reasons.iter().any(|r| r.contains("\"bad\"")));
        assert!(reasons.iter().any(|r| r.contains("nodePort 70000")));
        assert!(reasons.iter().any(|r| r.contains("ICMP")));
    }

    #[test]
    fn a_local_policy_service_goes_to_this_nodes_ready_endpoints_only() {
        let mut skipped = Vec::new();
        let slices = web_slice();
        let forwards = service_forwards(&web("Local"), &[&slices], "node1", NODE_IP, &mut skipped);
        let http = forwards
            .iter()
            .find(|f| f.frontend.port == 30080)
            .map(|f| f.target.clone());
        assert_eq!(
            http,
            Some(Target::Local {
                owner: "Service/ns/web:80/tcp".into(),
                endpoints: vec![
                    "10.16.0.5:8080".parse().unwrap(),
                    "10.16.0.6:8080".parse().unwrap()
                ],
            })
        );
        // The UDP port has no slice port: no endpoint, so this node drops it.
        let dns = forwards
            .iter()
            .find(|f| f.frontend.port == 53)
            .map(|f| f.target.clone());
        assert!(matches!(dns, Some(Target::Local { endpoints, .. }) if endpoints.is_empty()));
        assert!(
            skipped
                .iter()
                .any(|s| s.object == "EndpointSlice/ns/web-abc")
        );

        let on_node2 = service_forwards(&web("Local"), &[&slices], "node2", NODE_IP, &mut skipped);
        let http = on_node2
            .iter()
            .find(|f| f.frontend.port == 30080)
            .map(|f| f.target.clone());
        assert!(matches!(http, Some(Target::Local { endpoints, .. }) if endpoints.len() == 1));
    }

    #[test]
    fn health_checks_count_local_endpoints_of_local_load_balancers_only() {
        let mut skipped = Vec::new();
        let slices = web_slice();
        let check = health_check(&web("Local"), &[&slices], "node1", &mut skipped);
        assert_eq!(check.map(|c| (c.port, c.local_endpoints)), Some((32100, 2)));
        let check = health_check(&web("Local"), &[&slices], "node3", &mut skipped);
        assert_eq!(check.map(|c| c.local_endpoints), Some(0));
        assert_eq!(
            health_check(&web("Cluster"), &[&slices], "node1", &mut skipped),
            None
        );
    }

    #[test]
    fn cluster_ip_services_without_external_ips_and_external_names_open_nothing() {
        let mut skipped = Vec::new();
        for value in [
            json!({"metadata": {"namespace": "ns", "name": "a"},
                   "spec": {"clusterIP": "10.96.0.11", "ports": [{"port": 80}]}}),
            json!({"metadata": {"namespace": "ns", "name": "b"},
                   "spec": {"type": "ExternalName", "externalName": "x.example", "externalIPs": ["192.0.2.9"]}}),
            json!({"metadata": {"namespace": "ns", "name": "c"}}),
        ] {
            assert!(
                service_forwards(&service(value), &[], "node1", NODE_IP, &mut skipped).is_empty()
            );
        }
        assert!(skipped.is_empty(), "{skipped:?}");
    }

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn allocated(ip: &str) -> serde_json::Value {
        let allocation = Ipv4PodAllocation {
            ip: ip.parse().unwrap(),
            mac: rovn_api::MacAddr([0x0a, 0x58, 10, 16, 0, 9]),
            cidr: "10.16.0.0/16".parse().unwrap(),
            gateway: "10.16.0.1".parse().unwrap(),
            switch: "ovn-default".into(),
        };
        serde_json::to_value(annotations::render_pod_allocation(&allocation.into())).unwrap()
    }

    #[test]
    fn host_ports_forward_to_the_allocated_pod_address() {
        let mut skipped = Vec::new();
        let with_ports = |annotations: serde_json::Value, phase: &str, host_network: bool| {
            pod(json!({
                "metadata": {"namespace": "ns", "name": "hp", "annotations": annotations},
                "spec": {"hostNetwork": host_network, "containers": [{"name": "c", "ports": [
                    {"containerPort": 8080, "hostPort": 8000},
                    {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "192.0.2.7"},
                    {"containerPort": 9000},
                    {"containerPort": 0, "hostPort": 9001},
                    {"containerPort": 9002, "hostPort": 9002, "hostIP": "fe80::1"}
                ]}]},
                "status": {"phase": phase}
            }))
        };
        let forwards = host_port_forwards(
            &with_ports(allocated("10.16.0.9"), "Running", false),
            NODE_IP,
            &mut skipped,
        );
        assert_eq!(
            frontends(&forwards),
            ["172.30.0.11:8000/tcp", "192.0.2.7:5353/udp"]
        );
        assert_eq!(
            forwards[0].target,
            Target::HostPort("10.16.0.9:8080".parse().unwrap())
        );
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped.iter().all(|s| s.object == "Pod/ns/hp"));

        let mut quiet = Vec::new();
        for pod in [
            with_ports(json!({}), "Pending", false),
            with_ports(allocated("10.16.0.9"), "Succeeded", false),
            with_ports(allocated("10.16.0.9"), "Running", true),
        ] {
            assert!(host_port_forwards(&pod, NODE_IP, &mut quiet).is_empty());
        }
        assert!(quiet.is_empty(), "{quiet:?}");
    }

    #[test]
    fn the_first_claim_of_a_frontend_wins_and_the_loser_is_named() {
        let frontend = Frontend {
            addr: NODE_IP,
            protocol: Protocol::Tcp,
            port: 30080,
        };
        let forward = |owner: &str, last: u8| Forward {
            owner: owner.into(),
            frontend,
            target: Target::HostPort(SocketAddrV4::new(Ipv4Addr::new(10, 16, 0, last), 80)),
        };
        let mut skipped = Vec::new();
        let merged = merge(
            [forward("Service/ns/a", 1), forward("Pod/ns/b", 2)],
            &mut skipped,
        );
        assert_eq!(merged.get(&frontend), Some(&forward("", 1).target));
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].object, "Pod/ns/b");
        assert!(
            skipped[0].reason.contains("Service/ns/a"),
            "{}",
            skipped[0].reason
        );
    }

    #[test]
    fn pod_ranges_are_the_routed_subnets_with_their_nat_outgoing_flag() {
        let subnet = |name: &str, cidr: &str, ready: &str, nat: bool| -> Subnet {
            serde_json::from_value(json!({
                "apiVersion": "rovn.io/v1", "kind": "Subnet",
                "metadata": {"name": name, "generation": 1},
                "spec": {"cidrBlock": cidr, "natOutgoing": nat},
                "status": {"cidrBlock": cidr, "conditions": [{"type": "Ready", "status": ready,
                    "reason": "X", "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1}]}
            }))
            .unwrap()
        };
        let subnets = [
            subnet("a", "10.17.0.0/16", "True", false),
            subnet("b", "10.16.0.0/16", "True", true),
            subnet("rejected", "0.0.0.0/1", "False", true),
        ];
        let ranges = pod_ranges(subnets.iter());
        let text: Vec<(String, bool)> = ranges
            .iter()
            .map(|r| (r.cidr.to_string(), r.nat_outgoing))
            .collect();
        assert_eq!(
            text,
            [
                ("10.16.0.0/16".to_string(), true),
                ("10.17.0.0/16".to_string(), false)
            ]
        );
    }
}
