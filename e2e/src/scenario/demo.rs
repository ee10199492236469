//! The lab demo: a server and a client pod on every node in namespace `demo`, every client
//! talking to every server over TCP and UDP, and a reachability table of what happened; then a
//! Service over the servers that every client reaches through its ClusterIP (which backends
//! answered), and one with no endpoint, whose clients are refused at once; last a
//! NetworkPolicy that lets only the first node's client reach the servers, and what each client
//! gets then. Apart from the pods' tables, the outside reaches a NodePort Service over the
//! servers on every node ([`node_port_reaches`]).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::api;
use super::cluster::{Cluster, PodRef};
use super::error::{Result, ScenarioError};
use super::netpol::objects::{create_policy, delete_policies, policy};
use super::pods::{self, PodSpec, TCP_PORT, UDP_PORT};
use super::services::{self, SERVICE_TCP_PORT};
use super::traffic::{From, Proto, exchange, exchange_once};

/// The namespace the demo's pods live in.
pub const NAMESPACE: &str = "demo";
/// The Service over every demo server.
pub const ECHO_SERVICE: &str = "echo";
/// A Service whose selector matches no pod.
pub const EMPTY_SERVICE: &str = "nobody";
/// Connections each client makes to the echo Service.
const SERVICE_TRIES: usize = 6;
/// The NetworkPolicy the demo adds last: the servers accept TCP only from the first client.
pub const POLICY: &str = "servers-from-first-client";
/// The label telling the demo's clients apart (its value: the client's node).
const CLIENT_LABEL: &str = "demo-client";
/// How often a client that the policy blocks is tried before the demo says it is not blocked.
const POLICY_TRIES: usize = 10;

/// What a client got from a Service's ClusterIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceOutcome {
    /// The servers that answered, one per connection.
    Answered(Vec<String>),
    /// Refused, after this long.
    Refused(Duration),
}

/// One client's connections to one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceReach {
    /// The Service's name.
    pub service: String,
    /// Its ClusterIP and port.
    pub vip: SocketAddrV4,
    /// The client pod.
    pub client: DemoPod,
    /// What happened, or why it could not be measured.
    pub outcome: std::result::Result<ServiceOutcome, String>,
}

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
    /// Every client's connections to the two Services.
    pub services: Vec<ServiceReach>,
    /// Every client's TCP exchange with the first server under [`POLICY`].
    pub policy: Vec<PolicyReach>,
    /// Every client's connection to the world outside the cluster.
    pub egress: Vec<super::egress::EgressReach>,
}

/// One client's TCP exchange with a server that [`POLICY`] isolates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyReach {
    /// The client pod.
    pub client: DemoPod,
    /// The server pod.
    pub server: DemoPod,
    /// Whether the policy allows this client.
    pub allowed: bool,
    /// The source the server saw, or why nothing answered.
    pub outcome: std::result::Result<Ipv4Addr, String>,
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
    delete_policies(&client, &[NAMESPACE]).await?;
    let mut specs = Vec::new();
    for node in cluster.nodes() {
        specs.push(
            PodSpec::server(NAMESPACE, &format!("server-{node}"), &tool)
                .label(services::SELECTOR, ECHO_SERVICE)
                .on(&node),
        );
        specs.push(
            PodSpec::idle(NAMESPACE, &format!("client-{node}"), &tool)
                .label(CLIENT_LABEL, &node)
                .on(&node),
        );
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
    let services = service_reaches(cluster, &clients).await?;
    let policy = policy_reaches(cluster, &clients, &servers).await?;
    let egress = super::egress::demo_reaches(cluster, &clients).await?;
    Ok(Demo {
        servers,
        clients,
        reaches,
        services,
        policy,
        egress,
    })
}

/// Adds [`POLICY`] (the servers take TCP only from the first client) and has every client try
/// the first server: once a blocked client is seen blocked, so the table shows the policy in
/// force, not on its way.
async fn policy_reaches(
    cluster: &impl Cluster,
    clients: &[DemoPod],
    servers: &[DemoPod],
) -> Result<Vec<PolicyReach>> {
    let (Some(first), Some(server)) = (clients.first(), servers.first()) else {
        return Ok(Vec::new());
    };
    let spec = serde_json::json!({
        "podSelector": {"matchLabels": {services::SELECTOR: ECHO_SERVICE}},
        "ingress": [{
            "from": [{"podSelector": {"matchLabels": {CLIENT_LABEL: first.node}}}],
            "ports": [{"protocol": "TCP", "port": TCP_PORT}],
        }],
    });
    create_policy(&cluster.client(), &policy(NAMESPACE, POLICY, spec)?).await?;
    let target = SocketAddrV4::new(server.ip, TCP_PORT);
    let try_once = async |c: &DemoPod| {
        exchange_once(cluster, &From::Pod(c.pod.clone()), Proto::Tcp, target)
            .await
            .map(|a| a.client)
            .map_err(|e| e.to_string())
    };
    if let Some(blocked) = clients.get(1) {
        for _ in 0..POLICY_TRIES {
            if try_once(blocked).await.is_err() {
                break;
            }
        }
    }
    let mut reaches = Vec::new();
    for c in clients {
        reaches.push(PolicyReach {
            client: c.clone(),
            server: server.clone(),
            allowed: c.pod == first.pod,
            outcome: try_once(c).await,
        });
    }
    Ok(reaches)
}

/// The policy table: what each client got from the isolated server, and whether that is what
/// the policy says. Pure.
pub fn render_policy_table(demo: &Demo) -> String {
    let mut rows = vec![[
        "CLIENT".to_string(),
        "SERVER".into(),
        "POLICY SAYS".into(),
        "RESULT".into(),
    ]];
    for r in &demo.policy {
        let says = if r.allowed { "allow" } else { "deny" };
        let result = match (&r.outcome, r.allowed) {
            (Ok(seen), true) => format!("allowed (server saw {seen})"),
            (Err(_), false) => "blocked".to_string(),
            (Ok(seen), false) => format!("NOT BLOCKED (server saw {seen})"),
            (Err(e), true) => format!("FAILED: {e}"),
        };
        rows.push([
            format!("{} ({})", r.client.pod.name, r.client.ip),
            format!("{}:{TCP_PORT}/tcp", r.server.pod.name),
            says.to_string(),
            result,
        ]);
    }
    align(&rows)
}

/// Every client to the echo Service ([`SERVICE_TRIES`] connections) and to the empty one.
async fn service_reaches(cluster: &impl Cluster, clients: &[DemoPod]) -> Result<Vec<ServiceReach>> {
    let client = cluster.client();
    for name in [ECHO_SERVICE, EMPTY_SERVICE] {
        services::delete_service(&client, NAMESPACE, name).await?;
    }
    let echo =
        services::create_service(&client, NAMESPACE, ECHO_SERVICE, ECHO_SERVICE, false).await?;
    let empty =
        services::create_service(&client, NAMESPACE, EMPTY_SERVICE, EMPTY_SERVICE, false).await?;
    let (echo, empty) = (
        SocketAddrV4::new(echo, SERVICE_TCP_PORT),
        SocketAddrV4::new(empty, SERVICE_TCP_PORT),
    );
    let mut reaches = Vec::new();
    for c in clients {
        let from = From::Pod(c.pod.clone());
        let mut answered = Vec::new();
        let mut failure = None;
        for attempt in 0..SERVICE_TRIES {
            let answer = if attempt == 0 {
                exchange(cluster, &from, Proto::Tcp, echo).await
            } else {
                exchange_once(cluster, &from, Proto::Tcp, echo).await
            };
            match answer {
                Ok(a) => answered.push(a.server),
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        reaches.push(ServiceReach {
            service: ECHO_SERVICE.into(),
            vip: echo,
            client: c.clone(),
            outcome: failure.map_or(Ok(ServiceOutcome::Answered(answered)), Err),
        });
        let refused = services::until_refused(cluster, &from, empty)
            .await
            .map(ServiceOutcome::Refused)
            .map_err(|e| e.to_string());
        reaches.push(ServiceReach {
            service: EMPTY_SERVICE.into(),
            vip: empty,
            client: c.clone(),
            outcome: refused,
        });
    }
    Ok(reaches)
}

/// The Services table: which backends answered each client, and the refusals. Pure.
pub fn render_service_table(demo: &Demo) -> String {
    let mut rows = vec![[
        "SERVICE".to_string(),
        "CLUSTER-IP:PORT".into(),
        "CLIENT".into(),
        "RESULT".into(),
    ]];
    for r in &demo.services {
        let result = match &r.outcome {
            Ok(ServiceOutcome::Answered(servers)) => format!("answered by {}", servers.join(" ")),
            Ok(ServiceOutcome::Refused(after)) => format!(
                "refused in {:.1} ms (no endpoint)",
                after.as_secs_f64() * 1000.0
            ),
            Err(e) => format!("FAILED: {e}"),
        };
        rows.push([
            format!("svc/{}/{}", NAMESPACE, r.service),
            r.vip.to_string(),
            r.client.pod.name.clone(),
            result,
        ]);
    }
    align(&rows)
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
    align(&rows)
}

/// Rows as left-aligned columns two spaces apart. Pure.
pub(super) fn align<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
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

/// Whether every exchange succeeded with the client's own address seen, every client reached
/// the echo Service and was refused by the empty one. Pure.
pub fn all_reached(demo: &Demo) -> bool {
    demo.reaches
        .iter()
        .all(|r| matches!(&r.outcome, Ok((ip, _)) if *ip == r.client.ip))
        && demo.services.iter().all(|r| match &r.outcome {
            Ok(ServiceOutcome::Answered(servers)) => {
                r.service == ECHO_SERVICE && !servers.is_empty()
            }
            Ok(ServiceOutcome::Refused(_)) => r.service == EMPTY_SERVICE,
            Err(_) => false,
        })
        && !demo.policy.is_empty()
        && demo.policy.iter().all(|r| r.outcome.is_ok() == r.allowed)
        && super::egress::all_masqueraded(&demo.egress)
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

/// The NodePort Service over every demo server, reached from outside the cluster.
pub const NODE_PORT_SERVICE: &str = "echo-nodeport";

/// The outside's TCP exchange with one node's NodePort of [`NODE_PORT_SERVICE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePortReach {
    /// The node whose address was the target.
    pub node: String,
    /// The node's InternalIP and the NodePort.
    pub target: SocketAddrV4,
    /// The server that answered and the source address it saw, or why nothing answered.
    pub outcome: std::result::Result<(String, Ipv4Addr), String>,
}

/// Creates [`NODE_PORT_SERVICE`] (replacing an earlier demo's) and has the outside connect
/// to its NodePort on every node: the ingress path through the node's nftables table.
pub async fn node_port_reaches(cluster: &impl Cluster) -> Result<Vec<NodePortReach>> {
    let client = cluster.client();
    services::delete_service(&client, NAMESPACE, NODE_PORT_SERVICE).await?;
    services::create_service_with(
        &client,
        NAMESPACE,
        NODE_PORT_SERVICE,
        serde_json::json!({"type": "NodePort", "selector": {services::SELECTOR: ECHO_SERVICE}}),
    )
    .await?;
    let (port, _) = super::ingress::node_ports(&client, NAMESPACE, NODE_PORT_SERVICE).await?;
    let mut reaches = Vec::new();
    for node in cluster.nodes() {
        let target = SocketAddrV4::new(super::egress::node_ip(&client, &node).await?, port);
        let outcome = exchange(cluster, &From::Outside, Proto::Tcp, target)
            .await
            .map(|a| (a.server, a.client))
            .map_err(|e| e.to_string());
        reaches.push(NodePortReach {
            node,
            target,
            outcome,
        });
    }
    Ok(reaches)
}

/// The NodePort table: which server answered the outside on each node, and the source it
/// saw. Pure.
pub fn render_node_port_table(reaches: &[NodePortReach], outside: Ipv4Addr) -> String {
    let mut rows = vec![[
        "CLIENT".to_string(),
        "NODE".into(),
        "NODE-IP:NODEPORT".into(),
        "RESULT".into(),
        "SOURCE IP SEEN".into(),
    ]];
    for r in reaches {
        let (result, seen) = match &r.outcome {
            Ok((server, seen)) => (format!("answered by {server}"), seen.to_string()),
            Err(e) => (format!("FAILED: {e}"), "-".into()),
        };
        rows.push([
            format!("outside/{outside}"),
            r.node.clone(),
            r.target.to_string(),
            result,
            seen,
        ]);
    }
    align(&rows)
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
            services: vec![
                ServiceReach {
                    service: ECHO_SERVICE.into(),
                    vip: SocketAddrV4::new(Ipv4Addr::new(10, 96, 0, 20), 80),
                    client: c.clone(),
                    outcome: Ok(ServiceOutcome::Answered(vec!["server-node2".into()])),
                },
                ServiceReach {
                    service: EMPTY_SERVICE.into(),
                    vip: SocketAddrV4::new(Ipv4Addr::new(10, 96, 0, 21), 80),
                    client: c.clone(),
                    outcome: Ok(ServiceOutcome::Refused(Duration::from_millis(3))),
                },
            ],
            policy: vec![
                PolicyReach {
                    client: c.clone(),
                    server: s.clone(),
                    allowed: true,
                    outcome: Ok(c.ip),
                },
                PolicyReach {
                    client: s.clone(),
                    server: s.clone(),
                    allowed: false,
                    outcome: Ok(s.ip),
                },
            ],
            egress: Vec::new(),
        };
        let policy = render_policy_table(&demo);
        assert!(
            policy.contains("allowed (server saw 10.16.0.5)"),
            "{policy}"
        );
        assert!(policy.contains("NOT BLOCKED"), "{policy}");
        let services = render_service_table(&demo);
        let echo = services.lines().nth(1).unwrap_or_default();
        assert!(
            echo.starts_with("svc/demo/echo ") && echo.contains(" 10.96.0.20:80 "),
            "{services}"
        );
        assert!(services.contains("answered by server-node2"), "{services}");
        assert!(services.contains("refused in 3.0 ms"), "{services}");
        let table = render_table(&demo);
        assert!(table.lines().nth(1).unwrap().contains("ok"), "{table}");
        assert!(table.contains("10.16.0.5"), "{table}");
        assert!(table.contains("FAILED: timed out"), "{table}");
        assert!(!all_reached(&demo));
        let ingress = render_node_port_table(
            &[
                NodePortReach {
                    node: "node1".into(),
                    target: SocketAddrV4::new(Ipv4Addr::new(172, 30, 0, 11), 30001),
                    outcome: Ok(("server-node2".into(), Ipv4Addr::new(100, 64, 0, 2))),
                },
                NodePortReach {
                    node: "node2".into(),
                    target: SocketAddrV4::new(Ipv4Addr::new(172, 30, 0, 12), 30001),
                    outcome: Err("timed out".into()),
                },
            ],
            Ipv4Addr::new(172, 30, 0, 254),
        );
        let row = ingress.lines().nth(1).unwrap_or_default();
        assert!(
            row.starts_with("outside/172.30.0.254  node1  172.30.0.11:30001  answered by server-node2  100.64.0.2"),
            "{ingress}"
        );
        assert!(ingress.contains("FAILED: timed out"), "{ingress}");
        let flow = trace_flow(&c, &s);
        assert!(
            flow.starts_with("inport == \"client-node1.demo\""),
            "{flow}"
        );
        assert!(flow.contains("ip4.dst == 10.16.0.6"), "{flow}");
    }
}
