//! NB rounds: one at a time, each rendering and diffing only what changed since the last one
//! — the owners the other modules touched — and the whole cluster at start-up, after a Subnet
//! or Node change, after a failed round and on the periodic resync.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rovn_api::names::OWNER_KEY;
use rovn_api::{Owner, OwnerKind};
use rovn_ovsdb::{Change, Event, Row};
use tokio::sync::broadcast::error::RecvError;

use super::kubeio;
use super::ledger::{Recorded, recorded_pods};
use super::nodes::Nodes;
use super::pods::Pods;
use super::policies::Policies;
use super::reports::{Done, RoundReport as Report};
use super::services::Services;
use super::subnets::Subnets;
use super::watch::Key;
use super::world::{BACKOFF, World};
use crate::desired::{
    ClusterState, DesiredError, DesiredState, JoinSubnet, PodContext, remove_pod, remove_service,
    render_cluster, render_namespace, render_node, render_pod, render_policy, render_service,
};
use crate::reconcile::{ReconcileError, external_id, reconcile_once};

/// What a round renders and diffs: the touched owners, over the state the last round
/// rendered, or the whole cluster (rendered in the round's task, off the controller task).
enum Work {
    Owners(DesiredState, PodContext, BTreeSet<Owner>),
    /// The cluster, and the objects that cannot be read, whose rows are held.
    Everything(ClusterState, Vec<DesiredError>),
}

/// NB changes seen since the controller task last looked, gathered off the task.
#[derive(Default)]
struct NbChanges {
    owners: BTreeSet<Owner>,
    everything: bool,
    notified: bool,
}

/// What a successful round leaves to do: the pods it routed (key, uid), and the owners whose
/// rows were held (not routed).
pub(super) type RoutedAndHeld = (Vec<(Key, String)>, BTreeSet<Owner>);

/// The rounds' state.
pub(super) struct Rounds {
    nb: Arc<rovn_ovsdb::Client>,
    /// What the last round rendered; `None` before the first round and while one runs.
    desired: Option<(DesiredState, PodContext)>,
    running: bool,
    backoff: Option<Duration>,
    first_done: bool,
    problems_reported: HashSet<String>,
    nb_changes: Arc<Mutex<NbChanges>>,
    ready: Arc<AtomicBool>,
    started: Instant,
}

impl Rounds {
    pub fn new(nb: rovn_ovsdb::Client, ready: Arc<AtomicBool>, started: Instant) -> Rounds {
        Rounds {
            nb: Arc::new(nb),
            desired: None,
            running: false,
            backoff: None,
            first_done: false,
            problems_reported: HashSet::new(),
            nb_changes: Arc::default(),
            ready,
            started,
        }
    }

    /// What rovn's NB ports record each pod holds (empty without a replica).
    pub fn recorded_pods(&self) -> std::collections::HashMap<Key, Recorded> {
        self.nb.read(recorded_pods).unwrap_or_default()
    }

    /// Whether NB still holds rows rovn wrote for `owner` (true while the replica is not
    /// there, so nothing is let go on a guess).
    pub fn owns_rows(&self, owner: &Owner) -> bool {
        self.nb
            .read(|replica| crate::reconcile::owns_rows(replica, owner))
            .unwrap_or(true)
    }

    /// The diff of the state the last round rendered against the live NB, as text (one line
    /// per step: action, row, owner; then conflicts): a dry run, written nowhere. `Err` while a
    /// round runs or before the first one.
    pub fn dry_run(&self) -> Result<String, String> {
        let Some((desired, _)) = &self.desired else {
            return Err(
                "no rendered state: a round is running or none has finished; try again".into(),
            );
        };
        let plan = self
            .nb
            .read(|replica| crate::reconcile::diff(desired, replica))
            .ok_or("no NB replica yet")?
            .map_err(|e| e.to_string())?;
        let mut text = format!(
            "{} steps, {} conflicts\n",
            plan.steps().count(),
            plan.conflicts.len()
        );
        for step in plan.steps() {
            let owner = step
                .owner
                .as_ref()
                .map_or_else(|| "(unreadable owner)".to_string(), ToString::to_string);
            text.push_str(&format!("{:?}\t{}\t{owner}\n", step.action, step.what));
        }
        for conflict in &plan.conflicts {
            text.push_str(&format!("Conflict\t{conflict}\n"));
        }
        Ok(text)
    }

    /// When the next round may start: due, and none running.
    pub fn due(&self, world: &World) -> Option<tokio::time::Instant> {
        world.queue.due.filter(|_| !self.running)
    }

    /// Starts a round in a task of its own.
    pub fn start(
        &mut self,
        world: &mut World,
        pods: &Pods,
        nodes: &Nodes,
        services: &mut Services,
        policies: &mut Policies,
    ) {
        world.queue.due = None;
        self.running = true;
        let mut dirty = std::mem::take(&mut world.queue.dirty);
        let everything = std::mem::take(&mut world.queue.everything);
        // A pod's port and the groups holding it are written together (see `policies`).
        let pods_touched: Vec<Key> = dirty
            .iter()
            .filter(|o| o.kind() == OwnerKind::Pod)
            .filter_map(|o| {
                Some(Key {
                    namespace: o.namespace()?.to_string(),
                    name: o.name().to_string(),
                })
            })
            .collect();
        for key in &pods_touched {
            dirty.extend(policies.pod_changed(world, pods, key));
        }
        let kept: BTreeSet<Owner> = pods.kept().chain(Subnets::kept(world)).collect();
        let unrouted = pods.unrouted();
        let (nb, options, done) = (self.nb.clone(), world.settings.apply, world.done());
        let work = match self.desired.take().filter(|_| !everything) {
            Some((mut desired, context)) => {
                let mut local = None;
                // Rows of other owners a pod's rendering changed (a private Subnet's group).
                let mut also = BTreeSet::new();
                for owner in &dirty {
                    match owner.kind() {
                        OwnerKind::Pod => {
                            also.extend(remove_pod(&mut desired, &context, owner));
                            if let Some(port) = pods.port_of(owner) {
                                also.extend(render_pod(&mut desired, &context, &port));
                            }
                        }
                        OwnerKind::Service => {
                            remove_service(&mut desired, owner);
                            if let Some(service) = services.service_of(world, owner) {
                                render_service(&mut desired, &service);
                            }
                        }
                        OwnerKind::Node => {
                            desired.remove_owner(owner);
                            let local = local.get_or_insert_with(|| services.local_services(world));
                            if let Some(node) = nodes.node(owner.name()) {
                                render_node(&mut desired, &context, &node, local, policies.pods());
                            }
                        }
                        OwnerKind::NetworkPolicy => {
                            desired.remove_owner(owner);
                            match policies.policy(owner) {
                                Ok(Some(policy)) => {
                                    render_policy(&mut desired, policy, policies.pods())
                                }
                                Ok(None) => {}
                                Err(reason) => desired.hold(
                                    owner,
                                    DesiredError::Unreadable {
                                        owner: owner.clone(),
                                        reason,
                                    },
                                ),
                            }
                        }
                        OwnerKind::Namespace => {
                            desired.remove_owner(owner);
                            let in_namespace = policies.in_namespace(owner.name());
                            render_namespace(
                                &mut desired,
                                owner.name(),
                                &in_namespace,
                                policies.pods(),
                            );
                        }
                        OwnerKind::Cluster | OwnerKind::Subnet => {}
                    }
                }
                dirty.extend(also);
                Work::Owners(desired, context, dirty)
            }
            None => {
                policies.reindex(world, pods);
                let unreadable = policies
                    .unreadable()
                    .into_iter()
                    .map(|(owner, reason)| DesiredError::Unreadable { owner, reason })
                    .collect();
                Work::Everything(
                    ClusterState {
                        join: JoinSubnet {
                            cidr: world.settings.join_cidr,
                            gateway: world.alloc.join_gateway(),
                        },
                        service_cidr: world.settings.reserved.service,
                        subnets: world.subnet_set.accepted().map(|c| c.desired()).collect(),
                        nodes: nodes.desired(),
                        pods: pods.ports(),
                        services: services.desired(world),
                        policies: policies.all(),
                        policy_pods: policies.pods().clone(),
                    },
                    unreadable,
                )
            }
        };
        tokio::spawn(async move {
            let started = Instant::now();
            let (mut desired, context, scope) = match work {
                Work::Owners(desired, context, owners) => (desired, context, Some(owners)),
                Work::Everything(cluster, unreadable) => {
                    let (mut desired, context) = render_cluster(&cluster);
                    for problem in unreadable {
                        let owner = problem.owner().clone();
                        desired.hold(&owner, problem);
                    }
                    (desired, context, None)
                }
            };
            desired.set_kept(kept);
            let result = reconcile_once(&nb, &desired, scope.as_ref(), &options).await;
            let report = Report {
                result,
                duration: started.elapsed(),
                pods: unrouted,
                desired,
                context,
                full: scope.is_none(),
            };
            let _ = done.send(Done::Round(Box::new(report)));
        });
    }

    /// A round is done: keeps what it rendered, reports its problems and failures, and returns
    /// the pods it routed with the owners whose rows were held (not routed).
    pub fn finished(&mut self, world: &mut World, report: Report) -> Option<RoutedAndHeld> {
        self.running = false;
        world.queue.last_duration = report.duration;
        world.queue.last_end = Some(tokio::time::Instant::now());
        world.metrics.rounds.inc();
        world
            .metrics
            .round_seconds
            .observe(report.duration.as_secs_f64());
        for problem in &report.desired.problems {
            let message = problem.to_string();
            if self.problems_reported.insert(message.clone()) {
                match kubeio::owner_reference(problem.owner()) {
                    Some(reference) => {
                        world
                            .events
                            .warn(reference, "NotRendered", "ReconcileNB", message)
                    }
                    None => tracing::warn!("{message}"),
                }
            }
        }
        let held: BTreeSet<Owner> = report.desired.held().cloned().collect();
        self.desired = Some((report.desired, report.context));
        match report.result {
            Ok(outcome) => {
                world
                    .metrics
                    .nb_transactions
                    .inc_by(outcome.applied.transactions as u64);
                self.backoff = None;
                if !self.first_done {
                    self.first_done = true;
                    self.ready.store(true, Ordering::Release);
                    let ready_ms = self.started.elapsed().as_millis() as u64;
                    tracing::info!(ready_ms, "ready after {ready_ms} ms");
                }
                if report.full {
                    tracing::debug!(
                        duration_ms = report.duration.as_millis() as u64,
                        "full NB round"
                    );
                }
                Some((report.pods, held))
            }
            Err(error) => {
                world.metrics.round_errors.inc();
                if let ReconcileError::Apply(apply) = &error {
                    world
                        .metrics
                        .nb_transactions
                        .inc_by(apply.applied.transactions as u64);
                    world
                        .metrics
                        .nb_transaction_errors
                        .inc_by(apply.failures.len() as u64);
                    let mut seen = HashSet::new();
                    for failure in &apply.failures {
                        for owner in failure.owners() {
                            if !seen.insert(owner.clone()) {
                                continue;
                            }
                            match kubeio::owner_reference(owner) {
                                Some(reference) => world.events.warn(
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
                // What the failed round was to write is not known any more: the next round
                // looks at everything.
                let delay = self.backoff.map_or(BACKOFF.initial, |d| BACKOFF.next(d));
                self.backoff = Some(delay);
                tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "NB reconcile failed");
                world.queue.everything = true;
                world.queue.request(delay);
                None
            }
        }
    }

    /// Follows NB: a row rovn owns that someone changed or deleted makes its owner dirty, so
    /// the next round puts it back; a new session (anything may have changed meanwhile) makes
    /// the next round a full one. Changes are gathered off the controller task and announced
    /// once until it looks.
    pub fn follow_nb(&self, world: &World) {
        let mut events = self.nb.subscribe();
        let (changes, done) = (self.nb_changes.clone(), world.done());
        tokio::spawn(async move {
            loop {
                let (owners, everything) = match events.recv().await {
                    Ok(Event::Change(change)) => (owners_of(&change), false),
                    Ok(Event::Reconnected { .. }) | Err(RecvError::Lagged(_)) => (Vec::new(), true),
                    Ok(Event::Synced) => continue,
                    Err(RecvError::Closed) => return,
                };
                if owners.is_empty() && !everything {
                    continue;
                }
                let notify = {
                    let Ok(mut gathered) = changes.lock() else {
                        return;
                    };
                    gathered.owners.extend(owners);
                    gathered.everything |= everything;
                    !std::mem::replace(&mut gathered.notified, true)
                };
                if notify && done.send(Done::NbChanged).is_err() {
                    return;
                }
            }
        });
    }

    /// Takes the NB changes gathered since the last call into the round queue.
    pub fn nb_changed(&self, world: &mut World) {
        let (owners, everything) = match self.nb_changes.lock() {
            Ok(mut gathered) => {
                gathered.notified = false;
                (
                    std::mem::take(&mut gathered.owners),
                    std::mem::take(&mut gathered.everything),
                )
            }
            Err(_) => (BTreeSet::new(), true),
        };
        if everything {
            world.queue.everything();
        }
        for owner in owners {
            world.queue.touch(owner);
        }
    }
}

/// The owners of a changed row, before and after the change.
fn owners_of(change: &Change) -> Vec<Owner> {
    let rows: Vec<&Row> = match change {
        Change::Insert { new, .. } => vec![new],
        Change::Modify { old, new, .. } => vec![old, new],
        Change::Delete { old, .. } => vec![old],
    };
    let mut owners: Vec<Owner> = rows
        .into_iter()
        .filter_map(|row| external_id(row, OWNER_KEY)?.parse().ok())
        .collect();
    owners.dedup();
    owners
}
