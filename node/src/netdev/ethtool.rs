//! TX checksum offload of a device, through the legacy ethtool ioctl.
//!
//! On OVS's userspace datapath packets from a veth reach OVS with a partial checksum the kernel
//! expected the "hardware" to finish; nobody does, so TCP segments arrive with bad checksums
//! unless the pod end computes them itself. Must run on a thread inside the device's namespace.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

use super::NetdevError;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GTXCSUM: u32 = 0x0000_0016;
const ETHTOOL_STXCSUM: u32 = 0x0000_0017;

/// `struct ethtool_value` of `<linux/ethtool.h>`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Whether TX checksum offload is on for `ifname` in the calling thread's namespace.
pub(crate) fn tx_checksum_offload(ifname: &str, netns: &str) -> Result<bool, NetdevError> {
    let mut value = EthtoolValue {
        cmd: ETHTOOL_GTXCSUM,
        data: 0,
    };
    ethtool_ioctl(ifname, &mut value).map_err(|errno| {
        kernel(
            format!("reading TX checksum offload of {ifname} in {netns}"),
            errno,
        )
    })?;
    Ok(value.data != 0)
}

/// Turns TX checksum offload of `ifname` on or off in the calling thread's namespace.
pub(crate) fn set_tx_checksum_offload(
    ifname: &str,
    enabled: bool,
    netns: &str,
) -> Result<(), NetdevError> {
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: u32::from(enabled),
    };
    let verb = if enabled { "enabling" } else { "disabling" };
    ethtool_ioctl(ifname, &mut value).map_err(|errno| {
        kernel(
            format!("{verb} TX checksum offload of {ifname} in {netns}"),
            errno,
        )
    })
}

fn kernel(step: String, errno: Errno) -> NetdevError {
    NetdevError::Kernel { step, errno }
}

fn ethtool_ioctl(ifname: &str, value: &mut EthtoolValue) -> Result<(), Errno> {
    let socket: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value (empty name, null data).
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = ifname.as_bytes();
    if name.is_empty() || name.len() >= request.ifr_name.len() {
        return Err(Errno::EINVAL);
    }
    for (slot, byte) in request.ifr_name.iter_mut().zip(name) {
        *slot = *byte as libc::c_char;
    }
    request.ifr_ifru.ifru_data = (value as *mut EthtoolValue).cast::<libc::c_char>();
    // SAFETY: SIOCETHTOOL reads the NUL-terminated name and reads/writes one ethtool_value through
    // ifru_data; both live until the call returns and the value is the size the command expects.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCETHTOOL as _, &mut request) };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(())
}
