//! Egress and private Subnets (issue #14), checked with real traffic: pods reach the world
//! outside the cluster through their own node, seen as that node (`natOutgoing`) or as
//! themselves (`natOutgoing: false`, with the underlay routing the Subnet back); pods reach
//! every node's own address; a private Subnet refuses other Subnets' pods and accepts its own,
//! its nodes and its `allowSubnets`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::process::Child;

use super::api::{self, Stage, stage};
use super::cluster::{Cluster, argv};
use super::demo::DemoPod;
use super::error::{Result, ScenarioError};
use super::pod_network::ip_of;
use super::pods::{self, HOST_TCP_PORT, PodSpec, TCP_PORT, pod_ref};
use super::traffic::{Answer, From, Proto, exchange, exchange_once};
use super::wait;

/// The port the outside listener serves TCP echo on.
pub const OUTSIDE_PORT: u16 = 8080;
/// How long an ACL change may take to reach the datapath.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(30);

/// A node's InternalIP, from its Node object: the address the outside sees masqueraded pods as.
pub async fn node_ip(client: &Client, node: &str) -> Result<Ipv4Addr> {
    let api: Api<Node> = Api::all(client.clone());
    let got = api
        .get(node)
        .await
        .map_err(|e| ScenarioError::kube(format!("reading node {node}"), e))?;
    rovn_api::node::internal_ipv4(&got)
        .ok_or_else(|| ScenarioError::Check(format!("node {node} has no IPv4 InternalIP")))
}

/// Starts a TCP echo listener outside the cluster; it stops when the child is dropped. The
/// greeting it sends names the client address it saw. It logs only warnings: its stderr is the
/// caller's, and the demo's tables must stay readable.
pub async fn outside_listener(cluster: &impl Cluster) -> Result<(Child, SocketAddrV4)> {
    let port = OUTSIDE_PORT.to_string();
    let tool = cluster.podtool();
    let command = ["env", "RUST_LOG=warn", &tool, "serve", "--tcp", &port];
    let child = cluster.spawn_outside(&argv(command)).await?;
    Ok((
        child,
        SocketAddrV4::new(cluster.outside_address(), OUTSIDE_PORT),
    ))
}

/// Pods on both nodes connect to the outside: each is seen as its own node's InternalIP
/// (`ovn-default` has `natOutgoing`). Returns each pod with the address the outside saw.
pub async fn masqueraded_to_node(
    cluster: &impl Cluster,
    ns: &str,
) -> Result<Vec<(String, Ipv4Addr)>> {
    let Stage {
        client,
        n1,
        n2,
        tool,
    } = stage(cluster, ns).await?;
    let running = api::create_and_wait(
        &client,
        &[
            PodSpec::idle(ns, "leaver-1", &tool).on(&n1),
            PodSpec::idle(ns, "leaver-2", &tool).on(&n2),
        ],
    )
    .await?;
    let (_listener, target) = outside_listener(cluster).await?;
    let mut seen = Vec::new();
    for (pod, node) in running.iter().zip([&n1, &n2]) {
        let from = From::Pod(pod_ref(pod));
        let Answer { client: saw, .. } = exchange(cluster, &from, Proto::Tcp, target).await?;
        let expected = node_ip(&client, node).await?;
        crate::ensure!(
            saw == expected,
            "{from} → outside {target} was seen as {saw}, expected its node {node}'s {expected}"
        );
        seen.push((pod_ref(pod).to_string(), saw));
    }
    Ok(seen)
}

/// A pod of a `natOutgoing: false` Subnet connects to the outside and is seen with its own
/// address. The outside routes the Subnet back through the pod's node for the test's length
/// (the operator's underlay routing, as Kube-OVN requires), removed again whatever happened.
pub async fn unmasqueraded(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let Stage {
        client, n1, tool, ..
    } = stage(cluster, ns).await?;
    let cidr = "10.24.0.0/24";
    let subnet = format!("{ns}-direct");
    api::create_subnet(&client, &api::subnet_object(&subnet, cidr, &[], &[ns])?).await?;
    let running =
        api::create_and_wait(&client, &[PodSpec::idle(ns, "direct", &tool).on(&n1)]).await?;
    let pod_ip = ip_of(&running[0])?;
    let via = node_ip(&client, &n1).await?.to_string();
    cluster
        .exec_outside(&argv(["ip", "route", "replace", cidr, "via", &via]))
        .await?
        .ok("adding the outside's route to the Subnet")?;
    let (_listener, target) = outside_listener(cluster).await?;
    let from = From::Pod(pod_ref(&running[0]));
    let answer = exchange(cluster, &from, Proto::Tcp, target).await;
    let removed = cluster
        .exec_outside(&argv(["ip", "route", "del", cidr]))
        .await
        .and_then(|out| out.ok("removing the outside's route to the Subnet"));
    let saw = answer?.client;
    removed?;
    crate::ensure!(
        saw == pod_ip,
        "{from} (natOutgoing: false) → outside was seen as {saw}, expected its own {pod_ip}"
    );
    Ok(())
}

/// Pods reach every node's own address (a hostNetwork listener on each node): a pod of `ns`
/// (`ovn-default`, masqueraded) and one of `unmasqueraded_ns` (a `natOutgoing: false` Subnet's
/// namespace, as [`unmasqueraded`] leaves it), whose packets to another node must enter and
/// leave OVN through that node's `join` port.
pub async fn pods_reach_nodes(
    cluster: &impl Cluster,
    ns: &str,
    unmasqueraded_ns: &str,
) -> Result<()> {
    let Stage {
        client,
        n1,
        n2,
        tool,
    } = stage(cluster, ns).await?;
    let running = api::create_and_wait(
        &client,
        &[
            PodSpec::idle(ns, "visitor", &tool).on(&n1),
            PodSpec::idle(unmasqueraded_ns, "visitor", &tool).on(&n1),
            PodSpec::host_network_server(ns, "host-1", &tool).on(&n1),
            PodSpec::host_network_server(ns, "host-2", &tool).on(&n2),
        ],
    )
    .await?;
    for visitor in &running[..2] {
        let from = From::Pod(pod_ref(visitor));
        for (node, server) in [(&n1, "host-1"), (&n2, "host-2")] {
            let target = SocketAddrV4::new(node_ip(&client, node).await?, HOST_TCP_PORT);
            let answer = exchange(cluster, &from, Proto::Tcp, target).await?;
            crate::ensure!(
                answer.server == server,
                "{from} → node {node} {target} was answered by {}, expected {server}",
                answer.server
            );
        }
    }
    Ok(())
}

/// Sets fields of a Subnet's spec (a merge patch).
async fn patch_subnet(client: &Client, name: &str, spec: Value) -> Result<()> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &api::subnet_resource());
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
    .map_err(|e| ScenarioError::kube(format!("patching Subnet {name}"), e))?;
    Ok(())
}

/// Waits until `from` → `target` is refused twice in a row (a dropped connection times out).
async fn until_refused(cluster: &impl Cluster, from: &From, target: SocketAddrV4) -> Result<()> {
    let mut failures = 0;
    wait::until(
        FOLLOW_TIMEOUT,
        &format!("{from} → {target} to be refused"),
        async || {
            match exchange_once(cluster, from, Proto::Tcp, target).await {
                Ok(_) => failures = 0,
                Err(_) => failures += 1,
            }
            Ok((failures >= 2).then_some(()))
        },
    )
    .await
}

/// A Subnet in use turns private: a pod of another Subnet is refused from then on, while a pod
/// of its own and its node (a kubelet probe's path) are still accepted and the server pod
/// keeps its address; an `allowSubnets` entry for the other Subnet lets it in again.
/// `other_ns` must be a namespace of `ovn-default` (10.16.0.0/16).
pub async fn private_subnet(cluster: &impl Cluster, ns: &str, other_ns: &str) -> Result<()> {
    let Stage {
        client,
        n1,
        n2,
        tool,
    } = stage(cluster, ns).await?;
    api::ensure_namespace(&client, other_ns).await?;
    let subnet = format!("{ns}-private");
    api::create_subnet(
        &client,
        &api::subnet_object(&subnet, "10.25.0.0/24", &[], &[ns])?,
    )
    .await?;
    let running = api::create_and_wait(
        &client,
        &[
            PodSpec::server(ns, "guarded", &tool).on(&n2),
            PodSpec::idle(ns, "insider", &tool).on(&n1),
            PodSpec::idle(other_ns, "stranger", &tool).on(&n1),
        ],
    )
    .await?;
    let (guarded, insider, stranger) = (&running[0], &running[1], &running[2]);
    let target = SocketAddrV4::new(ip_of(guarded)?, TCP_PORT);
    let from_insider = From::Pod(pod_ref(insider));
    let from_stranger = From::Pod(pod_ref(stranger));
    let from_node = From::Node(n1.clone());
    exchange(cluster, &from_stranger, Proto::Tcp, target).await?;

    patch_subnet(&client, &subnet, json!({"private": true})).await?;
    until_refused(cluster, &from_stranger, target).await?;
    for from in [&from_insider, &from_node] {
        exchange(cluster, from, Proto::Tcp, target).await?;
    }
    let now = api::must_get_pod(cluster, &pod_ref(guarded)).await?;
    crate::ensure!(
        pods::uid(&now)? == pods::uid(guarded)? && ip_of(&now)? == ip_of(guarded)?,
        "turning {subnet} private touched pod guarded"
    );

    patch_subnet(&client, &subnet, json!({"allowSubnets": ["10.16.0.0/16"]})).await?;
    exchange(cluster, &from_stranger, Proto::Tcp, target).await?;
    Ok(())
}

/// One demo client's connection to the world outside: the address the outside saw it as, and
/// the address expected (its node's InternalIP, `ovn-default` masquerading).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressReach {
    /// The client pod.
    pub client: DemoPod,
    /// Its node's InternalIP.
    pub node_ip: Ipv4Addr,
    /// The outside listener.
    pub outside: SocketAddrV4,
    /// The source the outside saw, or why nothing answered.
    pub outcome: std::result::Result<Ipv4Addr, String>,
}

/// For `rovn-lab demo`: every client connects to a listener outside the cluster.
pub async fn demo_reaches(cluster: &impl Cluster, clients: &[DemoPod]) -> Result<Vec<EgressReach>> {
    let client = cluster.client();
    let (_listener, outside) = outside_listener(cluster).await?;
    let mut reaches = Vec::new();
    for c in clients {
        let from = From::Pod(c.pod.clone());
        let outcome = exchange(cluster, &from, Proto::Tcp, outside)
            .await
            .map(|a| a.client)
            .map_err(|e| e.to_string());
        reaches.push(EgressReach {
            client: c.clone(),
            node_ip: node_ip(&client, &c.node).await?,
            outside,
            outcome,
        });
    }
    Ok(reaches)
}

/// Whether every client was seen as its node. Pure.
pub fn all_masqueraded(reaches: &[EgressReach]) -> bool {
    !reaches.is_empty()
        && reaches
            .iter()
            .all(|r| r.outcome.as_ref().is_ok_and(|ip| *ip == r.node_ip))
}

/// The demo's egress table, one line per client pod. Pure.
pub fn render_egress_table(reaches: &[EgressReach]) -> String {
    let mut rows = vec![[
        "CLIENT".to_string(),
        "CLIENT NODE/IP".into(),
        "OUTSIDE".into(),
        "RESULT".into(),
        "SOURCE IP SEEN".into(),
    ]];
    for r in reaches {
        let (result, seen) = match &r.outcome {
            Ok(ip) if *ip == r.node_ip => {
                (format!("ok (SNAT to {})", r.client.node), ip.to_string())
            }
            Ok(ip) => (format!("NOT {}'s address", r.client.node), ip.to_string()),
            Err(e) => (format!("FAILED: {e}"), "-".into()),
        };
        rows.push([
            r.client.pod.name.clone(),
            format!("{}/{}", r.client.node, r.client.ip),
            r.outside.to_string(),
            result,
            seen,
        ]);
    }
    super::demo::align(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::cluster::PodRef;

    fn reach(node: &str, ip: [u8; 4], seen: std::result::Result<[u8; 4], &str>) -> EgressReach {
        EgressReach {
            client: DemoPod {
                pod: PodRef::new("demo", &format!("client-{node}")),
                node: node.into(),
                ip: Ipv4Addr::from(ip),
                mac: "0a:58:0a:10:00:05".into(),
            },
            node_ip: Ipv4Addr::new(172, 30, 0, 11),
            outside: SocketAddrV4::new(Ipv4Addr::new(172, 30, 0, 254), OUTSIDE_PORT),
            outcome: seen.map(Ipv4Addr::from).map_err(String::from),
        }
    }

    #[test]
    fn the_egress_table_names_the_snat_and_spots_its_absence() {
        let good = reach("node1", [10, 16, 0, 5], Ok([172, 30, 0, 11]));
        let table = render_egress_table(std::slice::from_ref(&good));
        let row = table.lines().nth(1).unwrap_or_default();
        assert!(
            row.starts_with("client-node1 ")
                && row.contains("172.30.0.254:8080")
                && row.contains("ok (SNAT to node1)")
                && row.ends_with("172.30.0.11"),
            "{table}"
        );
        assert!(all_masqueraded(std::slice::from_ref(&good)));
        let unnated = reach("node1", [10, 16, 0, 5], Ok([10, 16, 0, 5]));
        let failed = reach("node1", [10, 16, 0, 5], Err("timed out"));
        let table = render_egress_table(&[unnated.clone(), failed.clone()]);
        assert!(table.contains("NOT node1's address"), "{table}");
        assert!(table.contains("FAILED: timed out"), "{table}");
        assert!(!all_masqueraded(&[good, unnated]));
        assert!(!all_masqueraded(&[failed]));
        assert!(!all_masqueraded(&[]));
    }
}
