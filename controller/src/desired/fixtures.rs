//! Cluster snapshots for the renderers' unit tests.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rovn_api::MacAddr;

use super::{ClusterState, JoinSubnet, Node, PodPort, Subnet};

/// `s` as a CIDR (the default one when it is none, which a test then notices).
pub fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap_or_default()
}

/// `s` as an address (0.0.0.0 when it is none).
pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
}

/// An open Subnet.
pub fn subnet(name: &str, cidr: &str, gateway: &str) -> Subnet {
    Subnet {
        name: name.into(),
        cidr: net(cidr),
        gateway: ip(gateway),
        private: false,
        allow_subnets: Vec::new(),
    }
}

/// A node with its join address and the MAC derived from it.
pub fn node(name: &str, join_ip: &str) -> Node {
    Node {
        name: name.into(),
        join_ip: ip(join_ip),
        join_mac: MacAddr::derived_from(ip(join_ip)),
        chassis: None,
        internal_ip: None,
    }
}

/// A pod of namespace `default` on node `n1`.
pub fn pod(name: &str, switch: &str, addr: &str) -> PodPort {
    PodPort {
        namespace: "default".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        node: "n1".into(),
        switch: switch.into(),
        ip: ip(addr),
        mac: MacAddr::derived_from(ip(addr)),
    }
}

/// The default join (100.64.0.0/16) and Service (10.96.0.0/12) ranges around these objects.
pub fn cluster(subnets: Vec<Subnet>, nodes: Vec<Node>, pods: Vec<PodPort>) -> ClusterState {
    ClusterState {
        join: JoinSubnet {
            cidr: net("100.64.0.0/16"),
            gateway: ip("100.64.0.1"),
        },
        service_cidr: net("10.96.0.0/12"),
        subnets,
        nodes,
        pods,
        services: Vec::new(),
        policies: Vec::new(),
        policy_pods: Default::default(),
    }
}
