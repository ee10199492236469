//! Watchers feeding local caches (kube-rs reflectors) and telling the controller which object
//! changed. The caches are the controller's only view of the cluster.

use std::fmt::Debug;
use std::hash::Hash;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;

/// The kinds the controller watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Pods.
    Pod,
    /// Nodes.
    Node,
    /// Subnets.
    Subnet,
    /// Services.
    Service,
    /// EndpointSlices.
    EndpointSlice,
    /// NetworkPolicies.
    NetworkPolicy,
    /// Namespaces (their labels).
    Namespace,
}

impl Kind {
    /// Every kind: the controller starts once each has synced.
    pub const ALL: [Kind; 7] = [
        Kind::Pod,
        Kind::Node,
        Kind::Subnet,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::NetworkPolicy,
        Kind::Namespace,
    ];
}

/// An object's identity (namespace empty for cluster-scoped ones).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The namespace, or empty.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl Key {
    /// The key of `object`.
    pub fn of<K: Resource>(object: &K) -> Key {
        Key {
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// What a watcher tells the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// An object was added, changed or deleted (look it up in the cache).
    Changed(Kind, Key),
    /// A (re)list finished: the cache is complete; objects deleted meanwhile are simply absent.
    Synced(Kind),
}

/// Keeps of a pod only what the controller decides from (identity, labels, annotations, node,
/// host network, phase, named container ports): containers, volumes and status details of
/// 10,000 pods would otherwise be most of the controller's memory.
pub fn slim_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.spec = pod.spec.take().map(|spec| PodSpec {
        node_name: spec.node_name,
        host_network: spec.host_network,
        containers: spec
            .containers
            .into_iter()
            .filter(|c| c.ports.iter().flatten().any(|p| p.name.is_some()))
            .map(|c| Container {
                name: c.name,
                ports: c
                    .ports
                    .map(|ports| ports.into_iter().filter(|p| p.name.is_some()).collect()),
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

/// Drops what no one reads (`managedFields`) from objects kept whole.
pub fn slim_metadata<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// Starts a watcher on `api` filling a cache (each object passed through `slim` first),
/// sending a [`Note`] per change. Runs until the receiver is dropped; watch errors are
/// retried with backoff (and logged).
pub fn spawn_reflector<K>(
    api: Api<K>,
    kind: Kind,
    notes: UnboundedSender<Note>,
    slim: fn(&mut K),
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, mut writer) = reflector::store();
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    let event = event.modify(slim);
                    writer.apply_watcher_event(&event);
                    let note = match &event {
                        Event::Apply(o) | Event::Delete(o) => Note::Changed(kind, Key::of(o)),
                        Event::InitDone => Note::Synced(kind),
                        Event::Init | Event::InitApply(_) => continue,
                    };
                    if notes.send(note).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(?kind, error = %e, "watch failed; retrying"),
            }
        }
    });
    reader
}

use kube::runtime::watcher::watcher;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::decide::{Held, decide_pod, is_host_network, is_terminal, node_of};
    use k8s_openapi::api::core::v1::Container;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn slim_pods_keep_what_decisions_read_and_drop_containers() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                annotations: Some([("a".to_string(), "b".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                host_network: Some(false),
                containers: vec![Container {
                    name: "c".into(),
                    image: Some("pause".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                message: Some("long text".into()),
                ..Default::default()
            }),
        };
        let mut slim = pod.clone();
        slim_pod(&mut slim);
        assert_eq!(slim.metadata, pod.metadata);
        assert_eq!(node_of(&slim), Some("n1"));
        assert!(!is_host_network(&slim) && !is_terminal(&slim));
        assert_eq!(
            decide_pod(Some(&slim), Held::Nothing, None),
            decide_pod(Some(&pod), Held::Nothing, None)
        );
        assert!(
            slim.spec.is_some_and(|s| s.containers.is_empty()),
            "a container without named ports is dropped"
        );
        assert_eq!(slim.status.and_then(|s| s.message), None);
    }
}
