//! Helpers of the `lab_kube` test: the reference-CNI network it installs on each node,
//! `kubectl` and sandboxes. Pods, polling and the failure report are the scenarios' own
//! (`rovn_e2e::scenario::{pods, wait, report}`).

pub mod cni;
pub mod kubectl;
pub mod sandbox;
