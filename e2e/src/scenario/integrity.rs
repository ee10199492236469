//! Scenario 12 and the audit issue #12 asks for after every step: nothing a pod's creator
//! writes into rovn's annotations moves, duplicates or steals an address. A running pod's
//! edited allocation is written back (with an Event) and it keeps answering; a new pod whose
//! annotations claim a running pod's address is refused; a controller restart changes none of
//! it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddrV4;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use rovn_api::names::annotations as keys;
use serde_json::{Value, json};

use super::api::{self, Stage, stage};
use super::cluster::{Cluster, Component, PodRef};
use super::error::{Result, ScenarioError};
use super::ovn_state::{cell, json_rows, map_get};
use super::pods::{self, PodSpec, TCP_PORT, pod_ref};
use super::traffic::{From, Proto, expect_exchange};
use super::wait;

/// How long the controller may take to put things right after a step.
const SETTLE: Duration = Duration::from_secs(30);

/// One NB logical switch port's name, owner vendor and addresses (`MAC IP…`).
struct NbPort {
    name: String,
    rovn: bool,
    addresses: Vec<String>,
}

async fn nb_ports(cluster: &impl Cluster) -> Result<Vec<NbPort>> {
    let text = cluster
        .nbctl(&[
            "--format=json",
            "--columns=name,type,addresses,external_ids",
            "list",
            "Logical_Switch_Port",
        ])
        .await?;
    Ok(json_rows(&text, "NB Logical_Switch_Port")?
        .iter()
        .filter(|row| cell(row, "type").and_then(Value::as_str) == Some(""))
        .map(|row| {
            let addresses = match cell(row, "addresses") {
                Some(Value::String(one)) => vec![one.clone()],
                set => set
                    .and_then(|s| s.get(1))
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            NbPort {
                name: cell(row, "name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                rovn: cell(row, "external_ids")
                    .and_then(|c| map_get(c, rovn_api::names::VENDOR_KEY))
                    == Some(rovn_api::names::VENDOR),
                addresses,
            }
        })
        .collect())
}

/// The audit: no two live pods share an IP or MAC (annotations), no two NB ports share one,
/// rovn's pod ports are exactly the allocated live pods, and every Subnet's `usedIPs` equals
/// its allocated pods. Returns the first breach.
pub async fn audit_once(cluster: &impl Cluster) -> Result<()> {
    let client = cluster.client();
    let pods: Vec<Pod> = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| ScenarioError::kube("listing pods", e))?
        .items;
    // Live: running on an address rovn allocated. Annotations alone prove nothing (anyone who
    // can create a pod can write them); a refused pod never runs.
    let live: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            pods::annotation(p, keys::ALLOCATED) == Some("true")
                && pods::phase(p) == Some("Running")
                && p.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let mut ips: BTreeMap<String, String> = BTreeMap::new();
    let mut macs: BTreeMap<String, String> = BTreeMap::new();
    let mut per_subnet: BTreeMap<String, u64> = BTreeMap::new();
    for pod in &live {
        let who = pod_ref(pod).to_string();
        for (seen, key) in [(&mut ips, keys::IP_ADDRESS), (&mut macs, keys::MAC_ADDRESS)] {
            let value = pods::annotation(pod, key).unwrap_or_default().to_string();
            if let Some(other) = seen.insert(value.clone(), who.clone()) {
                return Err(ScenarioError::Check(format!(
                    "{key}={value} is held by both {other} and {who}"
                )));
            }
        }
        let subnet = pods::annotation(pod, keys::LOGICAL_SWITCH).unwrap_or_default();
        *per_subnet.entry(subnet.to_string()).or_default() += 1;
    }
    let ports = nb_ports(cluster).await?;
    let mut nb_held: BTreeMap<String, String> = BTreeMap::new();
    for port in &ports {
        for address in &port.addresses {
            for part in address
                .split_whitespace()
                .filter(|p| *p != "router" && *p != "unknown")
            {
                if let Some(other) = nb_held.insert(part.to_string(), port.name.clone()) {
                    return Err(ScenarioError::Check(format!(
                        "NB ports {other} and {} both hold {part}",
                        port.name
                    )));
                }
            }
        }
    }
    let wanted: BTreeSet<String> = live.iter().map(|p| pod_ref(p).lsp_name()).collect();
    let have: BTreeSet<String> = ports
        .iter()
        .filter(|p| p.rovn && !p.name.starts_with(rovn_api::names::NODE_PORT_PREFIX))
        .map(|p| p.name.clone())
        .collect();
    crate::ensure!(
        wanted == have,
        "NB pod ports differ from the allocated live pods: missing {:?}, stale {:?}",
        wanted.difference(&have).collect::<Vec<_>>(),
        have.difference(&wanted).collect::<Vec<_>>()
    );
    for (subnet, count) in &per_subnet {
        let usage = api::subnet_usage(&client, subnet).await?;
        crate::ensure!(
            usage.map(|(used, _)| used) == Some(*count),
            "Subnet {subnet} reports {usage:?} used, {count} live pods hold its addresses"
        );
    }
    Ok(())
}

/// [`audit_once`] until it passes or [`SETTLE`] is over (the controller puts things right in
/// the background).
pub async fn audit(cluster: &impl Cluster) -> Result<()> {
    wait::until(SETTLE, "the audit to pass", async || {
        audit_once(cluster).await.map(Some)
    })
    .await
}

async fn patch_annotations(client: &Client, pod: &PodRef, annotations: Value) -> Result<()> {
    Api::<Pod>::namespaced(client.clone(), &pod.namespace)
        .patch(
            &pod.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
        )
        .await
        .map_err(|e| ScenarioError::kube(format!("annotating pod {pod}"), e))?;
    Ok(())
}

/// Waits until an Event in `namespace` that `matches` exists, and returns it. Events about
/// cluster-scoped objects live in `default`.
pub(crate) async fn until_event(
    client: &Client,
    namespace: &str,
    what: &str,
    matches: impl Fn(&Event) -> bool,
) -> Result<Event> {
    wait::until(SETTLE, what, async || {
        let events = Api::<Event>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map_err(|e| ScenarioError::kube("listing Events", e))?;
        Ok(events.items.into_iter().find(&matches))
    })
    .await
}

/// Whether `event` is about the object `name` of `kind` and has `reason`.
pub(crate) fn is_about(event: &Event, kind: &str, name: &str, reason: &str) -> bool {
    event.involved_object.kind.as_deref() == Some(kind)
        && event.involved_object.name.as_deref() == Some(name)
        && event.reason.as_deref() == Some(reason)
}

/// [`until_event`] for a pod's Event with `reason`.
async fn until_pod_event(client: &Client, pod: &PodRef, reason: &str) -> Result<Event> {
    let what = format!("a {reason} Event about pod {pod}");
    until_event(client, &pod.namespace, &what, |e| {
        is_about(e, "Pod", &pod.name, reason)
    })
    .await
}

/// Waits until `key` of `pod` is `value` again.
async fn until_annotation(client: &Client, pod: &PodRef, key: &str, value: &str) -> Result<()> {
    wait::until(
        SETTLE,
        &format!("{key} of {pod} to be {value} again"),
        async || {
            let p = api::get_pod(client, pod).await?;
            Ok(p.filter(|p| pods::annotation(p, key) == Some(value))
                .map(drop))
        },
    )
    .await
}

/// Scenario 12: edits of rovn's annotations grant nothing and move nothing.
pub async fn annotation_edits(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let Stage {
        client,
        n1,
        n2,
        tool,
    } = stage(cluster, ns).await?;
    let running = api::create_and_wait(
        &client,
        &[
            PodSpec::server(ns, "a", &tool).on(&n1),
            PodSpec::server(ns, "b", &tool).on(&n2),
            PodSpec::idle(ns, "client", &tool).on(&n1),
        ],
    )
    .await?;
    let (a, c) = (pod_ref(&running[0]), &running[2]);
    let a_ip = pods::allocated_ip(&running[0])
        .ok_or_else(|| ScenarioError::Check("pod a has no address".into()))?;
    let b_ip = pods::allocated_ip(&running[1])
        .ok_or_else(|| ScenarioError::Check("pod b has no address".into()))?;
    let a_mac = pods::annotation(&running[0], keys::MAC_ADDRESS)
        .unwrap_or_default()
        .to_string();
    let client_ip = pods::pod_ip(c).ok_or_else(|| ScenarioError::Check("no client IP".into()))?;
    let from = From::Pod(pod_ref(c));
    let reach = async || {
        expect_exchange(
            cluster,
            &from,
            Proto::Tcp,
            SocketAddrV4::new(a_ip, TCP_PORT),
            "a",
            client_ip,
        )
        .await?;
        expect_exchange(
            cluster,
            &from,
            Proto::Tcp,
            SocketAddrV4::new(b_ip, TCP_PORT),
            "b",
            client_ip,
        )
        .await
        .map(drop)
    };
    audit(cluster).await?;

    // A running pod's address edited to its neighbour's: written back, with an Event.
    patch_annotations(&client, &a, json!({ keys::IP_ADDRESS: b_ip.to_string() })).await?;
    until_annotation(&client, &a, keys::IP_ADDRESS, &a_ip.to_string()).await?;
    until_pod_event(&client, &a, "AllocationReverted").await?;
    reach().await?;
    audit(cluster).await?;

    // Its MAC removed and its switch pointed elsewhere: both written back.
    patch_annotations(
        &client,
        &a,
        json!({ keys::MAC_ADDRESS: null, keys::LOGICAL_SWITCH: "elsewhere" }),
    )
    .await?;
    until_annotation(&client, &a, keys::MAC_ADDRESS, &a_mac).await?;
    until_annotation(
        &client,
        &a,
        keys::LOGICAL_SWITCH,
        rovn_api::names::DEFAULT_SUBNET,
    )
    .await?;
    reach().await?;
    audit(cluster).await?;

    // A new pod carrying a copy of b's whole allocation is only asking for b's address, and b
    // holds it: refused, and b keeps it.
    let mut thief = PodSpec::server(ns, "thief", &tool).on(&n1);
    for key in [
        keys::ALLOCATED,
        keys::IP_ADDRESS,
        keys::MAC_ADDRESS,
        keys::LOGICAL_SWITCH,
        keys::CIDR,
        keys::GATEWAY,
        keys::ROUTED,
    ] {
        if let Some(value) = pods::annotation(&running[1], key) {
            thief = thief.annotate(key, value);
        }
    }
    let thief_ref = api::create_pod(&client, &thief).await?;
    until_pod_event(&client, &thief_ref, "AddressInUse").await?;
    reach().await?;
    audit(cluster).await?;

    // The controller restarted on all of it: nothing moves.
    cluster.restart(&Component::Controller).await?;
    reach().await?;
    audit(cluster).await?;
    // Its sandbox waits in CNI ADD for a port that never comes; it need not be gone for the
    // audit, which counts only running pods.
    api::begin_delete(&client, &thief_ref, Some(0)).await?;
    audit(cluster).await
}

/// The reason of a Subnet's Ready condition, `None` while it has none (or the Subnet is gone).
async fn subnet_reason(client: &Client, name: &str) -> Result<Option<String>> {
    Ok(subnet_condition(client, name)
        .await?
        .map(|(_, reason)| reason))
}

/// The status and reason of a Subnet's Ready condition.
async fn subnet_condition(client: &Client, name: &str) -> Result<Option<(String, String)>> {
    let subnets: Api<kube::api::DynamicObject> =
        Api::all_with(client.clone(), &api::subnet_resource());
    let got = subnets
        .get_opt(name)
        .await
        .map_err(|e| ScenarioError::kube(format!("reading Subnet {name}"), e))?;
    Ok(got.and_then(|s| {
        let ready = s
            .data
            .pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")?
            .clone();
        Some((
            ready["status"].as_str()?.to_string(),
            ready["reason"].as_str()?.to_string(),
        ))
    }))
}

async fn until_subnet_reason(client: &Client, name: &str, reason: &str) -> Result<()> {
    wait::until(
        SETTLE,
        &format!("Subnet {name} to say {reason}"),
        async || Ok((subnet_reason(client, name).await?.as_deref() == Some(reason)).then_some(())),
    )
    .await
}

/// Scenario 13: a Subnet in use is edited and deleted under a pod that keeps answering. The
/// CIDR edit is refused (`SpecChangeRefused`); deleted, the Subnet stays `Terminating` with
/// its switch while the pod lives, takes no new pod (which does not fall back to
/// `ovn-default`), and goes once its pods are gone.
pub async fn subnet_changes(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let Stage {
        client,
        n1,
        n2,
        tool,
    } = stage(cluster, ns).await?;
    let subnet = format!("{ns}-net");
    api::create_subnet(
        &client,
        &api::subnet_object(&subnet, "10.23.0.0/24", &[], &[ns])?,
    )
    .await?;
    let running = api::create_and_wait(
        &client,
        &[
            PodSpec::server(ns, "held", &tool).on(&n2),
            PodSpec::idle(ns, "client", &tool).on(&n1),
        ],
    )
    .await?;
    let held_ip = pods::allocated_ip(&running[0])
        .ok_or_else(|| ScenarioError::Check("pod held has no address".into()))?;
    crate::ensure!(
        held_ip.octets()[..3] == [10, 23, 0],
        "pod held got {held_ip}, outside its Subnet 10.23.0.0/24"
    );
    let client_ip =
        pods::pod_ip(&running[1]).ok_or_else(|| ScenarioError::Check("no client IP".into()))?;
    let target = SocketAddrV4::new(held_ip, TCP_PORT);
    let from_pod = From::Pod(pod_ref(&running[1]));
    let join_n1 = super::pod_network::join_ip(cluster, &n1).await?;
    let reach = async || {
        expect_exchange(cluster, &from_pod, Proto::Tcp, target, "held", client_ip).await?;
        expect_exchange(
            cluster,
            &From::Node(n1.clone()),
            Proto::Tcp,
            target,
            "held",
            join_n1,
        )
        .await
        .map(drop)
    };
    reach().await?;
    audit(cluster).await?;

    let subnets: Api<kube::api::DynamicObject> =
        Api::all_with(client.clone(), &api::subnet_resource());
    let edit = |cidr: &'static str| {
        let subnets = subnets.clone();
        let subnet = subnet.clone();
        async move {
            subnets
                .patch(
                    &subnet,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"cidrBlock": cidr}})),
                )
                .await
                .map(drop)
                .map_err(|e| ScenarioError::kube(format!("editing Subnet {subnet}"), e))
        }
    };
    edit("10.24.0.0/24").await?;
    until_subnet_reason(&client, &subnet, "SpecChangeRefused").await?;
    reach().await?;
    audit(cluster).await?;
    edit("10.23.0.0/24").await?;

    subnets
        .delete(&subnet, &Default::default())
        .await
        .map_err(|e| ScenarioError::kube(format!("deleting Subnet {subnet}"), e))?;
    until_subnet_reason(&client, &subnet, "Terminating").await?;
    reach().await?;
    let late = api::create_pod(&client, &PodSpec::server(ns, "late", &tool).on(&n1)).await?;
    until_pod_event(&client, &late, "SubnetNotReady").await?;
    let late_pod = api::get_pod(&client, &late).await?;
    crate::ensure!(
        late_pod.as_ref().and_then(pods::allocated_ip).is_none(),
        "pod late got an address while its Subnet is terminating: {:?}",
        late_pod.as_ref().and_then(pods::allocated_ip)
    );
    audit(cluster).await?;

    for pod in [pod_ref(&running[0]), pod_ref(&running[1]), late] {
        api::delete_pod(&client, &pod).await?;
    }
    wait::until(
        SETTLE,
        &format!("Subnet {subnet} and its switch to go"),
        async || {
            let object = subnets
                .get_opt(&subnet)
                .await
                .map_err(|e| ScenarioError::kube(format!("reading Subnet {subnet}"), e))?;
            let switch = cluster
                .nbctl(&[
                    "--bare",
                    "--columns=_uuid",
                    "find",
                    "Logical_Switch",
                    &format!("name={subnet}"),
                ])
                .await?;
            Ok((object.is_none() && switch.trim().is_empty()).then_some(()))
        },
    )
    .await?;
    audit(cluster).await
}

/// The routes of `cidr` on `node` that go through `ovn0`.
async fn ovn0_routes(cluster: &impl Cluster, node: &str, cidr: &str) -> Result<String> {
    let out = cluster
        .exec_on_node(
            node,
            &super::cluster::argv(["ip", "-4", "route", "show", cidr]),
        )
        .await?
        .ok(&format!("routes of {cidr} on {node}"))?;
    Ok(out
        .lines()
        .filter(|l| l.contains("ovn0"))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Scenario 14: what an operator sees of Subnets that must not be used. A Subnet covering half
/// the address space is rejected (with a core/v1 Event carrying `lastTimestamp`, so
/// `kubectl get events --sort-by=.lastTimestamp` lists it) and no node routes it; one that
/// overlaps the nodes' own network is routed by no node (`SubnetNotRouted` on each Node);
/// `ovn-default`'s status shows its effective gateway and its usage. Nothing of it disturbs
/// running pods (the audit).
pub async fn operator_view(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let client = cluster.client();
    api::ensure_namespace(&client, ns).await?;
    let subnets: Api<kube::api::DynamicObject> =
        Api::all_with(client.clone(), &api::subnet_resource());
    let wide = format!("{ns}-wide");
    subnets
        .create(
            &Default::default(),
            &api::subnet_object(&wide, "0.0.0.0/1", &[], &[])?,
        )
        .await
        .map_err(|e| ScenarioError::kube(format!("creating Subnet {wide}"), e))?;
    // Rejected (too large, overlapping): whatever the reason, Ready is False and says it.
    let reason = wait::until(
        SETTLE,
        &format!("Subnet {wide} to be rejected"),
        async || {
            subnet_condition(&client, &wide)
                .await
                .map(|c| c.filter(|(status, _)| status == "False"))
        },
    )
    .await?
    .1;
    let event = until_event(
        &client,
        "default",
        &format!("a {reason} Event about Subnet {wide}"),
        |e| is_about(e, "Subnet", &wide, &reason),
    )
    .await?;
    crate::ensure!(
        event.last_timestamp.is_some(),
        "the Event about Subnet {wide} has no lastTimestamp: {event:?}"
    );
    for node in cluster.nodes() {
        let routes = ovn0_routes(cluster, &node, "0.0.0.0/1").await?;
        crate::ensure!(
            routes.is_empty(),
            "{node} routes rejected {wide} via ovn0: {routes}"
        );
    }

    let under = format!("{ns}-under");
    subnets
        .create(
            &Default::default(),
            &api::subnet_object(&under, "172.30.0.0/24", &[], &[])?,
        )
        .await
        .map_err(|e| ScenarioError::kube(format!("creating Subnet {under}"), e))?;
    for node in cluster.nodes() {
        until_event(
            &client,
            "default",
            &format!("a SubnetNotRouted Event about Node {node} naming {under}"),
            |e| {
                is_about(e, "Node", &node, "SubnetNotRouted")
                    && e.message.as_deref().is_some_and(|m| m.contains(&under))
            },
        )
        .await?;
        let routes = ovn0_routes(cluster, &node, "172.30.0.0/24").await?;
        crate::ensure!(
            routes.is_empty(),
            "{node} routes its own network through ovn0 for {under}: {routes}"
        );
    }

    let default = subnets
        .get(rovn_api::names::DEFAULT_SUBNET)
        .await
        .map_err(|e| ScenarioError::kube("reading ovn-default", e))?;
    let status = |field: &str| default.data.pointer(&format!("/status/{field}")).cloned();
    crate::ensure!(
        status("gateway")
            .and_then(|g| g.as_str().map(str::to_string))
            .is_some_and(|g| !g.is_empty())
            && status("usedIPs").is_some_and(|v| v.is_u64())
            && status("availableIPs").is_some_and(|v| v.is_u64()),
        "ovn-default's status lacks its effective gateway or usage: {:?}",
        default.data.get("status")
    );

    for name in [&wide, &under] {
        subnets
            .delete(name, &Default::default())
            .await
            .map_err(|e| ScenarioError::kube(format!("deleting Subnet {name}"), e))?;
    }
    audit(cluster).await
}
