//! IPAM: which pod or node holds which address, per subnet.
//!
//! Pure and synchronous: the controller rebuilds it at start from pod and node annotations (the
//! source of truth for an allocated address) and consults it before writing any annotation, so
//! two pods can never be given one address, however the creations interleave.

mod exclude;
mod pool;

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rovn_api::MacAddr;

pub use exclude::{AddrRange, parse_exclude_ips};
pub use pool::{Allocation, Request, SubnetPool, Usage};

/// Why an address could not be given or recorded. Each names what a user can fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// The subnet's CIDR cannot hold pods.
    #[error("subnet {subnet}: {reason}")]
    BadCidr {
        /// The subnet.
        subnet: String,
        /// What is wrong with its CIDR.
        reason: String,
    },
    /// The gateway is not a host address of the subnet.
    #[error("subnet {subnet}: gateway {gateway} is not a host address of {cidr}")]
    BadGateway {
        /// The subnet.
        subnet: String,
        /// The gateway asked for.
        gateway: Ipv4Addr,
        /// The subnet's CIDR.
        cidr: Ipv4Net,
    },
    /// An `excludeIps` entry is malformed or outside the subnet.
    #[error("excludeIps entry {entry:?}: {reason}")]
    BadExclude {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A requested address is outside the subnet.
    #[error("{ip} is outside subnet {subnet} ({cidr})")]
    OutsideSubnet {
        /// The address asked for.
        ip: Ipv4Addr,
        /// The subnet.
        subnet: String,
        /// The subnet's CIDR.
        cidr: Ipv4Net,
    },
    /// A requested address is reserved.
    #[error("{ip} is {what} of subnet {subnet}")]
    Reserved {
        /// The address asked for.
        ip: Ipv4Addr,
        /// The subnet.
        subnet: String,
        /// Why it is reserved.
        what: &'static str,
    },
    /// A requested address is held by someone else.
    #[error("{ip} is already held by {owner}")]
    InUse {
        /// The address asked for.
        ip: Ipv4Addr,
        /// Who holds it.
        owner: String,
    },
    /// A requested MAC is held by someone else.
    #[error("MAC {mac} is already held by {owner}")]
    MacInUse {
        /// The MAC asked for.
        mac: MacAddr,
        /// Who holds it.
        owner: String,
    },
    /// The owner already holds a different address or MAC.
    #[error("{owner} already holds {ip} ({mac})")]
    AlreadyAllocated {
        /// The owner.
        owner: String,
        /// The address it holds.
        ip: Ipv4Addr,
        /// The MAC it holds.
        mac: MacAddr,
    },
    /// No free address is left.
    #[error("subnet {subnet} ({cidr}) has no free address left")]
    Exhausted {
        /// The subnet.
        subnet: String,
        /// Its CIDR.
        cidr: Ipv4Net,
    },
}

impl IpamError {
    /// The Event reason a user sees when an allocation is refused for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            IpamError::Exhausted { .. } => "SubnetExhausted",
            IpamError::InUse { .. } | IpamError::MacInUse { .. } => "AddressInUse",
            IpamError::OutsideSubnet { .. } => "AddressOutsideSubnet",
            IpamError::Reserved { .. } => "AddressReserved",
            _ => "AllocationFailed",
        }
    }
}
