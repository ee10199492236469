//! Issue #14's ingress scenarios: the world outside the cluster ([`Cluster::exec_outside`])
//! reaches Services and pods through the nodes' `ip rovn` tables with real packets. NodePorts
//! with `externalTrafficPolicy: Cluster` answer on every node over TCP and UDP; an externalIP
//! routed to one node; a hostPort; Local policy (the client's address kept, a node without a
//! local endpoint drops, `healthCheckNodePort` says which nodes have one); an established
//! NodePort connection across an agent restart; a deleted Service leaves no frontend behind.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::{Api, Client};
use serde_json::{Value, json};

use super::api::{self, Stage, stage};
use super::cluster::{Cluster, Component, argv};
use super::egress::node_ip;
use super::error::{Result, ScenarioError};
use super::pods::{PodSpec, TCP_PORT, UDP_PORT, pod_ref};
use super::services::{
    SELECTOR, SERVICE_TCP_PORT, backend, create_service_with, delete_service, only,
    until_all_answer, until_refused,
};
use super::traffic::{From, LongConnection, Proto, exchange, exec_from, expect_exchange};
use super::wait;
use crate::podtool::probe::{Verdict, parse_result_line};

/// An externalIP on the lab's underlay that no lab place uses (from 172.30.0.192/28, between
/// the nodes' 172.30.0.11+ and the outside's .254): the outside routes it to one node.
pub const EXTERNAL_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 200);
/// The externalIP of the Service the deletion scenario deletes: its own, so no other
/// scenario's Service holds the same frontend.
pub const DELETED_EXTERNAL_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 201);
/// The hostPort the hostPort scenario publishes its pod's TCP echo on.
pub const HOST_PORT: u16 = 18481;
/// rovn-node's `/metrics` port (its `--listen` default and `deploy/base/node.yaml`'s).
pub const AGENT_METRICS_PORT: u16 = 10665;
/// How long nodes' tables may take to follow a change.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a probe that must be dropped: silence this long is a drop.
const DROP_TIMEOUT: &str = "1s";

async fn read_service(client: &Client, ns: &str, name: &str) -> Result<Service> {
    Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(|e| ScenarioError::kube(format!("reading Service {ns}/{name}"), e))
}

/// The NodePorts of the Service's TCP and UDP echo ports, as the API server allocated them.
pub async fn node_ports(client: &Client, ns: &str, name: &str) -> Result<(u16, u16)> {
    let service = read_service(client, ns, name).await?;
    let ports = service.spec.and_then(|s| s.ports).unwrap_or_default();
    let of = |protocol: &str| {
        ports
            .iter()
            .find(|p| p.protocol.as_deref() == Some(protocol))
            .and_then(|p| p.node_port)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| {
                ScenarioError::Check(format!("Service {ns}/{name} has no {protocol} nodePort"))
            })
    };
    Ok((of("TCP")?, of("UDP")?))
}

/// The `healthCheckNodePort` the API server allocated to a Local LoadBalancer Service.
pub async fn health_check_node_port(client: &Client, ns: &str, name: &str) -> Result<u16> {
    read_service(client, ns, name)
        .await?
        .spec
        .and_then(|s| s.health_check_node_port)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| {
            ScenarioError::Check(format!("Service {ns}/{name} got no healthCheckNodePort"))
        })
}

/// Server pods `<selects>-a` on the first node and `<selects>-b` on the second, both picked
/// by Services selecting `selects`, Running; returns their names.
async fn backends_on_both_nodes(st: &Stage, ns: &str, selects: &str) -> Result<[String; 2]> {
    let names = [format!("{selects}-a"), format!("{selects}-b")];
    api::create_and_wait(
        &st.client,
        &[
            backend(ns, &names[0], selects, &st.tool).on(&st.n1),
            backend(ns, &names[1], selects, &st.tool).on(&st.n2),
        ],
    )
    .await?;
    Ok(names)
}

/// A server pod `name` on the first node and a Service `name` selecting it with the `spec`
/// `fields`; returns the Service's NodePorts (TCP, UDP).
async fn service_on_first_node(
    st: &Stage,
    ns: &str,
    name: &str,
    fields: Value,
) -> Result<(u16, u16)> {
    api::create_and_wait(&st.client, &[backend(ns, name, name, &st.tool).on(&st.n1)]).await?;
    exposed_service(&st.client, ns, name, name, fields).await
}

/// A Service `name` of `type` selecting the backends labelled `selects`, with more `spec`
/// fields; returns its NodePorts (TCP, UDP).
async fn exposed_service(
    client: &Client,
    ns: &str,
    name: &str,
    selects: &str,
    mut fields: Value,
) -> Result<(u16, u16)> {
    fields["selector"] = json!({SELECTOR: selects});
    create_service_with(client, ns, name, fields).await?;
    node_ports(client, ns, name).await
}

/// What `rovn-podtool probe` said of one target, within `timeout`.
async fn probe(
    cluster: &impl Cluster,
    from: &From,
    proto: Proto,
    target: SocketAddrV4,
    timeout: &str,
) -> Result<Verdict> {
    let spec = format!("{}:{target}", proto.as_str());
    let command = argv([
        cluster.podtool().as_str(),
        "probe",
        &spec,
        "--timeout",
        timeout,
    ]);
    let said = exec_from(cluster, from, &command)
        .await?
        .ok(&format!("probe {spec} from {from}"))?;
    said.lines()
        .find_map(parse_result_line)
        .map(|r| r.verdict)
        .ok_or_else(|| ScenarioError::Check(format!("probe {spec}: no verdict in {said:?}")))
}

/// Waits until every probe of `target` from `from` is dropped (silence, not a refusal): a node
/// without a local endpoint of a Local Service must not answer, nor reset.
async fn until_dropped(
    cluster: &impl Cluster,
    from: &From,
    proto: Proto,
    target: SocketAddrV4,
) -> Result<()> {
    wait::until(
        FOLLOW_TIMEOUT,
        &format!("{} {target} dropped for {from}", proto.as_str()),
        async || match probe(cluster, from, proto, target, DROP_TIMEOUT).await? {
            Verdict::Dropped => Ok(Some(())),
            other => Err(ScenarioError::Check(other.word().to_string())),
        },
    )
    .await
}

/// An HTTP status and body from `rovn-podtool connect http`, which prints the body of a 200
/// and fails with `GET PATH answered STATUS: BODY` otherwise. Pure.
pub fn parse_http(out: &super::cluster::ExecOutput) -> Option<(u16, String)> {
    if out.success {
        return Some((200, out.stdout.trim().to_string()));
    }
    let (_, rest) = out.stderr.split_once(" answered ")?;
    let (status, body) = rest.split_once(": ")?;
    Some((status.trim().parse().ok()?, body.trim().to_string()))
}

/// GETs `/healthz` of `target` from `from` until it answers `status` with kube-proxy's body
/// for Service `ns/name` and `endpoints` local endpoints.
async fn until_health(
    cluster: &impl Cluster,
    from: &From,
    target: SocketAddrV4,
    (ns, name): (&str, &str),
    status: u16,
    endpoints: u64,
) -> Result<()> {
    let command = argv([
        cluster.podtool().as_str(),
        "connect",
        "http",
        &target.to_string(),
        "--path",
        "/healthz",
        "--timeout",
        "2s",
    ]);
    let wanted = json!({"service": {"namespace": ns, "name": name}, "localEndpoints": endpoints});
    wait::until(
        FOLLOW_TIMEOUT,
        &format!("health check {target} to answer {status} with {wanted}"),
        async || {
            let out = exec_from(cluster, from, &command).await?;
            let (got, body) = parse_http(&out).ok_or_else(|| {
                ScenarioError::Check(format!("no HTTP answer: {}", out.stderr.trim()))
            })?;
            let parsed: Value = serde_json::from_str(&body)
                .map_err(|e| ScenarioError::Check(format!("{got} with body {body:?}: {e}")))?;
            if got == status && parsed == wanted {
                Ok(Some(()))
            } else {
                Err(ScenarioError::Check(format!("answered {got}: {body}")))
            }
        },
    )
    .await
}

/// Every frontend `(address, port)` of the `ip rovn` table in `nft -j list table ip rovn`'s
/// output: the keys (`address . protocol . port`) of its maps. Pure.
pub fn table_frontends(listing: &Value) -> BTreeSet<(String, u64)> {
    fn walk(v: &Value, out: &mut BTreeSet<(String, u64)>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(parts)) = map.get("concat")
                    && let [Value::String(addr), _, Value::Number(port)] = parts.as_slice()
                    && let Some(port) = port.as_u64()
                {
                    out.insert((addr.clone(), port));
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(listing, &mut out);
    out
}

/// Node `node`'s `ip rovn` table as `nft -j` lists it; `handles` adds the rules' handles
/// (a table rebuilt, even with equal content, lists new ones).
async fn nft_listing(cluster: &impl Cluster, node: &str, handles: bool) -> Result<Value> {
    let mut command = argv(["nft", "-j", "list", "table", "ip", "rovn"]);
    if handles {
        command.insert(1, "-a".to_string());
    }
    let said = cluster
        .exec_on_node(node, &command)
        .await?
        .ok(&format!("listing node {node}'s table ip rovn"))?;
    serde_json::from_str(&said)
        .map_err(|e| ScenarioError::Check(format!("node {node}'s nft listing: {e}")))
}

/// Waits until each node's table holds (`present`) or lacks every one of its `frontends`.
async fn until_frontends(
    cluster: &impl Cluster,
    frontends: &[(String, Vec<(Ipv4Addr, u16)>)],
    present: bool,
) -> Result<()> {
    for (node, frontends) in frontends {
        let what = format!(
            "node {node}'s table ip rovn to {} {frontends:?}",
            if present { "hold" } else { "drop" }
        );
        wait::until(FOLLOW_TIMEOUT, &what, async || {
            let held = table_frontends(&nft_listing(cluster, node, false).await?);
            let wrong: Vec<_> = frontends
                .iter()
                .filter(|(a, p)| held.contains(&(a.to_string(), u64::from(*p))) != present)
                .collect();
            if wrong.is_empty() {
                Ok(Some(()))
            } else {
                Err(ScenarioError::Check(format!("still wrong: {wrong:?}")))
            }
        })
        .await?;
    }
    Ok(())
}

/// Runs `body` while the outside routes `dst` through `via` (a node), and removes the route
/// afterwards whatever `body` returned.
async fn with_outside_route<T>(
    cluster: &impl Cluster,
    dst: Ipv4Addr,
    via: Ipv4Addr,
    body: impl AsyncFnOnce() -> Result<T>,
) -> Result<T> {
    let route = |verb: &str| {
        argv([
            "ip",
            "route",
            verb,
            &format!("{dst}/32"),
            "via",
            &via.to_string(),
        ])
    };
    cluster
        .exec_outside(&route("replace"))
        .await?
        .ok(&format!("routing {dst} via {via} outside"))?;
    let result = body().await;
    let removed = cluster
        .exec_outside(&route("del"))
        .await
        .and_then(|out| out.ok(&format!("removing the outside's route to {dst}")));
    let value = result?;
    removed?;
    Ok(value)
}

/// Scenario I1: a NodePort Service with `externalTrafficPolicy: Cluster` answers the outside
/// on every node's InternalIP, over TCP and UDP, from backends on both nodes, which see the
/// join IP of the node the connection came in through (SNAT, so replies return through it); a
/// pod reaches the NodePort on its own node and on the other, seen as that node's join IP.
pub async fn node_port_cluster(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let st = stage(cluster, ns).await?;
    let backends = backends_on_both_nodes(&st, ns, "np").await?;
    let pod_client = api::create_and_wait(
        &st.client,
        &[PodSpec::idle(ns, "np-client", &st.tool).on(&st.n1)],
    )
    .await?;
    let from_pod = From::Pod(pod_ref(&pod_client[0]));
    let Stage { client, .. } = st;
    let (tcp, udp) = exposed_service(&client, ns, "np", "np", json!({"type": "NodePort"})).await?;
    // The outside over TCP and UDP; a pod over TCP, to its own node's NodePort (through
    // `ovn0` and back) and the other's (its node masquerades it onto the underlay).
    let tries = [
        (&From::Outside, Proto::Tcp, tcp),
        (&From::Outside, Proto::Udp, udp),
        (&from_pod, Proto::Tcp, tcp),
    ];
    for node in cluster.nodes() {
        let ip = node_ip(&client, &node).await?;
        let join = super::pod_network::join_ip(cluster, &node).await?;
        for (from, proto, port) in tries {
            until_all_answer(
                cluster,
                from,
                proto,
                SocketAddrV4::new(ip, port),
                &[&backends[0], &backends[1]],
                Some(join),
                30,
            )
            .await?;
        }
    }
    Ok(())
}

/// Scenario I2: an externalIP answers on the node the outside routes it to (a /32 route via
/// that node's underlay address, added for the scenario and removed after), on the Service
/// port, from backends on both nodes.
pub async fn external_ip(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let st = stage(cluster, ns).await?;
    let backends = backends_on_both_nodes(&st, ns, "ext").await?;
    let Stage { client, n2, .. } = st;
    create_service_with(
        &client,
        ns,
        "ext",
        json!({"selector": {SELECTOR: "ext"}, "externalIPs": [EXTERNAL_IP.to_string()]}),
    )
    .await?;
    let via = node_ip(&client, &n2).await?;
    let join = super::pod_network::join_ip(cluster, &n2).await?;
    with_outside_route(cluster, EXTERNAL_IP, via, async || {
        until_all_answer(
            cluster,
            &From::Outside,
            Proto::Tcp,
            SocketAddrV4::new(EXTERNAL_IP, SERVICE_TCP_PORT),
            &[&backends[0], &backends[1]],
            Some(join),
            30,
        )
        .await
        .map(|_| ())
    })
    .await
}

/// Scenario I3: a pod's hostPorts (TCP and UDP) on its node's InternalIP reach that pod from
/// outside, which
/// it sees as the outside's own address (a hostPort keeps the client's address, as the CNI
/// `portmap` plugin does); the other node does not answer on that port.
pub async fn host_port(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let Stage {
        client,
        n1,
        n2,
        tool,
    } = stage(cluster, ns).await?;
    api::create_and_wait(
        &client,
        &[PodSpec::server(ns, "hp", &tool)
            .host_port(TCP_PORT, "TCP", HOST_PORT)
            .host_port(UDP_PORT, "UDP", HOST_PORT)
            .on(&n2)],
    )
    .await?;
    let on_n2 = SocketAddrV4::new(node_ip(&client, &n2).await?, HOST_PORT);
    for proto in [Proto::Tcp, Proto::Udp] {
        expect_exchange(
            cluster,
            &From::Outside,
            proto,
            on_n2,
            "hp",
            cluster.outside_address(),
        )
        .await?;
    }
    only(cluster, &From::Outside, Proto::Tcp, on_n2, "hp", 5).await?;
    let on_n1 = SocketAddrV4::new(node_ip(&client, &n1).await?, HOST_PORT);
    until_refused(cluster, &From::Outside, on_n1).await?;
    Ok(())
}

/// Scenario I4: a LoadBalancer Service with `externalTrafficPolicy: Local` and its one backend
/// on the first node: its `healthCheckNodePort` answers 200 with one local endpoint there and
/// 503 with none on the second node (kube-proxy's JSON body); the second node drops the
/// NodePort (silence, not a refusal, so a client's load balancer tries elsewhere); the first
/// node's NodePort reaches the backend over TCP and UDP, which sees the outside's own address
/// (no SNAT; the reply leaves OVN through this node by the controller's reroute policy).
/// Deleted, the Service's health check port is closed and its frontends are gone.
pub async fn local_policy(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let st = stage(cluster, ns).await?;
    let (tcp, udp) = service_on_first_node(
        &st,
        ns,
        "loc",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local"}),
    )
    .await?;
    let Stage { client, n1, n2, .. } = st;
    let health = health_check_node_port(&client, ns, "loc").await?;
    let (ip1, ip2) = (node_ip(&client, &n1).await?, node_ip(&client, &n2).await?);
    until_health(
        cluster,
        &From::Outside,
        SocketAddrV4::new(ip1, health),
        (ns, "loc"),
        200,
        1,
    )
    .await?;
    until_health(
        cluster,
        &From::Outside,
        SocketAddrV4::new(ip2, health),
        (ns, "loc"),
        503,
        0,
    )
    .await?;
    for (proto, port) in [(Proto::Tcp, tcp), (Proto::Udp, udp)] {
        until_dropped(cluster, &From::Outside, proto, SocketAddrV4::new(ip2, port)).await?;
    }
    let outside = cluster.outside_address();
    for (proto, port) in [(Proto::Tcp, tcp), (Proto::Udp, udp)] {
        expect_exchange(
            cluster,
            &From::Outside,
            proto,
            SocketAddrV4::new(ip1, port),
            "loc",
            outside,
        )
        .await?;
    }
    // Deleted, the Service leaves no health check server and no Local frontend behind.
    delete_service(&client, ns, "loc").await?;
    until_refused(cluster, &From::Outside, SocketAddrV4::new(ip1, health)).await?;
    until_frontends(
        cluster,
        &[
            (n1, vec![(ip1, tcp), (ip1, udp)]),
            (n2, vec![(ip2, tcp), (ip2, udp)]),
        ],
        false,
    )
    .await?;
    Ok(())
}

/// How many table syncs the agent at `node_ip` counted, by result (`applied`, `unchanged`,
/// `error`), from its `/metrics` read on node `node`. Pure parsing in [`sync_counts`].
async fn agent_syncs(
    cluster: &impl Cluster,
    node: &str,
    node_ip: Ipv4Addr,
) -> Result<BTreeMap<String, u64>> {
    let target = SocketAddrV4::new(node_ip, AGENT_METRICS_PORT);
    let command = argv([
        cluster.podtool().as_str(),
        "connect",
        "http",
        &target.to_string(),
        "--path",
        "/metrics",
    ]);
    let text = exec_from(cluster, &From::Node(node.to_string()), &command)
        .await?
        .ok(&format!("reading {target}/metrics on node {node}"))?;
    Ok(sync_counts(&text))
}

/// The `rovn_node_nft_sync_duration_seconds_count` samples of a metrics text, by result. Pure.
pub fn sync_counts(metrics: &str) -> BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("rovn_node_nft_sync_duration_seconds_count{")?;
            let (labels, value) = rest.split_once('}')?;
            let result = labels
                .split(',')
                .find_map(|l| l.strip_prefix("result=\""))?
                .trim_end_matches('"');
            Some((result.to_string(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// Scenario I5: a TCP connection from outside to a NodePort keeps flowing while the agent of
/// the node it entered through restarts (conntrack holds its NAT), new connections are
/// answered afterwards, and the restarted agent, finding its table converged, leaves it as it
/// was (its first sync is `unchanged`, the rules keep their handles).
pub async fn agent_restart(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let st = stage(cluster, ns).await?;
    let backends = backends_on_both_nodes(&st, ns, "ar").await?;
    let Stage { client, n1, .. } = st;
    let (tcp, _) = exposed_service(&client, ns, "ar", "ar", json!({"type": "NodePort"})).await?;
    let ip1 = node_ip(&client, &n1).await?;
    let target = SocketAddrV4::new(ip1, tcp);
    exchange(cluster, &From::Outside, Proto::Tcp, target).await?;
    let (mut conn, greeting) = LongConnection::open_from(cluster, &From::Outside, target).await?;
    conn.round_trip("before the restart").await?;
    let before = nft_listing(cluster, &n1, true).await?;
    cluster.restart(&Component::Agent(n1.clone())).await?;
    conn.round_trip("after the restart").await?;
    let again = exchange(cluster, &From::Outside, Proto::Tcp, target).await?;
    crate::ensure!(
        backends.contains(&greeting.server) && backends.contains(&again.server),
        "NodePort {target} answered by {} and {}, not the Service's backends",
        greeting.server,
        again.server
    );
    let syncs = wait::until(
        FOLLOW_TIMEOUT,
        &format!("the restarted agent on {n1} to sync its table"),
        async || {
            let syncs = agent_syncs(cluster, &n1, ip1).await?;
            Ok((syncs.values().sum::<u64>() > 0).then_some(syncs))
        },
    )
    .await?;
    crate::ensure!(
        syncs.get("applied").copied().unwrap_or(0) == 0,
        "the restarted agent on {n1} rewrote its converged table: syncs {syncs:?}"
    );
    let after = nft_listing(cluster, &n1, true).await?;
    crate::ensure!(
        before == after,
        "node {n1}'s table changed across the agent restart:\nbefore {before}\nafter {after}"
    );
    Ok(())
}

/// Scenario I6: a deleted NodePort Service with an externalIP, whose frontends every node's
/// table held, leaves none in any node's table, and its NodePort is refused from outside
/// afterwards.
pub async fn deleted_service(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let st = stage(cluster, ns).await?;
    let (tcp, udp) = service_on_first_node(
        &st,
        ns,
        "del",
        json!({"type": "NodePort", "externalIPs": [DELETED_EXTERNAL_IP.to_string()]}),
    )
    .await?;
    let Stage { client, n1, .. } = st;
    // Every node answers the externalIP, and the NodePorts on its own address.
    let mut frontends = Vec::new();
    for node in cluster.nodes() {
        let ip = node_ip(&client, &node).await?;
        frontends.push((
            node,
            vec![
                (DELETED_EXTERNAL_IP, SERVICE_TCP_PORT),
                (ip, tcp),
                (ip, udp),
            ],
        ));
    }
    let target = SocketAddrV4::new(node_ip(&client, &n1).await?, tcp);
    exchange(cluster, &From::Outside, Proto::Tcp, target).await?;
    until_frontends(cluster, &frontends, true).await?;
    delete_service(&client, ns, "del").await?;
    until_frontends(cluster, &frontends, false).await?;
    until_refused(cluster, &From::Outside, target).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::ExecOutput;

    #[test]
    fn frontends_are_the_map_keys_of_the_listing() {
        let listing = json!({"nftables": [
            {"map": {"name": "dnat_addrs", "elem": [
                [{"concat": ["172.30.0.11", "tcp", 30001]}, "10.96.0.9"],
            ]}},
            {"map": {"name": "dnat_chains", "elem": [
                [{"concat": ["172.30.0.200", 17, 80]}, {"drop": null}],
            ]}},
            {"rule": {"expr": [{"dnat": {"addr": {"map": {"data": {"set": [
                [0, {"concat": ["10.16.0.5", 8080]}],
            ]}}}}}]}},
        ]});
        let got = table_frontends(&listing);
        assert_eq!(
            got,
            BTreeSet::from([
                ("172.30.0.11".to_string(), 30001),
                ("172.30.0.200".to_string(), 80)
            ])
        );
    }

    #[test]
    fn sync_counts_read_by_result() {
        let text = "# HELP x\nrovn_node_nft_sync_duration_seconds_count{result=\"unchanged\"} 2\n\
                    rovn_node_nft_sync_duration_seconds_sum{result=\"unchanged\"} 0.3\n\
                    rovn_node_nft_sync_duration_seconds_count{result=\"applied\"} 1\n";
        let counts = sync_counts(text);
        assert_eq!(
            counts,
            BTreeMap::from([("applied".to_string(), 1), ("unchanged".to_string(), 2)])
        );
    }

    #[test]
    fn http_answers_read_from_podtool_output() {
        let ok = ExecOutput {
            success: true,
            stdout: "{\"a\":1}\n".into(),
            stderr: String::new(),
        };
        assert_eq!(parse_http(&ok), Some((200, "{\"a\":1}".into())));
        let unavailable = ExecOutput {
            success: false,
            stdout: String::new(),
            stderr: "rovn-podtool: 172.30.0.12:32412: GET /healthz answered 503: {\"x\":0}\n"
                .into(),
        };
        assert_eq!(parse_http(&unavailable), Some((503, "{\"x\":0}".into())));
        let refused = ExecOutput {
            success: false,
            stdout: String::new(),
            stderr: "connect to 1.2.3.4:5: Connection refused".into(),
        };
        assert_eq!(parse_http(&refused), None);
    }
}
