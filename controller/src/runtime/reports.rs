//! What background tasks report back to the controller task: the one channel's message type,
//! kept apart from the modules that send and handle it so that none of them depends on another
//! through it.

use std::time::Duration;

use super::kubeio::WriteError;
use super::watch::Key;
use crate::desired::{DesiredState, PodContext};
use crate::reconcile::{Outcome, ReconcileError};

/// What a background task reports back to the controller task, by the module it is for.
pub(super) enum Done {
    Pod(PodDone),
    Node(NodeDone),
    SubnetStatusWritten(String),
    /// A Subnet's finalizer patch is done; `Err`: retry after a while.
    SubnetFinalizerWritten(String, Result<(), WriteError>),
    /// The create of the missing `ovn-default` is done.
    DefaultSubnetCreated(Result<bool, WriteError>),
    /// Look at the Subnets again (a retry).
    SubnetsRecheck,
    Round(Box<RoundReport>),
    /// NB changed; what changed waits in `Rounds::nb_changed`.
    NbChanged,
    /// A LoadBalancer Service's address or announcer write is done.
    LoadBalancerWritten(Key, Result<(), WriteError>),
    /// Look at the LoadBalancer Services again (a retry).
    LoadBalancersRecheck,
}

/// What a pod's background write reports.
pub(super) enum PodDone {
    Patched {
        key: Key,
        uid: String,
        result: Result<(), WriteError>,
    },
    Routed {
        key: Key,
        uid: String,
        result: Result<(), WriteError>,
    },
    Retry(Key),
    Reverted {
        key: Key,
        result: Result<(), WriteError>,
    },
}

/// What a node's background write reports.
pub(super) enum NodeDone {
    Patched {
        name: String,
        uid: String,
        result: Result<(), WriteError>,
    },
    Retry(String),
}

/// What a round hands back when it is done.
pub(super) struct RoundReport {
    pub result: Result<Outcome, ReconcileError>,
    pub duration: Duration,
    /// Pods not routed yet when the round started.
    pub pods: Vec<(Key, String)>,
    pub desired: DesiredState,
    pub context: PodContext,
    pub full: bool,
}
