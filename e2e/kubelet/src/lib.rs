//! The lab's stand-in for the kubelet and kube-scheduler.
//!
//! `rovn-kubelet` is a faithful CNI runtime (see [`cni`]) plus the small part of a kubelet the
//! lab needs: it names sandboxes, creates their network namespaces, runs the pod's programs in
//! them, reports pod status and tears everything down on deletion. `rovn-scheduler` binds
//! unscheduled pods to Ready nodes round robin through the `binding` subresource.

#![warn(missing_docs)]

pub mod client;
pub mod cni;
pub mod containers;
pub mod kubelet;
pub mod node;
pub mod pod_sandbox;
pub mod pod_worker;
pub mod prober;
pub mod sandbox;
pub mod scheduler;
pub mod status;
