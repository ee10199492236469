//! rovn's central controller: Kubernetes objects in, OVN Northbound rows out.

pub mod crd;
pub mod desired;
pub mod ipam;
pub mod loadbalancers;
pub mod policies;
pub mod reconcile;
pub mod runtime;
pub mod services;
pub mod subnets;
pub mod tables;
