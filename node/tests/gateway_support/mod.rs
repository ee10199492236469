//! What the gateway tests share: the addresses of their node and one builder of its state.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use rovn_node::gateway::{Frontend, GatewayState, PodRange, Protocol, Target};

pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const JOIN_IP: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);

/// A node at [`NODE_IP`] with join IP [`JOIN_IP`] on `ovn0`, a `natOutgoing` Subnet
/// 10.16.0.0/16, a plain one 10.17.0.0/16, join 100.64.0.0/16, Services 10.96.0.0/12.
pub fn state_with(forwards: BTreeMap<Frontend, Target>) -> GatewayState {
    let range = |cidr: &str, nat_outgoing| PodRange {
        cidr: cidr.parse().expect("literal"),
        nat_outgoing,
    };
    GatewayState {
        node_ip: NODE_IP,
        join_ip: JOIN_IP,
        ovn_device: "ovn0".into(),
        pod_ranges: vec![range("10.16.0.0/16", true), range("10.17.0.0/16", false)],
        join_cidr: "100.64.0.0/16".parse().expect("literal"),
        service_cidr: "10.96.0.0/12".parse().expect("literal"),
        forwards,
    }
}

pub fn frontend(addr: Ipv4Addr, protocol: Protocol, port: u16) -> Frontend {
    Frontend {
        addr,
        protocol,
        port,
    }
}

/// `externalTrafficPolicy: Local` to `endpoints` on `port`.
pub fn local(owner: &str, endpoints: &[Ipv4Addr], port: u16) -> Target {
    Target::Local {
        owner: owner.to_string(),
        endpoints: endpoints
            .iter()
            .map(|ip| SocketAddrV4::new(*ip, port))
            .collect(),
    }
}
