//! What the gateway tests share: the addresses of their node, one builder of its state, and the
//! three namespaces (outside — node — a stand-in for OVN) real packets cross. A test that
//! includes this module includes `netdev_support` too.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use nix::sched::{CloneFlags, setns};

use crate::netdev_support::Netns;

use rovn_node::gateway::{Frontend, GatewayState, PodRange, Protocol, Target};

pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const JOIN_IP: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);

/// A node at [`NODE_IP`] with join IP [`JOIN_IP`] on `ovn0`, a `natOutgoing` Subnet
/// 10.16.0.0/16, a plain one 10.17.0.0/16, join 100.64.0.0/16, Services 10.96.0.0/12.
pub fn state_with(forwards: BTreeMap<Frontend, Target>) -> GatewayState {
    GatewayState {
        node_ip: NODE_IP,
        join_ip: JOIN_IP,
        ovn_device: "ovn0".into(),
        pod_ranges: vec![range("10.16.0.0/16", true), range("10.17.0.0/16", false)],
        join_cidr: "100.64.0.0/16".parse().expect("literal"),
        service_cidr: "10.96.0.0/12".parse().expect("literal"),
        forwards,
    }
}

/// A pod Subnet `cidr` (a literal).
pub fn range(cidr: &str, nat_outgoing: bool) -> PodRange {
    PodRange {
        cidr: cidr.parse().expect("literal"),
        nat_outgoing,
    }
}

pub fn frontend(addr: Ipv4Addr, protocol: Protocol, port: u16) -> Frontend {
    Frontend {
        addr,
        protocol,
        port,
    }
}

/// `externalTrafficPolicy: Local` to `endpoints` on `port`.
pub fn local(owner: &str, endpoints: &[Ipv4Addr], port: u16) -> Target {
    Target::Local {
        owner: owner.to_string(),
        endpoints: endpoints
            .iter()
            .map(|ip| SocketAddrV4::new(*ip, port))
            .collect(),
    }
}

/// Three namespaces: `outside` (192.0.2.2 and .3) — `node` (192.0.2.1, the table, forwarding)
/// — `ovn`, standing in for OVN behind `ovn0`: it holds the join gateway, the ClusterIP and the
/// pods' addresses, and routes everything else back to the node as the egress reroute will.
pub struct Topology {
    pub outside: Netns,
    pub node: Netns,
    pub ovn: Netns,
}

/// A veth pair `a_if` in `a` — `b_if` in `b`, both up.
pub fn link(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    crate::netdev_support::run_ok(
        "ip",
        &[
            "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
            &b.name,
        ],
    );
    a.exec_ok(&["ip", "link", "set", a_if, "up"]);
    b.exec_ok(&["ip", "link", "set", b_if, "up"]);
}

/// Runs each command (words separated by spaces) inside `ns`.
pub fn run_all(ns: &Netns, commands: &[&str]) {
    for command in commands {
        let argv: Vec<&str> = command.split(' ').collect();
        ns.exec_ok(&argv);
    }
}

/// Builds the [`Topology`] (removed when its namespaces drop).
pub fn topology() -> Topology {
    let outside = Netns::new("gwout");
    let node = Netns::new("gwnode");
    let ovn = Netns::new("gwovn");
    link(&outside, "c0", &node, "eth0");
    link(&node, "ovn0", &ovn, "j0");
    run_all(
        &outside,
        &[
            "ip addr add 192.0.2.2/24 dev c0",
            "ip addr add 192.0.2.3/24 dev c0",
            "ip route add 192.0.2.100/32 via 192.0.2.1",
            "ip route add 10.17.0.0/16 via 192.0.2.1",
        ],
    );
    run_all(
        &node,
        &[
            "ip addr add 192.0.2.1/24 dev eth0",
            "ip addr add 100.64.0.2/16 dev ovn0",
            "ip route add 10.16.0.0/16 via 100.64.0.1",
            "ip route add 10.17.0.0/16 via 100.64.0.1",
            "ip route add 10.96.0.0/12 via 100.64.0.1",
            "sysctl -qw net.ipv4.ip_forward=1",
        ],
    );
    run_all(
        &ovn,
        &[
            "ip addr add 100.64.0.1/16 dev j0",
            "ip addr add 10.96.0.10/32 dev lo",
            "ip addr add 10.16.0.5/32 dev lo",
            "ip addr add 10.16.0.6/32 dev lo",
            "ip addr add 10.17.0.5/32 dev lo",
            "ip route add 192.0.2.2/32 via 100.64.0.2 src 10.16.0.5",
            "ip route add 192.0.2.3/32 via 100.64.0.2 src 10.17.0.5",
            "ip route add default via 100.64.0.2",
        ],
    );
    Topology { outside, node, ovn }
}

/// Runs `body` on a thread inside `ns` (sockets it opens live there).
pub fn in_netns<T: Send + 'static>(
    ns: &Netns,
    body: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path: PathBuf = ns.path();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        setns(&file, CloneFlags::CLONE_NEWNET).expect("enter netns");
        body()
    })
}
