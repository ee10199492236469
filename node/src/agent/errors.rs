//! CNI error codes the agent answers with, and the failure type its handlers return.
//!
//! Where a CNI 1.1 well-known code fits it is used (11 "try again later" for every timeout
//! and for an OVS database that cannot be reached, since the runtime retries the sandbox);
//! rovn's own codes start at 101 (100 is
//! `rovn-cni`'s protocol-violation code):
//!
//! | code | meaning |
//! |---|---|
//! | 101 | the pod's rovn annotations are malformed (or IPv6, which no cluster configures yet) |
//! | 102 | the pod in the API is not the one the runtime asked for (UID differs) or is gone |
//! | 103 | a kernel network device operation failed (veth, sandbox, addresses) |
//! | 104 | the local OVS database refused or did not answer |
//! | 105 | the Kubernetes API failed |
//! | 106 | CHECK found the attachment differs from what it should be |
//! | 107 | the request lacks a field this command needs |

use crate::cni::protocol::CniError;
pub use crate::cni::protocol::codes::{CONTAINER_UNKNOWN, PLUGIN_NOT_AVAILABLE, TRY_AGAIN_LATER};

/// The pod's rovn annotations are malformed.
pub const INVALID_ANNOTATIONS: u32 = 101;
/// The pod is gone or is not the one the runtime named.
pub const POD_MISMATCH: u32 = 102;
/// A kernel network device operation failed.
pub const NETDEV_FAILURE: u32 = 103;
/// The local OVS database refused or did not answer.
pub const OVS_FAILURE: u32 = 104;
/// The Kubernetes API failed.
pub const KUBE_API_FAILURE: u32 = 105;
/// CHECK found a difference.
pub const CHECK_MISMATCH: u32 = 106;
/// A field the command needs is missing from the request.
pub const MISSING_FIELD: u32 = 107;

/// The stages of ADD, named in metrics, logs and errors so a failure says which one did not
/// complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddStep {
    /// Waiting for the controller's `rovn.io/allocated` annotation.
    Annotation,
    /// Creating the veth pair (host end up, sandbox end named).
    Veth,
    /// Configuring the sandbox end (address, route); runs beside the two OVS steps.
    Sandbox,
    /// Adding the Port and Interface to `br-int`.
    OvsPort,
    /// Waiting for ovn-controller's `ovn-installed`.
    OvnInstalled,
}

impl AddStep {
    /// Every step, in the order ADD runs them.
    pub const ALL: [AddStep; 5] = [
        AddStep::Annotation,
        AddStep::Veth,
        AddStep::Sandbox,
        AddStep::OvsPort,
        AddStep::OvnInstalled,
    ];

    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AddStep::Annotation => "annotation",
            AddStep::Veth => "veth",
            AddStep::Sandbox => "sandbox",
            AddStep::OvsPort => "ovs_port",
            AddStep::OvnInstalled => "ovn_installed",
        }
    }
}

/// A handler's failure: the CNI error to answer with, and whether it is something a user can
/// act on (then it is also published as an Event on the pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What `rovn-cni` prints.
    pub error: CniError,
    /// The Event reason when the user should see it on the pod.
    pub event_reason: Option<&'static str>,
}

impl Failure {
    /// A failure only the runtime sees.
    pub fn new(code: u32, msg: impl Into<String>) -> Failure {
        Failure {
            error: CniError::new(code, msg),
            event_reason: None,
        }
    }

    /// Also publish it as a Warning Event with `reason` on the pod.
    pub fn with_event(mut self, reason: &'static str) -> Failure {
        self.event_reason = Some(reason);
        self
    }
}

impl From<Failure> for CniError {
    fn from(f: Failure) -> CniError {
        f.error
    }
}
