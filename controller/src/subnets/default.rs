//! The default Subnet object the controller creates from its flags.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rovn_api::names::DEFAULT_SUBNET;

use rovn_api::subnet::{Subnet, SubnetSpec};

/// The `ovn-default` object the controller creates when absent. The gateway is written out
/// (the first host address unless given) so `kubectl get subnets` shows it. `nat_outgoing`
/// is on unless the operator said otherwise: pods reach the world as their node, as on
/// Kube-OVN, which the underlay can route back without knowing pod addresses.
pub fn default_subnet(
    cidr: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    exclude_ips: Vec<String>,
    nat_outgoing: bool,
) -> Subnet {
    let cidr = cidr.trunc();
    let gateway =
        gateway.unwrap_or_else(|| Ipv4Addr::from(u32::from(cidr.network()).saturating_add(1)));
    Subnet::new(
        DEFAULT_SUBNET,
        SubnetSpec {
            cidr_block: cidr.to_string(),
            gateway: Some(gateway.to_string()),
            exclude_ips,
            namespaces: Vec::new(),
            nat_outgoing,
            private: false,
            allow_subnets: Vec::new(),
        },
    )
}
