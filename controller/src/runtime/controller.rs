//! The controller task: one loop that hands each watch note and each finished background write
//! to the module of its resource ([`super::pods`], [`super::nodes`], [`super::subnets`],
//! [`super::services`]) and
//! starts NB rounds ([`super::rounds`]) when they are due. Everything runs on this one task (no
//! locks); Kubernetes writes and NB rounds run in spawned tasks and report back through a
//! channel.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::runtime::reflector::ObjectRef;
use rovn_api::names;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::http::PlanRequest;
use super::kubeio::{self, Events};
use super::metrics::Metrics;
use super::nodes::Nodes;
use super::pods::Pods;
use super::policies::Policies;
use super::reports::Done;
use super::rounds::Rounds;
use super::services::Services;
use super::subnets::Subnets;
use super::watch::{Kind, Note};
use super::world::{Caches, Settings, World};

/// How many queued notes or reports are handled before the loop looks at its timers again.
const BATCH: usize = 4096;

/// The controller task's state.
pub struct Controller {
    world: World,
    pods: Pods,
    nodes: Nodes,
    subnets: Subnets,
    services: Services,
    policies: Policies,
    rounds: Rounds,
    notes: UnboundedReceiver<Note>,
    done: UnboundedReceiver<Done>,
    plans: UnboundedReceiver<PlanRequest>,
    started: Instant,
}

/// Everything [`Controller::new`] needs.
pub struct Parts {
    /// Settings.
    pub settings: Settings,
    /// The Kubernetes client.
    pub kube: kube::Client,
    /// The synced NB client.
    pub nb: rovn_ovsdb::Client,
    /// The caches the watchers fill.
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
    /// Requests for the dry run `/debug/plan` serves.
    pub plans: UnboundedReceiver<PlanRequest>,
}

impl Controller {
    /// A controller over synced-or-syncing caches; call [`Controller::run`].
    pub fn new(parts: Parts) -> anyhow::Result<Controller> {
        let (done_tx, done) = unbounded_channel();
        let join_cidr = parts.settings.join_cidr;
        let world = World::new(
            parts.settings,
            parts.kube,
            parts.caches,
            parts.events,
            parts.metrics,
            done_tx,
        )
        .with_context(|| format!("join CIDR {join_cidr}"))?;
        Ok(Controller {
            world,
            pods: Pods::default(),
            nodes: Nodes::default(),
            subnets: Subnets::default(),
            services: Services::default(),
            policies: Policies::default(),
            rounds: Rounds::new(parts.nb, parts.ready, parts.started),
            notes: parts.notes,
            done,
            plans: parts.plans,
            started: parts.started,
        })
    }

    /// Runs until `stop` resolves (Ok) or the watchers end (Err).
    pub async fn run(mut self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(stop);
        tokio::select! {
            _ = &mut stop => return Ok(()),
            r = self.start() => r?,
        }
        self.rounds.follow_nb(&self.world);
        let every = self
            .world
            .settings
            .resync_interval
            .max(Duration::from_secs(1));
        let mut resync = tokio::time::interval(every);
        resync.tick().await;
        loop {
            let due = self.rounds.due(&self.world);
            tokio::select! {
                _ = &mut stop => return Ok(()),
                note = self.notes.recv() => {
                    let Some(note) = note else { bail!("the Kubernetes watchers stopped") };
                    self.on_note(note);
                    for _ in 0..BATCH {
                        let Ok(note) = self.notes.try_recv() else { break };
                        self.on_note(note);
                    }
                }
                done = self.done.recv() => {
                    if let Some(done) = done {
                        self.on_done(done);
                    }
                    for _ in 0..BATCH {
                        let Ok(done) = self.done.try_recv() else { break };
                        self.on_done(done);
                    }
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    self.rounds.start(
                        &mut self.world,
                        &self.pods,
                        &self.nodes,
                        &mut self.services,
                        &mut self.policies,
                    );
                }
                _ = resync.tick() => self.world.queue.everything(),
                Some(reply) = self.plans.recv() => {
                    let _ = reply.send(self.rounds.dry_run());
                }
            }
            self.pods.retry_refused(&mut self.world);
            let metrics = &self.world.metrics;
            metrics.pods_refused.set(self.pods.refused_count() as i64);
            metrics
                .subnets_rejected
                .set(self.world.subnet_set.rejected().len() as i64);
            let changed = self.pods.take_switches_changed();
            if changed
                .iter()
                .any(|s| self.world.subnet_set.waits_for_pods(s))
            {
                // A deleted Subnet or a refused edit waits for its pods: their going decides.
                self.subnets_changed();
            }
        }
    }

    /// Waits for the caches, creates `ovn-default` if absent, restores IPAM from annotations
    /// (before anything new is allocated), then handles every object once.
    async fn start(&mut self) -> anyhow::Result<()> {
        let mut synced = HashSet::new();
        while synced.len() < Kind::ALL.len() {
            match self.notes.recv().await {
                Some(Note::Synced(kind)) => {
                    synced.insert(kind);
                }
                Some(Note::Changed(..)) => {}
                None => bail!("the Kubernetes watchers stopped before syncing"),
            }
        }
        let caches = &self.world.caches;
        tracing::info!(
            pods = caches.pods.state().len(),
            nodes = caches.nodes.state().len(),
            subnets = caches.subnets.state().len(),
            services = caches.services.state().len(),
            endpoint_slices = caches.slices.state().len(),
            "caches synced"
        );
        self.ensure_default_subnet().await?;
        // Before any pod is restored, the pods rovn's NB ports record are the Subnets' holders:
        // a Subnet deleted or edited while the controller was down still holds for them.
        let recorded = self.rounds.recorded_pods();
        let holders = Pods::recorded_holders(&self.world, &recorded);
        self.subnets_changed_with(holders);
        self.nodes.resync(&mut self.world);
        self.services.slices_resynced(&mut self.world);
        self.policies.namespaces_resynced(&mut self.world);
        self.policies.policies_resynced(&mut self.world);
        let restored = self.pods.start(&mut self.world, recorded);
        self.pods.take_switches_changed();
        self.subnets_changed();
        tracing::info!(
            restored,
            nodes = self.nodes.len(),
            pending = self.pods.len() - restored,
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "IPAM restored"
        );
        self.world.queue.everything = true;
        self.world.queue.request(Duration::ZERO);
        Ok(())
    }

    async fn ensure_default_subnet(&mut self) -> anyhow::Result<()> {
        let present = |world: &World| {
            world
                .caches
                .subnets
                .get(&ObjectRef::new(names::DEFAULT_SUBNET))
                .is_some()
        };
        if present(&self.world) {
            return Ok(());
        }
        let settings = &self.world.settings;
        let object = settings.default_subnet();
        let cidr = settings.default_cidr;
        if kubeio::create_if_absent(self.world.kube.clone(), &object).await? {
            tracing::info!(%cidr, "created Subnet {}", names::DEFAULT_SUBNET);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !present(&self.world) {
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

    /// Subnets are validated together, and pods depend on their pools: a change of any Subnet
    /// goes through here.
    fn subnets_changed(&mut self) {
        let holders = self.pods.holders();
        self.subnets_changed_with(holders);
    }

    fn subnets_changed_with(&mut self, holders: super::subnets::Holders) {
        let rebuilt = self.subnets.changed(&mut self.world, holders);
        self.pods.subnets_changed(&mut self.world, &rebuilt);
        self.subnets.ensure_default(&mut self.world);
        let rounds = &self.rounds;
        self.subnets
            .finalizers(&mut self.world, |owner| rounds.owns_rows(owner));
        self.subnets.write_statuses(&mut self.world);
    }

    fn on_note(&mut self, note: Note) {
        let world = &mut self.world;
        match note {
            Note::Changed(Kind::Pod, key) => {
                self.pods.changed(world, &key);
                for owner in self.policies.pod_changed(world, &self.pods, &key) {
                    world.queue.touch(owner);
                }
            }
            Note::Synced(Kind::Pod) => self.pods.resync(world),
            Note::Changed(Kind::Node, key) => self.nodes.changed(world, &key.name),
            Note::Synced(Kind::Node) => self.nodes.resync(world),
            Note::Changed(Kind::Subnet, _) | Note::Synced(Kind::Subnet) => self.subnets_changed(),
            Note::Changed(Kind::Service, key) => self.services.service_changed(world, &key),
            Note::Synced(Kind::Service) => world.queue.everything(),
            Note::Changed(Kind::EndpointSlice, key) => self.services.slice_changed(world, &key),
            Note::Synced(Kind::EndpointSlice) => self.services.slices_resynced(world),
            Note::Changed(Kind::NetworkPolicy, key) => self.policies.policy_changed(world, &key),
            Note::Synced(Kind::NetworkPolicy) => self.policies.policies_resynced(world),
            Note::Changed(Kind::Namespace, key) => {
                self.policies.namespace_changed(world, &key.name)
            }
            Note::Synced(Kind::Namespace) => self.policies.namespaces_resynced(world),
        }
    }

    fn on_done(&mut self, done: Done) {
        let world = &mut self.world;
        match done {
            Done::Pod(done) => self.pods.done(world, done),
            Done::Node(done) => self.nodes.done(world, done),
            // The write may have raced a newer outcome (the watch event of our own patch can
            // come first, while the write was still pending): look again.
            Done::SubnetStatusWritten(name) => {
                self.subnets.status_written(&name);
                self.subnets.write_statuses(world);
            }
            Done::SubnetFinalizerWritten(name, result) => {
                self.subnets.finalizer_written(world, &name, result)
            }
            Done::DefaultSubnetCreated(result) => self.subnets.default_created(world, result),
            Done::SubnetsRecheck => self.subnets_changed(),
            Done::NbChanged => {
                self.rounds.nb_changed(world);
                let rounds = &self.rounds;
                self.subnets
                    .finalizers(world, |owner| rounds.owns_rows(owner));
            }
            Done::Round(report) => {
                if let Some((pods, held)) = self.rounds.finished(world, *report) {
                    self.pods.mark_routed(world, &pods, &held);
                }
                for (subnet, usage) in world.alloc.all_usage() {
                    world
                        .metrics
                        .ipam_usage(&subnet, usage.used, usage.available);
                }
                self.subnets.write_statuses(world);
                let rounds = &self.rounds;
                self.subnets
                    .finalizers(world, |owner| rounds.owns_rows(owner));
            }
        }
    }
}
