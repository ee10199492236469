//! The node's own port on `br-int` (`ovn0`): its address and the routes into the cluster.

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;
use rovn_api::MacAddr;

use super::NetdevError;
use super::addresses::{ipv4_addresses, set_only_ipv4_address};
use super::conn::Netlink;
use super::link::{LinkFacts, configure_link, link_by_index, link_by_name};
use super::names::validate_ifname;
use super::netns::AGENT_NETNS;
use super::pod::validate_unicast_mac;
use super::routes::{delete_route, main_table_routes, replace_route, stale_rovn_routes};

/// How often to look again for a device OVS has not created yet.
const DEVICE_POLL_INTERVAL: Duration = Duration::from_millis(100);

pub(crate) async fn configure_node_port(
    name: &str,
    mac: MacAddr,
    address: Ipv4Net,
    mtu: u32,
    routes: &[Ipv4Net],
    gateway: Ipv4Addr,
    wait: Duration,
) -> Result<(), NetdevError> {
    validate_ifname(name)?;
    validate_unicast_mac(mac).map_err(|reason| NetdevError::InvalidRequest {
        device: name.to_string(),
        reason: reason.to_string(),
    })?;
    let netlink = Netlink::open(AGENT_NETNS)?;
    let link = wait_for_link(&netlink, name, wait).await?;
    configure_link(&netlink, &link, Some(mac), mtu, AGENT_NETNS).await?;
    set_only_ipv4_address(&netlink, link.index, address, name, AGENT_NETNS).await?;
    let wanted: Vec<Ipv4Net> = routes.iter().map(Ipv4Net::trunc).collect();
    for destination in &wanted {
        replace_route(
            &netlink,
            *destination,
            gateway,
            link.index,
            name,
            AGENT_NETNS,
        )
        .await?;
    }
    let current = main_table_routes(&netlink, AGENT_NETNS).await?;
    for stale in stale_rovn_routes(&current, link.index, &wanted) {
        delete_route(&netlink, stale, AGENT_NETNS).await?;
    }
    Ok(())
}

async fn wait_for_link(
    netlink: &Netlink,
    name: &str,
    wait: Duration,
) -> Result<LinkFacts, NetdevError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(link) = link_by_name(netlink, name, AGENT_NETNS).await? {
            return Ok(link);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(NetdevError::DeviceTimeout {
                name: name.to_string(),
                netns: AGENT_NETNS.to_string(),
                waited: wait,
            });
        }
        tokio::time::sleep(DEVICE_POLL_INTERVAL).await;
    }
}

pub(crate) async fn mtu_of_address(ip: Ipv4Addr) -> Result<u32, NetdevError> {
    let netlink = Netlink::open(AGENT_NETNS)?;
    let holder = ipv4_addresses(&netlink, None, AGENT_NETNS)
        .await?
        .into_iter()
        .find(|assigned| assigned.net.addr() == ip)
        .ok_or(NetdevError::NoSuchAddress { ip })?;
    link_by_index(&netlink, holder.index, AGENT_NETNS)
        .await?
        .and_then(|link| link.mtu)
        .ok_or(NetdevError::NoSuchAddress { ip })
}
