//! The Northbound rows rovn wants, computed from a snapshot of the cluster by pure functions.
//!
//! Keeping this free of I/O is what makes the controller level-triggered: the same cluster
//! state always renders the same rows, so a restart on a converged cluster diffs to nothing.
//! Kubernetes objects are converted into [`ClusterState`] elsewhere; the reconciler
//! ([`crate::reconcile`]) compares [`DesiredState`] with the NB replica.

mod cluster;
mod egress;
mod policies;
mod private;
mod render;
mod selector;
mod services;
mod state;

pub use cluster::{
    AclLog, ClusterState, Direction, Endpoint, JoinSubnet, Namespace, Node, Peer, PodPort, Policy,
    PolicyPod, PolicyPort, PolicyRule, Protocol, Service, ServicePort, Subnet,
};
pub use egress::{IN_CLUSTER_PRIORITY, REROUTE_PRIORITY};
pub use policies::{
    ALLOW_PRIORITY, DENY_PRIORITY, NODE_PRIORITY, PolicyPods, RulePlace, render_namespace,
    render_policy,
};
pub use private::PRIVATE_PRIORITY;
pub use render::{PodContext, desired_state, remove_pod, render_cluster, render_node, render_pod};
pub use selector::{Labels, Requirement, Selector};
pub use services::{remove_service, render_service};
pub use state::{DesiredError, DesiredRow, DesiredState, Refs, RowKey};
