//! A validated Subnet: the parsed form every other part of the controller works with.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::desired;
use crate::ipam::{IpamError, SubnetPool};

/// A Subnet object that passed validation, with its addresses parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetConfig {
    /// The object's name, which is also its logical switch's name.
    pub name: String,
    /// `spec.cidrBlock`, in canonical form.
    pub cidr: Ipv4Net,
    /// `spec.gateway`, or the first host address.
    pub gateway: Ipv4Addr,
    /// `spec.excludeIps` as written (already checked to parse inside `cidr`).
    pub exclude_ips: Vec<String>,
    /// `spec.namespaces`, sorted and without duplicates.
    pub namespaces: Vec<String>,
    /// `spec.natOutgoing`.
    pub nat_outgoing: bool,
    /// `spec.private`.
    pub private: bool,
    /// `spec.allowSubnets`, parsed, sorted and without duplicates.
    pub allow_subnets: Vec<Ipv4Net>,
    /// The object's `metadata.generation`, echoed as the condition's `observedGeneration`.
    pub generation: Option<i64>,
    /// The object was deleted but pods still use it: it keeps its switch and their ports and
    /// takes no new pods.
    pub terminating: bool,
    /// Edits refused because they would move running pods (the fields above are then the last
    /// accepted ones).
    pub refused: Vec<super::lifecycle::RefusedEdit>,
    /// How many pods hold an address on it.
    pub pods: usize,
}

impl SubnetConfig {
    /// A fresh address pool for this Subnet, which IPAM then fills from pod annotations.
    pub fn pool(&self) -> Result<SubnetPool, IpamError> {
        SubnetPool::new(&self.name, self.cidr, Some(self.gateway), &self.exclude_ips)
    }

    /// The Subnet as the NB desired state sees it: a switch with a router port.
    pub fn desired(&self) -> desired::Subnet {
        desired::Subnet {
            name: self.name.clone(),
            cidr: self.cidr,
            gateway: self.gateway,
            private: self.private,
            allow_subnets: self.allow_subnets.clone(),
        }
    }

    /// Whether the Subnet lists `namespace` (a Subnet listing none takes pods only by request).
    pub fn lists_namespace(&self, namespace: &str) -> bool {
        self.namespaces
            .binary_search_by(|n| n.as_str().cmp(namespace))
            .is_ok()
    }
}
