//! LoadBalancer Services from the world outside the cluster (issue #14): an address of the
//! controller's pool in `status.loadBalancer.ingress`, announced by one node (its kernel answers
//! ARP for it on the underlay), reached over TCP from the outside host; a foreign
//! `loadBalancerClass` left alone; a deleted Service's address given to the next; an address
//! another Service's status claims given back to the older; the announcing node taken out and
//! the address following to another; a controller restart moving nothing.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use rovn_api::names;
use rovn_api::names::lb_events as lb;
use serde_json::json;

use super::api::{self, Stage, stage};
use super::cluster::{Cluster, Component, argv};
use super::error::{Result, ScenarioError};
use super::integrity::{is_about, until_event};
use super::pods::PodSpec;
use super::services::{SELECTOR, SERVICE_TCP_PORT, create_service_with, delete_service};
use super::traffic::{Answer, Proto, connect_argv, parse_answer};
use super::wait;

/// How long an address, an announcement or a move may take.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(30);
/// A class that is not rovn's.
const FOREIGN_CLASS: &str = "example.com/other-lb";

/// A LoadBalancer Service of the pods labelled `rovn-service: <selects>` with the extra `spec`
/// fields in `fields`.
async fn create_lb(
    client: &Client,
    ns: &str,
    name: &str,
    selects: &str,
    fields: serde_json::Value,
) -> Result<()> {
    let mut spec = json!({"type": "LoadBalancer", "selector": {SELECTOR: selects}});
    if let (Some(spec), Some(fields)) = (spec.as_object_mut(), fields.as_object()) {
        spec.extend(fields.clone());
    }
    create_service_with(client, ns, name, spec).await.map(drop)
}

async fn get_service(client: &Client, ns: &str, name: &str) -> Result<Option<Service>> {
    Api::<Service>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| ScenarioError::kube(format!("reading Service {ns}/{name}"), e))
}

/// The Service's address (the first `status.loadBalancer.ingress[].ip`) and its announcer.
fn lb_of(service: &Service) -> (Option<Ipv4Addr>, Option<String>) {
    let ip = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|i| i.first())
        .and_then(|i| i.ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    let announcer = service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::LB_NODE_ANNOTATION).cloned());
    (ip, announcer)
}

/// Waits until the Service has an address of the pool and an announcer that `accept` takes.
async fn until_announced(
    client: &Client,
    ns: &str,
    name: &str,
    accept: impl Fn(Ipv4Addr, &str) -> bool,
) -> Result<(Ipv4Addr, String)> {
    let pool = pool()?;
    wait::until(
        FOLLOW_TIMEOUT,
        &format!("Service {ns}/{name} to get a pool address and an announcer"),
        async || {
            let service = get_service(client, ns, name).await?;
            let Some((Some(ip), Some(node))) = service.as_ref().map(lb_of) else {
                return Ok(None);
            };
            Ok((pool.contains(&ip) && accept(ip, &node)).then_some((ip, node)))
        },
    )
    .await
}

/// Each Service's address, announcer and resourceVersion (a write that changes nothing still
/// shows in the last).
async fn lb_records(
    client: &Client,
    ns: &str,
    services: &[&str],
) -> Result<Vec<(Option<Ipv4Addr>, Option<String>, Option<String>)>> {
    let mut records = Vec::new();
    for name in services {
        let service = get_service(client, ns, name)
            .await?
            .ok_or_else(|| ScenarioError::Check(format!("Service {ns}/{name} is gone")))?;
        let (ip, announcer) = lb_of(&service);
        records.push((ip, announcer, service.metadata.resource_version.clone()));
    }
    Ok(records)
}

/// One TCP exchange from the outside host with `ip`'s Service port.
async fn outside_once(cluster: &impl Cluster, ip: Ipv4Addr) -> Result<Answer> {
    let target = SocketAddrV4::new(ip, SERVICE_TCP_PORT);
    let command = connect_argv(cluster, Proto::Tcp, target);
    let started = Instant::now();
    let out = cluster.exec_outside(&command).await?;
    let said = out.ok(&format!("tcp {target} from outside"))?;
    parse_answer(&said, started.elapsed())
}

/// Retries [`outside_once`] until it is answered by one of `servers`.
async fn outside_reaches(cluster: &impl Cluster, ip: Ipv4Addr, servers: &[&str]) -> Result<Answer> {
    wait::until(
        FOLLOW_TIMEOUT,
        &format!("{ip}:{SERVICE_TCP_PORT} to answer the outside"),
        async || {
            let answer = outside_once(cluster, ip).await?;
            if servers.contains(&answer.server.as_str()) {
                Ok(Some(answer))
            } else {
                Err(ScenarioError::Check(format!(
                    "answered by {}, not one of {servers:?}",
                    answer.server
                )))
            }
        },
    )
    .await
}

/// The node's IPv4 addresses, one line each (`ip -o`).
async fn node_addresses(cluster: &impl Cluster, node: &str) -> Result<String> {
    cluster
        .exec_on_node(node, &argv(["ip", "-4", "-o", "addr", "show"]))
        .await?
        .ok(&format!("addresses of {node}"))
}

/// The MAC of the node's underlay interface (the one that answers ARP for what it announces).
async fn underlay_mac(cluster: &impl Cluster, node: &str) -> Result<String> {
    let path = format!(
        "/sys/class/net/{}/address",
        crate::lab::names::NODE_PHYS_BRIDGE
    );
    Ok(cluster
        .exec_on_node(node, &argv(["cat", path.as_str()]))
        .await?
        .ok(&format!("the underlay MAC of {node}"))?
        .trim()
        .to_string())
}

/// The MAC the outside host's neighbour table holds for `ip`, if any.
async fn outside_neighbour(cluster: &impl Cluster, ip: Ipv4Addr) -> Result<Option<String>> {
    let shown = cluster
        .exec_outside(&argv(["ip", "neigh", "show", &ip.to_string()]))
        .await?
        .ok(&format!("the outside's neighbour entry for {ip}"))?;
    let mut words = shown.split_whitespace();
    Ok(words
        .by_ref()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_string))
}

/// Sets or removes the label that takes `node` out of the announcing nodes.
async fn exclude_node(client: &Client, node: &str, excluded: bool) -> Result<()> {
    let value = if excluded {
        json!("")
    } else {
        serde_json::Value::Null
    };
    Api::<Node>::all(client.clone())
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {names::EXCLUDE_FROM_LB_LABEL: value}}})),
        )
        .await
        .map(drop)
        .map_err(|e| ScenarioError::kube(format!("labelling Node {node}"), e))
}

/// Backends on both nodes, for the Service `selects`.
async fn backends(client: &Client, ns: &str, selects: &str, stage: &Stage) -> Result<()> {
    api::create_and_wait(
        client,
        &[
            PodSpec::server(ns, &format!("{selects}-1"), &stage.tool)
                .label(SELECTOR, selects)
                .on(&stage.n1),
            PodSpec::server(ns, &format!("{selects}-2"), &stage.tool)
                .label(SELECTOR, selects)
                .on(&stage.n2),
        ],
    )
    .await
    .map(drop)
}

/// A LoadBalancer Service gets a pool address, one node announces it (and only that node holds
/// it), and the outside reaches a backend through it; a foreign class gets nothing; a status a
/// user copies from another Service is given back to the older one; a deleted Service's
/// address goes to the next Service; a controller restart changes no address or announcer.
pub async fn addresses(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let stage = stage(cluster, ns).await?;
    let client = &stage.client;
    backends(client, ns, "web", &stage).await?;
    create_lb(client, ns, "web", "web", json!({})).await?;
    let (ip, node) = until_announced(client, ns, "web", |_, _| true).await?;
    println!("Service {ns}/web: {ip}, announced by {node}");
    let answer = outside_reaches(cluster, ip, &["web-1", "web-2"]).await?;
    println!(
        "outside → {ip}:{SERVICE_TCP_PORT} answered by {}",
        answer.server
    );
    for other in cluster.nodes() {
        let held = node_addresses(cluster, &other).await?;
        let holds = held.contains(&format!(" {ip}/32 "));
        crate::ensure!(
            holds == (other == node),
            "{other} has {held:?}; only {node} should hold {ip}"
        );
    }

    create_lb(
        client,
        ns,
        "foreign",
        "web",
        json!({"loadBalancerClass": FOREIGN_CLASS}),
    )
    .await?;
    create_lb(client, ns, "second", "web", json!({})).await?;
    let (second_ip, _) = until_announced(client, ns, "second", |_, _| true).await?;
    crate::ensure!(second_ip != ip, "two Services share {ip}");
    // "second" was decided after "foreign" was created, in the same pass over every Service.
    let foreign = get_service(client, ns, "foreign").await?;
    crate::ensure!(
        foreign.as_ref().map(lb_of) == Some((None, None)),
        "the foreign-class Service was given {:?}",
        foreign.as_ref().map(lb_of)
    );

    // A user writes web's address into second's status: the older (web) keeps it.
    Api::<Service>::namespaced(client.clone(), ns)
        .patch_status(
            "second",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}}}),
            ),
        )
        .await
        .map_err(|e| ScenarioError::kube(format!("writing the status of {ns}/second"), e))?;
    let (moved, _) = until_announced(client, ns, "second", |i, _| i != ip).await?;
    let (kept, _) = until_announced(client, ns, "web", |_, _| true).await?;
    crate::ensure!(kept == ip, "web lost {ip} to a copied status (now {kept})");
    service_event(client, ns, "second", lb::IP_CONFLICT).await?;
    println!("second's copied status {ip} was replaced by {moved}");

    // A request outside the pool: an Event, no address.
    create_lb(
        client,
        ns,
        "outside",
        "web",
        json!({"loadBalancerIP": "10.1.2.3"}),
    )
    .await?;
    service_event(client, ns, "outside", lb::IP_UNAVAILABLE).await?;
    let outside = get_service(client, ns, "outside").await?;
    crate::ensure!(
        outside.as_ref().map(lb_of) == Some((None, None)),
        "an out-of-pool request was given {:?}",
        outside.as_ref().map(lb_of)
    );
    delete_service(client, ns, "outside").await?;

    // The controller restarts: nothing moves, nothing is even written again.
    let before = lb_records(client, ns, &["web", "second"]).await?;
    cluster.restart(&Component::Controller).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = lb_records(client, ns, &["web", "second"]).await?;
    crate::ensure!(
        before == after,
        "a controller restart changed {before:?} into {after:?}"
    );
    outside_reaches(cluster, ip, &["web-1", "web-2"]).await?;

    // Deleted: the address is free again, and the next Service gets it.
    delete_service(client, ns, "web").await?;
    create_lb(client, ns, "third", "web", json!({})).await?;
    let (third_ip, _) = until_announced(client, ns, "third", |_, _| true).await?;
    crate::ensure!(
        third_ip == ip,
        "the freed {ip} was not given again (got {third_ip})"
    );
    outside_reaches(cluster, ip, &["web-1", "web-2"]).await?;

    // The pool runs out: an Event, and the address once one frees.
    let pool_size = pool()?.hosts().count();
    let fill: Vec<String> = (0..pool_size - 2).map(|i| format!("fill-{i}")).collect();
    for name in &fill {
        create_lb(client, ns, name, "web", json!({})).await?;
        until_announced(client, ns, name, |_, _| true).await?;
    }
    create_lb(client, ns, "overflow", "web", json!({})).await?;
    service_event(client, ns, "overflow", lb::POOL_EXHAUSTED).await?;
    let (freed, _) = until_announced(client, ns, &fill[0], |_, _| true).await?;
    delete_service(client, ns, &fill[0]).await?;
    let (got, _) = until_announced(client, ns, "overflow", |_, _| true).await?;
    crate::ensure!(got == freed, "overflow got {got}, not the freed {freed}");
    for name in ["foreign", "second", "third", "overflow"]
        .into_iter()
        .chain(fill.iter().skip(1).map(String::as_str))
    {
        delete_service(client, ns, name).await?;
    }
    Ok(())
}

/// Waits for a Warning Event with `reason` about the Service.
async fn service_event(client: &Client, ns: &str, name: &str, reason: &str) -> Result<()> {
    let what = format!("a {reason} Event about Service {ns}/{name}");
    until_event(client, ns, &what, |e| is_about(e, "Service", name, reason))
        .await
        .map(drop)
}

/// The lab's pool.
fn pool() -> Result<ipnet::Ipv4Net> {
    crate::lab::names::LB_CIDR
        .parse()
        .map_err(|e| ScenarioError::Check(format!("the lab's pool: {e}")))
}

/// The announcing node is taken out (the Kubernetes label that excludes a node from external
/// load balancers; a NotReady or deleted node counts the same): the address moves to another
/// node, which announces it, the first withdraws it, and the outside reaches the Service
/// again. Prints how long the outside was without an answer.
pub async fn failover(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let stage = stage(cluster, ns).await?;
    let client = &stage.client;
    backends(client, ns, "moving", &stage).await?;
    create_lb(client, ns, "moving", "moving", json!({})).await?;
    let (ip, first) = until_announced(client, ns, "moving", |_, _| true).await?;
    outside_reaches(cluster, ip, &["moving-1", "moving-2"]).await?;
    let started = Instant::now();
    exclude_node(client, &first, true).await?;
    let moved = async {
        let (_, second) = until_announced(client, ns, "moving", |_, n| n != first).await?;
        let recorded = started.elapsed();
        let mac = underlay_mac(cluster, &second).await?;
        // The outside's packets go to the new node once its neighbour entry says so (the
        // gratuitous ARP); the old node would still DNAT what reaches it, so an answer alone
        // would not tell.
        wait::until(
            FOLLOW_TIMEOUT,
            &format!("the outside to send {ip} to {second} ({mac})"),
            async || {
                Ok((outside_neighbour(cluster, ip).await?.as_deref() == Some(&mac)).then_some(()))
            },
        )
        .await?;
        let switched = started.elapsed();
        outside_reaches(cluster, ip, &["moving-1", "moving-2"]).await?;
        let reached = started.elapsed();
        let held = node_addresses(cluster, &first).await?;
        crate::ensure!(
            !held.contains(&format!(" {ip}/32 ")),
            "{first} still holds {ip} after it moved to {second}: {held:?}"
        );
        println!(
            "failover of {ip} from {first} to {second}: announcer recorded after {} ms, the \
             outside's neighbour entry switched after {} ms, answered through {second} after {} ms",
            recorded.as_millis(),
            switched.as_millis(),
            reached.as_millis()
        );
        Ok(())
    }
    .await;
    let restored = exclude_node(client, &first, false).await;
    moved?;
    restored?;
    delete_service(client, ns, "moving").await
}
