//! rovn's central controller: Kubernetes objects in, OVN Northbound rows out.

pub mod desired;
pub mod ipam;
pub mod names;
pub mod reconcile;
