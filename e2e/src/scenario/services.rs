//! Scenarios 7–10: Services through OVN load balancers with no kube-proxy, checked with real
//! traffic: pods, nodes and hostNetwork pods reach ClusterIPs on both transports; backends
//! follow their endpoints (readiness, termination, scaling to none and back); ClientIP
//! affinity; a deleted Service leaves nothing and a controller restart rewrites nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::api::{self, Stage, stage};
use super::cluster::{Cluster, Component, PodRef, argv};
use super::error::{Result, ScenarioError};
use super::pods::{self, PodSpec, TCP_PORT, UDP_PORT, pod_ref};
use super::traffic::{Answer, From, Proto, exchange, exchange_once, exec_from};
use super::wait;

/// The Service port clients use for TCP.
pub const SERVICE_TCP_PORT: u16 = 80;
/// The Service port clients use for UDP.
pub const SERVICE_UDP_PORT: u16 = 53;
/// The label Services select their pods by.
pub const SELECTOR: &str = "rovn-service";
/// How long endpoints and load balancers may take to follow a change.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(30);

/// Deletes the Service if it exists (an earlier run's), without waiting.
pub async fn delete_service(client: &Client, ns: &str, name: &str) -> Result<()> {
    match Api::<Service>::namespaced(client.clone(), ns)
        .delete(name, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(ScenarioError::kube(
            format!("deleting Service {ns}/{name}"),
            e,
        )),
    }
}

/// A Service selecting pods labelled `rovn-service: <selects>`, TCP 80 and UDP 53 to the
/// servers' echo ports; with `affinity`, ClientIP session affinity. Returns its ClusterIP.
pub async fn create_service(
    client: &Client,
    ns: &str,
    name: &str,
    selects: &str,
    affinity: bool,
) -> Result<Ipv4Addr> {
    let mut fields = json!({"selector": {SELECTOR: selects}});
    if affinity {
        fields["sessionAffinity"] = json!("ClientIP");
        fields["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 600}});
    }
    create_service_with(client, ns, name, fields).await
}

/// A Service with TCP 80 and UDP 53 to the servers' echo ports and the `spec` fields in
/// `fields` (its selector, `internalTrafficPolicy`, …). Returns its ClusterIP.
pub async fn create_service_with(
    client: &Client,
    ns: &str,
    name: &str,
    fields: serde_json::Value,
) -> Result<Ipv4Addr> {
    let mut spec = json!({
        "ports": [
            {"name": "echo-tcp", "protocol": "TCP", "port": SERVICE_TCP_PORT, "targetPort": TCP_PORT},
            {"name": "echo-udp", "protocol": "UDP", "port": SERVICE_UDP_PORT, "targetPort": UDP_PORT},
        ],
    });
    if let (Some(spec), Some(fields)) = (spec.as_object_mut(), fields.as_object()) {
        spec.extend(fields.clone());
    }
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .map_err(|e| ScenarioError::Check(format!("manifest of Service {ns}/{name}: {e}")))?;
    let created = Api::<Service>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &service)
        .await
        .map_err(|e| ScenarioError::kube(format!("creating Service {ns}/{name}"), e))?;
    created
        .spec
        .and_then(|s| s.cluster_ip)
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| ScenarioError::Check(format!("Service {ns}/{name} got no IPv4 ClusterIP")))
}

/// A server pod the Service `selects` picks.
pub(crate) fn backend(ns: &str, name: &str, selects: &str, tool: &str) -> PodSpec {
    PodSpec::server(ns, name, tool).label(SELECTOR, selects)
}

pub(crate) fn ip_of(pod: &Pod) -> Result<Ipv4Addr> {
    pods::pod_ip(pod)
        .ok_or_else(|| ScenarioError::Check(format!("pod {:?} has no podIP", pod.metadata.name)))
}

/// Connects until every one of `servers` has answered (at most `tries` connections after the
/// first answer); every answer must come from one of them and see the client as `client`
/// when given. Returns the answers.
pub(crate) async fn until_all_answer(
    cluster: &impl Cluster,
    from: &From,
    proto: Proto,
    target: SocketAddrV4,
    servers: &[&str],
    client: Option<Ipv4Addr>,
    tries: usize,
) -> Result<Vec<Answer>> {
    let wanted: BTreeSet<&str> = servers.iter().copied().collect();
    let mut answers = vec![exchange(cluster, from, proto, target).await?];
    while answers.len() <= tries {
        let seen: BTreeSet<&str> = answers.iter().map(|a| a.server.as_str()).collect();
        if let Some(stray) = seen.difference(&wanted).next() {
            return Err(ScenarioError::Check(format!(
                "{} {target} from {from} was answered by {stray}, not one of {servers:?}",
                proto.as_str()
            )));
        }
        if let Some(answer) = client.and_then(|c| answers.iter().find(|a| a.client != c)) {
            return Err(ScenarioError::Check(format!(
                "{} {target} from {from}: {} saw client {}, expected {client:?} (NAT?)",
                proto.as_str(),
                answer.server,
                answer.client
            )));
        }
        if seen == wanted {
            return Ok(answers);
        }
        answers.push(exchange_once(cluster, from, proto, target).await?);
    }
    let seen: BTreeSet<&str> = answers.iter().map(|a| a.server.as_str()).collect();
    Err(ScenarioError::Check(format!(
        "{} {target} from {from}: {} connections reached only {seen:?} of {servers:?}",
        proto.as_str(),
        answers.len()
    )))
}

/// `count` connections after the first answer, all answered by `server`.
pub(crate) async fn only(
    cluster: &impl Cluster,
    from: &From,
    proto: Proto,
    target: SocketAddrV4,
    server: &str,
    count: usize,
) -> Result<()> {
    only_among(cluster, from, proto, target, &[server], count).await
}

/// `count` connections after the first answer, all answered by one of `servers`.
async fn only_among(
    cluster: &impl Cluster,
    from: &From,
    proto: Proto,
    target: SocketAddrV4,
    servers: &[&str],
    count: usize,
) -> Result<()> {
    let mut answers = vec![exchange(cluster, from, proto, target).await?];
    for _ in 0..count {
        answers.push(exchange_once(cluster, from, proto, target).await?);
    }
    let mut others: BTreeMap<&str, usize> = BTreeMap::new();
    for answer in answers
        .iter()
        .filter(|a| !servers.contains(&a.server.as_str()))
    {
        *others.entry(answer.server.as_str()).or_default() += 1;
    }
    crate::ensure!(
        others.is_empty(),
        "{} {target} from {from}: expected only {servers:?}, also answered: {others:?}",
        proto.as_str()
    );
    Ok(())
}

/// Waits until a TCP connection to `target` is refused (not left to time out) and returns how
/// long the refused attempt took.
pub(crate) async fn until_refused(
    cluster: &impl Cluster,
    from: &From,
    target: SocketAddrV4,
) -> Result<Duration> {
    let command = argv([
        cluster.podtool().as_str(),
        "connect",
        "tcp",
        &target.to_string(),
        "--message",
        "refuse-me",
        "--timeout",
        "5s",
    ]);
    wait::until(
        FOLLOW_TIMEOUT,
        &format!("tcp {target} refused from {from}"),
        async || {
            let started = Instant::now();
            let out = exec_from(cluster, from, &command).await?;
            let took = started.elapsed();
            if out.success {
                return Err(ScenarioError::Check(format!(
                    "still served: {}",
                    out.stdout.trim()
                )));
            }
            if out.stderr.to_lowercase().contains("refused") {
                return Ok(Some(took));
            }
            Err(ScenarioError::Check(format!(
                "failed, not refused: {}",
                out.stderr.trim()
            )))
        },
    )
    .await
}

/// Waits until the pod's Ready condition is `ready`.
async fn until_ready(client: &Client, pod: &PodRef, ready: bool) -> Result<()> {
    wait::until(
        FOLLOW_TIMEOUT,
        &format!("pod {pod} Ready={ready}"),
        async || {
            let p = api::get_pod(client, pod).await?;
            Ok(p.filter(|p| pods::is_ready(p) == ready).map(|_| ()))
        },
    )
    .await
}

/// Scenario 7: a pod reaches a ClusterIP over TCP and UDP, answered by backends on its own and
/// on the other node, which see its pod IP; a node and a hostNetwork pod reach it through
/// `ovn0` (seen as their node's join address); a pod reaching its own Service is answered by
/// itself (hairpin).
pub async fn cluster_ip(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let Stage {
        client,
        n1,
        n2,
        tool,
    } = stage(cluster, ns).await?;
    let running = api::create_and_wait(
        &client,
        &[
            backend(ns, "web-a", "web", &tool)
                .label("solo", "yes")
                .on(&n1),
            backend(ns, "web-b", "web", &tool).on(&n2),
            PodSpec::idle(ns, "client", &tool).on(&n1),
            PodSpec {
                host_network: true,
                ..PodSpec::idle(ns, "host-client", &tool).on(&n2)
            },
        ],
    )
    .await?;
    let (web_a, client_pod, host_client) = (&running[0], &running[2], &running[3]);
    let vip = create_service(&client, ns, "web", "web", false).await?;
    let solo =
        create_service_with(&client, ns, "solo", json!({"selector": {"solo": "yes"}})).await?;
    let tcp = SocketAddrV4::new(vip, SERVICE_TCP_PORT);
    let udp = SocketAddrV4::new(vip, SERVICE_UDP_PORT);
    let from_pod = From::Pod(pod_ref(client_pod));
    let pod_ip = ip_of(client_pod)?;
    for (proto, target) in [(Proto::Tcp, tcp), (Proto::Udp, udp)] {
        until_all_answer(
            cluster,
            &from_pod,
            proto,
            target,
            &["web-a", "web-b"],
            Some(pod_ip),
            30,
        )
        .await?;
    }
    let join_n1 = super::pod_network::join_ip(cluster, &n1).await?;
    until_all_answer(
        cluster,
        &From::Node(n1.clone()),
        Proto::Tcp,
        tcp,
        &["web-a", "web-b"],
        Some(join_n1),
        30,
    )
    .await?;
    let join_n2 = super::pod_network::join_ip(cluster, &n2).await?;
    until_all_answer(
        cluster,
        &From::Pod(pod_ref(host_client)),
        Proto::Tcp,
        tcp,
        &["web-a", "web-b"],
        Some(join_n2),
        30,
    )
    .await?;
    only(
        cluster,
        &From::Pod(pod_ref(web_a)),
        Proto::Tcp,
        SocketAddrV4::new(solo, SERVICE_TCP_PORT),
        "web-a",
        3,
    )
    .await
}

/// Scenario 8: backends follow their endpoints. Three backends all answer; scaled to none, the
/// next connection is refused at once; two new ones serve again; a backend failing its
/// readiness probe is never chosen and comes back when it passes; a terminating backend that
/// still serves is chosen only once no ready one is left.
pub async fn endpoint_changes(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let Stage {
        client,
        n1,
        n2,
        tool,
    } = stage(cluster, ns).await?;
    let client_pod =
        api::create_and_wait(&client, &[PodSpec::idle(ns, "client", &tool).on(&n1)]).await?;
    let from = From::Pod(pod_ref(&client_pod[0]));
    let vip = create_service(&client, ns, "scale", "scale", false).await?;
    let tcp = SocketAddrV4::new(vip, SERVICE_TCP_PORT);

    let three = ["s1", "s2", "s3"];
    let specs: Vec<PodSpec> = three
        .iter()
        .enumerate()
        .map(|(i, name)| backend(ns, name, "scale", &tool).on(if i % 2 == 0 { &n1 } else { &n2 }))
        .collect();
    api::create_and_wait(&client, &specs).await?;
    until_all_answer(cluster, &from, Proto::Tcp, tcp, &three, None, 30).await?;

    for name in three {
        api::delete_pod(&client, &PodRef::new(ns, name)).await?;
    }
    let took = until_refused(cluster, &from, tcp).await?;
    crate::ensure!(
        took < Duration::from_secs(4),
        "with no endpoint, tcp {tcp} was refused only after {took:?} (the client's timeout is 5 s)"
    );

    // Back to two: one gated by a readiness probe on a file the scenario controls.
    let gate = format!("/tmp/rovn-unready-{ns}-r1");
    let r1 = backend(ns, "r1", "scale", &tool).on(&n2).ready_while(&[
        "sh",
        "-c",
        &format!("test ! -e {gate}"),
    ]);
    let r2 = backend(ns, "r2", "scale", &tool).on(&n1);
    api::create_and_wait(&client, &[r1, r2]).await?;
    until_all_answer(cluster, &from, Proto::Tcp, tcp, &["r1", "r2"], None, 30).await?;
    let r1_ref = PodRef::new(ns, "r1");
    cluster
        .exec_in_pod(&r1_ref, &argv(["touch", gate.as_str()]))
        .await?
        .ok("creating the gate")?;
    until_ready(&client, &r1_ref, false).await?;
    // Endpoints follow the condition; then r1 must never answer.
    wait::until(FOLLOW_TIMEOUT, "r1 to leave the backends", async || {
        only(cluster, &from, Proto::Tcp, tcp, "r2", 5)
            .await
            .map(Some)
    })
    .await?;
    only(cluster, &from, Proto::Tcp, tcp, "r2", 20).await?;
    cluster
        .exec_in_pod(&r1_ref, &argv(["rm", "-f", gate.as_str()]))
        .await?
        .ok("removing the gate")?;
    until_ready(&client, &r1_ref, true).await?;
    until_all_answer(cluster, &from, Proto::Tcp, tcp, &["r1", "r2"], None, 30).await?;

    // A draining backend: terminating but serving, used only when nothing ready is left.
    let drain = PodSpec::serving_argv(
        ns,
        "drain",
        &[
            &tool,
            "serve",
            "--tcp",
            &TCP_PORT.to_string(),
            "--udp",
            &UDP_PORT.to_string(),
            "--drain",
            "60s",
        ],
    )
    .label(SELECTOR, "scale")
    .grace(90)
    .on(&n1);
    api::create_and_wait(&client, &[drain]).await?;
    until_all_answer(
        cluster,
        &from,
        Proto::Tcp,
        tcp,
        &["r1", "r2", "drain"],
        None,
        40,
    )
    .await?;
    let drain_ref = PodRef::new(ns, "drain");
    api::begin_delete(&client, &drain_ref, None).await?;
    wait::until(
        FOLLOW_TIMEOUT,
        "the terminating backend to leave while others are ready",
        async || {
            only_among(cluster, &from, Proto::Tcp, tcp, &["r1", "r2"], 10)
                .await
                .map(Some)
        },
    )
    .await?;
    only_among(cluster, &from, Proto::Tcp, tcp, &["r1", "r2"], 20).await?;
    for name in ["r1", "r2"] {
        api::delete_pod(&client, &PodRef::new(ns, name)).await?;
    }
    wait::until(
        FOLLOW_TIMEOUT,
        "the terminating backend to serve as the last one",
        async || {
            only(cluster, &from, Proto::Tcp, tcp, "drain", 5)
                .await
                .map(Some)
        },
    )
    .await?;
    api::begin_delete(&client, &drain_ref, Some(0)).await?;
    Ok(())
}

/// Scenario 9: with ClientIP affinity a client sticks to one backend over 20 connections;
/// without it, three backends all answer within 30.
pub async fn affinity(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let Stage {
        client,
        n1,
        n2,
        tool,
    } = stage(cluster, ns).await?;
    let names = ["a1", "a2", "a3"];
    let mut specs: Vec<PodSpec> = names
        .iter()
        .enumerate()
        .map(|(i, name)| backend(ns, name, "aff", &tool).on(if i % 2 == 0 { &n1 } else { &n2 }))
        .collect();
    specs.push(PodSpec::idle(ns, "client", &tool).on(&n2));
    let running = api::create_and_wait(&client, &specs).await?;
    let from = From::Pod(pod_ref(&running[3]));
    let spread = create_service(&client, ns, "spread", "aff", false).await?;
    let sticky = create_service(&client, ns, "sticky", "aff", true).await?;
    until_all_answer(
        cluster,
        &from,
        Proto::Tcp,
        SocketAddrV4::new(spread, SERVICE_TCP_PORT),
        &names,
        None,
        30,
    )
    .await?;
    let target = SocketAddrV4::new(sticky, SERVICE_TCP_PORT);
    let first = exchange(cluster, &from, Proto::Tcp, target).await?;
    only(cluster, &from, Proto::Tcp, target, &first.server, 20).await
}

/// Scenario 11: with `internalTrafficPolicy: Local`, a pod and a node reach only the backends
/// on their own node.
pub async fn node_local(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let Stage {
        client,
        n1,
        n2,
        tool,
    } = stage(cluster, ns).await?;
    let running = api::create_and_wait(
        &client,
        &[
            backend(ns, "local-1", "local", &tool).on(&n1),
            backend(ns, "local-2", "local", &tool).on(&n2),
            PodSpec::idle(ns, "client-1", &tool).on(&n1),
            PodSpec::idle(ns, "client-2", &tool).on(&n2),
        ],
    )
    .await?;
    let vip = create_service_with(
        &client,
        ns,
        "local",
        json!({"selector": {SELECTOR: "local"}, "internalTrafficPolicy": "Local"}),
    )
    .await?;
    let tcp = SocketAddrV4::new(vip, SERVICE_TCP_PORT);
    let udp = SocketAddrV4::new(vip, SERVICE_UDP_PORT);
    only(
        cluster,
        &From::Pod(pod_ref(&running[2])),
        Proto::Tcp,
        tcp,
        "local-1",
        10,
    )
    .await?;
    only(
        cluster,
        &From::Pod(pod_ref(&running[3])),
        Proto::Tcp,
        tcp,
        "local-2",
        10,
    )
    .await?;
    only(
        cluster,
        &From::Pod(pod_ref(&running[3])),
        Proto::Udp,
        udp,
        "local-2",
        5,
    )
    .await?;
    only(
        cluster,
        &From::Node(n1.clone()),
        Proto::Tcp,
        tcp,
        "local-1",
        5,
    )
    .await
}

/// The rows (with their UUIDs) of the tables Services write, by table: a converged controller
/// that restarts must leave them exactly as they are (a rewrite with a new value or a
/// re-created row would show; OVSDB drops writes that change nothing).
async fn service_rows(cluster: &impl Cluster) -> Result<BTreeMap<&'static str, String>> {
    let mut rows = BTreeMap::new();
    for table in ["Load_Balancer", "Load_Balancer_Group", "Logical_Switch"] {
        let listed = cluster.nbctl(&["--format=csv", "list", table]).await?;
        rows.insert(table, listed);
    }
    Ok(rows)
}

/// Scenario 10: a deleted Service leaves no load balancer behind, and a controller restart on
/// a converged cluster rewrites no load balancer, group or switch.
pub async fn service_lifecycle(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let Stage {
        client,
        n1,
        n2: _,
        tool,
    } = stage(cluster, ns).await?;
    let running = api::create_and_wait(
        &client,
        &[
            backend(ns, "keep", "life", &tool).on(&n1),
            PodSpec::idle(ns, "client", &tool).on(&n1),
        ],
    )
    .await?;
    let from = From::Pod(pod_ref(&running[1]));
    let keep = create_service(&client, ns, "keep", "life", false).await?;
    let gone = create_service(&client, ns, "gone", "life", false).await?;
    for vip in [keep, gone] {
        until_all_answer(
            cluster,
            &from,
            Proto::Tcp,
            SocketAddrV4::new(vip, SERVICE_TCP_PORT),
            &["keep"],
            None,
            5,
        )
        .await?;
    }
    delete_service(&client, ns, "gone").await?;
    for protocol in ["tcp", "udp"] {
        let name = format!("name=svc.{ns}.gone.{protocol}");
        wait::until(
            FOLLOW_TIMEOUT,
            &format!("load balancer {name} to go"),
            async || {
                let rows = cluster
                    .nbctl(&["--bare", "--columns=_uuid", "find", "Load_Balancer", &name])
                    .await?;
                Ok(rows.trim().is_empty().then_some(()))
            },
        )
        .await?;
    }
    // Converged: nothing changes for a while, then the restart must not change anything.
    let settled = wait::until(FOLLOW_TIMEOUT, "NB to settle", async || {
        let before = service_rows(cluster).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok((service_rows(cluster).await? == before).then_some(before))
    })
    .await?;
    cluster.restart(&Component::Controller).await?;
    until_all_answer(
        cluster,
        &from,
        Proto::Tcp,
        SocketAddrV4::new(keep, SERVICE_TCP_PORT),
        &["keep"],
        None,
        5,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = service_rows(cluster).await?;
    let changed: Vec<&str> = after
        .iter()
        .filter(|(table, rows)| settled.get(*table) != Some(rows))
        .map(|(table, _)| *table)
        .collect();
    crate::ensure!(
        changed.is_empty(),
        "the controller restart rewrote rows of {changed:?}:\nbefore {settled:#?}\nafter {after:#?}"
    );
    Ok(())
}
