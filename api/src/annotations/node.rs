//! Node annotations: the node's `join` address the controller writes, the chassis the agent writes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::MacAddr;
use crate::names::annotations::{CHASSIS, CIDR, GATEWAY, JOIN_IP, JOIN_MAC};
use ipnet::IpNet;

use super::AnnotationError;
use super::value::{cidr, host_of, mac, required};

/// A node's addressing on the `join` switch: what the agent gives `ovn0`, so the host can reach
/// pods through the cluster router. `Ip` and `Net` are the address and CIDR types: either
/// family as parsed, IPv4 in [`Ipv4NodeJoin`](super::Ipv4NodeJoin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeJoin<Ip = IpAddr, Net = IpNet> {
    /// The node's address on `join` (`rovn.io/join_ip`).
    pub ip: Ip,
    /// The `ovn0` MAC (`rovn.io/join_mac`).
    pub mac: MacAddr,
    /// The join CIDR (`rovn.io/cidr`).
    pub cidr: Net,
    /// The cluster router's address on `join` (`rovn.io/gateway`).
    pub gateway: Ip,
}

/// Ok(None) when the node has no join address yet (neither `join_ip` nor `join_mac`); Err when
/// it has one but a value is missing, malformed or inconsistent with the CIDR.
pub fn parse_node_join(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<NodeJoin>, AnnotationError> {
    if !annotations.contains_key(JOIN_IP) && !annotations.contains_key(JOIN_MAC) {
        return Ok(None);
    }
    let mac = mac(JOIN_MAC, required(annotations, JOIN_MAC)?)?;
    let cidr = cidr(CIDR, required(annotations, CIDR)?)?;
    let ip = host_of(annotations, JOIN_IP, cidr, CIDR)?;
    let gateway = host_of(annotations, GATEWAY, cidr, CIDR)?;
    if ip == gateway {
        return Err(AnnotationError::new(
            JOIN_IP,
            &ip.to_string(),
            format!("is the gateway ({GATEWAY})"),
        ));
    }
    Ok(Some(NodeJoin {
        ip,
        mac,
        cidr,
        gateway,
    }))
}

/// The four keys written in one patch, so the agent never sees a join address without its CIDR.
pub fn render_node_join(join: &NodeJoin) -> BTreeMap<String, String> {
    BTreeMap::from([
        (JOIN_IP.to_string(), join.ip.to_string()),
        (JOIN_MAC.to_string(), join.mac.to_string()),
        (CIDR.to_string(), join.cidr.to_string()),
        (GATEWAY.to_string(), join.gateway.to_string()),
    ])
}

/// The node's OVN chassis name (its OVS `system-id`, written by the agent), which the
/// controller binds the node's ports to. A blank value counts as not written yet.
pub fn parse_chassis(annotations: &BTreeMap<String, String>) -> Option<String> {
    annotations
        .get(CHASSIS)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}
