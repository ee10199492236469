//! The controller task: owns IPAM and the per-object bookkeeping, turns cache changes into
//! allocations and annotation patches, and runs the NB reconcile rounds. Everything here runs
//! on one task (no locks); Kubernetes writes and NB rounds run in spawned tasks and report back
//! through a channel.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use rovn_api::MacAddr;
use rovn_api::Owner;
use rovn_api::annotations::{
    Ipv4NodeJoin, Ipv4PodAllocation, Ipv4PodRequest, is_routed, parse_chassis, parse_node_join,
    parse_pod_allocation, render_node_join, render_pod_allocation,
};
use rovn_api::names;
use rovn_api::subnet::Subnet;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::allocator::Allocator;
use super::decide::{Held, PodAction, decide_pod, is_host_network, is_terminal, node_of};
use super::kubeio::{self, Events, WriteError};
use super::metrics::Metrics;
use super::watch::{Key, Kind, Note};
use crate::desired::{self, ClusterState, DesiredError, JoinSubnet, desired_state};
use crate::ipam::{IpamError, Request};
use crate::reconcile::{ApplyOptions, Outcome, ReconcileError, reconcile_once};
use crate::subnets::{
    Reserved, SubnetOutcome, SubnetSet, default_subnet, status_needs_write, subnet_status,
    validate_subnets,
};

/// How long changes are collected before a reconcile round starts.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Longest wait between retries of a failed round or patch.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// First retry delay of a failed round or patch.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The controller's fixed settings.
#[derive(Clone)]
pub struct Settings {
    /// The join network.
    pub join_cidr: Ipv4Net,
    /// Ranges no Subnet may overlap.
    pub reserved: Reserved,
    /// `ovn-default` when the controller creates it.
    pub default_cidr: Ipv4Net,
    /// Its gateway.
    pub default_gateway: Option<Ipv4Addr>,
    /// Its `excludeIps`.
    pub default_exclude_ips: Vec<String>,
    /// How NB transactions are cut.
    pub apply: ApplyOptions,
    /// Kubernetes patches in flight at once.
    pub max_concurrent_patches: usize,
    /// Interval of the full resync round.
    pub resync_interval: Duration,
}

/// The caches the controller decides from.
pub struct Caches {
    /// Pods.
    pub pods: Store<Pod>,
    /// Nodes.
    pub nodes: Store<Node>,
    /// Subnets.
    pub subnets: Store<Subnet>,
}

/// A pod's address as the controller holds it.
#[derive(Debug, Clone)]
struct PodRecord {
    uid: String,
    node: String,
    switch: String,
    ip: Ipv4Addr,
    mac: MacAddr,
    /// The annotation patch has succeeded (or the pod carried the allocation already).
    written: bool,
    /// `rovn.io/routed=true` is written (seen on the pod or patched by this controller).
    routed: bool,
}

/// A node's join address as the controller holds it.
#[derive(Debug, Clone)]
struct NodeRecord {
    uid: String,
    ip: Ipv4Addr,
    mac: MacAddr,
    written: bool,
}

/// A pod that could not be given an address, and why (reported once per message).
#[derive(Debug, Clone)]
struct Refusal {
    uid: String,
    message: String,
    /// The pod carries an allocation of its own: its NB rows are kept as they are.
    keep_rows: bool,
}

/// What a background task reports back.
enum Done {
    PodPatched {
        key: Key,
        uid: String,
        result: Result<(), WriteError>,
    },
    PodRouted {
        key: Key,
        uid: String,
        result: Result<(), WriteError>,
    },
    NodePatched {
        name: String,
        uid: String,
        result: Result<(), WriteError>,
    },
    SubnetStatusWritten {
        name: String,
    },
    Round(Box<RoundReport>),
    Retry(Key),
    NbChanged,
}

struct RoundReport {
    result: Result<Outcome, ReconcileError>,
    duration: Duration,
    pods: Vec<(Key, String)>,
    held: BTreeSet<Owner>,
    problems: Vec<DesiredError>,
}

#[derive(Default)]
struct RoundSchedule {
    due: Option<tokio::time::Instant>,
    running: bool,
    backoff: Option<Duration>,
    first_done: bool,
    last_duration: Duration,
}

/// The controller task's state.
pub struct Controller {
    settings: Settings,
    kube: kube::Client,
    nb: Arc<rovn_ovsdb::Client>,
    caches: Caches,
    notes: UnboundedReceiver<Note>,
    done_tx: UnboundedSender<Done>,
    done_rx: UnboundedReceiver<Done>,
    alloc: Allocator,
    subnet_set: SubnetSet,
    pods: HashMap<Key, PodRecord>,
    nodes: HashMap<String, NodeRecord>,
    refused: HashMap<Key, Refusal>,
    retry_refused: bool,
    attempts: HashMap<Key, u32>,
    routed_pending: HashMap<Key, String>,
    status_pending: HashSet<String>,
    subnet_reported: HashMap<String, String>,
    problems_reported: HashSet<String>,
    permits: Arc<Semaphore>,
    events: Events,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    started: Instant,
    round: RoundSchedule,
    nb_dirty: Arc<AtomicBool>,
}

/// Everything [`Controller::new`] needs.
pub struct Parts {
    /// Settings.
    pub settings: Settings,
    /// The Kubernetes client.
    pub kube: kube::Client,
    /// The synced NB client.
    pub nb: rovn_ovsdb::Client,
    /// The caches and the notes their watchers send.
    pub caches: Caches,
    /// Notes from the watchers.
    pub notes: UnboundedReceiver<Note>,
    /// Event publisher.
    pub events: Events,
    /// Metrics.
    pub metrics: Metrics,
    /// Set once ready.
    pub ready: Arc<AtomicBool>,
    /// When the process started (for the `ready after` line).
    pub started: Instant,
}

fn pod_owner(key: &Key) -> Owner {
    Owner::pod(&key.namespace, &key.name)
}

fn node_owner(name: &str) -> Owner {
    Owner::node(name)
}

fn next_backoff(previous: Option<Duration>) -> Duration {
    previous.map_or(FIRST_BACKOFF, |d| (d * 2).min(MAX_BACKOFF))
}

/// The Event reason for an allocation refused by IPAM.
fn ipam_reason(error: &IpamError) -> &'static str {
    match error {
        IpamError::Exhausted { .. } => "SubnetExhausted",
        IpamError::InUse { .. } | IpamError::MacInUse { .. } => "AddressInUse",
        IpamError::OutsideSubnet { .. } => "AddressOutsideSubnet",
        IpamError::Reserved { .. } => "AddressReserved",
        _ => "AllocationFailed",
    }
}

impl Controller {
    /// A controller over synced-or-syncing caches; call [`Controller::run`].
    pub fn new(parts: Parts) -> anyhow::Result<Controller> {
        let (done_tx, done_rx) = unbounded_channel();
        let alloc = Allocator::new(parts.settings.join_cidr)
            .with_context(|| format!("join CIDR {}", parts.settings.join_cidr))?;
        let permits = Arc::new(Semaphore::new(parts.settings.max_concurrent_patches.max(1)));
        Ok(Controller {
            settings: parts.settings,
            kube: parts.kube,
            nb: Arc::new(parts.nb),
            caches: parts.caches,
            notes: parts.notes,
            done_tx,
            done_rx,
            alloc,
            subnet_set: SubnetSet::default(),
            pods: HashMap::new(),
            nodes: HashMap::new(),
            refused: HashMap::new(),
            retry_refused: false,
            attempts: HashMap::new(),
            routed_pending: HashMap::new(),
            status_pending: HashSet::new(),
            subnet_reported: HashMap::new(),
            problems_reported: HashSet::new(),
            permits,
            events: parts.events,
            metrics: parts.metrics,
            ready: parts.ready,
            started: parts.started,
            round: RoundSchedule::default(),
            nb_dirty: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Runs until `stop` resolves (Ok) or the watchers end (Err).
    pub async fn run(mut self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(stop);
        tokio::select! {
            _ = &mut stop => return Ok(()),
            r = self.start() => r?,
        }
        self.forward_nb_changes();
        let mut resync =
            tokio::time::interval(self.settings.resync_interval.max(Duration::from_secs(1)));
        resync.tick().await;
        loop {
            let due = self.round.due.filter(|_| !self.round.running);
            tokio::select! {
                _ = &mut stop => return Ok(()),
                note = self.notes.recv() => {
                    let Some(note) = note else { bail!("the Kubernetes watchers stopped") };
                    self.on_note(note);
                    for _ in 0..4096 {
                        match self.notes.try_recv() {
                            Ok(note) => self.on_note(note),
                            Err(_) => break,
                        }
                    }
                }
                done = self.done_rx.recv() => {
                    if let Some(done) = done {
                        self.on_done(done);
                    }
                    for _ in 0..4096 {
                        match self.done_rx.try_recv() {
                            Ok(done) => self.on_done(done),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    self.start_round();
                }
                _ = resync.tick() => self.request_round(Duration::ZERO),
            }
            if std::mem::take(&mut self.retry_refused) {
                let keys: Vec<Key> = self.refused.keys().cloned().collect();
                for key in keys {
                    self.process_pod(&key);
                }
            }
        }
    }

    /// Waits for the caches, creates `ovn-default` if absent, restores IPAM from annotations
    /// (before anything new is allocated), then handles every object once.
    async fn start(&mut self) -> anyhow::Result<()> {
        let mut synced = HashSet::new();
        while synced.len() < 3 {
            match self.notes.recv().await {
                Some(Note::Synced(kind)) => {
                    synced.insert(kind);
                }
                Some(Note::Changed(..)) => {}
                None => bail!("the Kubernetes watchers stopped before syncing"),
            }
        }
        tracing::info!(
            pods = self.caches.pods.state().len(),
            nodes = self.caches.nodes.state().len(),
            subnets = self.caches.subnets.state().len(),
            "caches synced"
        );
        self.ensure_default_subnet().await?;
        self.refresh_subnets();
        let mut node_names: Vec<String> = self
            .caches
            .nodes
            .state()
            .iter()
            .map(|n| n.name_any())
            .collect();
        node_names.sort();
        for name in &node_names {
            self.process_node(name);
        }
        let mut allocated: Vec<Arc<Pod>> = self
            .caches
            .pods
            .state()
            .into_iter()
            .filter(|p| {
                p.metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| matches!(parse_pod_allocation(a), Ok(Some(_))))
            })
            .collect();
        allocated.sort_by(|a, b| {
            (&a.metadata.creation_timestamp, Key::of(a.as_ref()))
                .cmp(&(&b.metadata.creation_timestamp, Key::of(b.as_ref())))
        });
        for pod in &allocated {
            self.process_pod(&Key::of(pod.as_ref()));
        }
        let restored = self.pods.len();
        let mut rest: Vec<Key> = self
            .caches
            .pods
            .state()
            .iter()
            .map(|p| Key::of(p.as_ref()))
            .collect();
        rest.sort();
        for key in &rest {
            self.process_pod(key);
        }
        tracing::info!(
            restored,
            nodes = self.nodes.len(),
            pending = self.pods.len() - restored,
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "IPAM restored"
        );
        self.request_round(Duration::ZERO);
        Ok(())
    }

    async fn ensure_default_subnet(&mut self) -> anyhow::Result<()> {
        let present = |c: &Caches| {
            c.subnets
                .get(&ObjectRef::new(names::DEFAULT_SUBNET))
                .is_some()
        };
        if present(&self.caches) {
            return Ok(());
        }
        let object = default_subnet(
            self.settings.default_cidr,
            self.settings.default_gateway,
            self.settings.default_exclude_ips.clone(),
        );
        let created = kubeio::create_if_absent(self.kube.clone(), &object).await?;
        if created {
            tracing::info!(cidr = %self.settings.default_cidr, "created Subnet {}", names::DEFAULT_SUBNET);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !present(&self.caches) {
            match tokio::time::timeout_at(deadline, self.notes.recv()).await {
                Ok(Some(_)) => {}
                Ok(None) => bail!("the Kubernetes watchers stopped"),
                Err(_) => bail!(
                    "Subnet {} was created but never appeared in the watch",
                    names::DEFAULT_SUBNET
                ),
            }
        }
        Ok(())
    }

    fn on_note(&mut self, note: Note) {
        match note {
            Note::Changed(Kind::Pod, key) => self.process_pod(&key),
            Note::Changed(Kind::Node, key) => self.process_node(&key.name),
            Note::Changed(Kind::Subnet, _) | Note::Synced(Kind::Subnet) => self.refresh_subnets(),
            Note::Synced(Kind::Pod) => {
                let mut keys: HashSet<Key> = self.pods.keys().cloned().collect();
                keys.extend(self.caches.pods.state().iter().map(|p| Key::of(p.as_ref())));
                for key in keys {
                    self.process_pod(&key);
                }
            }
            Note::Synced(Kind::Node) => {
                let mut names: HashSet<String> = self.nodes.keys().cloned().collect();
                names.extend(self.caches.nodes.state().iter().map(|n| n.name_any()));
                for name in names {
                    self.process_node(&name);
                }
            }
        }
    }

    /// The wait before a round: at least [`DEBOUNCE`], and at least as long as the last round
    /// took, so rounds over a large cluster never take more than about half the CPU away from
    /// allocations and patches.
    fn debounce(&self) -> Duration {
        DEBOUNCE.max(self.round.last_duration)
    }

    fn request_round(&mut self, delay: Duration) {
        let at = tokio::time::Instant::now() + delay;
        self.round.due = Some(self.round.due.map_or(at, |due| due.min(at)));
    }

    // ---- pods ----

    fn pod(&self, key: &Key) -> Option<Arc<Pod>> {
        self.caches
            .pods
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    fn process_pod(&mut self, key: &Key) {
        let pod = self.pod(key);
        let held = self.pods.get(key).map(|r| r.uid.clone());
        let action = decide_pod(
            pod.as_deref(),
            held.as_deref().map_or(Held::Nothing, Held::Address),
        );
        match action {
            PodAction::Skip => {
                if pod
                    .as_deref()
                    .is_none_or(|p| is_terminal(p) || is_host_network(p))
                {
                    self.refused.remove(key);
                    self.attempts.remove(key);
                }
            }
            PodAction::Release => {
                self.release_pod(key);
                if pod.is_some() {
                    self.process_pod(key);
                } else {
                    self.refused.remove(key);
                    self.attempts.remove(key);
                }
            }
            PodAction::Restore(allocation) => {
                if let Some(pod) = pod {
                    self.restore_pod(key, &pod, allocation);
                }
            }
            PodAction::Allocate(request) => {
                if let Some(pod) = pod {
                    self.allocate_pod(key, &pod, request);
                }
            }
            PodAction::Refuse(error) => {
                if let Some(pod) = pod {
                    let keep = pod
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(names::annotations::ALLOCATED))
                        .is_some_and(|v| v == "true");
                    self.refuse(&pod, "InvalidAnnotation", error.to_string(), keep);
                }
            }
        }
    }

    fn refuse(&mut self, pod: &Pod, reason: &str, message: String, keep_rows: bool) {
        let key = Key::of(pod);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let repeated = self
            .refused
            .get(&key)
            .is_some_and(|r| r.uid == uid && r.message == message);
        if !repeated {
            self.metrics.pod_allocation("refused");
            self.events.warn(
                kubeio::reference(pod),
                reason,
                "AllocateAddress",
                format!("Pod {key}: {message}"),
            );
        }
        self.refused.insert(
            key,
            Refusal {
                uid,
                message,
                keep_rows,
            },
        );
    }

    fn restore_pod(&mut self, key: &Key, pod: &Pod, allocation: Ipv4PodAllocation) {
        let owner = pod_owner(key).to_string();
        let Some(pool) = self.alloc.pool(&allocation.switch) else {
            let message = format!(
                "its allocation names Subnet {}, which is not ready",
                allocation.switch
            );
            self.refuse(pod, "UnknownSubnet", message, true);
            return;
        };
        match pool.restore(&owner, allocation.ip, allocation.mac) {
            Ok(_) => {
                self.refused.remove(key);
                self.metrics.pod_allocation("restored");
                self.pods.insert(
                    key.clone(),
                    PodRecord {
                        uid: pod.metadata.uid.clone().unwrap_or_default(),
                        node: node_of(pod).unwrap_or_default().to_string(),
                        switch: allocation.switch,
                        ip: allocation.ip,
                        mac: allocation.mac,
                        written: true,
                        routed: pod.metadata.annotations.as_ref().is_some_and(is_routed),
                    },
                );
                self.request_round(self.debounce());
            }
            Err(e) => self.refuse(pod, "AddressConflict", e.to_string(), true),
        }
    }

    fn allocate_pod(&mut self, key: &Key, pod: &Pod, request: Ipv4PodRequest) {
        let subnet = match self
            .subnet_set
            .for_pod(&key.namespace, request.switch.as_deref())
        {
            Ok(subnet) => subnet.clone(),
            Err(e) => {
                self.refuse(pod, "NoSubnet", e.to_string(), false);
                return;
            }
        };
        let owner = pod_owner(key).to_string();
        let Some(pool) = self.alloc.pool(&subnet.name) else {
            let message = format!("Subnet {} has no address pool", subnet.name);
            self.refuse(pod, "SubnetNotReady", message, false);
            return;
        };
        let allocation = match pool.allocate(
            &owner,
            Request {
                ip: request.ip,
                mac: request.mac,
            },
        ) {
            Ok(a) => a,
            Err(e) => {
                self.refuse(pod, ipam_reason(&e), e.to_string(), false);
                return;
            }
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.pods.insert(
            key.clone(),
            PodRecord {
                uid: uid.clone(),
                node: node_of(pod).unwrap_or_default().to_string(),
                switch: subnet.name.clone(),
                ip: allocation.ip,
                mac: allocation.mac,
                written: false,
                routed: false,
            },
        );
        let annotations = render_pod_allocation(
            &Ipv4PodAllocation {
                ip: allocation.ip,
                mac: allocation.mac,
                cidr: subnet.cidr,
                gateway: subnet.gateway,
                switch: subnet.name,
            }
            .into(),
        );
        let rv = pod.metadata.resource_version.clone();
        let (kube, permits, done) = (
            self.kube.clone(),
            self.permits.clone(),
            self.done_tx.clone(),
        );
        let key = key.clone();
        tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = kubeio::patch_pod_annotations(
                kube,
                &key.namespace,
                &key.name,
                &uid,
                rv.as_deref(),
                &annotations,
            )
            .await
            .map(|_| ());
            let _ = done.send(Done::PodPatched { key, uid, result });
        });
    }

    fn release_pod(&mut self, key: &Key) {
        self.routed_pending.remove(key);
        let Some(record) = self.pods.remove(key) else {
            return;
        };
        if let Some(pool) = self.alloc.pool(&record.switch) {
            pool.release(&pod_owner(key).to_string());
        }
        if record.written {
            self.request_round(self.debounce());
        }
        self.retry_refused = true;
    }

    fn on_pod_patched(&mut self, key: Key, uid: String, result: Result<(), WriteError>) {
        let Some(record) = self.pods.get_mut(&key) else {
            return;
        };
        if record.uid != uid || record.written {
            return;
        }
        match result {
            Ok(()) => {
                record.written = true;
                self.attempts.remove(&key);
                self.refused.remove(&key);
                self.metrics.pod_allocation("allocated");
                self.request_round(self.debounce());
            }
            Err(e) => {
                self.metrics.pod_allocation("patch_failed");
                self.release_pod(&key);
                if e.is_not_found() {
                    return;
                }
                tracing::warn!(pod = %key, error = %e, "annotation patch failed; retrying");
                self.retry_later(key);
            }
        }
    }

    fn retry_later(&mut self, key: Key) {
        let attempt = self.attempts.entry(key.clone()).or_insert(0);
        *attempt = attempt.saturating_add(1);
        let delay = (FIRST_BACKOFF * 2u32.saturating_pow((*attempt - 1).min(7))).min(MAX_BACKOFF);
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = done.send(Done::Retry(key));
        });
    }

    fn mark_routed(&mut self, pods: &[(Key, String)], held: &BTreeSet<Owner>) {
        for (key, uid) in pods {
            if self.routed_pending.get(key) == Some(uid) || held.contains(&pod_owner(key)) {
                continue;
            }
            let Some(pod) = self.pod(key) else { continue };
            if pod.metadata.uid.as_ref() != Some(uid) {
                continue;
            }
            if pod.metadata.annotations.as_ref().is_some_and(is_routed) {
                if let Some(record) = self.pods.get_mut(key) {
                    record.routed = true;
                }
                continue;
            }
            self.routed_pending.insert(key.clone(), uid.clone());
            let (kube, permits, done) = (
                self.kube.clone(),
                self.permits.clone(),
                self.done_tx.clone(),
            );
            let (key, uid) = (key.clone(), uid.clone());
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                let annotations = std::collections::BTreeMap::from([(
                    names::annotations::ROUTED.to_string(),
                    "true".to_string(),
                )]);
                let result = kubeio::patch_pod_annotations(
                    kube,
                    &key.namespace,
                    &key.name,
                    &uid,
                    None,
                    &annotations,
                )
                .await
                .map(|_| ());
                let _ = done.send(Done::PodRouted { key, uid, result });
            });
        }
    }

    // ---- nodes ----

    fn process_node(&mut self, name: &str) {
        let node = self.caches.nodes.get(&ObjectRef::new(name));
        let Some(node) = node else {
            if let Some(record) = self.nodes.remove(name) {
                self.alloc.join().release(&node_owner(name).to_string());
                if record.written {
                    self.request_round(self.debounce());
                }
            }
            return;
        };
        let uid = node.metadata.uid.clone().unwrap_or_default();
        if let Some(record) = self.nodes.get(name) {
            if record.uid == uid {
                // The chassis annotation may have changed.
                self.request_round(self.debounce());
                return;
            }
            self.nodes.remove(name);
            self.alloc.join().release(&node_owner(name).to_string());
        }
        let owner = node_owner(name).to_string();
        let empty = std::collections::BTreeMap::new();
        let annotations = node.metadata.annotations.as_ref().unwrap_or(&empty);
        // The join pool is IPv4: an IPv6 join address is refused here, like a malformed one.
        match parse_node_join(annotations).and_then(|j| j.map(Ipv4NodeJoin::try_from).transpose()) {
            Ok(Some(join)) if join.cidr == self.settings.join_cidr => {
                match self.alloc.join().restore(&owner, join.ip, join.mac) {
                    Ok(_) => {
                        self.nodes.insert(
                            name.to_string(),
                            NodeRecord {
                                uid,
                                ip: join.ip,
                                mac: join.mac,
                                written: true,
                            },
                        );
                        self.request_round(self.debounce());
                        return;
                    }
                    Err(e) => self.events.warn(
                        kubeio::reference(node.as_ref()),
                        "JoinAddressConflict",
                        "AllocateAddress",
                        format!("Node {name}: {e}; allocating a new join address"),
                    ),
                }
            }
            Ok(_) => {}
            Err(e) => self.events.warn(
                kubeio::reference(node.as_ref()),
                "InvalidAnnotation",
                "AllocateAddress",
                format!("Node {name}: {e}; allocating a new join address"),
            ),
        }
        let allocation = match self.alloc.join().allocate(&owner, Request::default()) {
            Ok(a) => a,
            Err(e) => {
                self.events.warn(
                    kubeio::reference(node.as_ref()),
                    ipam_reason(&e),
                    "AllocateAddress",
                    format!("Node {name}: {e}"),
                );
                return;
            }
        };
        self.nodes.insert(
            name.to_string(),
            NodeRecord {
                uid: uid.clone(),
                ip: allocation.ip,
                mac: allocation.mac,
                written: false,
            },
        );
        let annotations = render_node_join(
            &Ipv4NodeJoin {
                ip: allocation.ip,
                mac: allocation.mac,
                cidr: self.settings.join_cidr,
                gateway: self.alloc.join_gateway(),
            }
            .into(),
        );
        let rv = node.metadata.resource_version.clone();
        let (kube, done) = (self.kube.clone(), self.done_tx.clone());
        let name = name.to_string();
        tokio::spawn(async move {
            let result =
                kubeio::patch_node_annotations(kube, &name, &uid, rv.as_deref(), &annotations)
                    .await
                    .map(|_| ());
            let _ = done.send(Done::NodePatched { name, uid, result });
        });
    }

    fn on_node_patched(&mut self, name: String, uid: String, result: Result<(), WriteError>) {
        let Some(record) = self.nodes.get_mut(&name) else {
            return;
        };
        if record.uid != uid || record.written {
            return;
        }
        match result {
            Ok(()) => {
                record.written = true;
                self.request_round(self.debounce());
            }
            Err(e) => {
                self.nodes.remove(&name);
                self.alloc.join().release(&node_owner(&name).to_string());
                if e.is_not_found() {
                    return;
                }
                tracing::warn!(node = %name, error = %e, "join annotation patch failed; retrying");
                let done = self.done_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let _ = done.send(Done::Retry(Key {
                        namespace: String::new(),
                        name,
                    }));
                });
            }
        }
    }

    // ---- subnets ----

    fn refresh_subnets(&mut self) {
        let objects: Vec<Subnet> = self
            .caches
            .subnets
            .state()
            .iter()
            .map(|s| s.as_ref().clone())
            .collect();
        self.subnet_set = validate_subnets(&objects, &self.settings.reserved);
        let changes = self.alloc.update_subnets(&self.subnet_set);
        let by_name: HashMap<String, &Subnet> = objects.iter().map(|s| (s.name_any(), s)).collect();
        for (name, error) in &changes.failed {
            if let Some(object) = by_name.get(name) {
                self.events.warn(
                    kubeio::reference(*object),
                    "InvalidSubnet",
                    "ValidateSubnet",
                    format!("Subnet {name}: {error}"),
                );
            }
        }
        for rejection in self.subnet_set.rejected() {
            let message = format!("{}: {}", rejection.reason, rejection.message);
            if self.subnet_reported.get(&rejection.name) == Some(&message) {
                continue;
            }
            if let Some(object) = by_name.get(&rejection.name) {
                self.events.warn(
                    kubeio::reference(*object),
                    &rejection.reason.to_string(),
                    "ValidateSubnet",
                    format!("Subnet {} rejected: {}", rejection.name, rejection.message),
                );
            }
            self.subnet_reported.insert(rejection.name.clone(), message);
        }
        self.subnet_reported
            .retain(|name, _| self.subnet_set.rejection(name).is_some());
        for name in &changes.rebuilt {
            let holders: Vec<(Key, PodRecord)> = self
                .pods
                .iter()
                .filter(|(_, r)| &r.switch == name)
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect();
            for (key, record) in holders {
                let restored = self
                    .alloc
                    .pool(name)
                    .map(|pool| pool.restore(&pod_owner(&key).to_string(), record.ip, record.mac));
                if let Some(Err(e)) = restored {
                    tracing::warn!(pod = %key, error = %e, "address no longer fits its rebuilt Subnet");
                    self.pods.remove(&key);
                    if let Some(pod) = self.pod(&key) {
                        self.refuse(&pod, "AddressConflict", e.to_string(), true);
                    }
                }
            }
        }
        self.retry_refused = true;
        self.write_subnet_statuses();
        self.request_round(self.debounce());
    }

    fn write_subnet_statuses(&mut self) {
        let now = Timestamp::now();
        for object in self.caches.subnets.state() {
            let name = object.name_any();
            if self.status_pending.contains(&name) {
                continue;
            }
            let outcome = if let Some(config) = self.subnet_set.get(&name) {
                match self.alloc.usage(&name) {
                    Some(usage) => SubnetOutcome::Accepted(config, usage),
                    None => continue,
                }
            } else if let Some(rejection) = self.subnet_set.rejection(&name) {
                SubnetOutcome::Rejected(rejection)
            } else {
                continue;
            };
            let status = subnet_status(outcome, object.status.as_ref(), now);
            if !status_needs_write(object.status.as_ref(), &status) {
                continue;
            }
            self.status_pending.insert(name.clone());
            let (kube, done) = (self.kube.clone(), self.done_tx.clone());
            tokio::spawn(async move {
                if let Err(e) = kubeio::patch_subnet_status(kube, &name, &status).await {
                    tracing::warn!(error = %e, "subnet status");
                }
                let _ = done.send(Done::SubnetStatusWritten { name });
            });
        }
    }

    // ---- NB rounds ----

    fn forward_nb_changes(&self) {
        let mut events = self.nb.subscribe();
        let (dirty, done) = (self.nb_dirty.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if !dirty.swap(true, Ordering::AcqRel)
                            && done.send(Done::NbChanged).is_err()
                        {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    fn cluster_state(&self) -> ClusterState {
        let empty = std::collections::BTreeMap::new();
        let nodes =
            self.nodes
                .iter()
                .filter(|(_, r)| r.written)
                .map(|(name, r)| desired::Node {
                    name: name.clone(),
                    join_ip: r.ip,
                    join_mac: r.mac,
                    chassis: self.caches.nodes.get(&ObjectRef::new(name)).and_then(|n| {
                        parse_chassis(n.metadata.annotations.as_ref().unwrap_or(&empty))
                    }),
                })
                .collect();
        let pods = self
            .pods
            .iter()
            .filter(|(_, r)| r.written)
            .map(|(key, r)| desired::PodPort {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                uid: r.uid.clone(),
                node: r.node.clone(),
                switch: r.switch.clone(),
                ip: r.ip,
                mac: r.mac,
            })
            .collect();
        ClusterState {
            join: JoinSubnet {
                cidr: self.settings.join_cidr,
                gateway: self.alloc.join_gateway(),
            },
            subnets: self.subnet_set.accepted().map(|c| c.desired()).collect(),
            nodes,
            pods,
        }
    }

    fn start_round(&mut self) {
        self.round.due = None;
        self.round.running = true;
        self.nb_dirty.store(false, Ordering::Release);
        let cluster = self.cluster_state();
        // A Subnet edited into an invalid state keeps the switch it had, and so its pods keep
        // their ports, until the edit is fixed or the Subnet deleted.
        let keep: Vec<Owner> = self
            .refused
            .iter()
            .filter(|(_, r)| r.keep_rows)
            .map(|(key, _)| pod_owner(key))
            .chain(
                self.subnet_set
                    .rejected()
                    .iter()
                    .map(|r| Owner::subnet(&r.name)),
            )
            .collect();
        let pods: Vec<(Key, String)> = self
            .pods
            .iter()
            .filter(|(_, r)| r.written && !r.routed)
            .map(|(k, r)| (k.clone(), r.uid.clone()))
            .collect();
        let (nb, options, done) = (self.nb.clone(), self.settings.apply, self.done_tx.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut desired = desired_state(&cluster);
            desired.held_owners.extend(keep);
            let result = reconcile_once(&nb, &desired, &options).await;
            let report = RoundReport {
                result,
                duration: started.elapsed(),
                pods,
                held: desired.held_owners,
                problems: desired.problems,
            };
            let _ = done.send(Done::Round(Box::new(report)));
        });
    }

    fn on_round(&mut self, report: RoundReport) {
        self.round.running = false;
        self.round.last_duration = report.duration;
        self.metrics.rounds.inc();
        self.metrics
            .round_seconds
            .observe(report.duration.as_secs_f64());
        for problem in &report.problems {
            let message = problem.to_string();
            if self.problems_reported.insert(message.clone()) {
                match kubeio::owner_reference(problem.owner()) {
                    Some(reference) => {
                        self.events
                            .warn(reference, "NotRendered", "ReconcileNB", message)
                    }
                    None => tracing::warn!("{message}"),
                }
            }
        }
        match report.result {
            Ok(outcome) => {
                self.metrics
                    .nb_transactions
                    .inc_by(outcome.applied.transactions as u64);
                self.round.backoff = None;
                if !self.round.first_done {
                    self.round.first_done = true;
                    self.ready.store(true, Ordering::Release);
                    let ready_ms = self.started.elapsed().as_millis() as u64;
                    tracing::info!(ready_ms, "ready after {ready_ms} ms");
                }
                self.mark_routed(&report.pods, &report.held);
            }
            Err(error) => {
                self.metrics.round_errors.inc();
                if let ReconcileError::Apply(apply) = &error {
                    self.metrics
                        .nb_transactions
                        .inc_by(apply.applied.transactions as u64);
                    self.metrics
                        .nb_transaction_errors
                        .inc_by(apply.failures.len() as u64);
                    let mut seen = HashSet::new();
                    for failure in &apply.failures {
                        for owner in failure.owners() {
                            if !seen.insert(owner.clone()) {
                                continue;
                            }
                            match kubeio::owner_reference(owner) {
                                Some(reference) => self.events.warn(
                                    reference,
                                    "NorthboundWriteFailed",
                                    "ReconcileNB",
                                    format!("{owner}: {failure}"),
                                ),
                                None => tracing::warn!(%owner, "{failure}"),
                            }
                        }
                    }
                }
                let delay = next_backoff(self.round.backoff);
                self.round.backoff = Some(delay);
                tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "NB reconcile failed");
                self.request_round(delay);
            }
        }
        for (subnet, usage) in self.alloc.all_usage() {
            self.metrics
                .ipam_usage(&subnet, usage.used, usage.available);
        }
        self.write_subnet_statuses();
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::PodPatched { key, uid, result } => self.on_pod_patched(key, uid, result),
            Done::PodRouted { key, uid, result } => {
                if result.is_ok()
                    && let Some(record) = self.pods.get_mut(&key)
                    && record.uid == uid
                {
                    record.routed = true;
                    self.routed_pending.remove(&key);
                }
                if let Err(e) = result {
                    if self.routed_pending.get(&key) == Some(&uid) {
                        self.routed_pending.remove(&key);
                    }
                    if !e.is_not_found() {
                        tracing::warn!(pod = %key, error = %e, "routed patch failed; retrying");
                        self.request_round(Duration::from_millis(500));
                    }
                }
            }
            Done::NodePatched { name, uid, result } => self.on_node_patched(name, uid, result),
            Done::SubnetStatusWritten { name } => {
                self.status_pending.remove(&name);
            }
            Done::Round(report) => self.on_round(*report),
            Done::Retry(key) => {
                if key.namespace.is_empty() {
                    self.process_node(&key.name);
                } else {
                    self.process_pod(&key);
                }
            }
            Done::NbChanged => self.request_round(self.debounce()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_bound() {
        assert_eq!(next_backoff(None), FIRST_BACKOFF);
        assert_eq!(next_backoff(Some(FIRST_BACKOFF)), FIRST_BACKOFF * 2);
        assert_eq!(next_backoff(Some(MAX_BACKOFF)), MAX_BACKOFF);
    }
}
