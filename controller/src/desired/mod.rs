//! The Northbound rows rovn wants, computed from a snapshot of the cluster by pure functions.
//!
//! Keeping this free of I/O is what makes the controller level-triggered: the same cluster
//! state always renders the same rows, so a restart on a converged cluster diffs to nothing.
//! Kubernetes objects are converted into [`ClusterState`] elsewhere; the reconciler
//! ([`crate::reconcile`]) compares [`DesiredState`] with the NB replica.

mod cluster;
mod render;
mod services;
mod state;

pub use cluster::{
    ClusterState, Endpoint, JoinSubnet, Node, PodPort, Protocol, Service, ServicePort, Subnet,
};
pub use render::{PodContext, desired_state, render_cluster, render_node, render_pod};
pub use services::{remove_service, render_service};
pub use state::{DesiredError, DesiredRow, DesiredState, Refs, RowKey};
