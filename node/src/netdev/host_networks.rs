//! The networks the node itself uses: its IPv4 addresses and the main table's routes, read so
//! that the agent never routes a pod Subnet over them through `ovn0`.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::Ipv4Net;

use super::NetdevError;
use super::addresses::ipv4_addresses;
use super::conn::Netlink;
use super::link::all_links;
use super::netns::AGENT_NETNS;
use super::routes::{ROVN_ROUTE_PROTOCOL, main_table_routes};

/// IPv4 link-local (`169.254.0.0/16`): never a conflict, since pods are never given such an
/// address and clouds put their metadata routes there.
const LINK_LOCAL: Ipv4Net = Ipv4Net::new_assert(std::net::Ipv4Addr::new(169, 254, 0, 0), 16);

/// A network the node uses, with where it was found, so a skipped Subnet can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNetwork {
    /// The address with its prefix length, or the route's destination.
    pub net: Ipv4Net,
    /// Where the kernel has it.
    pub source: HostNetworkSource,
}

/// Whether a [`HostNetwork`] is an address of an interface or a route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostNetworkSource {
    /// An address assigned to `device`.
    Address {
        /// The interface's name (its ifindex when the name could not be read).
        device: String,
    },
    /// A main-table route that is not rovn's own.
    Route {
        /// The output interface, when the route has one.
        device: Option<String>,
        /// The route's `proto` number (e.g. 2 kernel, 4 static).
        protocol: u8,
    },
}

impl fmt::Display for HostNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            HostNetworkSource::Address { device } => write!(f, "address {} on {device}", self.net),
            HostNetworkSource::Route { device, protocol } => {
                write!(f, "route {}", self.net)?;
                if let Some(device) = device {
                    write!(f, " dev {device}")?;
                }
                write!(f, " proto {protocol}")
            }
        }
    }
}

impl HostNetwork {
    /// Whether routing `cidr` through `ovn0` would take over part of this network: one of the
    /// two contains the other.
    pub fn overlaps(&self, cidr: Ipv4Net) -> bool {
        let own = self.net.trunc();
        let cidr = cidr.trunc();
        own.contains(&cidr) || cidr.contains(&own)
    }
}

/// Whether a route of the main table is one the agent may route a Subnet over: not rovn's own
/// (protocol 114, which the agent replaces anyway), not the default route (it overlaps
/// everything) and not link-local.
fn counts_as_host_network(net: Ipv4Net, protocol: u8) -> bool {
    protocol != ROVN_ROUTE_PROTOCOL && net.prefix_len() != 0 && !LINK_LOCAL.contains(&net)
}

/// The node's IPv4 addresses (all interfaces) and main-table routes, without rovn's own routes,
/// the default route and link-local ones: what a Subnet routed through `ovn0` must not overlap.
pub(crate) async fn host_networks() -> Result<Vec<HostNetwork>, NetdevError> {
    let netlink = Netlink::open(AGENT_NETNS)?;
    let names: BTreeMap<u32, String> = all_links(&netlink, AGENT_NETNS)
        .await?
        .into_iter()
        .map(|link| (link.index, link.name))
        .collect();
    let name_of = |index: u32| {
        names
            .get(&index)
            .cloned()
            .unwrap_or_else(|| format!("ifindex {index}"))
    };
    let mut networks: Vec<HostNetwork> = ipv4_addresses(&netlink, None, AGENT_NETNS)
        .await?
        .into_iter()
        .filter(|assigned| !LINK_LOCAL.contains(&assigned.net.addr()))
        .map(|assigned| HostNetwork {
            net: assigned.net,
            source: HostNetworkSource::Address {
                device: name_of(assigned.index),
            },
        })
        .collect();
    networks.extend(
        main_table_routes(&netlink, AGENT_NETNS)
            .await?
            .into_iter()
            .filter(|route| counts_as_host_network(route.destination, route.protocol))
            .map(|route| HostNetwork {
                net: route.destination,
                source: HostNetworkSource::Route {
                    device: route.oif.map(name_of),
                    protocol: route.protocol,
                },
            }),
    );
    Ok(networks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn overlap_is_containment_either_way() {
        let address = HostNetwork {
            net: net("10.16.5.3/24"),
            source: HostNetworkSource::Address {
                device: "eth0".into(),
            },
        };
        assert!(address.overlaps(net("10.16.0.0/16")));
        assert!(address.overlaps(net("10.16.5.128/25")));
        assert!(!address.overlaps(net("10.17.0.0/16")));
        assert_eq!(address.to_string(), "address 10.16.5.3/24 on eth0");
    }

    #[test]
    fn rovn_default_and_link_local_routes_are_not_host_networks() {
        assert!(!counts_as_host_network(
            net("10.16.0.0/16"),
            ROVN_ROUTE_PROTOCOL
        ));
        assert!(!counts_as_host_network(net("0.0.0.0/0"), 4));
        assert!(!counts_as_host_network(net("169.254.169.254/32"), 4));
        assert!(counts_as_host_network(net("10.16.0.0/16"), 4));
        assert!(counts_as_host_network(net("0.0.0.0/1"), 4));
        let route = HostNetwork {
            net: net("10.20.0.0/16"),
            source: HostNetworkSource::Route {
                device: Some("eth1".into()),
                protocol: 4,
            },
        };
        assert_eq!(route.to_string(), "route 10.20.0.0/16 dev eth1 proto 4");
    }
}
