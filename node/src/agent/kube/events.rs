//! Warning Events the agent publishes: on a pod for ADD failures its owner can act on (shown by
//! `kubectl describe pod`), on its Node for Subnets it will not route. A repeat patches the
//! same Event with the current message, count and `lastTimestamp` (`rovn_api::events`).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rovn_api::events::{EventBook, EventNote, EventReporter, EventWrite};

/// Publishes the agent's Events, as component `rovn-node` with the node as instance.
#[derive(Clone)]
pub struct PodEvents {
    client: kube::Client,
    book: Arc<EventBook>,
}

impl PodEvents {
    /// A publisher for the agent on `node`.
    pub fn new(client: kube::Client, node: &str) -> PodEvents {
        let reporter = EventReporter {
            component: "rovn-node".into(),
            instance: node.to_string(),
        };
        PodEvents {
            client,
            book: Arc::new(EventBook::new(reporter)),
        }
    }

    /// A Warning with `reason` and `note` on `pod` for a failed ADD; failures are logged, never
    /// returned, since the CNI answer already carries the error.
    pub async fn warn(&self, pod: &Pod, reason: &str, note: &str) {
        self.warn_on(&pod.object_ref(&()), reason, "AddPodNetwork", note)
            .await;
    }

    /// A Warning with `reason`, `action` and `note` on any object; failures are logged.
    pub async fn warn_on(
        &self,
        regarding: &ObjectReference,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let note = EventNote::warning(reason, action, note);
        let result = match self.book.record(regarding, &note, Timestamp::now()) {
            EventWrite::Create { namespace, event } => {
                Api::<Event>::namespaced(self.client.clone(), &namespace)
                    .create(&PostParams::default(), &event)
                    .await
                    .map(drop)
            }
            EventWrite::Patch {
                namespace,
                name,
                patch,
            } => Api::<Event>::namespaced(self.client.clone(), &namespace)
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop),
        };
        if let Err(e) = result {
            self.book.forget(regarding, &note);
            tracing::warn!(error = %e, reason, "cannot publish an Event");
        }
    }
}
