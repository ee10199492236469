//! One pod's life on the node: sandbox and network (with retries and events on failure), the
//! container processes and their restarts, their readiness probes, status reports, and
//! teardown on deletion.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::{Api, Resource};
use nix::sys::signal::Signal;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::containers::{self, ContainerLaunch};
use crate::kubelet::KubeletContext;
use crate::pod_sandbox::{self, PodNetwork, SandboxRecord, destroy_sandbox, host_network};
use crate::prober::handlers::ProbeTarget;
use crate::prober::spec::readiness_probe;
use crate::prober::worker::{ContainerRun, Prober, ProberMessage};
use crate::sandbox;
use crate::status::{ContainerRecord, PodObservation, RestartPolicy, RunState, pod_status};
use crate::streaming::registry::ExecTarget;

/// Longest wait between sandbox or container retries: far shorter than the real kubelet's five
/// minutes, so a lab whose network comes up late (no conflist yet) recovers within seconds.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// One container of the pod: its spec, what status reports about it, its current process and,
/// when it has a readiness probe, the task probing it.
struct Slot {
    spec: Container,
    record: ContainerRecord,
    pid: Option<u32>,
    generation: u64,
    backoff: Duration,
    restart_at: Option<Instant>,
    started: Option<Instant>,
    prober: Option<Prober>,
}

/// A container process ended; `generation` tells a stale exit from the current run's.
struct Exit {
    slot: usize,
    generation: u64,
    code: i32,
    signal: Option<i32>,
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn should_stop(pod: &Option<Pod>) -> bool {
    pod.as_ref()
        .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
}

/// Drives one pod until it is deleted (or vanished) and torn down.
pub async fn run(ctx: Arc<KubeletContext>, mut rx: watch::Receiver<Option<Pod>>) {
    let Some(pod) = rx.borrow_and_update().clone() else {
        return;
    };
    let key = pod_key(&pod);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let netns_name = sandbox::sandbox_netns_name(&ctx.config.netns_prefix, &uid);
    let mut worker = Worker {
        ctx: Arc::clone(&ctx),
        pod,
        key,
        uid,
        netns_name,
        last_status: None,
        status_stale: false,
        gone: false,
        start_time: Timestamp::now(),
    };
    worker.pod_lifecycle(&mut rx).await;
}

/// The state one pod's task keeps between API updates.
struct Worker {
    ctx: Arc<KubeletContext>,
    pod: Pod,
    key: String,
    uid: String,
    netns_name: String,
    last_status: Option<PodStatus>,
    /// The last status write failed; retried on a timer until one succeeds.
    status_stale: bool,
    /// The pod vanished from the API: there is no status left to write.
    gone: bool,
    start_time: Timestamp,
}

impl Worker {
    async fn pod_lifecycle(&mut self, rx: &mut watch::Receiver<Option<Pod>>) {
        let (namespace, name) = self.namespace_name();
        let logs: Vec<_> = self
            .slots()
            .into_iter()
            .map(|s| (s.spec.name.clone(), self.log_path(&s.spec.name)))
            .collect();
        self.ctx
            .containers
            .pod_started(&namespace, &name, &self.uid, logs);
        let phase = self.pod.status.as_ref().and_then(|s| s.phase.clone());
        let finished = matches!(phase.as_deref(), Some("Succeeded" | "Failed"));
        // A finished pod is never run again (e.g. after a kubelet restart).
        if self.pod.metadata.deletion_timestamp.is_none()
            && !finished
            && let Some(network) = self.setup_with_retries(rx).await
        {
            self.run_containers(rx, &network).await;
        }
        // The sandbox goes as soon as the pod is done or deleted, as with the real kubelet.
        if !host_network(&self.pod) {
            let target = self.record().target();
            destroy_sandbox(&self.ctx, &self.netns_name, Some(&target)).await;
        }
        let in_api = self.wait_for_deletion(rx).await;
        self.ctx.containers.pod_gone(&namespace, &name, &self.uid);
        self.finish(in_api).await;
    }

    /// Runs the containers until the pod is to stop (deleted or vanished) or has completed
    /// (every container terminated for good), then stops whatever still runs.
    async fn run_containers(
        &mut self,
        rx: &mut watch::Receiver<Option<Pod>>,
        network: &PodNetwork,
    ) {
        let (exit_tx, mut exit_rx) = mpsc::unbounded_channel::<Exit>();
        let (probe_tx, mut probe_rx) = mpsc::unbounded_channel::<ProberMessage>();
        let mut slots = self.slots();
        self.start_probers(&mut slots, network, &probe_tx);
        for i in 0..slots.len() {
            self.start_slot(&mut slots, i, network, &exit_tx).await;
        }
        self.report(&slots, network, true).await;
        let policy = self.restart_policy();
        loop {
            let completed = !slots.is_empty()
                && slots.iter().all(|s| {
                    s.pid.is_none()
                        && s.restart_at.is_none()
                        && matches!(s.record.state, RunState::Terminated { .. })
                });
            if completed {
                tracing::info!(pod = %self.key, "all containers completed");
                break;
            }
            let next_restart = slots.iter().filter_map(|s| s.restart_at).min();
            tokio::select! {
                Some(exit) = exit_rx.recv() => {
                    self.on_exit(&mut slots, exit, policy);
                    self.report(&slots, network, true).await;
                }
                Some(message) = probe_rx.recv() => {
                    if self.on_probe(&mut slots, message).await {
                        self.report(&slots, network, true).await;
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(2)), if self.status_stale => {
                    self.report(&slots, network, true).await;
                }
                _ = sleep_until_opt(next_restart) => {
                    let now = Instant::now();
                    for i in 0..slots.len() {
                        if slots[i].restart_at.is_some_and(|t| t <= now) {
                            slots[i].restart_at = None;
                            slots[i].record.restart_count += 1;
                            self.start_slot(&mut slots, i, network, &exit_tx).await;
                        }
                    }
                    self.report(&slots, network, true).await;
                }
                changed = rx.changed() => {
                    let latest = if changed.is_ok() { rx.borrow_and_update().clone() } else { None };
                    let stop = should_stop(&latest);
                    match latest {
                        Some(p) => self.pod = p,
                        None => self.gone = true,
                    }
                    if stop {
                        break;
                    }
                }
            }
        }
        drop(exit_tx);
        self.stop_containers(&mut slots, &mut exit_rx, &mut probe_rx, network)
            .await;
    }

    /// Waits until the pod is marked for deletion (`true`) or vanishes from the API (`false`).
    async fn wait_for_deletion(&mut self, rx: &mut watch::Receiver<Option<Pod>>) -> bool {
        loop {
            let latest = rx.borrow_and_update().clone();
            match latest {
                None => return false,
                Some(p) => {
                    let deleting = p.metadata.deletion_timestamp.is_some();
                    self.pod = p;
                    if deleting {
                        return true;
                    }
                }
            }
            if rx.changed().await.is_err() {
                return false;
            }
        }
    }

    fn restart_policy(&self) -> RestartPolicy {
        RestartPolicy::parse(
            self.pod
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.as_deref()),
        )
    }

    fn slots(&self) -> Vec<Slot> {
        self.pod
            .spec
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|spec| Slot {
                record: ContainerRecord {
                    name: spec.name.clone(),
                    image: spec.image.clone().unwrap_or_default(),
                    state: RunState::Waiting {
                        reason: "ContainerCreating".into(),
                        message: None,
                    },
                    last_state: None,
                    restart_count: 0,
                    container_id: None,
                    ready: false,
                },
                spec,
                pid: None,
                generation: 0,
                backoff: Duration::from_secs(1),
                restart_at: None,
                started: None,
                prober: None,
            })
            .collect()
    }

    fn namespace_name(&self) -> (String, String) {
        (
            self.pod.metadata.namespace.clone().unwrap_or_default(),
            self.pod.metadata.name.clone().unwrap_or_default(),
        )
    }

    fn log_path(&self, container: &str) -> std::path::PathBuf {
        let (namespace, name) = self.namespace_name();
        containers::log_path(&self.ctx.config.state_dir, &namespace, &name, container)
    }

    /// The environment a container (and its exec probes) gets.
    fn container_env(&self, spec: &Container, pod_ip: &str) -> Vec<(String, String)> {
        containers::container_env(
            &self.pod,
            spec,
            pod_ip,
            &self.ctx.config.node.ip,
            &self.ctx.path_env,
        )
    }

    /// One prober task per container with a `readinessProbe` (valid or not: an invalid one
    /// tells the pod and keeps the container not ready).
    fn start_probers(
        &self,
        slots: &mut [Slot],
        network: &PodNetwork,
        out: &mpsc::UnboundedSender<ProberMessage>,
    ) {
        let pod_ip = network.ips.first().cloned().unwrap_or_default();
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(spec) = readiness_probe(&slot.spec) else {
                continue;
            };
            let target = ProbeTarget {
                pod: self.key.clone(),
                container: slot.spec.name.clone(),
                pod_ip: pod_ip.clone(),
                netns: network.netns.as_deref().map(sandbox::netns_path),
                env: self.container_env(&slot.spec, &pod_ip),
                own_dir: self.ctx.config.own_dir.clone(),
                path_env: self.ctx.path_env.clone(),
            };
            slot.prober = Some(Prober::spawn(i, spec, target, out.clone()));
        }
    }

    /// Applies a prober's message; `true` when the status changed and must be reported. A
    /// readiness change about an earlier run, or about a container no longer running, is
    /// stale and ignored.
    async fn on_probe(&self, slots: &mut [Slot], message: ProberMessage) -> bool {
        match message {
            ProberMessage::Readiness {
                slot,
                generation,
                ready,
            } => {
                let Some(slot) = slots.get_mut(slot) else {
                    return false;
                };
                if slot.generation != generation || slot.pid.is_none() {
                    return false;
                }
                let changed = slot.record.ready != ready;
                slot.record.ready = ready;
                changed
            }
            ProberMessage::Event { slot, event } => {
                if let Some(slot) = slots.get(slot) {
                    let mut reference = self.pod.object_ref(&());
                    // The real kubelet's probe events are about the container.
                    reference.field_path = Some(format!("spec.containers{{{}}}", slot.spec.name));
                    self.event_about(
                        reference,
                        EventType::Warning,
                        event.reason,
                        "Probe",
                        event.message,
                    )
                    .await;
                }
                false
            }
        }
    }

    async fn event(&self, type_: EventType, reason: &str, action: &str, note: String) {
        self.event_about(self.pod.object_ref(&()), type_, reason, action, note)
            .await;
    }

    async fn event_about(
        &self,
        reference: k8s_openapi::api::core::v1::ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = KubeEvent {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.ctx.recorder.publish(&ev, &reference).await {
            tracing::warn!(pod = %self.key, "recording event {reason}: {e}");
        }
    }

    /// Sets up the sandbox until it works, the pod goes away, or is deleted. Failures are
    /// cleaned up (DEL, namespace removed) and retried with exponential backoff, each with a
    /// `FailedCreatePodSandBox` event.
    async fn setup_with_retries(
        &mut self,
        rx: &mut watch::Receiver<Option<Pod>>,
    ) -> Option<PodNetwork> {
        let mut backoff = Duration::from_secs(1);
        loop {
            if should_stop(&rx.borrow()) {
                return None;
            }
            match pod_sandbox::setup(&self.ctx, &self.pod, &self.record(), &self.key).await {
                Ok(net) => {
                    tracing::info!(pod = %self.key, ips = ?net.ips, netns = ?net.netns, "sandbox ready");
                    return Some(net);
                }
                Err(e) => {
                    let msg = format!("Failed to create pod sandbox: {e}");
                    tracing::warn!(pod = %self.key, "{msg}; retrying in {backoff:?}");
                    self.event(
                        EventType::Warning,
                        "FailedCreatePodSandBox",
                        "CreatePodSandbox",
                        msg,
                    )
                    .await;
                    let target = self.record().target();
                    destroy_sandbox(&self.ctx, &self.netns_name, Some(&target)).await;
                    self.report(
                        &self.slots(),
                        &PodNetwork {
                            netns: None,
                            ips: vec![],
                        },
                        false,
                    )
                    .await;
                }
            }
            let wait = tokio::time::sleep(backoff);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    changed = rx.changed() => {
                        if changed.is_err() || should_stop(&rx.borrow_and_update()) {
                            return None;
                        }
                    }
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn record(&self) -> SandboxRecord {
        SandboxRecord {
            namespace: self.pod.metadata.namespace.clone().unwrap_or_default(),
            name: self.pod.metadata.name.clone().unwrap_or_default(),
            uid: self.uid.clone(),
            container_id: sandbox::sandbox_id(&self.uid),
            netns: self.netns_name.clone(),
        }
    }

    async fn start_slot(
        &self,
        slots: &mut [Slot],
        i: usize,
        network: &PodNetwork,
        exits: &mpsc::UnboundedSender<Exit>,
    ) {
        let slot = &mut slots[i];
        let pod_ip = network.ips.first().cloned().unwrap_or_default();
        let launch =
            containers::container_argv(&self.key, &slot.spec).map(|argv| ContainerLaunch {
                pod: self.key.clone(),
                container: slot.spec.name.clone(),
                argv,
                env: self.container_env(&slot.spec, &pod_ip),
                log_path: self.log_path(&slot.spec.name),
                netns: network.netns.as_deref().map(sandbox::netns_path),
            });
        // What an exec in this run gets, and where its output starts in the log.
        let exec_target = launch.as_ref().ok().map(|l| {
            let offset = std::fs::metadata(&l.log_path).map_or(0, |m| m.len());
            let target = ExecTarget {
                env: l.env.clone(),
                netns: l.netns.clone(),
            };
            (target, offset)
        });
        let spawned = launch.and_then(|launch| {
            let program = containers::resolve_program(
                &launch.argv[0],
                self.ctx.config.own_dir.as_deref(),
                std::ffi::OsStr::new(&self.ctx.path_env),
            )
            .ok_or_else(|| containers::ContainerError::NotFound {
                pod: launch.pod.clone(),
                container: launch.container.clone(),
                program: launch.argv[0].clone(),
            })?;
            containers::spawn(&launch, &program)
        });
        match spawned {
            Ok(mut child) => {
                slot.generation += 1;
                let generation = slot.generation;
                slot.pid = child.id();
                let started = Instant::now();
                slot.started = Some(started);
                slot.record.state = RunState::Running {
                    started_at: Timestamp::now(),
                };
                slot.record.container_id = slot.pid.map(|p| format!("rovn://{p}"));
                // Without a probe a running container is ready; with one, each run starts
                // not ready until its probe says otherwise.
                slot.record.ready = slot.prober.is_none();
                if let Some(prober) = &slot.prober {
                    prober.container_started(ContainerRun {
                        generation,
                        started,
                    });
                }
                tracing::info!(pod = %self.key, container = %slot.spec.name, pid = ?slot.pid, "container started");
                if let Some((target, offset)) = exec_target {
                    let (namespace, name) = self.namespace_name();
                    self.ctx.containers.container_started(
                        &namespace,
                        &name,
                        &self.uid,
                        &slot.spec.name,
                        target,
                        offset,
                    );
                }
                let exits = exits.clone();
                tokio::spawn(async move {
                    use std::os::unix::process::ExitStatusExt;
                    let (code, signal) = match child.wait().await {
                        Ok(st) => match (st.code(), st.signal()) {
                            (Some(c), _) => (c, None),
                            (None, Some(s)) => (128 + s, Some(s)),
                            (None, None) => (-1, None),
                        },
                        Err(_) => (-1, None),
                    };
                    let _ = exits.send(Exit {
                        slot: i,
                        generation,
                        code,
                        signal,
                    });
                });
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::warn!(pod = %self.key, "{msg}");
                slot.record.state = RunState::Waiting {
                    reason: "CreateContainerError".into(),
                    message: Some(msg.clone()),
                };
                self.event(EventType::Warning, "Failed", "StartContainer", msg)
                    .await;
            }
        }
    }

    /// Records the end of the current run (`true`), or ignores a stale exit (`false`).
    fn on_exit(&self, slots: &mut [Slot], exit: Exit, policy: RestartPolicy) -> bool {
        let Some(slot) = slots.get_mut(exit.slot) else {
            return false;
        };
        if exit.generation != slot.generation || slot.pid.is_none() {
            return false;
        }
        slot.pid = None;
        slot.record.ready = false;
        let (namespace, name) = self.namespace_name();
        self.ctx
            .containers
            .container_stopped(&namespace, &name, &self.uid, &slot.spec.name);
        if let Some(prober) = &slot.prober {
            prober.container_stopped();
        }
        let started_at = match slot.record.state {
            RunState::Running { started_at } => started_at,
            _ => Timestamp::now(),
        };
        let terminated = RunState::Terminated {
            exit_code: exit.code,
            signal: exit.signal,
            started_at,
            finished_at: Timestamp::now(),
        };
        tracing::info!(pod = %self.key, container = %slot.spec.name, code = exit.code, "container exited");
        if policy.restarts(exit.code) {
            if slot
                .started
                .is_some_and(|s| s.elapsed() > Duration::from_secs(10))
            {
                slot.backoff = Duration::from_secs(1);
            }
            slot.record.last_state = Some(terminated);
            slot.record.state = RunState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {}s restarting failed container={}",
                    slot.backoff.as_secs(),
                    slot.spec.name
                )),
            };
            slot.restart_at = Some(Instant::now() + slot.backoff);
            slot.backoff = (slot.backoff * 2).min(MAX_BACKOFF);
        } else {
            slot.record.state = terminated;
        }
        true
    }

    async fn report(&mut self, slots: &[Slot], network: &PodNetwork, sandbox_ready: bool) {
        if self.gone {
            return;
        }
        let obs = PodObservation {
            host_ip: self.ctx.config.node.ip.clone(),
            pod_ips: network.ips.clone(),
            sandbox_ready,
            start_time: self.start_time,
            containers: slots.iter().map(|s| s.record.clone()).collect(),
            restart_policy: self.restart_policy(),
        };
        let status = pod_status(&obs, self.last_status.as_ref(), Timestamp::now());
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
        {
            Ok(_) => {
                self.last_status = Some(status);
                self.status_stale = false;
            }
            Err(e) => {
                self.status_stale = true;
                tracing::warn!(pod = %self.key, "updating pod status (will retry): {e}");
            }
        }
    }

    fn grace_period(&self) -> Duration {
        let secs = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .clamp(0, 300);
        Duration::from_secs(secs.unsigned_abs())
    }

    /// SIGTERM to every container, SIGKILL to what is left after the grace period. Readiness
    /// probes keep running meanwhile and every change is reported, as the real kubelet does:
    /// a terminating pod's endpoints stay `serving` exactly while it is Ready.
    async fn stop_containers(
        &mut self,
        slots: &mut [Slot],
        exits: &mut mpsc::UnboundedReceiver<Exit>,
        probes: &mut mpsc::UnboundedReceiver<ProberMessage>,
        network: &PodNetwork,
    ) {
        for slot in slots.iter_mut() {
            slot.restart_at = None;
            if let Some(pid) = slot.pid {
                containers::signal_group(pid, Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + self.grace_period();
        let mut killed = false;
        while slots.iter().any(|s| s.pid.is_some()) {
            tokio::select! {
                exit = exits.recv() => {
                    let Some(exit) = exit else { break };
                    if self.on_exit(slots, exit, RestartPolicy::Never) {
                        self.report(slots, network, true).await;
                    }
                }
                Some(message) = probes.recv() => {
                    if self.on_probe(slots, message).await {
                        self.report(slots, network, true).await;
                    }
                }
                _ = tokio::time::sleep_until(deadline), if !killed => {
                    killed = true;
                    for slot in slots.iter() {
                        if let Some(pid) = slot.pid {
                            tracing::info!(pod = %self.key, container = %slot.spec.name, "grace period over, SIGKILL");
                            containers::signal_group(pid, Signal::SIGKILL);
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline + Duration::from_secs(10)), if killed => break,
            }
        }
    }

    /// The real kubelet's last step: delete the pod for good (`gracePeriodSeconds=0`) once
    /// everything on the node is gone, if it is still in the API.
    async fn finish(&self, in_api: bool) {
        if !in_api {
            tracing::info!(pod = %self.key, "pod vanished from the API; torn down");
            return;
        }
        let api: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        // The worker ends after this, so a transient API error must not strand the pod.
        let mut backoff = Duration::from_millis(500);
        for attempt in 1..=8 {
            match api.delete(&name, &params).await {
                Ok(_) => {
                    tracing::info!(pod = %self.key, "pod torn down and deleted");
                    return;
                }
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                    tracing::info!(pod = %self.key, "pod torn down (already gone)");
                    return;
                }
                Err(e) => {
                    tracing::warn!(pod = %self.key, attempt, "final pod delete: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
