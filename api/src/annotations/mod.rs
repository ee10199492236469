//! Pod and node annotations: parsing what users and the controller wrote, rendering what the
//! controller writes.
//!
//! Annotations are the interface between the controller, the node agent and users, and the pod
//! annotation is the source of truth for an allocated address (IPAM is rebuilt from it). Both
//! sides therefore go through these pure functions, so what one renders the other parses, and a
//! hand-edited or corrupted value is reported with its key instead of being half-trusted.
//!
//! Addresses are parsed in either family; [`Ipv4PodAllocation`] and its siblings are the
//! IPv4-only forms today's pools and kernel code take them in.

mod error;
mod ipv4;
mod node;
mod pod;
mod value;

pub use error::AnnotationError;
pub use ipv4::{IPV6_NOT_CONFIGURED, Ipv4NodeJoin, Ipv4PodAllocation, Ipv4PodRequest};
pub use node::{NodeJoin, parse_chassis, parse_node_join, render_node_join};
pub use pod::{
    PodAllocation, PodRequest, is_routed, parse_pod_allocation, parse_pod_request,
    render_pod_allocation,
};

#[cfg(test)]
mod tests;
