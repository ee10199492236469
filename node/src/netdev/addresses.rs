//! IPv4 addresses of a link.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use super::NetdevError;
use super::conn::Netlink;
use super::error::netlink_failure;

/// An IPv4 address as the kernel reports it, with the message needed to delete it.
pub(crate) struct AssignedAddress {
    pub index: u32,
    pub net: Ipv4Net,
    message: AddressMessage,
}

/// The IPv4 address a message carries: `IFA_LOCAL` (the interface's own address; on
/// point-to-point links `IFA_ADDRESS` is the peer) or else `IFA_ADDRESS`.
fn decode_ipv4(message: &AddressMessage) -> Option<Ipv4Addr> {
    if message.header.family != AddressFamily::Inet {
        return None;
    }
    let pick = |want_local: bool| {
        message
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                AddressAttribute::Local(IpAddr::V4(ip)) if want_local => Some(*ip),
                AddressAttribute::Address(IpAddr::V4(ip)) if !want_local => Some(*ip),
                _ => None,
            })
    };
    pick(true).or_else(|| pick(false))
}

/// All IPv4 addresses of the namespace, or only those of link `index`.
pub(crate) async fn ipv4_addresses(
    netlink: &Netlink,
    index: Option<u32>,
    netns: &str,
) -> Result<Vec<AssignedAddress>, NetdevError> {
    let mut request = netlink.handle().address().get();
    if let Some(index) = index {
        request = request.set_link_index_filter(index);
    }
    let messages: Vec<AddressMessage> = request
        .execute()
        .try_collect()
        .await
        .map_err(netlink_failure(format!("listing addresses in {netns}")))?;
    Ok(messages
        .into_iter()
        .filter(|message| index.is_none_or(|index| message.header.index == index))
        .filter_map(|message| {
            let ip = decode_ipv4(&message)?;
            let net = Ipv4Net::new(ip, message.header.prefix_len).ok()?;
            Some(AssignedAddress {
                index: message.header.index,
                net,
                message,
            })
        })
        .collect())
}

/// Makes `wanted` the IPv4 addresses of link `index` (named `device` in errors) among those
/// `managed` says are the caller's: removes the caller's others and adds the missing ones,
/// leaving every other address alone; returns those added.
pub(crate) async fn set_managed_ipv4_addresses(
    netlink: &Netlink,
    index: u32,
    wanted: &[Ipv4Net],
    managed: impl Fn(&Ipv4Net) -> bool,
    device: &str,
    netns: &str,
) -> Result<Vec<Ipv4Net>, NetdevError> {
    let existing = ipv4_addresses(netlink, Some(index), netns).await?;
    for stale in existing
        .iter()
        .filter(|a| managed(&a.net) && !wanted.contains(&a.net))
    {
        netlink
            .handle()
            .address()
            .del(stale.message.clone())
            .execute()
            .await
            .map_err(netlink_failure(format!(
                "removing address {} from {device} in {netns}",
                stale.net
            )))?;
    }
    let mut added = Vec::new();
    for address in wanted {
        if existing.iter().any(|a| a.net == *address) {
            continue;
        }
        netlink
            .handle()
            .address()
            .add(index, IpAddr::V4(address.addr()), address.prefix_len())
            .replace()
            .execute()
            .await
            .map_err(netlink_failure(format!(
                "adding address {address} to {device} in {netns}"
            )))?;
        added.push(*address);
    }
    Ok(added)
}

/// Makes `address` the only IPv4 address of link `index` (named `device` in errors): adds it
/// (replace semantics, so a repeat is a no-op) and removes any other IPv4 address.
pub(crate) async fn set_only_ipv4_address(
    netlink: &Netlink,
    index: u32,
    address: Ipv4Net,
    device: &str,
    netns: &str,
) -> Result<(), NetdevError> {
    set_managed_ipv4_addresses(netlink, index, &[address], |_| true, device, netns)
        .await
        .map(drop)
}
