//! Waiting, through one metadata watch (no polling), until every benchmark pod carries an
//! annotation value: `allocated` before CNI runs, `routed` for the controller's convergence.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use tokio::time::Instant;

use super::error::BenchError;
use super::objects;

/// What the benchmarks need of a pod once it has the awaited annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    /// The pod's UID.
    pub uid: String,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Waits until `expected` benchmark pods of `namespace` have annotation `key` = `value`, and
/// returns when that happened and the facts of those pods.
pub async fn wait_for_annotation(
    client: &kube::Client,
    namespace: &str,
    key: &str,
    value: &str,
    expected: usize,
    timeout: Duration,
) -> Result<(Instant, BTreeMap<String, PodFacts>), BenchError> {
    let api: Api<PartialObjectMeta<Pod>> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().labels(&objects::pod_selector());
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut done: BTreeMap<String, PodFacts> = BTreeMap::new();
    let mut last_error = None;
    let deadline = Instant::now() + timeout;
    while done.len() < expected {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        let event = match next {
            Err(_) => {
                return Err(BenchError::Timeout {
                    what: format!("{expected} pods in {namespace} with {key}={value}"),
                    detail: format!(
                        "{} have it{}",
                        done.len(),
                        last_error
                            .map(|e| format!("; last watch error: {e}"))
                            .unwrap_or_default()
                    ),
                });
            }
            Ok(None) => {
                return Err(BenchError::protocol(
                    format!("watch pods in {namespace}"),
                    "the watch stream ended",
                ));
            }
            Ok(Some(Err(e))) => {
                last_error = Some(e.to_string());
                continue;
            }
            Ok(Some(Ok(event))) => event,
        };
        match event {
            Event::Apply(meta) | Event::InitApply(meta) => {
                let meta = meta.metadata;
                let Some(name) = meta.name else { continue };
                let annotations = meta.annotations.unwrap_or_default();
                if annotations.get(key).map(String::as_str) == Some(value) {
                    let uid = meta.uid.unwrap_or_default();
                    done.insert(name, PodFacts { uid, annotations });
                } else {
                    done.remove(&name);
                }
            }
            Event::Delete(meta) => {
                if let Some(name) = meta.metadata.name {
                    done.remove(&name);
                }
            }
            Event::Init | Event::InitDone => {}
        }
    }
    Ok((Instant::now(), done))
}
