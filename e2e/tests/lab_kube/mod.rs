//! Helpers of the `lab_kube` test: the reference-CNI network it installs on each node, the pod
//! manifests it runs, polling, `kubectl`, and what it prints when it fails.

pub mod cni;
pub mod kubectl;
pub mod pods;
pub mod report;
pub mod sandbox;
pub mod wait;
