//! `ovn0`'s routes leave out Subnets that are not accepted and Subnets that overlap the node's own
//! networks: Subnet objects go through the agent's watch fold and `node_port::apply` inside a
//! throwaway namespace (never the root one) holding a stand-in interface (a tap, since `dummy` is
//! not in every kernel) with an address in one Subnet and a static route overlapping another.
//! Needs root and `ip`.

mod netdev_support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use kube::runtime::watcher;
use netdev_support::Netns;
use rovn_api::MacAddr;
use rovn_api::annotations::Ipv4NodeJoin;
use rovn_api::subnet::{READY, Subnet};
use rovn_node::agent::kube::subnets::apply_event;
use rovn_node::agent::node_port;
use rovn_node::netdev::ROVN_ROUTE_PROTOCOL;
use serde_json::json;

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("literal")
}

fn join() -> Ipv4NodeJoin {
    Ipv4NodeJoin {
        ip: Ipv4Addr::new(100, 64, 0, 2),
        mac: MacAddr([0x0a, 0x58, 0x64, 0x40, 0x00, 0x02]),
        cidr: net("100.64.0.0/16"),
        gateway: Ipv4Addr::new(100, 64, 0, 1),
    }
}

/// A Subnet as the API server sends it, whose Ready condition says `ready` for its current
/// generation.
fn subnet(name: &str, cidr: &str, ready: bool) -> Subnet {
    serde_json::from_value(json!({
        "apiVersion": "rovn.io/v1",
        "kind": "Subnet",
        "metadata": {"name": name, "generation": 1},
        "spec": {"cidrBlock": cidr},
        "status": {"conditions": [{
            "type": READY,
            "status": if ready { "True" } else { "False" },
            "reason": if ready { "Accepted" } else { "Overlap" },
            "lastTransitionTime": "2025-01-01T00:00:00Z",
            "observedGeneration": 1,
        }]},
    }))
    .expect("a literal Subnet")
}

/// Runs `ip <args>` (split at spaces) in `node`.
fn ip(node: &Netns, args: &str) {
    let mut argv = vec!["ip"];
    argv.extend(args.split_whitespace());
    node.exec_ok(&argv);
}

/// What the agent's Subnet watch would publish after listing `subnets`.
fn listed(subnets: Vec<Subnet>) -> BTreeMap<String, Ipv4Net> {
    let mut current = BTreeMap::new();
    let mut pending = None;
    apply_event(&mut current, &mut pending, watcher::Event::Init);
    for s in subnets {
        apply_event(&mut current, &mut pending, watcher::Event::InitApply(s));
    }
    apply_event(&mut current, &mut pending, watcher::Event::InitDone);
    current
}

/// Destinations of the main table's routes matching `selector` (`ip route show` arguments).
fn destinations(node: &Netns, selector: &[&str]) -> Vec<String> {
    let mut dsts: Vec<String> = node
        .routes(selector)
        .iter()
        .map(|r| r["dst"].as_str().unwrap_or("").to_string())
        .collect();
    dsts.sort();
    dsts
}

#[test]
fn only_ready_subnets_clear_of_the_node_networks_are_routed() {
    let node = Netns::new("hostnet");
    ip(&node, "tuntap add ovn0 mode tap");
    ip(&node, "tuntap add dummy0 mode tap");
    ip(&node, "link set dummy0 up");
    ip(&node, "addr add 10.40.1.5/24 dev dummy0");
    ip(
        &node,
        "route add 10.50.0.0/16 via 10.40.1.1 dev dummy0 proto static",
    );
    // What an agent that routed every Subnet left behind: a rovn route over the dummy's network.
    ip(&node, "link set ovn0 up");
    ip(&node, "addr add 100.64.0.2/16 dev ovn0");
    ip(
        &node,
        &format!(
            "route add 10.40.0.0/16 via 100.64.0.1 dev ovn0 onlink proto {ROVN_ROUTE_PROTOCOL}"
        ),
    );

    let subnets = listed(vec![
        subnet("clean", "10.16.0.0/16", true),
        subnet("holds-address", "10.40.0.0/16", true),
        subnet("under-static", "10.50.8.0/24", true),
        subnet("rejected", "10.60.0.0/16", false),
    ]);
    assert!(!subnets.contains_key("rejected"), "{subnets:?}");

    let plan =
        node.run(move || async move {
            node_port::apply(&join(), 1400, net("10.96.0.0/12"), &subnets).await
        })
        .unwrap_or_else(|e| panic!("apply: {e:#}"));

    assert_eq!(
        destinations(
            &node,
            &["dev", "ovn0", "proto", &ROVN_ROUTE_PROTOCOL.to_string()]
        ),
        vec!["10.16.0.0/16", "10.96.0.0/12"]
    );
    assert_eq!(
        destinations(&node, &["proto", "static"]),
        vec!["10.50.0.0/16"]
    );
    let skipped: Vec<(String, String)> = plan
        .skipped
        .iter()
        .map(|s| (s.name.clone(), s.overlap.to_string()))
        .collect();
    assert_eq!(
        skipped,
        vec![
            (
                "holds-address".to_string(),
                "address 10.40.1.5/24 on dummy0".to_string()
            ),
            (
                "under-static".to_string(),
                "route 10.50.0.0/16 dev dummy0 proto 4".to_string()
            ),
        ]
    );
}
