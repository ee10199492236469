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
    /// No Subnet lists the namespace and the default one is missing or rejected.
    #[error(
        "no Subnet lists namespace {namespace} and the default Subnet {DEFAULT_SUBNET} is not ready"
    )]
    NoDefault {
        /// The pod's namespace.
        namespace: String,
    },
}
