//! `kubectl rovn`: the operators' debug plugin for rovn.
//!
//! Operators debug OVN with `ovn-nbctl`, `ovn-sbctl` and `ovn-trace`; this plugin gets them from
//! "pod A cannot reach B" to the OVN row and the Kubernetes object responsible in one command.
//!
//! The modules are split the way kube-rs and linkerd2's CLI split theirs: pure functions that
//! decide (the microflow, the verdict of an `ovn-trace`, the findings of `diagnose`, the rows an
//! owner has, the topology) over plain snapshots, and thin I/O modules that gather those
//! snapshots from the API server (`kube_io`), NB and SB (`ovn_io`) and run OVN's tools
//! (`tools`). Every decision is therefore testable from hand-made snapshots and captured
//! `ovn-trace` output, without a cluster.
//!
//! It depends on `rovn-api` for every name and annotation rovn writes, never on the controller
//! or the node agent: the plugin reads what they wrote, it does not recompute it.

pub mod addresses;
pub mod diagnose;
pub mod flow;
pub mod kube_io;
pub mod liveness;
pub mod nblog;
pub mod node_ovs;
pub mod ovn_io;
pub mod plan;
pub mod policy;
pub mod remotes;
pub mod rows;
pub mod snapshot;
pub mod tools;
pub mod topology;
pub mod trace;
pub mod tunnels;
pub mod verdict;
