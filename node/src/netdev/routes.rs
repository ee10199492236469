//! IPv4 routes rovn owns, marked with [`ROVN_ROUTE_PROTOCOL`] so that they can be told apart from
//! everybody else's.

use std::net::Ipv4Addr;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol,
};
use rtnetlink::RouteMessageBuilder;

use super::NetdevError;
use super::conn::Netlink;
use super::error::netlink_failure;

/// The `proto` value of every route rovn installs (`ip route show proto 114`); unused by the
/// protocols listed in iproute2's `rt_protos`. Replace semantics only ever remove routes with it.
pub const ROVN_ROUTE_PROTOCOL: u8 = 114;

/// An IPv4 route of the main table, decoded.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub destination: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
    pub protocol: u8,
    message: RouteMessage,
}

fn decode_route(message: RouteMessage) -> Option<Route> {
    let table = message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(message.header.table));
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let mut destination = Ipv4Addr::UNSPECIFIED;
    let mut gateway = None;
    let mut oif = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => destination = *ip,
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(*ip),
            RouteAttribute::Oif(index) => oif = Some(*index),
            _ => {}
        }
    }
    let destination = Ipv4Net::new(destination, message.header.destination_prefix_length).ok()?;
    Some(Route {
        destination,
        gateway,
        oif,
        protocol: u8::from(message.header.protocol),
        message,
    })
}

/// The IPv4 routes of the main table.
pub(crate) async fn main_table_routes(
    netlink: &Netlink,
    netns: &str,
) -> Result<Vec<Route>, NetdevError> {
    let messages: Vec<RouteMessage> = netlink
        .handle()
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(netlink_failure(format!("listing routes in {netns}")))?;
    Ok(messages.into_iter().filter_map(decode_route).collect())
}

/// Installs (or replaces) `destination via gateway dev oif onlink proto rovn`.
pub(crate) async fn replace_route(
    netlink: &Netlink,
    destination: Ipv4Net,
    gateway: Ipv4Addr,
    oif: u32,
    device: &str,
    netns: &str,
) -> Result<(), NetdevError> {
    let message = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(destination.network(), destination.prefix_len())
        .gateway(gateway)
        .output_interface(oif)
        .onlink()
        .protocol(RouteProtocol::from(ROVN_ROUTE_PROTOCOL))
        .build();
    netlink
        .handle()
        .route()
        .add(message)
        .replace()
        .execute()
        .await
        .map_err(netlink_failure(format!(
            "installing route {destination} via {gateway} dev {device} in {netns}"
        )))
}

/// Deletes a route found by [`main_table_routes`].
pub(crate) async fn delete_route(
    netlink: &Netlink,
    route: &Route,
    netns: &str,
) -> Result<(), NetdevError> {
    netlink
        .handle()
        .route()
        .del(route.message.clone())
        .execute()
        .await
        .map_err(netlink_failure(format!(
            "removing route {} in {netns}",
            route.destination
        )))
}

/// Which of the current routes of a device rovn must remove so that exactly `wanted` remain
/// among rovn's own: those with rovn's protocol on `oif` whose destination is not wanted.
pub(crate) fn stale_rovn_routes<'a>(
    current: &'a [Route],
    oif: u32,
    wanted: &[Ipv4Net],
) -> Vec<&'a Route> {
    current
        .iter()
        .filter(|route| route.protocol == ROVN_ROUTE_PROTOCOL && route.oif == Some(oif))
        .filter(|route| !wanted.contains(&route.destination))
        .collect()
}
