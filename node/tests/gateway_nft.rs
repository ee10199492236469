//! The `ip rovn` table against the real `nft` and kernel, each test in network namespaces of its
//! own (never the root one's tables or sysctls): apply, read back, idempotence, other tables
//! untouched, a removed Service leaves no element, and real packets between namespaces for
//! masquerade, NodePort (Cluster and Local), externalIP, hostPort and an established connection
//! that survives a rebuild of the table. Needs root, `ip` and `nft`.

mod gateway_support;
mod netdev_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use gateway_support::{
    JOIN_IP, NODE_IP, frontend, in_netns, local, range, run_all, state_with, topology,
};
use netdev_support::Netns;
use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};
use rovn_node::gateway::{self, GatewayState, Nft, Protocol, Target, render::TABLE};
use serde_json::Value;

const OUTSIDE_NAT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const OUTSIDE_PLAIN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
const EXTERNAL_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const POD_A: Ipv4Addr = Ipv4Addr::new(10, 16, 0, 5);
const POD_B: Ipv4Addr = Ipv4Addr::new(10, 16, 0, 6);
const POD_PLAIN: Ipv4Addr = Ipv4Addr::new(10, 17, 0, 5);

fn nft_in(ns: &Netns) -> Nft {
    Nft::with_command(["ip", "netns", "exec", ns.name.as_str(), "nft"])
}

/// The state the packet tests use: one frontend of every kind.
fn state() -> GatewayState {
    let forwards = BTreeMap::from([
        (
            frontend(NODE_IP, Protocol::Tcp, 30080),
            Target::ClusterIp(SocketAddrV4::new(CLUSTER_IP, 80)),
        ),
        (
            frontend(NODE_IP, Protocol::Udp, 30080),
            Target::ClusterIp(SocketAddrV4::new(CLUSTER_IP, 53)),
        ),
        (
            frontend(NODE_IP, Protocol::Tcp, 30081),
            local("Service/ns/local1:8080/tcp", &[POD_A], 8080),
        ),
        (
            frontend(NODE_IP, Protocol::Tcp, 30082),
            local("Service/ns/local0:8080/tcp", &[], 8080),
        ),
        (
            frontend(NODE_IP, Protocol::Tcp, 30083),
            local("Service/ns/local2:8080/tcp", &[POD_A, POD_B], 8080),
        ),
        (
            frontend(EXTERNAL_IP, Protocol::Tcp, 80),
            Target::ClusterIp(SocketAddrV4::new(CLUSTER_IP, 80)),
        ),
        (
            frontend(NODE_IP, Protocol::Tcp, 8000),
            Target::HostPort(SocketAddrV4::new(POD_B, 8080)),
        ),
    ]);
    state_with(forwards)
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// `nft -j list map ip rovn NAME` elements as `key : data` text, read with nft itself.
fn map_elements(ns: &Netns, map: &str) -> Vec<String> {
    let out = ns.exec_ok(&["nft", "-j", "list", "map", "ip", TABLE, map]);
    let doc: Value = serde_json::from_str(&out).expect("nft json");
    let mut found = Vec::new();
    for object in doc["nftables"].as_array().into_iter().flatten() {
        for elem in object["map"]["elem"].as_array().into_iter().flatten() {
            found.push(elem.to_string());
        }
    }
    found
}

#[test]
fn the_table_is_applied_read_back_idempotent_and_alone() {
    let ns = Netns::new("gwtab");
    let nft = nft_in(&ns);
    run_all(
        &ns,
        &[
            "nft add table inet foreign",
            "nft add chain inet foreign input { type filter hook input priority 0; policy accept; }",
            "nft add rule inet foreign input tcp dport 22 counter accept",
            "nft add set inet foreign blocked { type ipv4_addr; elements = { 198.51.100.7 } }",
        ],
    );
    let foreign_before = ns.exec_ok(&["nft", "list", "table", "inet", "foreign"]);

    let mut desired = state();
    let first = block_on(gateway::sync(&nft, &desired)).expect("first sync");
    assert!(first.applied, "an absent table must be created");
    let second = block_on(gateway::sync(&nft, &desired)).expect("second sync");
    assert!(
        !second.applied,
        "a converged table must not be applied again"
    );
    let observed = block_on(nft.observe()).expect("read back");
    assert_eq!(observed, Some(gateway::nft::expected_view(&desired)));

    let targets = map_elements(&ns, "dnat_addrs");
    assert!(
        targets
            .iter()
            .any(|e| e.contains("30081") && e.contains("10.16.0.5")),
        "{targets:?}"
    );
    let chains = map_elements(&ns, "dnat_chains");
    assert!(
        chains
            .iter()
            .any(|e| e.contains("30082") && e.contains("drop")),
        "{chains:?}"
    );

    // A Service removed: its elements are gone and nothing else changed.
    desired
        .forwards
        .remove(&frontend(NODE_IP, Protocol::Tcp, 30081));
    desired
        .forwards
        .remove(&frontend(NODE_IP, Protocol::Tcp, 30082));
    assert!(
        block_on(gateway::sync(&nft, &desired))
            .expect("sync")
            .applied
    );
    let targets = map_elements(&ns, "dnat_addrs");
    assert!(!targets.iter().any(|e| e.contains("30081")), "{targets:?}");
    let chains = map_elements(&ns, "dnat_chains");
    assert!(!chains.iter().any(|e| e.contains("30082")), "{chains:?}");
    assert!(targets.iter().any(|e| e.contains("30080")), "{targets:?}");

    // Drift: an element deleted by hand, or a rule's address changed, is put back.
    ns.exec_ok(&[
        "nft",
        "delete",
        "element",
        "ip",
        TABLE,
        "dnat_ports",
        "{",
        "192.0.2.1",
        ".",
        "tcp",
        ".",
        "30080",
        "}",
    ]);
    assert!(
        block_on(gateway::sync(&nft, &desired))
            .expect("repair")
            .applied
    );
    assert!(
        map_elements(&ns, "dnat_ports")
            .iter()
            .any(|e| e.contains("30080"))
    );
    desired.join_ip = Ipv4Addr::new(100, 64, 0, 9);
    assert!(
        block_on(gateway::sync(&nft, &desired))
            .expect("join ip")
            .applied
    );
    let listed = ns.exec_ok(&["nft", "list", "chain", "ip", TABLE, "postrouting"]);
    assert!(listed.contains("snat to 100.64.0.9"), "{listed}");
    assert!(
        !block_on(gateway::sync(&nft, &desired))
            .expect("again")
            .applied
    );

    let foreign_after = ns.exec_ok(&["nft", "list", "table", "inet", "foreign"]);
    assert_eq!(foreign_before, foreign_after);
    block_on(gateway::nft::remove(&nft)).expect("remove");
    assert_eq!(block_on(nft.observe()).expect("read back"), None);
    assert_eq!(
        foreign_before,
        ns.exec_ok(&["nft", "list", "table", "inet", "foreign"])
    );
}

/// A TCP server in `ns` on `port` that greets each connection with `<peer ip> <local ip>` and
/// then echoes lines; it lives as long as the test process.
fn who_server(ns: &Netns, port: u16) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    in_netns(ns, move || {
        let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
        let _ = ready_tx.send(());
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
                    return;
                };
                let mut writer = match stream.try_clone() {
                    Ok(w) => w,
                    Err(_) => return,
                };
                let _ = writeln!(writer, "{} {}", peer.ip(), local.ip());
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    if writeln!(writer, "{line}").is_err() {
                        return;
                    }
                }
            });
        }
    });
    ready_rx.recv().expect("server ready");
}

/// A UDP server bound to `addr` in `ns` that answers each datagram with the sender's IP.
fn udp_who_server(ns: &Netns, addr: SocketAddrV4) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    in_netns(ns, move || {
        let socket = UdpSocket::bind(addr).expect("bind udp");
        let _ = ready_tx.send(());
        let mut buf = [0u8; 512];
        while let Ok((_, peer)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(peer.ip().to_string().as_bytes(), peer);
        }
    });
    ready_rx.recv().expect("udp server ready");
}

/// A client connection from `ns`: the greeting line, and the stream to keep talking on.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(ns: &Netns, to: SocketAddrV4) -> std::io::Result<(Client, String)> {
        in_netns(ns, move || {
            let stream = TcpStream::connect_timeout(&SocketAddr::V4(to), Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let writer = stream.try_clone()?;
            let mut reader = BufReader::new(stream);
            let mut greeting = String::new();
            reader.read_line(&mut greeting)?;
            Ok((Client { reader, writer }, greeting.trim().to_string()))
        })
        .join()
        .expect("client thread")
    }

    fn echo(&mut self, text: &str) -> std::io::Result<String> {
        writeln!(self.writer, "{text}")?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        Ok(line.trim().to_string())
    }
}

/// `(peer, local)` as the server saw them for one connection from `ns` to `to`.
fn who(ns: &Netns, to: SocketAddrV4) -> (String, String) {
    let (_, greeting) = Client::connect(ns, to).unwrap_or_else(|e| panic!("connect {to}: {e}"));
    let mut words = greeting.split(' ').map(str::to_string);
    (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    )
}

#[test]
fn real_packets_are_masqueraded_and_dnated_and_established_flows_survive_a_rebuild() {
    let t = topology();
    let nft = nft_in(&t.node);
    let desired = state();
    assert!(
        block_on(gateway::sync(&nft, &desired))
            .expect("sync")
            .applied
    );

    who_server(&t.outside, 9000);
    who_server(&t.ovn, 80);
    who_server(&t.ovn, 8080);
    udp_who_server(&t.ovn, SocketAddrV4::new(CLUSTER_IP, 53));

    // Egress: a natOutgoing pod is seen as the node, another pod as itself.
    let (seen, _) = who(&t.ovn, SocketAddrV4::new(OUTSIDE_NAT, 9000));
    assert_eq!(seen, NODE_IP.to_string(), "natOutgoing pod → outside");
    let (seen, _) = who(&t.ovn, SocketAddrV4::new(OUTSIDE_PLAIN, 9000));
    assert_eq!(
        seen,
        POD_PLAIN.to_string(),
        "natOutgoing: false pod → outside"
    );

    // NodePort, Cluster policy: to the ClusterIP, from the join IP.
    let (seen, local) = who(&t.outside, SocketAddrV4::new(NODE_IP, 30080));
    assert_eq!(
        (seen.as_str(), local.as_str()),
        ("100.64.0.2", "10.96.0.10")
    );
    // The same over UDP.
    let answer = in_netns(&t.outside, || {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(3)))?;
        socket.send_to(b"who", (NODE_IP, 30080))?;
        let mut buf = [0u8; 64];
        let (n, _) = socket.recv_from(&mut buf)?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .join()
    .expect("udp client");
    assert_eq!(answer.expect("udp answer"), JOIN_IP.to_string());

    // Local policy: the one local endpoint sees the client's own address.
    let (seen, local) = who(&t.outside, SocketAddrV4::new(NODE_IP, 30081));
    assert_eq!((seen.as_str(), local.as_str()), ("192.0.2.2", "10.16.0.5"));
    // No local endpoint: dropped, so the connection never completes.
    let dropped = Client::connect(&t.outside, SocketAddrV4::new(NODE_IP, 30082));
    assert!(
        dropped.is_err(),
        "a Local Service without endpoints here must drop"
    );
    // Two local endpoints: both are chosen over enough connections.
    let mut chosen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (seen, local) = who(&t.outside, SocketAddrV4::new(NODE_IP, 30083));
        assert_eq!(seen, "192.0.2.2");
        chosen.insert(local);
        if chosen.len() == 2 {
            break;
        }
    }
    assert_eq!(chosen.len(), 2, "{chosen:?}");

    // externalIP (Cluster policy) and hostPort (client kept).
    let (seen, local) = who(&t.outside, SocketAddrV4::new(EXTERNAL_IP, 80));
    assert_eq!(
        (seen.as_str(), local.as_str()),
        ("100.64.0.2", "10.96.0.10")
    );
    let (seen, local) = who(&t.outside, SocketAddrV4::new(NODE_IP, 8000));
    assert_eq!((seen.as_str(), local.as_str()), ("192.0.2.2", "10.16.0.6"));

    // Established connections through a DNAT keep flowing across rebuilds of the table: the
    // same content re-applied (an agent restart), and a changed table.
    let (mut cluster, _) =
        Client::connect(&t.outside, SocketAddrV4::new(NODE_IP, 30080)).expect("connect");
    let (mut kept, _) =
        Client::connect(&t.outside, SocketAddrV4::new(NODE_IP, 30081)).expect("connect");
    block_on(nft.apply(&gateway::render::to_json(&gateway::render::batch(&desired))))
        .expect("rebuild");
    assert_eq!(
        cluster.echo("after rebuild").expect("echo"),
        "after rebuild"
    );
    assert_eq!(kept.echo("after rebuild").expect("echo"), "after rebuild");
    let mut changed = desired.clone();
    changed.forwards.insert(
        frontend(NODE_IP, Protocol::Tcp, 30099),
        Target::ClusterIp(SocketAddrV4::new(CLUSTER_IP, 80)),
    );
    assert!(
        block_on(gateway::sync(&nft, &changed))
            .expect("sync")
            .applied
    );
    assert_eq!(cluster.echo("after change").expect("echo"), "after change");
    assert_eq!(kept.echo("after change").expect("echo"), "after change");
    let (seen, _) = who(&t.outside, SocketAddrV4::new(NODE_IP, 30099));
    assert_eq!(seen, JOIN_IP.to_string());

    // And across the agent's incremental updates: the frontends of both connections change
    // (the Local one gains an endpoint and gets a chain), 30099 goes, 30098 comes.
    let mut next = changed.clone();
    next.forwards
        .remove(&frontend(NODE_IP, Protocol::Tcp, 30099));
    next.forwards.insert(
        frontend(NODE_IP, Protocol::Tcp, 30098),
        Target::ClusterIp(SocketAddrV4::new(CLUSTER_IP, 80)),
    );
    next.forwards.insert(
        frontend(NODE_IP, Protocol::Tcp, 30080),
        Target::ClusterIp(SocketAddrV4::new(CLUSTER_IP, 8080)),
    );
    next.forwards.insert(
        frontend(NODE_IP, Protocol::Tcp, 30081),
        gateway_support::local("Service/ns/local1:8080/tcp", &[POD_A, POD_B], 8080),
    );
    assert!(
        block_on(gateway::nft::apply_change(&nft, &changed, &next))
            .expect("incremental")
            .applied
    );
    assert_eq!(
        block_on(nft.observe()).expect("read back"),
        Some(gateway::nft::expected_view(&next))
    );
    assert_eq!(cluster.echo("after delta").expect("echo"), "after delta");
    assert_eq!(kept.echo("after delta").expect("echo"), "after delta");
    let (seen, _) = who(&t.outside, SocketAddrV4::new(NODE_IP, 30098));
    assert_eq!(seen, JOIN_IP.to_string());
    assert!(
        Client::connect(&t.outside, SocketAddrV4::new(NODE_IP, 30099)).is_err(),
        "a removed frontend must not answer"
    );
}

/// A random frontend out of a small pool, so changes hit existing ones often.
fn random_frontend(rng: &mut TestRng) -> gateway::Frontend {
    let addr = if rng.next_u32().is_multiple_of(4) {
        EXTERNAL_IP
    } else {
        NODE_IP
    };
    let protocol = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp][rng.next_u32() as usize % 3];
    frontend(addr, protocol, 30000 + (rng.next_u32() % 30) as u16)
}

/// The endpoints of a few Local owners, re-rolled now and then: 0, 1 or several, so frontends
/// move between the maps and chains come and go.
fn random_endpoints(rng: &mut TestRng) -> Vec<Ipv4Addr> {
    let count = rng.next_u32() % 4;
    let mut endpoints: Vec<Ipv4Addr> = (0..count)
        .map(|_| Ipv4Addr::new(10, 16, 0, 1 + (rng.next_u32() % 8) as u8))
        .collect();
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

fn random_target(rng: &mut TestRng, owners: &[Vec<Ipv4Addr>]) -> Target {
    let last = 1 + (rng.next_u32() % 20) as u8;
    match rng.next_u32() % 3 {
        0 => Target::ClusterIp(SocketAddrV4::new(Ipv4Addr::new(10, 96, 0, last), 80)),
        1 => Target::HostPort(SocketAddrV4::new(Ipv4Addr::new(10, 16, 1, last), 8080)),
        _ => {
            let owner = rng.next_u32() as usize % owners.len();
            local(&format!("Service/ns/s{owner}:80/tcp"), &owners[owner], 8080)
        }
    }
}

/// Pod Subnets drawn from adjacent /16s (which merge into wider prefixes and split again), with
/// random `natOutgoing`.
fn random_ranges(rng: &mut TestRng) -> Vec<gateway::PodRange> {
    [
        "10.16.0.0/16",
        "10.17.0.0/16",
        "10.18.0.0/16",
        "10.19.0.0/16",
        "10.20.0.0/15",
        "10.22.0.0/16",
    ]
    .into_iter()
    .filter_map(|cidr| match rng.next_u32() % 4 {
        0 | 1 => None,
        2 => Some(range(cidr, false)),
        _ => Some(range(cidr, true)),
    })
    .collect()
}

#[test]
fn incremental_updates_leave_the_table_a_full_rebuild_would_over_random_changes() {
    let incremental = Netns::new("gwinc");
    let rebuilt = Netns::new("gwfull");
    let (inc_nft, full_nft) = (nft_in(&incremental), nft_in(&rebuilt));
    let mut rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut owners: Vec<Vec<Ipv4Addr>> = (0..5).map(|_| random_endpoints(&mut rng)).collect();
    let mut last = state_with(BTreeMap::new());
    block_on(gateway::sync(&inc_nft, &last)).expect("first sync");
    const STEPS: usize = 120;
    let mut sent = 0;
    for step in 0..STEPS {
        let mut next = last.clone();
        if rng.next_u32().is_multiple_of(3) {
            let owner = rng.next_u32() as usize % owners.len();
            owners[owner] = random_endpoints(&mut rng);
        }
        // Local frontends follow their owner's endpoints, as the agent computes them.
        for target in next.forwards.values_mut() {
            if let Target::Local { owner, endpoints } = target {
                let index: usize = owner["Service/ns/s".len()..owner.len() - ":80/tcp".len()]
                    .parse()
                    .expect("owner index");
                *endpoints = owners[index]
                    .iter()
                    .map(|ip| SocketAddrV4::new(*ip, 8080))
                    .collect();
            }
        }
        for _ in 0..1 + rng.next_u32() % 6 {
            let key = random_frontend(&mut rng);
            if rng.next_u32().is_multiple_of(3) {
                next.forwards.remove(&key);
            } else {
                next.forwards.insert(key, random_target(&mut rng, &owners));
            }
        }
        if rng.next_u32().is_multiple_of(4) {
            next.pod_ranges = random_ranges(&mut rng);
        }
        if rng.next_u32().is_multiple_of(10) {
            next.join_ip = Ipv4Addr::new(100, 64, 0, 2 + (rng.next_u32() % 3) as u8);
        }

        let outcome = block_on(gateway::nft::apply_change(&inc_nft, &last, &next))
            .unwrap_or_else(|e| panic!("step {step}: the incremental batch was refused: {e}"));
        sent += usize::from(outcome.applied);
        block_on(gateway::sync(&full_nft, &next)).expect("full rebuild");
        let got = block_on(inc_nft.observe()).expect("read back");
        let want = block_on(full_nft.observe()).expect("read back");
        assert_eq!(got, want, "step {step}: {last:?} → {next:?}");
        assert_eq!(got, Some(gateway::nft::expected_view(&next)), "step {step}");
        last = next;
    }
    assert!(
        sent > STEPS / 2,
        "only {sent} of {STEPS} steps changed anything"
    );
}
