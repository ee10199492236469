//! The controller's writes to the Kubernetes API: annotation and status patches, the default
//! Subnet, Events. Every write names its object in its error.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event as CoreEvent, Node, ObjectReference, Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::Semaphore;

use rovn_api::Owner;
use rovn_api::events::{EventBook, EventNote, EventReporter, EventWrite};
use rovn_api::subnet::{Subnet, SubnetStatus};

/// A failed write, naming the object.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct WriteError {
    /// The object and the write (`patching annotations of Pod ns/name`).
    pub what: String,
    /// The client's error.
    #[source]
    pub source: kube::Error,
}

impl WriteError {
    /// Whether the object is gone (no point retrying).
    pub fn is_not_found(&self) -> bool {
        matches!(&self.source, kube::Error::Api(s) if s.code == 404)
    }
}

/// Writes `annotations` on a pod in one merge patch, only if the pod still has `uid` and
/// `resource_version` (so a concurrent writer or a re-created pod is never overwritten).
pub async fn patch_pod_annotations(
    client: kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
    resource_version: Option<&str>,
    annotations: &BTreeMap<String, String>,
) -> Result<Pod, WriteError> {
    let mut metadata = json!({ "uid": uid, "annotations": annotations });
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    Api::<Pod>::namespaced(client, namespace)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": metadata })),
        )
        .await
        .map_err(|source| WriteError {
            what: format!("patching annotations of {}", Owner::pod(namespace, name)),
            source,
        })
}

/// Writes `annotations` on a node, checked against `uid` and `resource_version`.
pub async fn patch_node_annotations(
    client: kube::Client,
    name: &str,
    uid: &str,
    resource_version: Option<&str>,
    annotations: &BTreeMap<String, String>,
) -> Result<Node, WriteError> {
    let mut metadata = json!({ "uid": uid, "annotations": annotations });
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    Api::<Node>::all(client)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": metadata })),
        )
        .await
        .map_err(|source| WriteError {
            what: format!("patching annotations of Node {name}"),
            source,
        })
}

/// Writes a Subnet's status through the status subresource.
pub async fn patch_subnet_status(
    client: kube::Client,
    name: &str,
    status: &SubnetStatus,
) -> Result<(), WriteError> {
    Api::<Subnet>::all(client)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .map(|_| ())
        .map_err(|source| WriteError {
            what: format!("writing the status of Subnet {name}"),
            source,
        })
}

/// Sets a Subnet's `metadata.finalizers` to `finalizers`, only if the object still has
/// `resource_version` (a merge patch replaces the whole list, so a concurrent writer's
/// finalizer is never lost: a conflict is retried from the object as it is then).
pub async fn patch_subnet_finalizers(
    client: kube::Client,
    name: &str,
    resource_version: Option<&str>,
    finalizers: &[String],
) -> Result<(), WriteError> {
    let mut metadata = json!({ "finalizers": finalizers });
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    Api::<Subnet>::all(client)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": metadata })),
        )
        .await
        .map(|_| ())
        .map_err(|source| WriteError {
            what: format!("writing the finalizers of Subnet {name}"),
            source,
        })
}

/// Writes a LoadBalancer Service's address (`status.loadBalancer.ingress`, through the status
/// subresource; `None` clears it) when `ip` is `Some`, and its announcer annotation (`None`
/// removes it) when `announcer` is `Some`.
pub async fn patch_service_lb(
    client: kube::Client,
    namespace: &str,
    name: &str,
    ip: Option<Option<std::net::Ipv4Addr>>,
    announcer: Option<Option<String>>,
) -> Result<(), WriteError> {
    let api = Api::<Service>::namespaced(client, namespace);
    let what = |write: &str| format!("{write} of {}", Owner::service(namespace, name));
    if let Some(ip) = ip {
        let ingress = match ip {
            Some(ip) => json!([{ "ip": ip.to_string() }]),
            None => serde_json::Value::Null,
        };
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "loadBalancer": { "ingress": ingress } } })),
        )
        .await
        .map_err(|source| WriteError {
            what: what("writing status.loadBalancer"),
            source,
        })?;
    }
    if let Some(announcer) = announcer {
        let annotations = json!({ rovn_api::names::LB_NODE_ANNOTATION: announcer });
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": annotations } })),
        )
        .await
        .map_err(|source| WriteError {
            what: what("writing the announcer annotation"),
            source,
        })?;
    }
    Ok(())
}

/// Creates `subnet` unless an object of its name exists (which is never overwritten).
pub async fn create_if_absent(client: kube::Client, subnet: &Subnet) -> Result<bool, WriteError> {
    let name = subnet.name_any();
    match Api::<Subnet>::all(client)
        .create(&PostParams::default(), subnet)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(source) => Err(WriteError {
            what: format!("creating Subnet {name}"),
            source,
        }),
    }
}

/// The problems last reported per object, so each gets one Warning Event while it lasts, and
/// one again if it comes back after it was gone.
#[derive(Default)]
pub struct Problems(HashMap<Owner, BTreeSet<String>>);

impl Problems {
    /// `owner`'s problems now: the new ones are published as `reason` Events (and log lines),
    /// the ones it no longer has forgotten.
    pub fn report(
        &mut self,
        events: &Events,
        owner: &Owner,
        reason: &str,
        action: &str,
        problems: impl IntoIterator<Item = String>,
    ) {
        let now: BTreeSet<String> = problems.into_iter().collect();
        let before = self.0.remove(owner).unwrap_or_default();
        for problem in now.difference(&before) {
            match owner_reference(owner) {
                Some(reference) => events.warn(reference, reason, action, problem.clone()),
                None => tracing::warn!(%owner, "{problem}"),
            }
        }
        if !now.is_empty() {
            self.0.insert(owner.clone(), now);
        }
    }

    /// Only the owners `keep` accepts are remembered (the others are gone).
    pub fn retain(&mut self, keep: impl Fn(&Owner) -> bool) {
        self.0.retain(|owner, _| keep(owner));
    }

    /// `owner` is gone: nothing of it is remembered.
    pub fn forget(&mut self, owner: &Owner) {
        self.0.remove(owner);
    }
}

/// Publishes Events for problems a user can fix, without ever blocking the controller: each is
/// also a `warn` log line naming the object, and publishing happens in the background (a
/// bounded number at once; beyond that only the log line remains). A repeat of a reason on an
/// object patches the same Event with the current message, count and `lastTimestamp`
/// (`rovn_api::events`).
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    book: Arc<EventBook>,
    permits: Arc<Semaphore>,
}

impl Events {
    /// Events reported as `rovn-controller` (instance: this replica's identity).
    pub fn new(client: kube::Client, instance: Option<String>) -> Events {
        let reporter = EventReporter {
            component: "rovn-controller".into(),
            instance: instance.unwrap_or_else(|| "rovn-controller".into()),
        };
        Events {
            client,
            book: Arc::new(EventBook::new(reporter)),
            permits: Arc::new(Semaphore::new(32)),
        }
    }

    /// A Warning event on `object` (and a warn log line).
    pub fn warn(&self, object: ObjectReference, reason: &str, action: &str, message: String) {
        tracing::warn!(
            kind = object.kind.as_deref().unwrap_or(""),
            namespace = object.namespace.as_deref().unwrap_or(""),
            name = object.name.as_deref().unwrap_or(""),
            reason,
            "{message}"
        );
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::debug!(reason, "event dropped: too many in flight");
            return;
        };
        let note = EventNote::warning(reason, action, &message);
        let (client, book) = (self.client.clone(), self.book.clone());
        tokio::spawn(async move {
            if let Err(e) = publish_event(client, &book, &object, &note).await {
                tracing::debug!(error = %e, "publishing an event");
            }
            drop(permit);
        });
    }
}

/// Writes what `book` says for `note` on `regarding`; a failed write is forgotten, so the next
/// occurrence creates a fresh Event.
async fn publish_event(
    client: kube::Client,
    book: &EventBook,
    regarding: &ObjectReference,
    note: &EventNote,
) -> Result<(), kube::Error> {
    let result = match book.record(regarding, note, Timestamp::now()) {
        EventWrite::Create { namespace, event } => Api::<CoreEvent>::namespaced(client, &namespace)
            .create(&PostParams::default(), &event)
            .await
            .map(drop),
        EventWrite::Patch {
            namespace,
            name,
            patch,
        } => Api::<CoreEvent>::namespaced(client, &namespace)
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop),
    };
    if result.is_err() {
        book.forget(regarding, note);
    }
    result
}

/// The reference an Event about `object` points at.
pub fn reference<K: Resource<DynamicType = ()>>(object: &K) -> ObjectReference {
    object.object_ref(&())
}

/// An Event reference for the object an NB row is owned by; `None` for the cluster itself,
/// which has no Kubernetes object to attach an Event to.
pub fn owner_reference(owner: &Owner) -> Option<ObjectReference> {
    Some(ObjectReference {
        api_version: Some(owner.kind().api_version()?.into()),
        kind: Some(owner.kind().as_str().into()),
        namespace: owner.namespace().map(str::to_string),
        name: Some(owner.name().into()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_name_their_kubernetes_objects() {
        let pod = owner_reference(&Owner::pod("ns", "web")).unwrap_or_default();
        assert_eq!(pod.kind.as_deref(), Some("Pod"));
        assert_eq!(pod.api_version.as_deref(), Some("v1"));
        assert_eq!(pod.namespace.as_deref(), Some("ns"));
        assert_eq!(pod.name.as_deref(), Some("web"));
        let subnet = owner_reference(&Owner::subnet("blue")).unwrap_or_default();
        assert_eq!(subnet.api_version.as_deref(), Some("rovn.io/v1"));
        assert_eq!(subnet.namespace, None);
        assert!(owner_reference(&Owner::cluster("ovn-cluster")).is_none());
    }
}
