//! Pod annotations: the static requests a user may add, and the allocation the controller writes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::MacAddr;
use crate::names::annotations::{
    ALLOCATED, CIDR, GATEWAY, IP_ADDRESS, LOGICAL_SWITCH, MAC_ADDRESS, ROUTED,
};
use ipnet::IpNet;

use super::AnnotationError;
use super::value::{cidr, host_of, ip, mac, required, switch_name};

/// The value of [`ALLOCATED`] and [`ROUTED`] when set.
const TRUE: &str = "true";

/// What a user asked for on a pod that is not allocated yet: a static address, a static MAC,
/// a Subnet. Each is optional; the controller fills in the rest. `Ip` is the address type:
/// either family as parsed, IPv4 in [`Ipv4PodRequest`](super::Ipv4PodRequest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRequest<Ip = IpAddr> {
    /// `rovn.io/ip_address`: a static address.
    pub ip: Option<Ip>,
    /// `rovn.io/mac_address`: a static MAC.
    pub mac: Option<MacAddr>,
    /// `rovn.io/logical_switch`: the Subnet to allocate from.
    pub switch: Option<String>,
}

impl<Ip> Default for PodRequest<Ip> {
    /// No request at all: any address of the namespace's Subnet will do.
    fn default() -> Self {
        PodRequest {
            ip: None,
            mac: None,
            switch: None,
        }
    }
}

/// Static requests a user put on a not-yet-allocated pod. A present but malformed value is an
/// error (the pod must not silently get a different address than asked for).
pub fn parse_pod_request(
    annotations: &BTreeMap<String, String>,
) -> Result<PodRequest, AnnotationError> {
    let get = |key: &str| annotations.get(key).map(String::as_str);
    Ok(PodRequest {
        ip: get(IP_ADDRESS).map(|v| ip(IP_ADDRESS, v)).transpose()?,
        mac: get(MAC_ADDRESS).map(|v| mac(MAC_ADDRESS, v)).transpose()?,
        switch: get(LOGICAL_SWITCH)
            .map(|v| switch_name(LOGICAL_SWITCH, v))
            .transpose()?,
    })
}

/// A pod's allocated addressing: what the node agent configures in the pod's network namespace
/// and what the controller's IPAM is rebuilt from. `Ip` and `Net` are the address and CIDR
/// types: either family as parsed, IPv4 in [`Ipv4PodAllocation`](super::Ipv4PodAllocation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAllocation<Ip = IpAddr, Net = IpNet> {
    /// The pod's address (`rovn.io/ip_address`).
    pub ip: Ip,
    /// The pod's MAC (`rovn.io/mac_address`).
    pub mac: MacAddr,
    /// The pod's subnet (`rovn.io/cidr`).
    pub cidr: Net,
    /// The pod's default gateway (`rovn.io/gateway`).
    pub gateway: Ip,
    /// The pod's logical switch, i.e. its Subnet's name (`rovn.io/logical_switch`).
    pub switch: String,
}

/// Ok(None) when `rovn.io/allocated` is not "true"; Err when it is but a value is missing,
/// malformed or inconsistent (the address or gateway not a host of the CIDR, or both equal).
pub fn parse_pod_allocation(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<PodAllocation>, AnnotationError> {
    if annotations.get(ALLOCATED).map(String::as_str) != Some(TRUE) {
        return Ok(None);
    }
    let mac = mac(MAC_ADDRESS, required(annotations, MAC_ADDRESS)?)?;
    let cidr = cidr(CIDR, required(annotations, CIDR)?)?;
    let switch = switch_name(LOGICAL_SWITCH, required(annotations, LOGICAL_SWITCH)?)?;
    let ip = host_of(annotations, IP_ADDRESS, cidr, CIDR)?;
    let gateway = host_of(annotations, GATEWAY, cidr, CIDR)?;
    if ip == gateway {
        return Err(AnnotationError::new(
            IP_ADDRESS,
            &ip.to_string(),
            format!("is the gateway ({GATEWAY})"),
        ));
    }
    Ok(Some(PodAllocation {
        ip,
        mac,
        cidr,
        gateway,
        switch,
    }))
}

/// The full set of keys written in one patch, including `rovn.io/allocated=true`, so a reader
/// never sees `allocated` without the values it vouches for.
pub fn render_pod_allocation(allocation: &PodAllocation) -> BTreeMap<String, String> {
    BTreeMap::from([
        (IP_ADDRESS.to_string(), allocation.ip.to_string()),
        (MAC_ADDRESS.to_string(), allocation.mac.to_string()),
        (CIDR.to_string(), allocation.cidr.to_string()),
        (GATEWAY.to_string(), allocation.gateway.to_string()),
        (LOGICAL_SWITCH.to_string(), allocation.switch.clone()),
        (ALLOCATED.to_string(), TRUE.to_string()),
    ])
}

/// Whether the controller has committed the pod's logical switch port to NB (`rovn.io/routed`),
/// which the node agent waits for before it reports the pod's network ready.
pub fn is_routed(annotations: &BTreeMap<String, String>) -> bool {
    annotations.get(ROUTED).map(String::as_str) == Some(TRUE)
}
