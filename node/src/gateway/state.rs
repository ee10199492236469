//! What the node's `rovn` table must say, as plain data: the agent computes it from Kubernetes
//! objects (`agent::gateway`), [`render`](super::render) turns it into one nftables batch. Kept
//! free of nftables and Kubernetes types so both sides are tested on their own.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use ipnet::Ipv4Net;

/// The transport protocols, shared with the controller through `rovn-api`.
pub use rovn_api::Protocol;

/// Where a connection arrives on this node: a NodePort on the node's IP, an externalIP or
/// LoadBalancer ingress IP, or a hostPort. One key space for all of them, so the table answers
/// each with one map lookup however many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frontend {
    /// The destination address.
    pub addr: Ipv4Addr,
    /// The protocol.
    pub protocol: Protocol,
    /// The destination port.
    pub port: u16,
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.addr, self.port, self.protocol)
    }
}

/// Where the node sends a [`Frontend`]'s new connections.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// `externalTrafficPolicy: Cluster`: DNAT to the ClusterIP, which OVN load-balances behind
    /// `ovn0`; the source becomes the node's join IP so replies come back through this node.
    ClusterIp(SocketAddrV4),
    /// `externalTrafficPolicy: Local`: this node's own ready endpoints, the client's address
    /// kept; none means the node drops the connection (another node must answer it).
    Local {
        /// Names the per-Service chain that balances over several endpoints (e.g.
        /// `Service/ns/name`); must be the same for every frontend of one Service port.
        owner: String,
        /// The endpoints, in a stable order.
        endpoints: Vec<SocketAddrV4>,
    },
    /// A pod's hostPort: DNAT to the pod, the client's address kept.
    HostPort(SocketAddrV4),
}

/// A pod Subnet as the gateway sees it: its CIDR, and whether its traffic leaving the cluster is
/// masqueraded to the node's IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodRange {
    /// The CIDR in effect.
    pub cidr: Ipv4Net,
    /// `natOutgoing`.
    pub nat_outgoing: bool,
}

/// Everything the `rovn` table depends on. Equal states render equal batches, so the agent
/// compares states before it asks the kernel anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayState {
    /// The node's own IP: NodePorts and hostPorts without a hostIP answer on it.
    pub node_ip: Ipv4Addr,
    /// The node's address on `join`: Cluster-policy traffic is SNATed to it.
    pub join_ip: Ipv4Addr,
    /// The device towards OVN (`ovn0`).
    pub ovn_device: String,
    /// The pod Subnets.
    pub pod_ranges: Vec<PodRange>,
    /// The join network.
    pub join_cidr: Ipv4Net,
    /// The Service CIDR.
    pub service_cidr: Ipv4Net,
    /// Every frontend this node answers, and where it goes.
    pub forwards: BTreeMap<Frontend, Target>,
}
