//! The one error type of the netdev module.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;

/// Why a kernel network device operation failed. Every variant names the step and the device or
/// network namespace it concerns, so an agent log line or a CNI error result is actionable as is.
#[derive(Debug, thiserror::Error)]
pub enum NetdevError {
    /// The kernel refused a request (netlink NACK, ioctl or syscall failure).
    #[error("{step}: {errno}")]
    Kernel { step: String, errno: Errno },
    /// The netlink exchange itself went wrong (unexpected or undecodable answer).
    #[error("{step}: {detail}")]
    Netlink { step: String, detail: String },
    /// A local I/O failure: opening a socket, a namespace file, starting a thread.
    #[error("{step}: {source}")]
    Io {
        step: String,
        #[source]
        source: std::io::Error,
    },
    /// The sandbox's network namespace path does not exist (any more).
    #[error("network namespace {} does not exist", netns.display())]
    NetnsMissing { netns: PathBuf },
    /// The path exists but does not refer to a network namespace (e.g. an unmounted netns file).
    #[error("{} is not a network namespace", netns.display())]
    NotANetns { netns: PathBuf },
    /// The thread that works inside a sandbox ended without an answer (it panicked).
    #[error("the worker thread for network namespace {} died", netns.display())]
    WorkerDied { netns: PathBuf },
    /// A device that must exist does not.
    #[error("no device {name} in {netns}")]
    NoSuchDevice { name: String, netns: String },
    /// A device that another component creates (OVS's `ovn0`) did not show up in time.
    #[error("device {name} did not appear in {netns} within {waited:?}")]
    DeviceTimeout {
        name: String,
        netns: String,
        waited: Duration,
    },
    /// No interface of the agent's namespace holds this address.
    #[error("no interface holds address {ip}")]
    NoSuchAddress { ip: Ipv4Addr },
    /// An interface name the kernel would refuse (or that would be ambiguous).
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// A pod interface or node port request that cannot be satisfied as asked.
    #[error("invalid request for {device}: {reason}")]
    InvalidRequest { device: String, reason: String },
    /// The sandbox already holds an interface of that name that is not the peer of rovn's veth.
    #[error("{name} in network namespace {} exists and is not rovn's veth peer ({reason})", netns.display())]
    Conflict {
        name: String,
        netns: PathBuf,
        reason: String,
    },
}

impl NetdevError {
    /// The kernel's errno behind this error, if it came from the kernel; lets callers treat e.g.
    /// `ENODEV` or `EEXIST` specially without parsing messages.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            NetdevError::Kernel { errno, .. } => Some(*errno),
            NetdevError::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            _ => None,
        }
    }

    /// Whether the error means "the sandbox is gone", which CNI DEL must treat as success.
    pub fn is_netns_gone(&self) -> bool {
        matches!(
            self,
            NetdevError::NetnsMissing { .. } | NetdevError::NotANetns { .. }
        )
    }
}

/// Builds the mapper from an rtnetlink failure to a [`NetdevError`] naming `step`.
pub(crate) fn netlink_failure(
    step: impl Into<String>,
) -> impl FnOnce(rtnetlink::Error) -> NetdevError {
    let step = step.into();
    move |err| match netlink_errno(&err) {
        Some(errno) => NetdevError::Kernel { step, errno },
        None => NetdevError::Netlink {
            step,
            detail: err.to_string(),
        },
    }
}

/// The errno carried by a netlink NACK, if that is what `err` is.
pub(crate) fn netlink_errno(err: &rtnetlink::Error) -> Option<Errno> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|code| Errno::from_raw(-code.get())),
        _ => None,
    }
}
