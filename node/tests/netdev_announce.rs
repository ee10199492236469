//! `announce_addresses` and `gratuitous_arp` between two throwaway namespaces joined by a veth
//! pair (never the root namespace): a "node" whose `eth0` holds its own address and the
//! LoadBalancer addresses it announces, and a "neighbour" that asks for them by ARP and must
//! switch its cached entry when the node announces. Needs root, `ip` and `ping`.

mod netdev_support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use netdev_support::{Netns, ipv4_addresses};
use rovn_node::netdev::{announce_addresses, gratuitous_arp};

const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 11);

fn pool() -> Ipv4Net {
    "192.168.50.240/29".parse().expect("literal")
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 50, last)
}

/// A node and a neighbour on 192.168.50.0/24.
fn pair() -> (Netns, Netns) {
    let node = Netns::new("node");
    let neighbour = Netns::new("nbr");
    node.exec_ok(&[
        "ip",
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &neighbour.name,
    ]);
    node.exec_ok(&["ip", "addr", "add", "192.168.50.11/24", "dev", "eth0"]);
    node.exec_ok(&["ip", "link", "set", "eth0", "up"]);
    neighbour.exec_ok(&["ip", "addr", "add", "192.168.50.254/24", "dev", "eth0"]);
    neighbour.exec_ok(&["ip", "link", "set", "eth0", "up"]);
    (node, neighbour)
}

fn announce(node: &Netns, wanted: &[Ipv4Addr]) -> Vec<Ipv4Addr> {
    let wanted: BTreeSet<Ipv4Addr> = wanted.iter().copied().collect();
    node.run(move || async move { announce_addresses(NODE_IP, pool(), &wanted).await })
        .expect("announce")
}

fn eth0_addresses(node: &Netns) -> Vec<String> {
    let mut addresses = ipv4_addresses(&node.ip_json(&["addr", "show", "dev", "eth0"])[0]);
    addresses.sort();
    addresses
}

fn neighbour_mac(neighbour: &Netns, ip: Ipv4Addr) -> Option<String> {
    let entries = neighbour.ip_json(&["neigh", "show", &ip.to_string(), "dev", "eth0"]);
    entries[0]["lladdr"].as_str().map(str::to_string)
}

#[test]
fn only_pool_addresses_are_added_and_withdrawn_and_the_node_answers_arp_for_them() {
    let (node, neighbour) = pair();
    // Somebody else's /32 (outside the pool) and a pool address with another prefix.
    node.exec_ok(&["ip", "addr", "add", "192.168.50.99/32", "dev", "eth0"]);
    node.exec_ok(&["ip", "addr", "add", "192.168.50.244/30", "dev", "eth0"]);
    let added = announce(&node, &[ip(241), ip(242), ip(1)]);
    assert_eq!(added, vec![ip(241), ip(242)], "only pool addresses");
    assert_eq!(
        eth0_addresses(&node),
        [
            "192.168.50.11/24",
            "192.168.50.241/32",
            "192.168.50.242/32",
            "192.168.50.244/30",
            "192.168.50.99/32"
        ]
    );
    assert!(
        announce(&node, &[ip(241), ip(242)]).is_empty(),
        "a repeat adds nothing"
    );
    neighbour.exec_ok(&["ping", "-c", "1", "-W", "2", "192.168.50.242"]);
    let node_mac = node.link("eth0")["address"].as_str().map(str::to_string);
    assert_eq!(
        neighbour_mac(&neighbour, ip(242)),
        node_mac,
        "the node answered ARP"
    );

    assert!(announce(&node, &[ip(242)]).is_empty());
    assert_eq!(
        eth0_addresses(&node),
        [
            "192.168.50.11/24",
            "192.168.50.242/32",
            "192.168.50.244/30",
            "192.168.50.99/32"
        ]
    );
    assert!(
        !neighbour.exec_succeeds(&["ping", "-c", "1", "-W", "1", "192.168.50.241"]),
        "a withdrawn address is not answered"
    );
}

#[test]
fn a_gratuitous_arp_moves_the_neighbours_cached_entry() {
    let (node, neighbour) = pair();
    announce(&node, &[ip(243)]);
    // The neighbour believes another node holds the address.
    neighbour.exec_ok(&[
        "ip",
        "neigh",
        "replace",
        "192.168.50.243",
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        "eth0",
        "nud",
        "stale",
    ]);
    node.run(|| async { gratuitous_arp(NODE_IP, ip(243)).await })
        .expect("gratuitous ARP");
    let node_mac = node.link("eth0")["address"].as_str().map(str::to_string);
    let deadline = Instant::now() + Duration::from_secs(5);
    while neighbour_mac(&neighbour, ip(243)) != node_mac && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(neighbour_mac(&neighbour, ip(243)), node_mac);
}

#[test]
fn an_unknown_underlay_address_is_a_clear_error() {
    let (node, _neighbour) = pair();
    let err = node
        .run(|| async {
            announce_addresses(Ipv4Addr::new(10, 9, 9, 9), pool(), &BTreeSet::new()).await
        })
        .expect_err("no interface holds 10.9.9.9");
    assert!(err.to_string().contains("10.9.9.9"), "{err}");
}
