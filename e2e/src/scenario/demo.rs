//! The lab demo: a server and a client pod on every node in namespace `demo`, every client
//! talking to every server over TCP and UDP, and a reachability table of what happened.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::api;
use super::cluster::{Cluster, PodRef};
use super::error::{Result, ScenarioError};
use super::pods::{self, PodSpec, TCP_PORT, UDP_PORT};
use super::traffic::{From, Proto, exchange, exchange_once};

/// The namespace the demo's pods live in.
pub const NAMESPACE: &str = "demo";

/// One demo pod as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoPod {
    /// The pod.
    pub pod: PodRef,
    /// Its node.
    pub node: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its MAC (rovn's annotation).
    pub mac: String,
}

/// One client → server exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The client pod.
    pub client: DemoPod,
    /// The server pod.
    pub server: DemoPod,
    /// TCP or UDP.
    pub proto: Proto,
    /// What the server saw as source address and how long it took, or why it failed.
    pub outcome: std::result::Result<(Ipv4Addr, Duration), String>,
}

/// Everything the demo made and measured.
#[derive(Debug, Clone)]
pub struct Demo {
    /// Server pods, one per node.
    pub servers: Vec<DemoPod>,
    /// Client pods, one per node.
    pub clients: Vec<DemoPod>,
    /// Every exchange.
    pub reaches: Vec<Reach>,
}

fn demo_pod(pod: &Pod) -> Result<DemoPod> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    Ok(DemoPod {
        pod: PodRef::new(NAMESPACE, &name),
        node: pods::node_name(pod).unwrap_or("?").to_string(),
        ip: pods::pod_ip(pod)
            .ok_or_else(|| ScenarioError::Check(format!("demo pod {name} has no podIP")))?,
        mac: pods::annotation(pod, rovn_api::names::annotations::MAC_ADDRESS)
            .unwrap_or("?")
            .to_string(),
    })
}

/// Creates the demo's pods (replacing an earlier demo's) and measures reachability.
pub async fn run(cluster: &impl Cluster) -> Result<Demo> {
    let client = cluster.client();
    let tool = cluster.podtool();
    api::ensure_namespace(&client, NAMESPACE).await?;
    let mut specs = Vec::new();
    for node in cluster.nodes() {
        specs.push(PodSpec::server(NAMESPACE, &format!("server-{node}"), &tool).on(&node));
        specs.push(PodSpec::idle(NAMESPACE, &format!("client-{node}"), &tool).on(&node));
    }
    for spec in &specs {
        api::delete_pod(&client, &PodRef::new(NAMESPACE, &spec.name)).await?;
    }
    let running = api::create_and_wait(&client, &specs).await?;
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for pod in &running {
        let p = demo_pod(pod)?;
        if p.pod.name.starts_with("server-") {
            servers.push(p);
        } else {
            clients.push(p);
        }
    }
    // Wait once for every server to answer, so the table measures the network, not start-up.
    if let Some(first) = clients.first() {
        for server in &servers {
            exchange(
                cluster,
                &From::Pod(first.pod.clone()),
                Proto::Tcp,
                SocketAddrV4::new(server.ip, TCP_PORT),
            )
            .await?;
        }
    }
    let mut reaches = Vec::new();
    for c in &clients {
        for s in &servers {
            for (proto, port) in [(Proto::Tcp, TCP_PORT), (Proto::Udp, UDP_PORT)] {
                let outcome = exchange_once(
                    cluster,
                    &From::Pod(c.pod.clone()),
                    proto,
                    SocketAddrV4::new(s.ip, port),
                )
                .await
                .map(|a| (a.client, a.latency))
                .map_err(|e| e.to_string());
                reaches.push(Reach {
                    client: c.clone(),
                    server: s.clone(),
                    proto,
                    outcome,
                });
            }
        }
    }
    Ok(Demo {
        servers,
        clients,
        reaches,
    })
}

/// The reachability table. Pure.
pub fn render_table(demo: &Demo) -> String {
    let mut rows = vec![[
        "CLIENT".to_string(),
        "CLIENT NODE/IP".into(),
        "SERVER".into(),
        "SERVER NODE/IP:PORT".into(),
        "PROTO".into(),
        "RESULT".into(),
        "SOURCE IP SEEN".into(),
        "TIME".into(),
    ]];
    for r in &demo.reaches {
        let port = match r.proto {
            Proto::Tcp => TCP_PORT,
            Proto::Udp => UDP_PORT,
        };
        let (result, seen, time) = match &r.outcome {
            Ok((ip, latency)) => {
                let verdict = if *ip == r.client.ip {
                    "ok"
                } else {
                    "ok (NAT!)"
                };
                (
                    verdict.to_string(),
                    ip.to_string(),
                    format!("{:.1} ms", latency.as_secs_f64() * 1000.0),
                )
            }
            Err(e) => (format!("FAILED: {e}"), "-".into(), "-".into()),
        };
        rows.push([
            r.client.pod.name.clone(),
            format!("{}/{}", r.client.node, r.client.ip),
            r.server.pod.name.clone(),
            format!("{}/{}:{port}", r.server.node, r.server.ip),
            r.proto.as_str().to_string(),
            result,
            seen,
            time,
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
                + "\n"
        })
        .collect()
}

/// Whether every exchange succeeded with the client's own address seen. Pure.
pub fn all_reached(demo: &Demo) -> bool {
    demo.reaches
        .iter()
        .all(|r| matches!(&r.outcome, Ok((ip, _)) if *ip == r.client.ip))
}

/// The `ovn-trace` microflow of a TCP packet from `client` to `server` on logical switch
/// `switch` (both on one switch, so the destination MAC is the server's). Pure.
pub fn trace_flow(client: &DemoPod, server: &DemoPod) -> String {
    format!(
        "inport == \"{}\" && eth.src == {} && eth.dst == {} && ip4.src == {} && ip4.dst == {} && ip.ttl == 64 && tcp.src == 40000 && tcp.dst == {TCP_PORT}",
        client.pod.lsp_name(),
        client.mac,
        server.mac,
        client.ip,
        server.ip
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, ip: [u8; 4]) -> DemoPod {
        DemoPod {
            pod: PodRef::new(NAMESPACE, name),
            node: node.into(),
            ip: Ipv4Addr::from(ip),
            mac: "0a:58:0a:10:00:05".into(),
        }
    }

    #[test]
    fn the_table_shows_outcomes_and_spots_nat() {
        let c = pod("client-node1", "node1", [10, 16, 0, 5]);
        let s = pod("server-node2", "node2", [10, 16, 0, 6]);
        let demo = Demo {
            servers: vec![s.clone()],
            clients: vec![c.clone()],
            reaches: vec![
                Reach {
                    client: c.clone(),
                    server: s.clone(),
                    proto: Proto::Tcp,
                    outcome: Ok((c.ip, Duration::from_millis(4))),
                },
                Reach {
                    client: c.clone(),
                    server: s.clone(),
                    proto: Proto::Udp,
                    outcome: Err("timed out".into()),
                },
            ],
        };
        let table = render_table(&demo);
        assert!(table.lines().nth(1).unwrap().contains("ok"), "{table}");
        assert!(table.contains("10.16.0.5"), "{table}");
        assert!(table.contains("FAILED: timed out"), "{table}");
        assert!(!all_reached(&demo));
        let flow = trace_flow(&c, &s);
        assert!(
            flow.starts_with("inport == \"client-node1.demo\""),
            "{flow}"
        );
        assert!(flow.contains("ip4.dst == 10.16.0.6"), "{flow}");
    }
}
