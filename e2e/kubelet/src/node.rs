//! The kubelet's Node object and heartbeats: registration with addresses and labels, the Ready
//! condition refreshed in `status`, and the Lease in `kube-node-lease` renewed like the real
//! kubelet's, so the scheduler and controllers see a live node.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// The namespace holding node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// How long a lease is valid without renewal (the real kubelet's default).
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// Who this kubelet is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The Node object's name (also its hostname label).
    pub name: String,
    /// The node's InternalIP (the lab's underlay address).
    pub ip: String,
    /// The port of the kubelet's server (exec, logs) on that address, published in
    /// `status.daemonEndpoints.kubeletEndpoint.Port` for the API server.
    pub kubelet_port: u16,
}

/// A node API call failed; names the object.
#[derive(Debug, thiserror::Error)]
#[error("{what} {object}: {source}")]
pub struct NodeError {
    what: &'static str,
    object: String,
    #[source]
    source: kube::Error,
}

/// Labels every kubelet puts on its node.
pub fn node_labels(id: &NodeIdentity) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), id.name.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), go_arch().to_owned()),
    ])
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn condition(
    previous: Option<&NodeStatus>,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> NodeCondition {
    let since = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    NodeCondition {
        type_: kind.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(since),
    }
}

/// The node's status: addresses, capacity, system info and conditions with Ready=True. Pure.
pub fn node_status(id: &NodeIdentity, previous: Option<&NodeStatus>, now: Timestamp) -> NodeStatus {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let capacity = BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpus.to_string())),
        ("pods".to_owned(), Quantity("110".into())),
    ]);
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: id.ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: id.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(id.kubelet_port),
            }),
        }),
        allocatable: Some(capacity.clone()),
        capacity: Some(capacity),
        conditions: Some(vec![
            condition(
                previous,
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                now,
            ),
            condition(
                previous,
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                now,
            ),
            condition(
                previous,
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                now,
            ),
            condition(
                previous,
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
                now,
            ),
        ]),
        node_info: Some(NodeSystemInfo {
            architecture: go_arch().into(),
            operating_system: "linux".into(),
            os_image: "rovn lab".into(),
            kubelet_version: "v1.33.0-rovn".into(),
            kube_proxy_version: String::new(),
            container_runtime_version: format!("rovn-kubelet://{}", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The node's Lease, held by the node and owned by the Node object (so it goes with it). Pure.
pub fn node_lease(id: &NodeIdentity, node_uid: Option<String>, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(id.name.clone()),
            namespace: Some(LEASE_NAMESPACE.into()),
            owner_references: node_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: id.name.clone(),
                    uid,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(id.name.clone()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Creates the Node (or adds the labels to an existing one) and posts a Ready status and a
/// lease. Returns the node's UID for the lease's owner reference.
pub async fn register(client: &Client, id: &NodeIdentity) -> Result<Option<String>, NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let err = |what: &'static str| {
        let object = format!("node/{}", id.name);
        move |source| NodeError {
            what,
            object,
            source,
        }
    };
    let existing = match nodes.get(&id.name).await {
        Ok(n) => Some(n),
        Err(e) if is_not_found(&e) => None,
        Err(e) => return Err(err("getting")(e)),
    };
    let node = match existing {
        Some(_) => nodes
            .patch(
                &id.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": node_labels(id)}})),
            )
            .await
            .map_err(err("labelling"))?,
        None => {
            let fresh = Node {
                metadata: ObjectMeta {
                    name: Some(id.name.clone()),
                    labels: Some(node_labels(id)),
                    ..Default::default()
                },
                ..Default::default()
            };
            match nodes.create(&PostParams::default(), &fresh).await {
                Ok(n) => n,
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    nodes.get(&id.name).await.map_err(err("getting"))?
                }
                Err(e) => return Err(err("creating")(e)),
            }
        }
    };
    let uid = node.metadata.uid.clone();
    heartbeat(client, id, node.status.as_ref(), uid.clone()).await?;
    Ok(uid)
}

/// One heartbeat: Ready status (with fresh heartbeat times) and a renewed lease.
pub async fn heartbeat(
    client: &Client,
    id: &NodeIdentity,
    previous: Option<&NodeStatus>,
    node_uid: Option<String>,
) -> Result<NodeStatus, NodeError> {
    let now = Timestamp::now();
    let status = node_status(id, previous, now);
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch_status(
            &id.name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .map_err(|source| NodeError {
            what: "updating status of",
            object: format!("node/{}", id.name),
            source,
        })?;
    renew_lease(client, id, node_uid, now).await?;
    Ok(status)
}

async fn renew_lease(
    client: &Client,
    id: &NodeIdentity,
    node_uid: Option<String>,
    now: Timestamp,
) -> Result<(), NodeError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let lease = node_lease(id, node_uid, now);
    let object = format!("lease/{LEASE_NAMESPACE}/{}", id.name);
    let patched = leases
        .patch(
            &id.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": lease.spec})),
        )
        .await;
    match patched {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => leases
            .create(&PostParams::default(), &lease)
            .await
            .map(|_| ())
            .map_err(|source| NodeError {
                what: "creating",
                object,
                source,
            }),
        Err(source) => Err(NodeError {
            what: "renewing",
            object,
            source,
        }),
    }
}

/// Heartbeats forever every `interval`, re-registering when the Node disappears; failures are
/// logged and retried on the next tick.
pub async fn heartbeat_loop(client: Client, id: NodeIdentity, interval: Duration) {
    let mut previous: Option<NodeStatus> = None;
    let mut uid: Option<String> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if uid.is_none() {
            match register(&client, &id).await {
                Ok(u) => uid = u,
                Err(e) => {
                    tracing::warn!(node = %id.name, "registering node: {e}");
                    continue;
                }
            }
        }
        match heartbeat(&client, &id, previous.as_ref(), uid.clone()).await {
            Ok(s) => previous = Some(s),
            Err(e) => {
                tracing::warn!(node = %id.name, "heartbeat: {e}");
                if is_not_found(&e.source) {
                    uid = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> NodeIdentity {
        NodeIdentity {
            name: "node1".into(),
            ip: "172.30.0.11".into(),
            kubelet_port: 10250,
        }
    }

    #[test]
    fn status_is_ready_with_addresses() {
        let s = node_status(&id(), None, Timestamp::UNIX_EPOCH);
        let addrs = s.addresses.clone().unwrap_or_default();
        assert!(
            addrs
                .iter()
                .any(|a| a.type_ == "InternalIP" && a.address == "172.30.0.11")
        );
        assert!(
            addrs
                .iter()
                .any(|a| a.type_ == "Hostname" && a.address == "node1")
        );
        let port = s
            .daemon_endpoints
            .as_ref()
            .and_then(|d| d.kubelet_endpoint.as_ref())
            .map(|e| e.port);
        assert_eq!(port, Some(10250));
        let ready = s
            .conditions
            .clone()
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready");
        assert_eq!(ready.map(|c| c.status), Some("True".to_owned()));
        let later = Timestamp::from_second(100).unwrap_or(Timestamp::UNIX_EPOCH);
        let again = node_status(&id(), Some(&s), later);
        let c = again.conditions.unwrap_or_default();
        assert_eq!(c[3].last_transition_time, Some(Time(Timestamp::UNIX_EPOCH)));
        assert_eq!(c[3].last_heartbeat_time, Some(Time(later)));
    }

    #[test]
    fn labels_and_lease() {
        let labels = node_labels(&id());
        assert_eq!(
            labels.get("kubernetes.io/hostname").map(String::as_str),
            Some("node1")
        );
        assert_eq!(
            labels.get("kubernetes.io/os").map(String::as_str),
            Some("linux")
        );
        let lease = node_lease(&id(), Some("u".into()), Timestamp::UNIX_EPOCH);
        assert_eq!(lease.metadata.namespace.as_deref(), Some(LEASE_NAMESPACE));
        let spec = lease.spec.unwrap_or_default();
        assert_eq!(spec.holder_identity.as_deref(), Some("node1"));
        assert_eq!(spec.lease_duration_seconds, Some(LEASE_DURATION_SECONDS));
    }
}
