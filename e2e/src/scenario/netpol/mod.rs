//! The `networking.k8s.io/v1` NetworkPolicy truth-table suite: an independent model of the
//! spec ([`model`]) that the probes of a cluster are compared with.

pub mod model;
pub mod selector;
