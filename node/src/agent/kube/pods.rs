//! The pods the agent plugs: a cache of the node's pods, waiting (from that cache, else with a
//! watch on the one pod) for the controller's allocation, and listing the node's pods for
//! restart cleanup.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Event, Pod, PodSpec, PodStatus};
use kube::Api;
use kube::api::ListParams;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use rovn_api::Owner;
use rovn_api::annotations::{self, AnnotationError, Ipv4PodAllocation};
use tokio::sync::Notify;

/// Why a pod's allocation could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PodWaitError {
    /// The controller did not allocate in time.
    /// When the controller said why (its latest Event on the pod), the message quotes it
    /// rather than suggest the controller is down.
    #[error(
        "{} has no rovn.io/allocated annotation after {}s ({})",
        Owner::pod(namespace, name),
        timeout.as_secs(),
        match refusal {
            Some(said) => format!("rovn-controller reported {said}"),
            None => "is rovn-controller running? see kubectl describe pod".to_string(),
        }
    )]
    Timeout {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// How long it waited.
        timeout: Duration,
        /// `reason: message` of rovn-controller's latest Event on the pod, if any.
        refusal: Option<String>,
    },
    /// The pod does not exist (or was deleted while waiting).
    #[error("{} does not exist", Owner::pod(namespace, name))]
    NotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A pod of that name exists, but it is not the one the runtime asked for.
    #[error(
        "{} has UID {found}, but the runtime asked for UID {expected} (the pod was re-created)",
        Owner::pod(namespace, name)
    )]
    UidMismatch {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// `K8S_POD_UID`.
        expected: String,
        /// In the API.
        found: String,
    },
    /// The allocation annotations are malformed, or IPv6 in this IPv4 cluster.
    #[error("{}: {source}", Owner::pod(namespace, name))]
    Invalid {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What is wrong.
        #[source]
        source: AnnotationError,
    },
    /// The watch itself failed.
    #[error("watching {}: {message}", Owner::pod(namespace, name))]
    Watch {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The client's error.
        message: String,
    },
}

/// What one observed state of the pod means for the wait.
#[derive(Debug, PartialEq)]
pub enum Observation {
    /// Allocated: done.
    Ready(Ipv4PodAllocation),
    /// Not yet allocated: keep waiting.
    Pending,
}

/// Judges one version of the pod (pure): the UID check, then the allocation annotations.
pub fn observe(pod: &Pod, expected_uid: Option<&str>) -> Result<Observation, PodWaitError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    if let (Some(expected), Some(found)) = (expected_uid, pod.metadata.uid.as_deref())
        && !expected.is_empty()
        && expected != found
    {
        return Err(PodWaitError::UidMismatch {
            namespace,
            name,
            expected: expected.to_string(),
            found: found.to_string(),
        });
    }
    let empty = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    // The agent plugs IPv4 only: an IPv6 allocation is refused here, like a malformed one.
    let parsed = annotations::parse_pod_allocation(annotations)
        .and_then(|a| a.map(Ipv4PodAllocation::try_from).transpose());
    match parsed {
        Ok(Some(allocation)) => Ok(Observation::Ready(allocation)),
        Ok(None) => Ok(Observation::Pending),
        Err(source) => Err(PodWaitError::Invalid {
            namespace,
            name,
            source,
        }),
    }
}

/// What the agent keeps of a pod (pure): its metadata without managed fields, and of its spec
/// and status only what the gateway reads (hostNetwork, the containers' ports, the phase), so
/// a node's worth of pods stays small in memory.
pub fn trim(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.spec = pod.spec.take().map(|spec| PodSpec {
        host_network: spec.host_network,
        containers: spec
            .containers
            .into_iter()
            .map(|c| Container {
                name: c.name,
                ports: c.ports,
                ..Container::default()
            })
            .collect(),
        ..PodSpec::default()
    });
    pod.status = pod.status.take().map(|status| PodStatus {
        phase: status.phase,
        ..PodStatus::default()
    });
}

/// A cache of the pods bound to `node` (see [`trim`]), kept by a watch for as long as the agent
/// runs, poking `changed` on every event (the gateway follows hostPorts from it). By the time a
/// runtime calls ADD the controller has usually allocated the pod already, and reading that from
/// the cache saves each ADD a list and a watch.
pub fn watch_node_pods(client: kube::Client, node: &str, changed: Arc<Notify>) -> Store<Pod> {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(trim)
        .reflect(writer);
    let node = node.to_string();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(e) => tracing::warn!(node, error = %e, "watching the node's pods; retrying"),
            }
        }
    });
    reader
}

/// The pod's allocation when `cache` already holds it for exactly this incarnation (the
/// runtime named its UID); `None` sends the caller to the watch.
pub fn cached_allocation(
    cache: &Store<Pod>,
    namespace: &str,
    name: &str,
    expected_uid: Option<&str>,
) -> Option<(Pod, Ipv4PodAllocation)> {
    let expected = expected_uid.filter(|u| !u.is_empty())?;
    let pod = cache.get(&ObjectRef::new(name).within(namespace))?;
    if pod.metadata.uid.as_deref() != Some(expected) {
        return None;
    }
    match observe(&pod, Some(expected)) {
        Ok(Observation::Ready(allocation)) => Some(((*pod).clone(), allocation)),
        _ => None,
    }
}

/// Watches pod `namespace/name` until it carries a valid allocation, for at most `timeout`.
pub async fn wait_allocation(
    client: kube::Client,
    namespace: &str,
    name: &str,
    expected_uid: Option<&str>,
    timeout: Duration,
) -> Result<(Pod, Ipv4PodAllocation), PodWaitError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut seen = false;
    let wait = async {
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    // Transient (the API server restarting, a dropped watch): the stream
                    // backs off and re-lists; the overall timeout bounds the wait.
                    tracing::warn!(pod = format!("{namespace}/{name}"), error = %e, "watching the pod");
                    continue;
                }
            };
            let pod = match event {
                watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => pod,
                watcher::Event::Init => {
                    seen = false;
                    continue;
                }
                watcher::Event::InitDone | watcher::Event::Delete(_) if !seen => {
                    return Err(PodWaitError::NotFound {
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                    });
                }
                watcher::Event::InitDone => continue,
                watcher::Event::Delete(_) => {
                    return Err(PodWaitError::NotFound {
                        namespace: namespace.to_string(),
                        name: name.to_string(),
                    });
                }
            };
            seen = true;
            if let Observation::Ready(allocation) = observe(&pod, expected_uid)? {
                return Ok((pod, allocation));
            }
        }
        Err(PodWaitError::Watch {
            namespace: namespace.to_string(),
            name: name.to_string(),
            message: "the watch ended".into(),
        })
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(result) => result,
        Err(_) => Err(PodWaitError::Timeout {
            namespace: namespace.to_string(),
            name: name.to_string(),
            timeout,
            refusal: controller_refusal(client, namespace, name, expected_uid).await,
        }),
    }
}

/// `reason: message` of rovn-controller's most recent Event on the pod (of incarnation
/// `uid` when known): why it did not allocate, when it said so. `None` when it said nothing or
/// the Events cannot be read (the timeout is reported either way).
pub async fn controller_refusal(
    client: kube::Client,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
) -> Option<String> {
    let api: Api<Event> = Api::namespaced(client, namespace);
    let fields = format!("involvedObject.kind=Pod,involvedObject.name={name}");
    let events = match api.list(&ListParams::default().fields(&fields)).await {
        Ok(list) => list.items,
        Err(e) => {
            tracing::warn!(pod = format!("{namespace}/{name}"), error = %e, "reading the pod's Events");
            return None;
        }
    };
    latest_controller_event(&events, uid)
}

/// The pure half of [`controller_refusal`].
pub fn latest_controller_event(events: &[Event], uid: Option<&str>) -> Option<String> {
    let uid = uid.filter(|u| !u.is_empty());
    events
        .iter()
        .filter(|e| {
            e.reporting_component.as_deref() == Some(CONTROLLER)
                || e.source.as_ref().and_then(|s| s.component.as_deref()) == Some(CONTROLLER)
        })
        .filter(|e| uid.is_none() || e.involved_object.uid.as_deref() == uid)
        .max_by_key(|e| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or(e.event_time.as_ref().map(|t| t.0))
        })
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("")
            )
        })
}

/// The component name rovn-controller publishes its Events as.
const CONTROLLER: &str = "rovn-controller";

/// The UIDs of every pod the API knows on `node`; restart cleanup keeps ports of these.
pub async fn uids_on_node(client: kube::Client, node: &str) -> anyhow::Result<BTreeSet<String>> {
    use anyhow::Context;
    let api: Api<Pod> = Api::all(client);
    let list = api
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .with_context(|| format!("listing the pods of node {node}"))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|p| p.metadata.uid)
        .collect())
}

/// The pod, if it exists.
pub async fn get(client: kube::Client, namespace: &str, name: &str) -> anyhow::Result<Option<Pod>> {
    use anyhow::Context;
    let api: Api<Pod> = Api::namespaced(client, namespace);
    api.get_opt(name)
        .await
        .with_context(|| format!("reading {}", Owner::pod(namespace, name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(uid: &str, allocated: bool) -> Pod {
        let allocation = Ipv4PodAllocation {
            ip: "10.16.0.5".parse().unwrap(),
            mac: rovn_api::MacAddr([0x0a, 0x58, 10, 16, 0, 5]),
            cidr: "10.16.0.0/16".parse().unwrap(),
            gateway: "10.16.0.1".parse().unwrap(),
            switch: "ovn-default".into(),
        };
        let annotations = if allocated {
            annotations::render_pod_allocation(&allocation.into())
        } else {
            BTreeMap::new()
        };
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some(uid.into()),
                annotations: Some(annotations),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn cache_of(pod: Pod) -> Store<Pod> {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Apply(pod));
        reader
    }

    #[test]
    fn only_an_allocated_pod_of_the_named_incarnation_is_taken_from_the_cache() {
        let cache = cache_of(pod("u1", true));
        let found = cached_allocation(&cache, "ns", "web", Some("u1"));
        assert_eq!(
            found.map(|(_, a)| a.ip.to_string()).as_deref(),
            Some("10.16.0.5")
        );
        // An older incarnation, no UID to compare, another pod, or no allocation yet: ask the API.
        assert!(cached_allocation(&cache, "ns", "web", Some("u2")).is_none());
        assert!(cached_allocation(&cache, "ns", "web", None).is_none());
        assert!(cached_allocation(&cache, "ns", "web", Some("")).is_none());
        assert!(cached_allocation(&cache, "ns", "db", Some("u1")).is_none());
        let pending = cache_of(pod("u1", false));
        assert!(cached_allocation(&pending, "ns", "web", Some("u1")).is_none());
    }
}
