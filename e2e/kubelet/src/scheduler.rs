//! The lab's scheduler: binds pods without a node to Ready nodes, round robin over the nodes
//! sorted by name, honouring `spec.nodeSelector`. Binds go through the `binding` subresource,
//! pipelined with bounded concurrency so thousands of pods bind quickly.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc as fmpsc;
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::mpsc;

/// What scheduling needs to know about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Its labels, matched against `nodeSelector`.
    pub labels: BTreeMap<String, String>,
    /// Condition Ready=True.
    pub ready: bool,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
}

/// Extracts [`NodeInfo`] from a Node. Pure.
pub fn node_info(node: &Node) -> NodeInfo {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        ready,
        unschedulable: node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
    }
}

/// Names of the nodes a pod may go to, sorted: Ready, not cordoned, carrying every
/// `nodeSelector` label. Pure.
pub fn eligible_nodes(
    nodes: &[NodeInfo],
    selector: Option<&BTreeMap<String, String>>,
) -> Vec<String> {
    let mut names: Vec<String> = nodes
        .iter()
        .filter(|n| n.ready && !n.unschedulable && !n.name.is_empty())
        .filter(|n| selector.is_none_or(|sel| sel.iter().all(|(k, v)| n.labels.get(k) == Some(v))))
        .map(|n| n.name.clone())
        .collect();
    names.sort();
    names
}

/// Round robin over whatever candidate list each pod has, so pods spread evenly even as nodes
/// come and go.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: usize,
}

impl RoundRobin {
    /// The next candidate, or `None` when there is none.
    pub fn pick(&mut self, candidates: &[String]) -> Option<String> {
        if candidates.is_empty() {
            return None;
        }
        let chosen = candidates[self.next % candidates.len()].clone();
        self.next = self.next.wrapping_add(1);
        Some(chosen)
    }
}

/// The `spec.schedulerName` this scheduler answers to, as kube-scheduler does.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Whether the scheduler should bind this pod: no node yet, not being deleted, and asking for
/// the default scheduler (pods naming another scheduler are left to it). Pure.
pub fn needs_binding(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.spec.as_ref().is_some_and(|s| {
            s.node_name.as_deref().unwrap_or("").is_empty()
                && s.scheduler_name
                    .as_deref()
                    .is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME)
        })
}

/// The Binding object kube-scheduler posts for a pod and node. Pure.
pub fn binding(namespace: &str, pod: &str, uid: Option<String>, node: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            name: Some(pod.to_owned()),
            namespace: Some(namespace.to_owned()),
            uid,
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_owned()),
            ..Default::default()
        },
    }
}

/// Scheduler tuning.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Binds in flight at once.
    pub concurrency: usize,
    /// How often pods with no eligible node are retried.
    pub retry_interval: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            retry_interval: Duration::from_millis(500),
        }
    }
}

/// The scheduler's pod watch ended (only when the client goes away).
#[derive(Debug, thiserror::Error)]
#[error("pod watch of the scheduler ended")]
pub struct SchedulerEnded;

struct PodRef {
    namespace: String,
    name: String,
    uid: String,
    selector: Option<BTreeMap<String, String>>,
}

impl PodRef {
    fn of(pod: &Pod) -> Option<Self> {
        Some(Self {
            namespace: pod.metadata.namespace.clone()?,
            name: pod.metadata.name.clone()?,
            uid: pod.metadata.uid.clone()?,
            selector: pod.spec.as_ref().and_then(|s| s.node_selector.clone()),
        })
    }
}

enum BindOutcome {
    Done(String),
    Retry(PodRef),
}

/// Runs the scheduler until the pod watch ends.
pub async fn run(client: Client, config: SchedulerConfig) -> Result<(), SchedulerEnded> {
    let (reader, writer) = reflector::store::<Node>();
    let nodes_stream = reflector::reflector(
        writer,
        watcher::watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    tokio::spawn(async move {
        futures::pin_mut!(nodes_stream);
        while let Some(item) = nodes_stream.next().await {
            if let Err(e) = item {
                tracing::warn!("node watch: {e}");
            }
        }
    });
    if reader.wait_until_ready().await.is_err() {
        return Err(SchedulerEnded);
    }

    let (bind_tx, bind_rx) = fmpsc::channel::<(PodRef, String)>(config.concurrency * 4);
    let (outcome_tx, mut outcome_rx) = mpsc::unbounded_channel::<BindOutcome>();
    tokio::spawn(binder(
        client.clone(),
        bind_rx,
        outcome_tx,
        config.concurrency,
    ));

    let pods: Api<Pod> = Api::all(client);
    let mut stream = watcher::watcher(pods, watcher::Config::default().fields("spec.nodeName="))
        .default_backoff()
        .boxed();
    let mut in_flight: HashSet<String> = HashSet::new();
    let mut waiting: VecDeque<PodRef> = VecDeque::new();
    let mut rr = RoundRobin::default();
    let mut bind_tx = bind_tx;
    let mut retry = tokio::time::interval(config.retry_interval);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(outcome) = outcome_rx.recv() => match outcome {
                BindOutcome::Done(uid) => { in_flight.remove(&uid); }
                BindOutcome::Retry(p) => waiting.push_back(p),
            },
            _ = retry.tick() => {
                let count = waiting.len();
                for _ in 0..count {
                    let Some(p) = waiting.pop_front() else { break };
                    if let Some(p) = place(&reader, &mut rr, p, &mut bind_tx).await {
                        waiting.push_back(p);
                    }
                }
            }
            event = stream.next() => {
                let Some(event) = event else { return Err(SchedulerEnded) };
                let pod = match event {
                    Ok(Event::Apply(p) | Event::InitApply(p)) => p,
                    Ok(Event::Delete(p)) => {
                        if let Some(uid) = p.metadata.uid.as_deref() {
                            waiting.retain(|w| w.uid != uid);
                        }
                        continue;
                    }
                    Ok(Event::Init | Event::InitDone) => continue,
                    Err(e) => {
                        tracing::warn!("pod watch: {e}");
                        continue;
                    }
                };
                if !needs_binding(&pod) {
                    continue;
                }
                let Some(p) = PodRef::of(&pod) else { continue };
                if !in_flight.insert(p.uid.clone()) {
                    continue;
                }
                if let Some(p) = place(&reader, &mut rr, p, &mut bind_tx).await {
                    waiting.push_back(p);
                }
            }
        }
    }
}

/// Picks a node and queues the bind; gives the pod back when no node fits yet.
async fn place(
    reader: &Store<Node>,
    rr: &mut RoundRobin,
    pod: PodRef,
    bind_tx: &mut fmpsc::Sender<(PodRef, String)>,
) -> Option<PodRef> {
    let nodes: Vec<NodeInfo> = reader.state().iter().map(|n| node_info(n)).collect();
    let candidates = eligible_nodes(&nodes, pod.selector.as_ref());
    let Some(node) = rr.pick(&candidates) else {
        return Some(pod);
    };
    if let Err(e) = bind_tx.send((pod, node)).await {
        tracing::warn!("bind queue closed: {e}");
    }
    None
}

async fn binder(
    client: Client,
    rx: fmpsc::Receiver<(PodRef, String)>,
    outcomes: mpsc::UnboundedSender<BindOutcome>,
    concurrency: usize,
) {
    let client = Arc::new(client);
    rx.for_each_concurrent(concurrency, |(pod, node)| {
        let client = Arc::clone(&client);
        let outcomes = outcomes.clone();
        async move {
            let api: Api<Pod> = Api::namespaced((*client).clone(), &pod.namespace);
            let body = binding(&pod.namespace, &pod.name, Some(pod.uid.clone()), &node);
            let result = api
                .create_subresource::<Binding, serde_json::Value>(
                    "binding",
                    &pod.name,
                    &PostParams::default(),
                    &body,
                )
                .await;
            let outcome = match result {
                Ok(_) => {
                    tracing::debug!(pod = %format!("{}/{}", pod.namespace, pod.name), %node, "bound");
                    BindOutcome::Done(pod.uid)
                }
                Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => {
                    BindOutcome::Done(pod.uid)
                }
                Err(e) => {
                    tracing::warn!(pod = %format!("{}/{}", pod.namespace, pod.name), %node, "binding failed (will retry): {e}");
                    BindOutcome::Retry(pod)
                }
            };
            let _ = outcomes.send(outcome);
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn node(name: &str, ready: bool, labels: &[(&str, &str)]) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ready,
            unschedulable: false,
        }
    }

    #[test]
    fn eligible_are_ready_matching_sorted() {
        let mut cordoned = node("node0", true, &[]);
        cordoned.unschedulable = true;
        let nodes = vec![
            node("node3", true, &[("zone", "a")]),
            node("node1", true, &[("zone", "b")]),
            node("node2", false, &[("zone", "a")]),
            cordoned,
        ];
        assert_eq!(eligible_nodes(&nodes, None), ["node1", "node3"]);
        let sel = BTreeMap::from([("zone".to_string(), "a".to_string())]);
        assert_eq!(eligible_nodes(&nodes, Some(&sel)), ["node3"]);
        let none = BTreeMap::from([("zone".to_string(), "z".to_string())]);
        assert!(eligible_nodes(&nodes, Some(&none)).is_empty());
    }

    #[test]
    fn round_robin_cycles() {
        let mut rr = RoundRobin::default();
        let c = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let picks: Vec<String> = (0..6).filter_map(|_| rr.pick(&c)).collect();
        assert_eq!(picks, ["a", "b", "c", "a", "b", "c"]);
        assert_eq!(rr.pick(&[]), None);
    }

    #[test]
    fn binding_rules() {
        let mut pod = Pod {
            spec: Some(PodSpec::default()),
            ..Default::default()
        };
        assert!(needs_binding(&pod));
        if let Some(s) = pod.spec.as_mut() {
            s.scheduler_name = Some("other".into());
        }
        assert!(!needs_binding(&pod));
        if let Some(s) = pod.spec.as_mut() {
            s.scheduler_name = Some(SCHEDULER_NAME.into());
        }
        assert!(needs_binding(&pod));
        if let Some(s) = pod.spec.as_mut() {
            s.node_name = Some("node1".into());
        }
        assert!(!needs_binding(&pod));
        let b = binding("ns", "p", None, "node2");
        assert_eq!(b.target.kind.as_deref(), Some("Node"));
        assert_eq!(b.target.name.as_deref(), Some("node2"));
        assert_eq!(b.metadata.name.as_deref(), Some("p"));
    }

    #[test]
    fn node_info_reads_ready() {
        use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
        let n = Node {
            metadata: ObjectMeta {
                name: Some("n".into()),
                ..Default::default()
            },
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(node_info(&n).ready);
        assert!(!node_info(&Node::default()).ready);
    }
}
