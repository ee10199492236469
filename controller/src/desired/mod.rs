//! The Northbound rows rovn wants, computed from a snapshot of the cluster by pure functions.
//!
//! Keeping this free of I/O is what makes the controller level-triggered: the same cluster
//! state always renders the same rows, so a restart on a converged cluster diffs to nothing.
//! Kubernetes objects are converted into [`ClusterState`] elsewhere; the reconciler
//! ([`crate::reconcile`]) compares [`DesiredState`] with the NB replica.

mod cluster;
mod render;
mod state;

pub use cluster::{ClusterState, JoinSubnet, Node, PodPort, Subnet};
pub use render::desired_state;
pub use state::{Attached, DesiredError, DesiredState};
