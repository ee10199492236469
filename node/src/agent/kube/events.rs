//! Warning Events on a pod for ADD failures its owner can act on (shown by
//! `kubectl describe pod`).

use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Publishes the agent's Events, as reporter `rovn-node` with the node as instance.
#[derive(Clone)]
pub struct PodEvents {
    recorder: Recorder,
}

impl PodEvents {
    /// A publisher for the agent on `node`.
    pub fn new(client: kube::Client, node: &str) -> PodEvents {
        let reporter = Reporter {
            controller: "rovn-node".into(),
            instance: Some(node.to_string()),
        };
        PodEvents {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// A Warning with `reason` and `note` on `pod`; failures are logged, never returned, since
    /// the CNI answer already carries the error.
    pub async fn warn(&self, pod: &Pod, reason: &str, note: &str) {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.to_string(),
            note: Some(note.chars().take(1000).collect()),
            action: "AddPodNetwork".into(),
            secondary: None,
        };
        let reference = pod.object_ref(&());
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, reason, "cannot publish an Event on the pod");
        }
    }
}
