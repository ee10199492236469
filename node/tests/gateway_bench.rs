//! Figures for the gateway, not a pass/fail test (no timed asserts): `cargo test -p rovn-node
//! --test gateway_bench -- --ignored --nocapture` prints `key=value` lines for 1,000 NodePort
//! Services with 5 endpoints each, from Kubernetes objects to the table in the kernel of a
//! namespace of its own: the desired state's computation, the first sync, a sync with nothing to
//! do (read back only), a read-back and an `nft -f` alone, and the agent's steady-state sync
//! after one change (an endpoint and a nodePort of one Service; state computed, compared, table rebuilt without a read-back;
//! p50/p99 over the runs). Needs root, `ip` and `nft`.

mod netdev_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use netdev_support::Netns;
use rovn_node::agent::gateway::feed::{Desired, Inputs, NodeGateway, desired};
use rovn_node::gateway::{self, Nft};
use serde_json::json;

const SERVICES: usize = 1_000;
const ENDPOINTS: usize = 5;
const CHANGES: usize = 30;

/// The first Service's nodePort moves with each generation, so a Cluster-policy table changes
/// too (its targets do not depend on endpoints).
fn node_port(service: usize, generation: usize) -> usize {
    if service == 0 {
        29_000 + generation
    } else {
        30_000 + service
    }
}

fn objects(policy: &str, generation: usize) -> (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>) {
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
        let endpoints: Vec<serde_json::Value> = (0..ENDPOINTS)
            .map(|e| {
                // The first Service's last endpoint moves with each generation: one change.
                let host = if i == 0 && e == ENDPOINTS - 1 { 100 + generation } else { e };
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

#[test]
#[ignore = "prints figures; run with --ignored --nocapture"]
fn nft_sync_with_1000_nodeport_services() {
    let ns = Netns::new("gwbench");
    let nft = Nft::with_command(["ip", "netns", "exec", ns.name.as_str(), "nft"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for policy in ["Cluster", "Local"] {
        let (services, slices) = objects(policy, 0);
        let started = Instant::now();
        let first = compute(&services, &slices);
        let desired_ms = started.elapsed().as_secs_f64() * 1000.0;
        let outcome = runtime
            .block_on(gateway::sync(&nft, &first.state))
            .expect("first sync");
        let noop = runtime
            .block_on(gateway::sync(&nft, &first.state))
            .expect("no-op sync");
        assert!(!noop.applied);
        let mut changes = Vec::new();
        for generation in 1..=CHANGES {
            let (services, slices) = objects(policy, generation);
            let started = Instant::now();
            let next = compute(&services, &slices);
            // As the agent's loop does between resyncs: the state changed, so rebuild.
            let changed = next.state != first.state;
            if changed {
                runtime
                    .block_on(gateway::nft::apply_state(&nft, &next.state))
                    .expect("apply");
            }
            changes.push(started.elapsed());
            assert!(changed, "each generation changes the table");
        }
        let started = Instant::now();
        runtime.block_on(nft.observe()).expect("read back");
        let read_back_ms = started.elapsed().as_secs_f64() * 1000.0;
        let document = gateway::render::to_json(&gateway::render::batch(&first.state));
        let started = Instant::now();
        runtime.block_on(nft.apply(&document)).expect("apply");
        let apply_ms = started.elapsed().as_secs_f64() * 1000.0;
        let batch_bytes = gateway::render::to_json(&gateway::render::batch(&first.state))
            .to_string()
            .len();
        let chains = ns
            .exec_ok(&["nft", "list", "table", "ip", "rovn"])
            .matches("chain ")
            .count();
        let p = policy.to_lowercase();
        println!("{p}_services={SERVICES}");
        println!("{p}_endpoints_per_service={ENDPOINTS}");
        println!("{p}_frontends={}", first.state.forwards.len());
        println!("{p}_elements={}", outcome.elements);
        println!("{p}_chains={chains}");
        println!("{p}_batch_bytes={batch_bytes}");
        println!("{p}_desired_ms={desired_ms:.1}");
        println!(
            "{p}_first_sync_ms={:.1}",
            outcome.took.as_secs_f64() * 1000.0
        );
        println!("{p}_noop_sync_ms={:.1}", noop.took.as_secs_f64() * 1000.0);
        println!("{p}_read_back_ms={read_back_ms:.1}");
        println!("{p}_nft_apply_ms={apply_ms:.1}");
        println!("{p}_nft_sync_p50_ms={:.1}", percentile(&mut changes, 0.5));
        println!("{p}_nft_sync_p99_ms={:.1}", percentile(&mut changes, 0.99));
    }
}
