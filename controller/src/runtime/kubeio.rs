//! The controller's writes to the Kubernetes API: annotation and status patches, the default
//! Subnet, Events. Every write names its object in its error.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::Semaphore;

use rovn_api::Owner;
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
            what: format!("patching annotations of Pod {namespace}/{name}"),
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

/// Publishes Events for problems a user can fix, without ever blocking the controller: each is
/// also a `warn` log line naming the object, and publishing happens in the background (a
/// bounded number at once; beyond that only the log line remains).
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
    permits: Arc<Semaphore>,
}

impl Events {
    /// Events reported as `rovn-controller` (instance: this replica's identity).
    pub fn new(client: kube::Client, instance: Option<String>) -> Events {
        let reporter = Reporter {
            controller: "rovn-controller".into(),
            instance,
        };
        Events {
            recorder: Recorder::new(client, reporter),
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
        let recorder = self.recorder.clone();
        let event = Event {
            type_: EventType::Warning,
            reason: reason.to_string(),
            note: Some(truncate(message, 1000)),
            action: action.to_string(),
            secondary: None,
        };
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&event, &object).await {
                tracing::debug!(error = %e, "publishing an event");
            }
            drop(permit);
        });
    }
}

fn truncate(mut message: String, max: usize) -> String {
    if message.len() > max {
        let mut end = max;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
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
