//! The floor's veths over rtnetlink, from a socket opened inside a lab node's network
//! namespace: the host end is created there (where that node's ovs-vswitchd runs) and its peer
//! directly inside a sandbox namespace, in one `RTM_NEWLINK`, as rovn-node creates a pod's pair.
//!
//! rovn-node's own `netdev` helpers act in the calling thread's namespace and first look for
//! leftovers of an earlier attempt (an extra thread in the sandbox and more requests); the
//! bench runs in the root namespace and the floor must be the least a pod plug can cost, so it
//! sends the one request itself.

use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use rovn_api::MacAddr;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth};
use tokio::task::JoinHandle;

use super::error::BenchError;
use crate::lab::names::NETNS_DIR;

/// An rtnetlink connection bound to one lab node's network namespace (a netlink socket keeps
/// the namespace it was opened in), driven by a task of the bench's runtime: opened once per
/// node, so no floor plug pays for a thread or a socket.
pub struct NodeNetlink {
    handle: Handle,
    task: JoinHandle<()>,
}

impl Drop for NodeNetlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One floor veth: `host` in the node, `peer` in the sandbox with the port's MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethSpec {
    /// The host end's name, in the node's namespace (the OVS interface name).
    pub host: String,
    /// The peer's name inside the sandbox.
    pub peer: String,
    /// The peer's MAC (the logical port's).
    pub mac: MacAddr,
    /// Both ends' MTU.
    pub mtu: u32,
}

impl NodeNetlink {
    /// Opens the socket inside `/run/netns/<netns>` on a short-lived thread of its own (setns
    /// changes only the calling thread, and no runtime worker may change namespace).
    pub async fn open(netns: &str) -> Result<NodeNetlink, BenchError> {
        let path = Path::new(NETNS_DIR).join(netns);
        let runtime = tokio::runtime::Handle::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("bench-netns".into())
            .spawn(move || {
                let _ = tx.send(open_in(&thread_path, &runtime));
            })
            .map_err(|e| BenchError::io("start a thread for", &path, e))?;
        let (connection, handle) = rx.await.map_err(|_| {
            BenchError::protocol(
                format!("a netlink socket in {}", path.display()),
                "its thread died",
            )
        })??;
        let task = tokio::spawn(connection);
        Ok(NodeNetlink { handle, task })
    }

    /// Creates the pair in one request: the host end here, up, and the peer inside the namespace
    /// `sandbox` (an open `/run/netns` file), down. Configuring the sandbox end is the CNI
    /// plugin's work, not OVN's (and the kernel refuses a peer created up: `ENOTCONN`).
    pub async fn create_veth(
        &self,
        spec: &VethSpec,
        sandbox: &std::fs::File,
    ) -> Result<(), BenchError> {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(spec.peer.clone())
            .address(spec.mac.0.to_vec())
            .mtu(spec.mtu)
            .setns_by_fd(sandbox.as_raw_fd())
            .build();
        let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(spec.host.clone())
            .mtu(spec.mtu)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.handle
            .link()
            .add(veth)
            .execute()
            .await
            .map_err(|e| BenchError::Netlink {
                what: format!("create veth {} with peer {}", spec.host, spec.peer),
                source: Box::new(e),
            })
    }
}

type Connection = rtnetlink::proto::Connection<rtnetlink::packet_route::RouteNetlinkMessage>;

/// Runs on the dedicated thread: enters the namespace, then opens the socket registered with
/// the bench's runtime.
fn open_in(
    netns: &Path,
    runtime: &tokio::runtime::Handle,
) -> Result<(Connection, Handle), BenchError> {
    let file = std::fs::File::open(netns).map_err(|e| BenchError::io("open", netns, e))?;
    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| BenchError::io("enter", netns, e.into()))?;
    let _entered = runtime.enter();
    let (connection, handle, _) = rtnetlink::new_connection()
        .map_err(|e| BenchError::io("open a netlink socket in", netns, e))?;
    Ok((connection, handle))
}
