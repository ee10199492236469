//! What the agent was asked to do, independent of how it was asked (flags, env).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;

/// Tunnel encapsulation between chassis; it decides the MTU overhead pods must leave room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncapType {
    /// Geneve (OVN's default; carries logical port metadata in options).
    Geneve,
    /// VXLAN (for underlays that filter Geneve).
    Vxlan,
}

impl EncapType {
    /// The value of `external_ids:ovn-encap-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EncapType::Geneve => "geneve",
            EncapType::Vxlan => "vxlan",
        }
    }

    /// Bytes the tunnel adds to every packet (outer IPv4 + UDP + header, with Geneve's
    /// OVN option), which a pod's MTU must leave free.
    pub fn overhead(self) -> u32 {
        match self {
            EncapType::Geneve => 58,
            EncapType::Vxlan => 50,
        }
    }
}

impl std::str::FromStr for EncapType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "geneve" => Ok(EncapType::Geneve),
            "vxlan" => Ok(EncapType::Vxlan),
            other => Err(format!(
                "unknown encap type {other:?} (expected geneve or vxlan)"
            )),
        }
    }
}

/// The OVS datapath of `br-int`: the kernel module, or the userspace (netdev) datapath that
/// needs TX checksum offload off on pod veths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatapathType {
    /// The kernel datapath.
    System,
    /// OVS's userspace datapath.
    Netdev,
}

impl DatapathType {
    /// The value of `Bridge.datapath_type` and `external_ids:ovn-bridge-datapath-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatapathType::System => "system",
            DatapathType::Netdev => "netdev",
        }
    }

    /// Whether pod veths may keep TX checksum offload: the userspace datapath does not
    /// complete partial checksums, so TCP from the pod would be dropped.
    pub fn allows_tx_checksum_offload(self) -> bool {
        self == DatapathType::System
    }
}

impl std::str::FromStr for DatapathType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "system" => Ok(DatapathType::System),
            "netdev" => Ok(DatapathType::Netdev),
            other => Err(format!(
                "unknown datapath type {other:?} (expected system or netdev)"
            )),
        }
    }
}

/// Everything the agent needs to run, already validated.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The Kubernetes Node this agent serves.
    pub node_name: String,
    /// A kubeconfig file; `None` infers (in-cluster or `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// The local Open_vSwitch database (`unix:/run/openvswitch/db.sock`).
    pub ovs_db: String,
    /// The OVN Southbound remote ovn-controller connects to.
    pub ovn_remote: String,
    /// The key, certificate and CA of an `ssl:` Southbound remote.
    pub ovn_tls: Option<rovn_ovsdb::TlsConfig>,
    /// Tunnel encapsulation.
    pub encap_type: EncapType,
    /// Tunnel endpoint; `None` uses the Node's InternalIP.
    pub encap_ip: Option<Ipv4Addr>,
    /// `br-int`'s datapath.
    pub datapath_type: DatapathType,
    /// The unix socket `rovn-cni` talks to.
    pub cni_socket: PathBuf,
    /// Where the conflist goes.
    pub cni_conf_dir: PathBuf,
    /// The conflist's file name.
    pub cni_conf_name: String,
    /// Where `rovn-cni` is installed.
    pub cni_bin_dir: PathBuf,
    /// The Service CIDR, routed via the join gateway like pod subnets.
    pub service_cidr: Ipv4Net,
    /// Pod MTU; `None` derives it from the underlay.
    pub mtu: Option<u32>,
    /// `/metrics` and `/healthz`.
    pub listen: SocketAddr,
    /// How long ADD waits for the controller's allocation.
    pub allocation_timeout: Duration,
    /// How long ADD waits for ovn-controller to install the port.
    pub ovn_installed_timeout: Duration,
    /// Whether the agent owns the node's nftables table `rovn` (egress masquerade, NodePorts,
    /// externalIPs, LoadBalancer IPs, hostPorts); off leaves the node's nftables alone.
    pub gateway: bool,
    /// The controller's LoadBalancer pool (`--lb-cidr`): the agent announces the addresses of
    /// it that the controller assigned to this node, and never any other (a Service's status
    /// and annotations are writable by its users). `None`: nothing is announced.
    pub lb_cidr: Option<Ipv4Net>,
}
