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
    disable_ipv6(name)?;
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

/// Keeps `ovn0` IPv4-only. Its port on `join` checks only the MAC (the node forwards traffic
/// with other sources into OVN), so the kernel's own IPv6 on it (link-local address, router
/// solicitations, MLD, duplicate address detection) would enter the cluster's switches; in the
/// lab, with it, TCP between pods of one node went unanswered for tens of seconds at a time
/// (the NetworkPolicy suite's endPort case failed most runs; it passes with this). A kernel without IPv6
/// has nothing to disable.
fn disable_ipv6(name: &str) -> Result<(), NetdevError> {
    let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    match std::fs::write(&path, "1") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetdevError::Io {
            step: format!("disabling IPv6 on {name} ({path})"),
            source,
        }),
    }
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
