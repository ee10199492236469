//! `configure_node_port` and `mtu_of_address` against a tap device standing in for OVS's `ovn0`
//! (the userspace datapath's internal ports are taps too), inside a throwaway namespace (never
//! the root one). Needs root and `ip`.

mod netdev_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;
use netdev_support::{Netns, ipv4_addresses};
use rovn_api::MacAddr;
use rovn_node::netdev::{NetdevError, ROVN_ROUTE_PROTOCOL, configure_node_port, mtu_of_address};

const JOIN_MAC: MacAddr = MacAddr([0x0a, 0x58, 0x64, 0x40, 0x00, 0x02]);
const JOIN_GATEWAY: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("literal")
}

fn configure(node: &Netns, routes: Vec<Ipv4Net>, wait: Duration) -> Result<(), NetdevError> {
    node.run(move || async move {
        configure_node_port(
            "ovn0",
            JOIN_MAC,
            net("100.64.0.2/16"),
            1400,
            &routes,
            JOIN_GATEWAY,
            wait,
        )
        .await
    })
}

/// Destinations of the routes through ovn0 with the given `proto`, sorted.
fn route_destinations(node: &Netns, proto: &str) -> Vec<String> {
    let mut dsts: Vec<String> = node
        .routes(&["dev", "ovn0", "proto", proto])
        .iter()
        .filter(|r| r["gateway"] == JOIN_GATEWAY.to_string())
        .map(|r| r["dst"].as_str().unwrap_or("").to_string())
        .collect();
    dsts.sort();
    dsts
}

#[test]
fn node_port_is_configured_once_it_appears_and_routes_are_replaced() {
    let node = Netns::new("node");
    let creator_ns = node.name.clone();
    // OVS creates ovn0 asynchronously: make it appear only after configure_node_port started.
    let creator = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        netdev_support::run_ok(
            "ip",
            &[
                "netns",
                "exec",
                &creator_ns,
                "ip",
                "tuntap",
                "add",
                "ovn0",
                "mode",
                "tap",
            ],
        );
    });
    let first = configure(
        &node,
        vec![net("10.16.0.0/16"), net("10.96.0.0/12")],
        Duration::from_secs(10),
    );
    creator.join().expect("creator thread");
    first.expect("first configure");

    let link = node.link("ovn0");
    assert_eq!(link["address"], JOIN_MAC.to_string());
    assert_eq!(link["mtu"], 1400);
    assert!(
        link["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "UP")),
        "{link}"
    );
    let addr = node.ip_json(&["addr", "show", "dev", "ovn0"]);
    assert_eq!(ipv4_addresses(&addr[0]), vec!["100.64.0.2/16".to_string()]);
    let proto = ROVN_ROUTE_PROTOCOL.to_string();
    assert_eq!(
        route_destinations(&node, &proto),
        vec!["10.16.0.0/16", "10.96.0.0/12"]
    );

    // Somebody else's routes through the same device, one of them static.
    node.exec_ok(&[
        "ip",
        "route",
        "add",
        "192.168.77.0/24",
        "via",
        "100.64.0.1",
        "dev",
        "ovn0",
    ]);
    node.exec_ok(&[
        "ip",
        "route",
        "add",
        "192.168.78.0/24",
        "via",
        "100.64.0.1",
        "dev",
        "ovn0",
        "proto",
        "static",
    ]);

    configure(&node, vec![net("10.16.0.0/16")], Duration::from_secs(1)).expect("second configure");

    assert_eq!(route_destinations(&node, &proto), vec!["10.16.0.0/16"]);
    assert_eq!(route_destinations(&node, "boot"), vec!["192.168.77.0/24"]);
    assert_eq!(route_destinations(&node, "static"), vec!["192.168.78.0/24"]);
}

#[test]
fn node_port_keeps_only_its_address_and_normalises_routes() {
    let node = Netns::new("node");
    node.exec_ok(&["ip", "tuntap", "add", "ovn0", "mode", "tap"]);
    node.exec_ok(&["ip", "addr", "add", "100.64.0.99/16", "dev", "ovn0"]);

    configure(&node, vec![net("10.16.0.7/16")], Duration::ZERO).expect("configure");
    configure(&node, vec![net("10.16.0.7/16")], Duration::ZERO).expect("configure again");

    let addr = node.ip_json(&["addr", "show", "dev", "ovn0"]);
    assert_eq!(ipv4_addresses(&addr[0]), vec!["100.64.0.2/16".to_string()]);
    assert_eq!(
        route_destinations(&node, &ROVN_ROUTE_PROTOCOL.to_string()),
        vec!["10.16.0.0/16"]
    );
}

#[test]
fn node_port_that_never_appears_times_out() {
    let node = Netns::new("node");
    let err = configure(&node, vec![], Duration::from_millis(300)).expect_err("no ovn0");
    assert!(matches!(err, NetdevError::DeviceTimeout { .. }), "{err}");
    assert!(err.to_string().contains("ovn0"), "{err}");
}

#[test]
fn mtu_of_address_finds_the_holding_interface() {
    let node = Netns::new("node");
    node.exec_ok(&["ip", "tuntap", "add", "underlay0", "mode", "tap"]);
    node.exec_ok(&["ip", "link", "set", "underlay0", "mtu", "1450"]);
    node.exec_ok(&["ip", "addr", "add", "172.31.9.4/24", "dev", "underlay0"]);

    let mtu = node
        .run(|| async { mtu_of_address(Ipv4Addr::new(172, 31, 9, 4)).await })
        .expect("mtu");
    assert_eq!(mtu, 1450);

    let missing = node.run(|| async { mtu_of_address(Ipv4Addr::new(172, 31, 9, 5)).await });
    assert!(
        matches!(missing, Err(NetdevError::NoSuchAddress { .. })),
        "{missing:?}"
    );
}
