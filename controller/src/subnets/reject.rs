//! Why a Subnet object was not accepted.

use std::fmt;

/// The kind of problem, shown as the `Ready=False` condition's CamelCase reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The object's name cannot be a Subnet's (missing, or the `join` switch's).
    InvalidName,
    /// `spec.cidrBlock` is not a usable IPv4 CIDR.
    InvalidCidr,
    /// `spec.gateway` is not a host address of the CIDR.
    InvalidGateway,
    /// An `spec.excludeIps` entry is malformed or outside the CIDR.
    InvalidExcludeIps,
    /// A `spec.namespaces` entry is not a namespace name.
    InvalidNamespaces,
    /// A `spec.allowSubnets` entry is not an IPv4 CIDR.
    InvalidAllowSubnets,
    /// The CIDR overlaps an older accepted Subnet.
    Overlap,
    /// A listed namespace is already listed by an older accepted Subnet.
    NamespaceConflict,
    /// The CIDR overlaps the join or the service CIDR.
    ReservedRange,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectReason::InvalidName => "InvalidName",
            RejectReason::InvalidCidr => "InvalidCidr",
            RejectReason::InvalidGateway => "InvalidGateway",
            RejectReason::InvalidExcludeIps => "InvalidExcludeIps",
            RejectReason::InvalidNamespaces => "InvalidNamespaces",
            RejectReason::InvalidAllowSubnets => "InvalidAllowSubnets",
            RejectReason::Overlap => "Overlap",
            RejectReason::NamespaceConflict => "NamespaceConflict",
            RejectReason::ReservedRange => "ReservedRange",
        })
    }
}

/// A Subnet object that was rejected whole, with what the user should fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetRejection {
    /// The object's name.
    pub name: String,
    /// The kind of problem.
    pub reason: RejectReason,
    /// What is wrong, naming the other Subnet or the reserved range involved.
    pub message: String,
    /// The object's `metadata.generation`.
    pub generation: Option<i64>,
}
