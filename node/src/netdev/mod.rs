//! Kernel network devices over rtnetlink: pod veths, the sandbox side of a pod, `ovn0` addresses and routes.
//!
//! Everything the node agent does to kernel devices goes through here. Work inside a pod sandbox
//! runs on a dedicated OS thread that enters the sandbox's network namespace ([`netns`]); work in
//! the agent's own namespace uses a netlink socket opened by the calling task.

mod addresses;
mod announce;
mod conn;
mod error;
mod ethtool;
mod host_networks;
mod link;
mod names;
mod netns;
mod node_port;
mod pod;
mod routes;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use rovn_api::MacAddr;

pub use error::NetdevError;
pub use host_networks::{HostNetwork, HostNetworkSource};
pub use link::OperState;
pub use names::{HOST_VETH_PREFIX, MAX_IFNAME_LEN, host_veth_name, validate_ifname};
pub use routes::ROVN_ROUTE_PROTOCOL;

/// How the pod's interface in its sandbox must look (what CNI ADD asks for, after IPAM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInterfaceSpec {
    /// The sandbox's network namespace path, e.g. `/run/netns/x` or `/proc/<pid>/ns/net`.
    pub sandbox: PathBuf,
    /// `CNI_IFNAME`, the name the pod end gets inside the sandbox.
    pub ifname: String,
    /// The MAC OVN's logical switch port expects (port security).
    pub mac: MacAddr,
    /// The pod's address with the prefix length of its subnet.
    pub address: Ipv4Net,
    /// The subnet's gateway, the pod's default route.
    pub gateway: Ipv4Addr,
    /// Underlay MTU minus the encapsulation overhead.
    pub mtu: u32,
    /// `false` on OVS's userspace datapath, where offloaded TX checksums are never completed.
    pub tx_checksum_offload: bool,
}

/// The veth pair as created, for the OVS port and the CNI result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedVeth {
    /// The host end's name (the OVS port/interface name).
    pub host_name: String,
    /// The host end's ifindex in the agent's namespace.
    pub host_ifindex: u32,
    /// The host end's (kernel-chosen) MAC, reported in the CNI result's host interface.
    pub host_mac: MacAddr,
    /// The pod end's ifindex inside the sandbox.
    pub sandbox_ifindex: u32,
    /// The pod end's MAC as the kernel has it (the requested one).
    pub sandbox_mac: MacAddr,
}

/// The host end of a pod's veth once the pair exists, before the sandbox end is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodVeth {
    /// The host end's name (the OVS port/interface name).
    pub host_name: String,
    /// The host end's ifindex in the agent's namespace.
    pub host_ifindex: u32,
    /// The host end's (kernel-chosen) MAC, reported in the CNI result's host interface.
    pub host_mac: MacAddr,
}

/// What a sandbox interface looks like now, for CNI CHECK to compare with what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInterface {
    /// The interface's ifindex inside the sandbox (the CNI result's `interfaces[].sandbox` peer).
    pub ifindex: u32,
    /// `None` for a device without an Ethernet address.
    pub mac: Option<MacAddr>,
    /// Every IPv4 address with its prefix length; CHECK expects exactly the allocated one.
    pub addresses: Vec<Ipv4Net>,
    /// `None` when the kernel did not report one.
    pub mtu: Option<u32>,
    /// The gateway of the main table's default route through this interface, if any.
    pub default_gateway: Option<Ipv4Addr>,
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// Operational state (a veth is `Up` only when its peer is up too).
    pub oper_state: OperState,
    /// `None` when the driver cannot tell.
    pub tx_checksum_offload: Option<bool>,
}

/// A host veth rovn created, found by its name prefix (for GC and restart cleanup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVeth {
    /// The device name, equal to the OVS port name and to `host_veth_name(container id)`.
    pub name: String,
    /// The ifindex in the agent's namespace.
    pub ifindex: u32,
}

/// Creates the veth in the agent's netns with its peer in the sandbox, named `spec.ifname`, sets
/// MAC, MTU, address, link up, default route via gateway (onlink), TX checksum offload as asked,
/// and brings the host end up with the same MTU. Idempotent: a repeat with the same spec after
/// success, or after a half-done earlier attempt (e.g. a leftover host veth), converges.
///
/// The peer is created directly inside the sandbox under its final name (one `RTM_NEWLINK` with
/// the peer's `IFLA_NET_NS_FD`), which is the "create, move, rename" of the CNI flow done
/// atomically: no window where the pod end sits in the agent's namespace under a temporary name.
pub async fn attach_pod(
    host_name: &str,
    spec: &PodInterfaceSpec,
) -> Result<AttachedVeth, NetdevError> {
    pod::attach_pod(host_name, spec).await
}

/// The first half of [`attach_pod`]: the pair exists (created, reused, or replacing a leftover
/// host end) and the host end is up with the MTU; the sandbox end has its name, MAC and MTU from
/// creation but no address or route yet. The host end can be plugged into OVS from here on,
/// while [`configure_sandbox_end`] finishes the sandbox.
pub async fn create_pod_veth(
    host_name: &str,
    spec: &PodInterfaceSpec,
) -> Result<PodVeth, NetdevError> {
    pod::create_pod_veth(host_name, spec).await
}

/// The second half of [`attach_pod`], inside the sandbox: MAC, MTU, TX checksum offload,
/// address, link up, default route. Returns the pod end's ifindex and MAC.
pub async fn configure_sandbox_end(spec: &PodInterfaceSpec) -> Result<(u32, MacAddr), NetdevError> {
    pod::configure_sandbox_end(spec).await
}

/// Removes the host veth (and so its peer). Missing = Ok.
pub async fn detach_pod(host_name: &str) -> Result<(), NetdevError> {
    pod::detach_pod(host_name).await
}

/// Removes `ifname` inside a sandbox. Missing netns or interface = Ok (DEL must be idempotent).
pub async fn remove_from_sandbox(sandbox: &Path, ifname: &str) -> Result<(), NetdevError> {
    pod::remove_from_sandbox(sandbox, ifname).await
}

/// What is in the sandbox now, for CNI CHECK: MAC, IPv4 addresses, MTU, default gateway, state.
/// A missing netns or interface is an error (CHECK must fail then).
pub async fn inspect_sandbox(
    sandbox: &Path,
    ifname: &str,
) -> Result<SandboxInterface, NetdevError> {
    pod::inspect_sandbox(sandbox, ifname).await
}

/// Host veths whose name starts with "rovn" (for GC and restart cleanup).
pub async fn list_host_veths() -> Result<Vec<HostVeth>, NetdevError> {
    pod::list_host_veths().await
}

/// Configures the node's OVS internal port (`ovn0`) once OVS has created it: MAC, address (the
/// only IPv4 address it keeps), MTU, up, and routes for `routes` via `gateway` dev `name` with
/// replace semantics: routes rovn added earlier on it that are no longer listed are removed,
/// others untouched. Waits up to `wait` for the device to appear (OVS creates it asynchronously).
pub async fn configure_node_port(
    name: &str,
    mac: MacAddr,
    address: Ipv4Net,
    mtu: u32,
    routes: &[Ipv4Net],
    gateway: Ipv4Addr,
    wait: Duration,
) -> Result<(), NetdevError> {
    node_port::configure_node_port(name, mac, address, mtu, routes, gateway, wait).await
}

/// MTU of the interface that holds `ip` in the agent's netns (for "underlay MTU − encap overhead").
pub async fn mtu_of_address(ip: Ipv4Addr) -> Result<u32, NetdevError> {
    node_port::mtu_of_address(ip).await
}

/// The node's IPv4 addresses and main-table routes in the agent's netns, except rovn's own
/// routes (protocol 114), the default route and link-local ones: the networks a pod Subnet must
/// not overlap before the agent routes it through `ovn0`, or the node would lose its own
/// networks to the cluster.
pub async fn host_networks() -> Result<Vec<HostNetwork>, NetdevError> {
    host_networks::host_networks().await
}

/// Makes `wanted` the LoadBalancer addresses this node holds: each a /32 on the interface that
/// holds `underlay_ip` in the agent's netns, so the kernel answers ARP for them there and the
/// outside sends their packets to this node, where the `rovn` table DNATs them. Only /32
/// addresses inside `pool` are added or removed; returns those that were not there before.
pub async fn announce_addresses(
    underlay_ip: Ipv4Addr,
    pool: Ipv4Net,
    wanted: &std::collections::BTreeSet<Ipv4Addr>,
) -> Result<Vec<Ipv4Addr>, NetdevError> {
    announce::sync_addresses(underlay_ip, pool, wanted).await
}

/// Sends a gratuitous ARP for `ip` out of the interface that holds `underlay_ip` in the agent's
/// netns, with that interface's MAC: neighbours that cached another node's MAC for `ip` switch
/// to this one at once rather than when their entry ages out.
pub async fn gratuitous_arp(underlay_ip: Ipv4Addr, ip: Ipv4Addr) -> Result<(), NetdevError> {
    announce::gratuitous_arp(underlay_ip, ip).await
}
