//! The pods the agent plugs: waiting (with a watch on the one pod) for the controller's
//! allocation, and listing the node's pods for restart cleanup.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use rovn_controller::annotations::{self, AnnotationError, PodAllocation};

/// Why a pod's allocation could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PodWaitError {
    /// The controller did not allocate in time.
    #[error(
        "pod {namespace}/{name} has no rovn.io/allocated annotation after {}s (is rovn-controller running? see kubectl describe pod)",
        timeout.as_secs()
    )]
    Timeout {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// The pod does not exist (or was deleted while waiting).
    #[error("pod {namespace}/{name} does not exist")]
    NotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A pod of that name exists, but it is not the one the runtime asked for.
    #[error(
        "pod {namespace}/{name} has UID {found}, but the runtime asked for UID {expected} (the pod was re-created)"
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
    /// The allocation annotations are malformed.
    #[error("pod {namespace}/{name}: {source}")]
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
    #[error("watching pod {namespace}/{name}: {message}")]
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
    Ready(PodAllocation),
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
    match annotations::parse_pod_allocation(annotations) {
        Ok(Some(allocation)) => Ok(Observation::Ready(allocation)),
        Ok(None) => Ok(Observation::Pending),
        Err(source) => Err(PodWaitError::Invalid {
            namespace,
            name,
            source,
        }),
    }
}

/// Watches pod `namespace/name` until it carries a valid allocation, for at most `timeout`.
pub async fn wait_allocation(
    client: kube::Client,
    namespace: &str,
    name: &str,
    expected_uid: Option<&str>,
    timeout: Duration,
) -> Result<(Pod, PodAllocation), PodWaitError> {
    let api: Api<Pod> = Api::namespaced(client, namespace);
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
        }),
    }
}

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
        .with_context(|| format!("reading pod {namespace}/{name}"))
}
