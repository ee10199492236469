//! The cluster snapshot the desired state is computed from: only what NB rows depend on.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use rovn_api::MacAddr;
pub use rovn_api::Protocol;

use super::policies::PolicyPods;
use super::selector::{Labels, Selector};

/// Everything in the cluster that shapes rovn's NB rows, already validated and allocated
/// (addresses come from IPAM and the pod/node annotations, not from here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterState {
    /// The node ↔ pod switch `join`.
    pub join: JoinSubnet,
    /// The Service range: inside the cluster, so egress never reroutes traffic to it.
    pub service_cidr: Ipv4Net,
    /// The Subnet objects, each a logical switch.
    pub subnets: Vec<Subnet>,
    /// The nodes, each with a port on `join`.
    pub nodes: Vec<Node>,
    /// The pods that have an allocated address, each a port on its subnet's switch.
    pub pods: Vec<PodPort>,
    /// The Services with a ClusterIP, each one load balancer per protocol.
    pub services: Vec<Service>,
    /// The NetworkPolicies, each a port group with its ACLs and address sets.
    pub policies: Vec<Policy>,
    /// The pods and namespaces policies select from.
    pub policy_pods: PolicyPods,
}

/// The `join` switch's addressing, kept apart from [`Subnet`] because it is configured on the
/// controller, not by a Subnet object, and belongs to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinSubnet {
    /// The join CIDR (default 100.64.0.0/16).
    pub cidr: Ipv4Net,
    /// The router's address on it (default 100.64.0.1).
    pub gateway: Ipv4Addr,
}

/// One Subnet object: a logical switch attached to the cluster router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// The Subnet's name, which is also its switch's name.
    pub name: String,
    /// `spec.cidrBlock`.
    pub cidr: Ipv4Net,
    /// `spec.gateway`: the router port's address.
    pub gateway: Ipv4Addr,
    /// `spec.private`: its pods accept traffic only from the Subnet itself, nodes and
    /// [`Subnet::allow_subnets`].
    pub private: bool,
    /// `spec.allowSubnets`: what else a private Subnet's pods accept traffic from.
    pub allow_subnets: Vec<Ipv4Net>,
}

/// One node: its `ovn0` port on `join`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The Node's name.
    pub name: String,
    /// The `rovn.io/join_ip` annotation.
    pub join_ip: Ipv4Addr,
    /// The `rovn.io/join_mac` annotation.
    pub join_mac: MacAddr,
    /// The `rovn.io/chassis` annotation, once the agent has written it: ports on the node are
    /// bound to it (`options:requested-chassis`), falling back to the node name until then.
    pub chassis: Option<String>,
    /// The node's IPv4 `InternalIP` (`status.addresses`), when it reports one: pods reach it
    /// through the node's own `join` port.
    pub internal_ip: Option<Ipv4Addr>,
}

/// One pod with an allocated address: its logical switch port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPort {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's UID: a pod re-created under the same name is a new port.
    pub uid: String,
    /// The node the pod is scheduled to.
    pub node: String,
    /// The pod's logical switch (its Subnet's name).
    pub switch: String,
    /// The allocated address.
    pub ip: Ipv4Addr,
    /// The allocated MAC.
    pub mac: MacAddr,
}

/// One Service with an IPv4 ClusterIP, as its load balancers need it: its virtual IPs and
/// ports, and the endpoints of all its EndpointSlices. Headless and ExternalName Services
/// have none and are not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// `spec.clusterIPs`, the IPv4 ones.
    pub cluster_ips: Vec<Ipv4Addr>,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// `sessionAffinity: ClientIP`: how long (seconds) a client sticks to its backend.
    pub affinity_timeout: Option<u32>,
    /// `internalTrafficPolicy: Local`: a client reaches only endpoints on its own node.
    pub local_only: bool,
    /// The endpoints of every slice of the Service, in slice order.
    pub endpoints: Vec<Endpoint>,
}

/// One port of a Service: what clients connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The port's name, which endpoint ports are matched by ("" for a lone unnamed port).
    pub name: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// The port clients connect to on the ClusterIP.
    pub port: u16,
}

/// One endpoint address of an EndpointSlice with the slice's ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The backend address.
    pub ip: Ipv4Addr,
    /// `conditions.ready` (nil read as true).
    pub ready: bool,
    /// `conditions.serving` (nil read as `ready`).
    pub serving: bool,
    /// `conditions.terminating` (nil read as false).
    pub terminating: bool,
    /// `nodeName`, where the endpoint runs.
    pub node: Option<String>,
    /// The slice's ports: name, protocol and the backend's port.
    pub ports: Vec<(String, Protocol, u16)>,
}

/// One NetworkPolicy as OVN enforces it: validated, with what cannot be enforced already left
/// out (and reported) by [`crate::policies`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The policy's namespace, the only one whose pods it selects.
    pub namespace: String,
    /// The policy's name.
    pub name: String,
    /// `spec.podSelector`: the pods it isolates.
    pub subject: Selector,
    /// The ingress rules when `policyTypes` includes Ingress (an empty list isolates and allows
    /// nothing); `None` when the policy says nothing of ingress.
    pub ingress: Option<Vec<PolicyRule>>,
    /// The egress rules, as [`Policy::ingress`].
    pub egress: Option<Vec<PolicyRule>>,
    /// Which verdicts OVN logs for this policy (the `rovn.io/acl-log` annotation).
    pub log: AclLog,
}

impl Policy {
    /// The rules of one direction, when the policy isolates that direction.
    pub fn rules(&self, direction: Direction) -> Option<&[PolicyRule]> {
        match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }

    /// Every rule of both directions, with its direction.
    pub fn all_rules(&self) -> impl Iterator<Item = (Direction, &PolicyRule)> {
        Direction::BOTH
            .into_iter()
            .flat_map(|d| self.rules(d).into_iter().flatten().map(move |r| (d, r)))
    }

    /// Whether some peer is chosen by namespace labels: a namespace's labels changing may
    /// change the policy's sets.
    pub fn selects_namespaces(&self) -> bool {
        self.all_rules().any(|(_, rule)| {
            rule.peers.iter().flatten().any(|peer| {
                matches!(
                    peer,
                    Peer::Pods {
                        namespaces: Some(_),
                        ..
                    }
                )
            })
        })
    }
}

/// A direction of traffic relative to the selected pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Traffic to the pod.
    Ingress,
    /// Traffic from the pod.
    Egress,
}

impl Direction {
    /// Both directions, ingress first.
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    /// The word used in row names, ids and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// Which verdicts of a policy OVN logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AclLog {
    /// Log the connections the policy's rules allow.
    pub allow: bool,
    /// Log what the namespace's default deny drops (shared by the namespace's policies: one
    /// policy asking is enough).
    pub deny: bool,
}

/// One rule: traffic from (ingress) or to (egress) any of its peers, on any of its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRule {
    /// `None`: every peer (the field was absent or empty). `Some` of an empty list: none (every
    /// peer it named was left out as unenforceable), so the rule allows nothing.
    pub peers: Option<Vec<Peer>>,
    /// `None`: every port. `Some` of an empty list: none, as for peers.
    pub ports: Option<Vec<PolicyPort>>,
}

/// One peer of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// Pods chosen by labels: in the policy's own namespace (`namespaces: None`) or in every
    /// namespace the namespace selector matches.
    Pods {
        /// `namespaceSelector`, when given.
        namespaces: Option<Selector>,
        /// `podSelector` (everything when absent).
        pods: Selector,
    },
    /// `ipBlock`.
    Block {
        /// The block.
        cidr: Ipv4Net,
        /// `except`, each inside the block.
        except: Vec<Ipv4Net>,
    },
}

/// One `ports` entry of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyPort {
    /// Every port of a protocol (`port` absent).
    Any(Protocol),
    /// Ports `start..=end` (`end == start` for a single port).
    Range {
        /// The protocol.
        protocol: Protocol,
        /// The first port.
        start: u16,
        /// The last port (`endPort`, or `start`).
        end: u16,
    },
    /// A container port name, resolved on each destination pod.
    Named {
        /// The protocol.
        protocol: Protocol,
        /// The name.
        name: String,
    },
}

/// A namespace as policies see it: its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The name.
    pub name: String,
    /// The labels namespace selectors match.
    pub labels: Labels,
}

/// A pod with a port, as policies see it: what selectors match and named ports resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyPod {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The UID: a new incarnation is a new port, which every group must take in again.
    pub uid: String,
    /// The node it runs on.
    pub node: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its labels.
    pub labels: Labels,
    /// Its named container ports: name, protocol, number.
    pub named_ports: Vec<(String, Protocol, u16)>,
}
