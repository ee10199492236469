//! The annotations in the one family a cluster is configured with today, IPv4.
//!
//! The annotations themselves are family-agnostic, so the day a cluster gets IPv6 pools the
//! wire format does not change. Until then the controller's pools, its NB renderer and the
//! node agent's kernel side hold IPv4 only; they take an annotation through these conversions
//! at their boundary, and an IPv6 value there is refused like any other malformed annotation,
//! with its key and value, never half-applied.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

use super::{AnnotationError, NodeJoin, PodAllocation, PodRequest};
use crate::names::annotations::{CIDR, GATEWAY, IP_ADDRESS, JOIN_IP};

/// Why an address of the other family is refused: there is no IPv6 pool to take it from or
/// give it back to.
pub const IPV6_NOT_CONFIGURED: &str = "IPv6 is not configured in this cluster";

/// A [`PodAllocation`] in IPv4: what the controller restores into its pools and the node agent
/// configures in the pod's network namespace.
pub type Ipv4PodAllocation = PodAllocation<Ipv4Addr, Ipv4Net>;

/// A [`PodRequest`] in IPv4: the static address the controller's pools can honour.
pub type Ipv4PodRequest = PodRequest<Ipv4Addr>;

/// A [`NodeJoin`] in IPv4: what the controller restores into the `join` pool and the node
/// agent gives `ovn0`.
pub type Ipv4NodeJoin = NodeJoin<Ipv4Addr, Ipv4Net>;

/// An IPv4 address out of the annotation `key`.
fn v4(key: &str, ip: IpAddr) -> Result<Ipv4Addr, AnnotationError> {
    match ip {
        IpAddr::V4(ip) => Ok(ip),
        IpAddr::V6(_) => Err(AnnotationError::new(
            key,
            &ip.to_string(),
            IPV6_NOT_CONFIGURED,
        )),
    }
}

/// An IPv4 CIDR out of the annotation `key`.
fn v4_net(key: &str, net: IpNet) -> Result<Ipv4Net, AnnotationError> {
    match net {
        IpNet::V4(net) => Ok(net),
        IpNet::V6(_) => Err(AnnotationError::new(
            key,
            &net.to_string(),
            IPV6_NOT_CONFIGURED,
        )),
    }
}

impl TryFrom<PodAllocation> for Ipv4PodAllocation {
    type Error = AnnotationError;

    /// Refuses an allocation with any IPv6 value, naming its annotation.
    fn try_from(a: PodAllocation) -> Result<Ipv4PodAllocation, AnnotationError> {
        Ok(PodAllocation {
            ip: v4(IP_ADDRESS, a.ip)?,
            mac: a.mac,
            cidr: v4_net(CIDR, a.cidr)?,
            gateway: v4(GATEWAY, a.gateway)?,
            switch: a.switch,
        })
    }
}

impl From<Ipv4PodAllocation> for PodAllocation {
    /// The family-agnostic form, which is what [`super::render_pod_allocation`] writes.
    fn from(a: Ipv4PodAllocation) -> PodAllocation {
        PodAllocation {
            ip: a.ip.into(),
            mac: a.mac,
            cidr: a.cidr.into(),
            gateway: a.gateway.into(),
            switch: a.switch,
        }
    }
}

impl TryFrom<PodRequest> for Ipv4PodRequest {
    type Error = AnnotationError;

    /// Refuses a request for a static IPv6 address, naming its annotation.
    fn try_from(r: PodRequest) -> Result<Ipv4PodRequest, AnnotationError> {
        Ok(PodRequest {
            ip: r.ip.map(|ip| v4(IP_ADDRESS, ip)).transpose()?,
            mac: r.mac,
            switch: r.switch,
        })
    }
}

impl TryFrom<NodeJoin> for Ipv4NodeJoin {
    type Error = AnnotationError;

    /// Refuses a join address with any IPv6 value, naming its annotation.
    fn try_from(j: NodeJoin) -> Result<Ipv4NodeJoin, AnnotationError> {
        Ok(NodeJoin {
            ip: v4(JOIN_IP, j.ip)?,
            mac: j.mac,
            cidr: v4_net(CIDR, j.cidr)?,
            gateway: v4(GATEWAY, j.gateway)?,
        })
    }
}

impl From<Ipv4NodeJoin> for NodeJoin {
    /// The family-agnostic form, which is what [`super::render_node_join`] writes.
    fn from(j: Ipv4NodeJoin) -> NodeJoin {
        NodeJoin {
            ip: j.ip.into(),
            mac: j.mac,
            cidr: j.cidr.into(),
            gateway: j.gateway.into(),
        }
    }
}
