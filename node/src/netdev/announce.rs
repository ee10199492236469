//! Announcing LoadBalancer addresses on the node's network: each address as a /32 on the
//! interface that holds the node's own address (so the kernel answers ARP for it there, whatever
//! `arp_ignore` says, and the `rovn` table DNATs what arrives), and a gratuitous ARP when this
//! node takes one over. Only /32 addresses inside the pool are ever added or removed.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use ipnet::Ipv4Net;

use super::NetdevError;
use super::addresses::{ipv4_addresses, set_managed_ipv4_addresses};
use super::conn::Netlink;
use super::link::{LinkFacts, link_by_index};
use super::netns::AGENT_NETNS;

/// See [`super::announce_addresses`].
pub(crate) async fn sync_addresses(
    underlay_ip: Ipv4Addr,
    pool: Ipv4Net,
    wanted: &BTreeSet<Ipv4Addr>,
) -> Result<Vec<Ipv4Addr>, NetdevError> {
    let netlink = Netlink::open(AGENT_NETNS)?;
    let link = underlay_link(&netlink, underlay_ip).await?;
    let wanted: Vec<Ipv4Net> = wanted
        .iter()
        .filter(|ip| pool.contains(*ip))
        .filter_map(|ip| Ipv4Net::new(*ip, 32).ok())
        .collect();
    let managed = |net: &Ipv4Net| net.prefix_len() == 32 && pool.contains(&net.addr());
    let added = set_managed_ipv4_addresses(
        &netlink,
        link.index,
        &wanted,
        managed,
        &link.name,
        AGENT_NETNS,
    )
    .await?;
    Ok(added.iter().map(Ipv4Net::addr).collect())
}

/// The interface that holds `underlay_ip`.
async fn underlay_link(netlink: &Netlink, underlay_ip: Ipv4Addr) -> Result<LinkFacts, NetdevError> {
    let index = ipv4_addresses(netlink, None, AGENT_NETNS)
        .await?
        .into_iter()
        .find(|a| a.net.addr() == underlay_ip)
        .map(|a| a.index)
        .ok_or(NetdevError::NoSuchAddress { ip: underlay_ip })?;
    link_by_index(netlink, index, AGENT_NETNS)
        .await?
        .ok_or_else(|| NetdevError::NoSuchDevice {
            name: format!("ifindex {index}"),
            netns: AGENT_NETNS.to_string(),
        })
}

/// See [`super::gratuitous_arp`].
pub(crate) async fn gratuitous_arp(underlay_ip: Ipv4Addr, ip: Ipv4Addr) -> Result<(), NetdevError> {
    let netlink = Netlink::open(AGENT_NETNS)?;
    let link = underlay_link(&netlink, underlay_ip).await?;
    let mac = link.mac.ok_or_else(|| NetdevError::InvalidRequest {
        device: link.name.clone(),
        reason: "no MAC address to announce with".into(),
    })?;
    send_frame(link.index, &garp_frame(mac.0, ip)).map_err(|source| NetdevError::Io {
        step: format!("sending a gratuitous ARP for {ip} on {}", link.name),
        source,
    })
}

/// A gratuitous ARP request (pure): broadcast, sender and target address both `ip`, sender
/// hardware address `mac` (RFC 5227's announcement; Linux updates a cached entry from it).
pub(crate) fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut frame = [0u8; 42];
    frame[0..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    frame[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    frame[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    frame[18] = 6;
    frame[19] = 4;
    frame[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&ip.octets());
    // Target hardware address stays zero.
    frame[38..42].copy_from_slice(&ip.octets());
    frame
}

/// Sends one Ethernet frame out of interface `index` on a raw packet socket.
fn send_frame(index: u32, frame: &[u8]) -> std::io::Result<()> {
    let protocol = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: a plain socket(2) call; the descriptor is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(protocol),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is not owned elsewhere.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol;
    address.sll_ifindex = i32::try_from(index).map_err(std::io::Error::other)?;
    address.sll_halen = 6;
    address.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // SAFETY: the buffer and the address are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&address as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gratuitous_arp_names_the_address_as_sender_and_target() {
        let mac = [0x0a, 0x58, 1, 2, 3, 4];
        let frame = garp_frame(mac, Ipv4Addr::new(172, 30, 0, 241));
        assert_eq!(&frame[0..6], &[0xff; 6], "broadcast");
        assert_eq!(&frame[6..12], &mac);
        assert_eq!(&frame[12..14], &[0x08, 0x06], "ARP");
        assert_eq!(&frame[20..22], &[0, 1], "request");
        assert_eq!(&frame[22..28], &mac, "sender MAC");
        assert_eq!(&frame[28..32], &[172, 30, 0, 241], "sender IP");
        assert_eq!(&frame[32..38], &[0; 6], "target MAC");
        assert_eq!(&frame[38..42], &[172, 30, 0, 241], "target IP");
    }
}
