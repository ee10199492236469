//! Reading and changing links (network devices) over a [`Netlink`] connection.

use futures::TryStreamExt;
use netlink_packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State,
};
use nix::errno::Errno;
use rovn_api::MacAddr;
use rtnetlink::LinkUnspec;

use super::NetdevError;
use super::conn::Netlink;
use super::error::{netlink_errno, netlink_failure};

/// What rovn needs to know about a link, decoded from an `RTM_NEWLINK` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkFacts {
    pub index: u32,
    pub name: String,
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub is_veth: bool,
    /// `IFLA_LINK`: for a veth, the peer's ifindex (in the peer's namespace).
    pub peer_index: Option<u32>,
    /// `IFLA_LINK_NETNSID`: set when the peer lives in another namespace.
    pub peer_netns_id: Option<i32>,
    pub admin_up: bool,
    pub oper_state: OperState,
}

/// RFC 2863 operational state of a link, as the kernel reports it; CNI CHECK wants a pod end `Up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperState {
    /// Passing packets.
    Up,
    /// Not passing packets (administratively down, or no carrier).
    Down,
    /// Down because a device it depends on is (a veth whose peer is down).
    LowerLayerDown,
    /// Waiting for an external event.
    Dormant,
    /// The driver does not track it (loopback, some virtual devices).
    Unknown,
    /// `notpresent` or `testing`.
    Other,
}

impl From<&State> for OperState {
    fn from(state: &State) -> OperState {
        match state {
            State::Up => OperState::Up,
            State::Down => OperState::Down,
            State::LowerLayerDown => OperState::LowerLayerDown,
            State::Dormant => OperState::Dormant,
            State::Unknown => OperState::Unknown,
            _ => OperState::Other,
        }
    }
}

pub(crate) fn decode_link(message: &LinkMessage) -> LinkFacts {
    let mut facts = LinkFacts {
        index: message.header.index,
        name: String::new(),
        mac: None,
        mtu: None,
        is_veth: false,
        peer_index: None,
        peer_netns_id: None,
        admin_up: message.header.flags.contains(LinkFlags::Up),
        oper_state: OperState::Unknown,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => facts.name = name.clone(),
            LinkAttribute::Address(bytes) => facts.mac = mac_from_bytes(bytes),
            LinkAttribute::Mtu(mtu) => facts.mtu = Some(*mtu),
            LinkAttribute::Link(peer) => facts.peer_index = Some(*peer),
            LinkAttribute::LinkNetNsId(id) => facts.peer_netns_id = Some(*id),
            LinkAttribute::OperState(state) => facts.oper_state = OperState::from(state),
            LinkAttribute::LinkInfo(infos) => {
                facts.is_veth = infos
                    .iter()
                    .any(|info| matches!(info, LinkInfo::Kind(InfoKind::Veth)));
            }
            _ => {}
        }
    }
    facts
}

fn mac_from_bytes(bytes: &[u8]) -> Option<MacAddr> {
    <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
}

/// The link called `name`, or `None` when there is none.
pub(crate) async fn link_by_name(
    netlink: &Netlink,
    name: &str,
    netns: &str,
) -> Result<Option<LinkFacts>, NetdevError> {
    let mut answers = netlink
        .handle()
        .link()
        .get()
        .match_name(name.to_string())
        .execute();
    match answers.try_next().await {
        Ok(Some(message)) => Ok(Some(decode_link(&message))),
        Ok(None) => Ok(None),
        Err(err) if is_missing(&err) => Ok(None),
        Err(err) => Err(netlink_failure(format!("looking up {name} in {netns}"))(
            err,
        )),
    }
}

/// The link with index `index`, or `None` when there is none.
pub(crate) async fn link_by_index(
    netlink: &Netlink,
    index: u32,
    netns: &str,
) -> Result<Option<LinkFacts>, NetdevError> {
    let mut answers = netlink.handle().link().get().match_index(index).execute();
    match answers.try_next().await {
        Ok(Some(message)) => Ok(Some(decode_link(&message))),
        Ok(None) => Ok(None),
        Err(err) if is_missing(&err) => Ok(None),
        Err(err) => Err(netlink_failure(format!(
            "looking up ifindex {index} in {netns}"
        ))(err)),
    }
}

/// Every link of the namespace.
pub(crate) async fn all_links(
    netlink: &Netlink,
    netns: &str,
) -> Result<Vec<LinkFacts>, NetdevError> {
    netlink
        .handle()
        .link()
        .get()
        .execute()
        .map_ok(|message| decode_link(&message))
        .try_collect()
        .await
        .map_err(netlink_failure(format!("listing links in {netns}")))
}

/// Deletes a link; one that is already gone counts as deleted.
pub(crate) async fn delete_link(
    netlink: &Netlink,
    link: &LinkFacts,
    netns: &str,
) -> Result<(), NetdevError> {
    match netlink.handle().link().del(link.index).execute().await {
        Ok(()) => Ok(()),
        Err(err) if is_missing(&err) => Ok(()),
        Err(err) => Err(netlink_failure(format!(
            "deleting {} in {netns}",
            link.name
        ))(err)),
    }
}

/// Gives `link` the wanted MAC and MTU and brings it up, sending only the changes `link` (as
/// read) needs. A MAC change on a device that refuses live address changes (`EBUSY`) is retried
/// with the device down.
pub(crate) async fn configure_link(
    netlink: &Netlink,
    link: &LinkFacts,
    mac: Option<MacAddr>,
    mtu: u32,
    netns: &str,
) -> Result<(), NetdevError> {
    let step = |what: &str| format!("{what} of {} in {netns}", link.name);
    let mut brought_down = false;
    if let Some(mac) = mac.filter(|mac| link.mac != Some(*mac)) {
        let set_mac = || {
            netlink
                .handle()
                .link()
                .set(
                    LinkUnspec::new_with_index(link.index)
                        .address(mac.0.to_vec())
                        .build(),
                )
                .execute()
        };
        match set_mac().await {
            Ok(()) => {}
            Err(err) if netlink_errno(&err) == Some(Errno::EBUSY) => {
                netlink
                    .handle()
                    .link()
                    .set(LinkUnspec::new_with_index(link.index).down().build())
                    .execute()
                    .await
                    .map_err(netlink_failure(step("bringing down to change the MAC")))?;
                brought_down = true;
                set_mac()
                    .await
                    .map_err(netlink_failure(step(&format!("setting MAC {mac}"))))?;
            }
            Err(err) => return Err(netlink_failure(step(&format!("setting MAC {mac}")))(err)),
        }
    }
    if link.mtu != Some(mtu) {
        netlink
            .handle()
            .link()
            .set(LinkUnspec::new_with_index(link.index).mtu(mtu).build())
            .execute()
            .await
            .map_err(netlink_failure(step(&format!("setting MTU {mtu}"))))?;
    }
    if link.admin_up && !brought_down {
        return Ok(());
    }
    netlink
        .handle()
        .link()
        .set(LinkUnspec::new_with_index(link.index).up().build())
        .execute()
        .await
        .map_err(netlink_failure(step("bringing up")))
}

/// `ENODEV` (no such device) is how the kernel answers a lookup or delete of a missing link.
pub(crate) fn is_missing(err: &rtnetlink::Error) -> bool {
    matches!(
        netlink_errno(err),
        Some(Errno::ENODEV) | Some(Errno::ENOENT)
    )
}
