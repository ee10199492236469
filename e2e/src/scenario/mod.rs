//! Pod-network scenarios written against a small [`Cluster`] interface, so the same code runs
//! on any cluster through its API and `kubectl exec` ([`KubectlCluster`]): the lab
//! ([`LabCluster`]) and kind alike.
//!
//! Each scenario is an async function taking the cluster and a namespace of its own; it makes
//! its pods, sends real traffic with `rovn-podtool`, and returns the first failed check as a
//! [`ScenarioError`]. [`Cluster::dump`] gives what to print when one fails.

pub mod api;
pub mod cluster;
pub mod demo;
pub mod egress;
pub mod error;
pub mod harness;
pub mod infra;
pub mod ingress;
pub mod integrity;
pub mod kind_infra;
pub mod kubectl_cluster;
pub mod lab_cluster;
pub mod loadbalancer;
pub mod netpol;
pub mod ovn_state;
pub mod pod_network;
pub mod pods;
pub mod report;
pub mod restarts;
pub mod services;
pub mod traffic;
pub mod wait;

pub use cluster::{Cluster, Component, ExecOutput, PodRef};
pub use error::{Result, ScenarioError};
pub use infra::{Infra, NodeShell};
pub use kind_infra::KindInfra;
pub use kubectl_cluster::KubectlCluster;
pub use lab_cluster::{LabCluster, LabInfra};
