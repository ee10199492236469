//! Figures for the gateway, not a pass/fail test (no timed asserts): `cargo test -p rovn-node
//! --test gateway_bench -- --ignored --nocapture --test-threads=1` prints `key=value` lines.
//!
//! - `nft_sync_with_1000_nodeport_services`: 1,000 NodePort Services with 5 endpoints each, from
//!   Kubernetes objects to the table in the kernel of a namespace of its own, Cluster and Local
//!   policy: the desired state's computation, the first sync, a sync with nothing to do (read
//!   back only), a read-back and a full rebuild alone, the ruleset's size, and the agent's
//!   steady-state sync after one change (state computed, compared, the difference applied;
//!   p50/p99 over the runs) for an endpoint change and for a nodePort change.
//! - `connections_per_second_through_a_node_port_with_10_and_1000_services`: real TCP connects
//!   from an outside namespace through the node's namespace (DNAT by the table) to a server in
//!   the OVN stand-in, with 10 and with 1,000 Services in the table, alternating rounds.
//!
//! Needs root, `ip` and `nft`.

mod gateway_support;
mod netdev_support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_support::{NODE_IP, frontend, in_netns, state_with, topology};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use netdev_support::Netns;
use nix::sys::socket::{setsockopt, sockopt};
use rovn_node::agent::gateway::feed::{Desired, Inputs, NodeGateway, SETTLE, desired};
use rovn_node::gateway::render::TABLE;
use rovn_node::gateway::{self, GatewayState, Nft, Protocol, Target};
use serde_json::{Value, json};

const SERVICES: usize = 1_000;
const ENDPOINTS: usize = 5;
const CHANGES: usize = 40;

/// What one generation of the objects changes: the first Service's last endpoint, or its
/// nodePort.
#[derive(Clone, Copy)]
struct Generation {
    endpoint: usize,
    node_port: usize,
}

fn node_port(service: usize, generation: Generation) -> usize {
    if service == 0 {
        29_000 + generation.node_port
    } else {
        30_000 + service
    }
}

fn objects(policy: &str, generation: Generation) -> (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>) {
    let mut services = Vec::new();
    let mut slices = Vec::new();
    for i in 0..SERVICES {
        let name = format!("svc{i}");
        let service: Service = serde_json::from_value(json!({
            "metadata": {"namespace": "bench", "name": name},
            "spec": {"type": "NodePort", "externalTrafficPolicy": policy,
                "clusterIP": format!("10.96.{}.{}", i / 250, i % 250 + 1),
                "ports": [{"port": 80, "nodePort": node_port(i, generation)}]}
        }))
        .expect("service");
        let endpoints: Vec<Value> = (0..ENDPOINTS)
            .map(|e| {
                let host = if i == 0 && e == ENDPOINTS - 1 {
                    100 + generation.endpoint
                } else {
                    e
                };
                json!({"addresses": [format!("10.16.{}.{}", i % 250, host + 1)], "nodeName": "node1"})
            })
            .collect();
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"namespace": "bench", "name": format!("{name}-1"),
                "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"port": 8080}], "endpoints": endpoints
        }))
        .expect("slice");
        services.push(Arc::new(service));
        slices.push(Arc::new(slice));
    }
    (services, slices)
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index].as_secs_f64() * 1000.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The desired state for the node, from Services and slices alone.
fn compute(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Desired {
    let inputs = Inputs {
        services,
        slices,
        subnets: &[],
        pods: &[],
    };
    desired(&node(), &inputs)
}

fn node() -> NodeGateway {
    NodeGateway {
        node_name: "node1".into(),
        node_ip: "172.30.0.11".parse().expect("ip"),
        join_ip: "100.64.0.2".parse().expect("ip"),
        join_cidr: "100.64.0.0/16".parse().expect("cidr"),
        service_cidr: "10.96.0.0/12".parse().expect("cidr"),
        ovn_device: "ovn0".into(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// `nft ARGS` in the calling thread's namespace, its output.
fn nft_output(args: &[&str]) -> String {
    let out = std::process::Command::new("nft")
        .args(args)
        .output()
        .expect("run nft");
    assert!(out.status.success(), "nft {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The ruleset's size as the kernel holds it: bytes of `nft list table ip rovn`, rules,
/// elements (interval sets counting merged intervals).
fn ruleset_size(nft: &Nft, runtime: &tokio::runtime::Runtime) -> (usize, usize, usize) {
    let bytes = nft_output(&["list", "table", "ip", TABLE]).len();
    let listed: Value =
        serde_json::from_str(&nft_output(&["-j", "list", "table", "ip", TABLE])).expect("nft json");
    let rules = listed["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o.get("rule").is_some())
        .count();
    let elements = runtime
        .block_on(nft.observe())
        .expect("read back")
        .map(|view| view.element_count())
        .unwrap_or(0);
    (bytes, rules, elements)
}

#[test]
#[ignore = "prints figures; run with --ignored --nocapture"]
fn nft_sync_with_1000_nodeport_services() {
    let ns = Netns::new("gwbench");
    // `nft` runs as the agent runs it, in the thread's own namespace (not via `ip netns exec`).
    in_netns(&ns, sync_figures).join().expect("bench thread");
}

fn sync_figures() {
    let nft = Nft::default();
    let runtime = runtime();
    println!("settle_ms={}", SETTLE.as_millis());
    for policy in ["Cluster", "Local"] {
        let p = policy.to_lowercase();
        let start = Generation {
            endpoint: 0,
            node_port: 0,
        };
        let (services, slices) = objects(policy, start);
        let started = Instant::now();
        let first = compute(&services, &slices);
        let desired_ms = ms(started.elapsed());
        let outcome = runtime
            .block_on(gateway::sync(&nft, &first.state))
            .expect("first sync");
        let noop = runtime
            .block_on(gateway::sync(&nft, &first.state))
            .expect("no-op sync");
        assert!(!noop.applied);

        // As the agent's loop does between resyncs: compute, compare with what was applied,
        // send the difference.
        let mut last = first.state.clone();
        let mut generation = start;
        for change in ["endpoint", "node_port"] {
            let mut samples = Vec::new();
            let (mut computing, mut rendering) = (Vec::new(), Vec::new());
            let mut sent = 0;
            for _ in 0..CHANGES {
                match change {
                    "endpoint" => generation.endpoint += 1,
                    _ => generation.node_port += 1,
                }
                let (services, slices) = objects(policy, generation);
                let started = Instant::now();
                let next = compute(&services, &slices);
                computing.push(started.elapsed());
                if next.state != last {
                    let outcome = runtime
                        .block_on(gateway::nft::apply_change(&nft, &last, &next.state))
                        .expect("apply the change");
                    sent += usize::from(outcome.applied);
                }
                samples.push(started.elapsed());
                // The pure part of the update alone, not counted in the sync.
                let rendered = Instant::now();
                let _ = gateway::render::to_json(&gateway::render::delta(&last, &next.state));
                rendering.push(rendered.elapsed());
                last = next.state;
            }
            println!(
                "{p}_{change}_desired_p50_ms={:.1}",
                percentile(&mut computing, 0.5)
            );
            println!(
                "{p}_{change}_delta_p50_ms={:.1}",
                percentile(&mut rendering, 0.5)
            );
            println!("{p}_{change}_changes={CHANGES}");
            println!("{p}_{change}_changes_sent={sent}");
            println!(
                "{p}_{change}_nft_sync_p50_ms={:.1}",
                percentile(&mut samples, 0.5)
            );
            println!(
                "{p}_{change}_nft_sync_p99_ms={:.1}",
                percentile(&mut samples, 0.99)
            );
        }
        assert_eq!(
            runtime.block_on(nft.observe()).expect("read back"),
            Some(gateway::nft::expected_view(&last)),
            "the incremental updates left the table a rebuild would"
        );

        let started = Instant::now();
        runtime.block_on(nft.observe()).expect("read back");
        let read_back_ms = ms(started.elapsed());
        let document = gateway::render::to_json(&gateway::render::batch(&first.state));
        let started = Instant::now();
        runtime.block_on(nft.apply(&document)).expect("apply");
        let rebuild_ms = ms(started.elapsed());
        let (bytes, rules, elements) = ruleset_size(&nft, &runtime);
        let chains = nft_output(&["list", "table", "ip", TABLE])
            .matches("chain ")
            .count();
        println!("{p}_services={SERVICES}");
        println!("{p}_endpoints_per_service={ENDPOINTS}");
        println!("{p}_frontends={}", first.state.forwards.len());
        println!("{p}_elements={}", outcome.elements);
        println!("{p}_ruleset_bytes={bytes}");
        println!("{p}_ruleset_rules={rules}");
        println!("{p}_ruleset_elements={elements}");
        println!("{p}_chains={chains}");
        println!("{p}_batch_bytes={}", document.to_string().len());
        println!("{p}_desired_ms={desired_ms:.1}");
        println!("{p}_first_sync_ms={:.1}", ms(outcome.took));
        println!("{p}_noop_sync_ms={:.1}", ms(noop.took));
        println!("{p}_read_back_ms={read_back_ms:.1}");
        println!("{p}_full_rebuild_ms={rebuild_ms:.1}");
    }
}

/// How long each round connects, and rounds per table size: short rounds, interleaved, so the
/// bursts of other work on a shared machine hit both sizes alike.
const ROUND: Duration = Duration::from_millis(500);
const ROUNDS: usize = 12;
const TARGET: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// `count` Cluster-policy NodePort Services; the first (30000) goes to the server, the others
/// to ClusterIPs nobody connects to.
fn services_state(count: usize) -> GatewayState {
    let forwards: BTreeMap<_, _> = (0..count)
        .map(|i| {
            let to = if i == 0 {
                TARGET
            } else {
                Ipv4Addr::new(10, 97, (i / 250) as u8, (i % 250 + 1) as u8)
            };
            (
                frontend(NODE_IP, Protocol::Tcp, 30_000 + i as u16),
                Target::ClusterIp(SocketAddrV4::new(to, 80)),
            )
        })
        .collect();
    state_with(forwards)
}

/// Connects to `to` for `round`, one connection after the other, each closed with a reset (no
/// TIME_WAIT to run out of ports); the rate, how many connected and how many failed.
fn connect_round(ns: &Netns, to: SocketAddrV4, round: Duration) -> (f64, usize, usize) {
    in_netns(ns, move || {
        let started = Instant::now();
        let (mut connected, mut failed) = (0, 0);
        while started.elapsed() < round {
            match TcpStream::connect_timeout(&SocketAddr::V4(to), Duration::from_secs(2)) {
                Ok(stream) => {
                    let reset = nix::libc::linger {
                        l_onoff: 1,
                        l_linger: 0,
                    };
                    match setsockopt(&stream, sockopt::Linger, &reset) {
                        Ok(()) => connected += 1,
                        Err(_) => failed += 1,
                    }
                }
                Err(_) => failed += 1,
            }
        }
        (
            connected as f64 / started.elapsed().as_secs_f64(),
            connected,
            failed,
        )
    })
    .join()
    .expect("client thread")
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[test]
#[ignore = "prints figures; run with --ignored --nocapture"]
fn connections_per_second_through_a_node_port_with_10_and_1000_services() {
    let t = topology();
    let nft = Nft::with_command(["ip", "netns", "exec", t.node.name.as_str(), "nft"]);
    let runtime = runtime();
    // The OVN stand-in holds TARGET (10.96.0.10) on its loopback.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    in_netns(&t.ovn, move || {
        let listener = TcpListener::bind(("0.0.0.0", 80)).expect("bind");
        let _ = ready_tx.send(());
        // Accept and drop: the handshake is what is measured.
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    ready_rx.recv().expect("server ready");
    let to = SocketAddrV4::new(NODE_IP, 30_000);
    let sizes = [10, SERVICES];
    let mut rates: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let (mut connections, mut failures) = (0, 0);
    // A warm-up round, then alternate so drift on the shared machine hits both alike.
    runtime
        .block_on(gateway::sync(&nft, &services_state(10)))
        .expect("sync");
    connect_round(&t.outside, to, ROUND / 2);
    for _ in 0..ROUNDS {
        for count in sizes {
            runtime
                .block_on(gateway::sync(&nft, &services_state(count)))
                .expect("sync");
            let (rate, connected, failed) = connect_round(&t.outside, to, ROUND);
            connections += connected;
            failures += failed;
            rates.entry(count).or_default().push(rate);
        }
    }
    for (count, values) in &mut rates {
        let text: Vec<String> = values.iter().map(|r| format!("{r:.0}")).collect();
        println!("conn_rate_{count}_services_rounds_per_s={}", text.join(","));
        println!(
            "conn_rate_{count}_services_per_s={:.0}",
            median(values.as_mut_slice())
        );
    }
    let small = median(rates.entry(10).or_default());
    let large = median(rates.entry(SERVICES).or_default());
    println!("conn_rate_round_s={}", ROUND.as_secs_f64());
    println!("conn_rate_connections={connections}");
    println!("conn_rate_failed={failures}");
    println!("conn_rate_ratio_1000_vs_10={:.3}", large / small);
}
