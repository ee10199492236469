//! Why a pod cannot be given a Subnet.

use rovn_api::names::DEFAULT_SUBNET;
use rovn_api::names::annotations::LOGICAL_SWITCH;

use super::reject::RejectReason;

/// Why no Subnet can take a pod; the controller reports it as an event on the pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetChoiceError {
    /// The pod asks for a Subnet that does not exist.
    #[error("the pod requests Subnet {name} ({LOGICAL_SWITCH}), which does not exist")]
    Unknown {
        /// The requested Subnet.
        name: String,
    },
    /// The pod asks for a Subnet that exists but was rejected.
    #[error(
        "the pod requests Subnet {name} ({LOGICAL_SWITCH}), which is not ready: {reason}: {message}"
    )]
    Rejected {
        /// The requested Subnet.
        name: String,
        /// Why it was rejected.
        reason: RejectReason,
        /// The rejection's message.
        message: String,
    },
    /// The pod asks for a Subnet reserved to other namespaces.
    #[error(
        "the pod requests Subnet {subnet} ({LOGICAL_SWITCH}), which does not list namespace {namespace}"
    )]
    NamespaceNotListed {
        /// The requested Subnet.
        subnet: String,
        /// The pod's namespace.
        namespace: String,
    },
    /// No Subnet lists the namespace and the default one is missing, rejected or deleted.
    #[error(
        "no Subnet lists namespace {namespace} and the default Subnet {DEFAULT_SUBNET} is not ready"
    )]
    NoDefault {
        /// The pod's namespace.
        namespace: String,
    },
    /// The pod's Subnet (requested, or listing its namespace) was deleted and only waits for
    /// the pods still using it: it takes no new ones.
    #[error(
        "Subnet {name} is terminating: it was deleted and takes no new pods ({pods} still use it)"
    )]
    Terminating {
        /// The Subnet.
        name: String,
        /// How many pods still use it.
        pods: usize,
    },
    /// The namespace is listed by a Subnet that is not accepted: its pods wait for it rather
    /// than landing on `ovn-default`, whence they could never move.
    #[error(
        "namespace {namespace} is listed by Subnet {name}, which is not ready: {reason}: {message}; \
         the pod waits for it to be fixed"
    )]
    NamespaceSubnetNotReady {
        /// The Subnet listing the namespace.
        name: String,
        /// The pod's namespace.
        namespace: String,
        /// Why it was rejected.
        reason: RejectReason,
        /// The rejection's message.
        message: String,
    },
}

impl SubnetChoiceError {
    /// The Event reason: `SubnetNotReady` when the pod's Subnet exists but cannot take it now
    /// (rejected, invalid, terminating), `NoSubnet` otherwise.
    pub fn reason(&self) -> &'static str {
        match self {
            SubnetChoiceError::Rejected { .. }
            | SubnetChoiceError::Terminating { .. }
            | SubnetChoiceError::NamespaceSubnetNotReady { .. }
            | SubnetChoiceError::NoDefault { .. } => "SubnetNotReady",
            SubnetChoiceError::Unknown { .. } | SubnetChoiceError::NamespaceNotListed { .. } => {
                "NoSubnet"
            }
        }
    }
}
