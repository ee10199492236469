//! One pod on a big cluster: pods created one at a time on a converged cluster, each timed from
//! its create request to its port in NB and to its `routed` annotation — what a user waits for
//! when a Deployment scales by one on a cluster of ten thousand pods.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{PartialObjectMeta, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as WatchEvent, watcher};
use rovn_ovsdb::{Change, Event, Model, TableMonitor};
use rovn_ovsdb_schemas::nb::{self, LogicalSwitchPort};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::error::BenchError;
use super::objects;
use super::ovsdb_util::{start_client, string_column};
use super::stats::Percentiles;

/// What to create.
#[derive(Debug, Clone)]
pub struct LatencyRun {
    /// The namespace the pods go to.
    pub namespace: String,
    /// Their names, created in this order.
    pub pods: Vec<String>,
    /// Their nodes, one per pod.
    pub nodes: Vec<String>,
    /// The time between two creates.
    pub gap: Duration,
    /// Bound on the whole run.
    pub timeout: Duration,
}

/// Per pod, create → port in NB and create → `routed=true`.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    /// create → `rovn.io/routed=true` on the pod.
    pub routed: Vec<Duration>,
    /// create → the pod's port in NB.
    pub nb: Vec<Duration>,
}

impl Latencies {
    /// The percentiles of both.
    pub fn percentiles(&self) -> (Option<Percentiles>, Option<Percentiles>) {
        (Percentiles::of(&self.routed), Percentiles::of(&self.nb))
    }
}

/// Creates `run.pods` one at a time, `run.gap` apart, and waits (watches, never polls) until
/// every one is routed and has its port in NB.
pub async fn measure(
    client: &kube::Client,
    nb_remote: &str,
    run: &LatencyRun,
) -> Result<Latencies, BenchError> {
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<(Seen, String, Instant)>();
    let watch = tokio::spawn(watch_routed(
        client.clone(),
        run.namespace.clone(),
        seen_tx.clone(),
    ));
    let table = TableMonitor::all(LogicalSwitchPort::TABLE).with_columns([LogicalSwitchPort::NAME]);
    let (nb_client, mut events) =
        start_client(nb::DATABASE, nb_remote, vec![table], run.timeout).await?;
    let ports = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let Event::Change(Change::Insert { table, new, .. }) = event
                && table == LogicalSwitchPort::TABLE
                && let Some(name) = string_column(&new, LogicalSwitchPort::NAME)
                && seen_tx
                    .send((Seen::Port, name.to_string(), Instant::now()))
                    .is_err()
            {
                return;
            }
        }
    });

    let api: Api<Pod> = Api::namespaced(client.clone(), &run.namespace);
    let mut created: BTreeMap<String, Instant> = BTreeMap::new();
    let start = Instant::now();
    for (i, (name, node)) in run.pods.iter().zip(&run.nodes).enumerate() {
        tokio::time::sleep_until(start + run.gap * i as u32).await;
        let pod = objects::bound_pod(name, &run.namespace, node)?;
        created.insert(name.clone(), Instant::now());
        api.create(&PostParams::default(), &pod)
            .await
            .map_err(|e| BenchError::kube(format!("create pod {}/{name}", run.namespace), e))?;
    }

    let port_of: BTreeMap<String, String> = run
        .pods
        .iter()
        .map(|p| (rovn_api::names::pod_port(&run.namespace, p), p.clone()))
        .collect();
    let mut out = Latencies::default();
    let mut routed_done = std::collections::BTreeSet::new();
    let mut nb_done = std::collections::BTreeSet::new();
    let deadline = Instant::now() + run.timeout;
    while routed_done.len() < run.pods.len() || nb_done.len() < run.pods.len() {
        let Ok(Some((kind, name, at))) = tokio::time::timeout_at(deadline, seen.recv()).await
        else {
            watch.abort();
            ports.abort();
            return Err(BenchError::Timeout {
                what: format!("{} pods created one at a time to be routed", run.pods.len()),
                detail: format!("{} routed, {} in NB", routed_done.len(), nb_done.len()),
            });
        };
        let pod = match kind {
            Seen::Routed => Some(name),
            Seen::Port => port_of.get(&name).cloned(),
        };
        let Some(pod) = pod else { continue };
        let Some(began) = created.get(&pod) else {
            continue;
        };
        let elapsed = at.saturating_duration_since(*began);
        match kind {
            Seen::Routed if routed_done.insert(pod.clone()) => out.routed.push(elapsed),
            Seen::Port if nb_done.insert(pod.clone()) => out.nb.push(elapsed),
            _ => {}
        }
    }
    watch.abort();
    ports.abort();
    drop(nb_client);
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Routed,
    Port,
}

async fn watch_routed(
    client: kube::Client,
    namespace: String,
    seen: mpsc::UnboundedSender<(Seen, String, Instant)>,
) {
    let api: Api<PartialObjectMeta<Pod>> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().labels(&objects::pod_selector());
    let mut events = watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        let Ok(WatchEvent::Apply(meta) | WatchEvent::InitApply(meta)) = event else {
            continue;
        };
        let meta = meta.metadata;
        let routed = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(rovn_api::names::annotations::ROUTED))
            .is_some_and(|v| v == "true");
        if let (true, Some(name)) = (routed, meta.name)
            && seen.send((Seen::Routed, name, Instant::now())).is_err()
        {
            return;
        }
    }
}
