//! One container's readiness prober: a task the pod worker owns, told when the container starts
//! and stops, that probes on the spec's schedule and reports readiness *changes* and events.
//!
//! Timing follows the real kubelet's probe worker: nothing before `initialDelaySeconds` after
//! the container started, then a probe every `periodSeconds` (a probe that overruns its period
//! skips the missed ticks), each bounded by `timeoutSeconds`. A container that is not running
//! is not probed. Each start of the container is a new run: not ready until its probe succeeds
//! `successThreshold` times in a row. The prober keeps going while the pod terminates, as the
//! real kubelet keeps readiness probes running through the grace period (only liveness and
//! startup probes stop), so a server that fails readiness on SIGTERM leaves the endpoints.

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::Outcome;
use super::handlers::{self, ProbeTarget};
use super::spec::{self, ReadinessProbe, SpecError};
use super::state::{EventGate, ProbeEvent, Readiness, Verdict};

/// One run of the container, as the pod worker started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerRun {
    /// The pod worker's run counter for the container; readiness reports carry it so a late
    /// report about an earlier run is ignored.
    pub generation: u64,
    /// When the process was started; the initial delay counts from here.
    pub started: Instant,
}

/// What a prober tells its pod worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProberMessage {
    /// The container's readiness changed in run `generation`.
    Readiness {
        /// The container's index in the pod spec.
        slot: usize,
        /// The run this is about.
        generation: u64,
        /// Ready now or not.
        ready: bool,
    },
    /// The pod should get this event about the container.
    Event {
        /// The container's index in the pod spec.
        slot: usize,
        /// Reason and message.
        event: ProbeEvent,
    },
}

/// The pod worker's handle on a container's prober task; dropping it stops the task (and kills
/// a running exec probe).
#[derive(Debug)]
pub struct Prober {
    runs: watch::Sender<Option<ContainerRun>>,
    task: JoinHandle<()>,
}

impl Prober {
    /// Starts the task for container `slot`. An invalid spec still gets a task: it tells the
    /// pod once, when the container first runs, and never reports the container ready.
    pub fn spawn(
        slot: usize,
        spec: Result<ReadinessProbe, SpecError>,
        target: ProbeTarget,
        out: mpsc::UnboundedSender<ProberMessage>,
    ) -> Self {
        let (runs, rx) = watch::channel(None);
        let task = tokio::spawn(
            Task {
                slot,
                target,
                runs: rx,
                out,
            }
            .run(spec),
        );
        Self { runs, task }
    }

    /// The container was (re)started: probing starts over for this run.
    pub fn container_started(&self, run: ContainerRun) {
        self.runs.send_replace(Some(run));
    }

    /// The container is no longer running: probing pauses until it starts again.
    pub fn container_stopped(&self) {
        self.runs.send_replace(None);
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Task {
    slot: usize,
    target: ProbeTarget,
    runs: watch::Receiver<Option<ContainerRun>>,
    out: mpsc::UnboundedSender<ProberMessage>,
}

impl Task {
    async fn run(mut self, spec: Result<ReadinessProbe, SpecError>) {
        let mut told_invalid = false;
        loop {
            let run = *self.runs.borrow_and_update();
            match (&spec, run) {
                (Ok(spec), Some(run)) => {
                    if !self.probe_run(spec, run).await {
                        return;
                    }
                    continue;
                }
                (Err(e), Some(_)) if !told_invalid => {
                    told_invalid = true;
                    tracing::warn!(pod = %self.target.pod, container = %self.target.container, "readinessProbe: {e}");
                    let outcome = Outcome::Error(format!("invalid readinessProbe: {e}"));
                    if let Some(event) = EventGate::default().event(&outcome) {
                        self.send(ProberMessage::Event {
                            slot: self.slot,
                            event,
                        });
                    }
                }
                _ => {}
            }
            if self.runs.changed().await.is_err() {
                return;
            }
        }
    }

    /// Probes one run until the container stops or restarts (`true`) or the pod worker is gone
    /// (`false`).
    async fn probe_run(&mut self, spec: &ReadinessProbe, run: ContainerRun) -> bool {
        let mut readiness = Readiness::new(spec.success_threshold, spec.failure_threshold);
        let mut events = EventGate::default();
        let first = run
            .started
            .checked_add(spec.initial_delay)
            .unwrap_or_else(far_future);
        let mut ticks = tokio::time::interval_at(first, spec.period.max(spec::MIN_PERIOD));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                changed = self.runs.changed() => return changed.is_ok(),
                _ = ticks.tick() => {}
            }
            let outcome = tokio::select! {
                changed = self.runs.changed() => return changed.is_ok(),
                outcome = handlers::run(spec, &self.target) => outcome,
            };
            tracing::debug!(pod = %self.target.pod, container = %self.target.container, ?outcome, "readiness probe");
            if let Some(event) = events.event(&outcome) {
                self.send(ProberMessage::Event {
                    slot: self.slot,
                    event,
                });
            }
            if let Some(ready) = Verdict::of(&outcome).and_then(|v| readiness.record(v)) {
                tracing::info!(pod = %self.target.pod, container = %self.target.container, ready, "readiness changed");
                self.send(ProberMessage::Readiness {
                    slot: self.slot,
                    generation: run.generation,
                    ready,
                });
            }
        }
    }

    fn send(&self, message: ProberMessage) {
        // A closed channel means the pod worker is finishing; it aborts this task soon.
        let _ = self.out.send(message);
    }
}

/// A deadline that never comes in practice (for initial delays too large to add).
fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(86_400 * 365 * 30)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers;
    use crate::prober::spec::Handler;
    use std::time::Duration;

    fn target(env: Vec<(String, String)>) -> ProbeTarget {
        let mut all = vec![("PATH".to_owned(), containers::inherited_path())];
        all.extend(env);
        ProbeTarget {
            pod: "ns/p".into(),
            container: "c".into(),
            pod_ip: "127.0.0.1".into(),
            netns: None,
            env: all,
            own_dir: None,
            path_env: containers::inherited_path(),
        }
    }

    fn exec_probe(script: &str) -> ReadinessProbe {
        ReadinessProbe {
            handler: Handler::Exec {
                command: vec!["sh".into(), "-c".into(), script.into()],
            },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            success_threshold: 1,
            failure_threshold: 1,
        }
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<ProberMessage>) -> Option<ProberMessage> {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .ok()
            .flatten()
    }

    async fn next_readiness(
        rx: &mut mpsc::UnboundedReceiver<ProberMessage>,
    ) -> Option<ProberMessage> {
        loop {
            match next(rx).await {
                Some(ProberMessage::Event { .. }) => continue,
                other => return other,
            }
        }
    }

    #[tokio::test]
    async fn reports_changes_of_the_current_run() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let flag = dir.path().join("unready");
        let script = format!("test ! -e {}", flag.display());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let prober = Prober::spawn(3, Ok(exec_probe(&script)), target(vec![]), tx);
        // Not running: nothing is probed, nothing reported.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), rx.recv())
                .await
                .is_err()
        );
        prober.container_started(ContainerRun {
            generation: 7,
            started: Instant::now(),
        });
        assert_eq!(
            next(&mut rx).await,
            Some(ProberMessage::Readiness {
                slot: 3,
                generation: 7,
                ready: true
            })
        );
        std::fs::write(&flag, "")?;
        let event = next(&mut rx).await;
        assert!(
            matches!(&event, Some(ProberMessage::Event { slot: 3, event }) if event.reason == "Unhealthy" && event.message.starts_with("Readiness probe failed:")),
            "{event:?}"
        );
        assert_eq!(
            next(&mut rx).await,
            Some(ProberMessage::Readiness {
                slot: 3,
                generation: 7,
                ready: false
            })
        );
        // A restart is a new run: it is reported under its own generation once it passes.
        prober.container_started(ContainerRun {
            generation: 8,
            started: Instant::now(),
        });
        std::fs::remove_file(&flag)?;
        assert_eq!(
            next_readiness(&mut rx).await,
            Some(ProberMessage::Readiness {
                slot: 3,
                generation: 8,
                ready: true
            })
        );
        Ok(())
    }

    #[tokio::test]
    async fn initial_delay_holds_the_first_probe() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let probe = ReadinessProbe {
            initial_delay: Duration::from_secs(2),
            ..exec_probe("true")
        };
        let prober = Prober::spawn(0, Ok(probe), target(vec![]), tx);
        let started = Instant::now();
        prober.container_started(ContainerRun {
            generation: 1,
            started,
        });
        let first = next(&mut rx).await;
        assert!(matches!(
            first,
            Some(ProberMessage::Readiness { ready: true, .. })
        ));
        assert!(started.elapsed() >= Duration::from_secs(2), "probed early");
    }

    #[tokio::test]
    async fn invalid_spec_is_told_once_and_never_ready() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let prober = Prober::spawn(1, Err(SpecError::NoHandler), target(vec![]), tx);
        prober.container_started(ContainerRun {
            generation: 1,
            started: Instant::now(),
        });
        let first = next(&mut rx).await;
        assert!(
            matches!(&first, Some(ProberMessage::Event { slot: 1, event }) if event.message.contains("missing probe handler")),
            "{first:?}"
        );
        prober.container_stopped();
        prober.container_started(ContainerRun {
            generation: 2,
            started: Instant::now(),
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(500), rx.recv())
                .await
                .is_err(),
            "told more than once"
        );
    }
}
