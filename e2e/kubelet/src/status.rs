//! Pod status from what the kubelet observed (sandbox, IPs, container processes). Pure: the
//! worker records observations, this module turns them into the `PodStatus` the API expects.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// A container's run state as the kubelet saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// Not running yet, or waiting to be restarted.
    Waiting {
        /// e.g. `ContainerCreating`, `CrashLoopBackOff`, `StartError`.
        reason: String,
        /// Detail for humans.
        message: Option<String>,
    },
    /// The process is alive.
    Running {
        /// When it was started.
        started_at: Timestamp,
    },
    /// The process exited.
    Terminated {
        /// Its exit code (128 + signal when killed).
        exit_code: i32,
        /// The signal that killed it, if any.
        signal: Option<i32>,
        /// When it was started.
        started_at: Timestamp,
        /// When it exited.
        finished_at: Timestamp,
    },
}

/// One container's record.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRecord {
    /// The container's name.
    pub name: String,
    /// The image as written in the spec (reported back, never pulled).
    pub image: String,
    /// Current state.
    pub state: RunState,
    /// The previous run, once restarted.
    pub last_state: Option<RunState>,
    /// How many times it was restarted.
    pub restart_count: i32,
    /// Runtime id of the current process (`rovn://<pid>`).
    pub container_id: Option<String>,
    /// The current run passes its readiness probe, or has none. Counts only while running, so
    /// a stopped container is never reported ready whatever this says.
    pub ready: bool,
}

impl ContainerRecord {
    /// What `containerStatuses[].ready` reports: running and ready.
    pub fn is_ready(&self) -> bool {
        self.ready && matches!(self.state, RunState::Running { .. })
    }
}

/// The pod's restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Restart every exit (the default).
    Always,
    /// Restart non-zero exits.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    /// From `spec.restartPolicy` (absent or unknown = Always, the API default).
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// Everything the kubelet knows about a pod that status is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct PodObservation {
    /// The node's IP.
    pub host_ip: String,
    /// IPs from the CNI result (or the node IP for hostNetwork pods); empty before networking.
    pub pod_ips: Vec<String>,
    /// The sandbox is up with its network.
    pub sandbox_ready: bool,
    /// When the kubelet accepted the pod.
    pub start_time: Timestamp,
    /// The containers, in spec order.
    pub containers: Vec<ContainerRecord>,
    /// The pod's restart policy.
    pub restart_policy: RestartPolicy,
}

/// The pod phase, following the kubelet's rules for pods without init containers.
pub fn pod_phase(obs: &PodObservation) -> &'static str {
    if !obs.sandbox_ready || obs.containers.is_empty() {
        return "Pending";
    }
    let never_started = obs.containers.iter().any(|c| {
        matches!(c.state, RunState::Waiting { .. })
            && c.restart_count == 0
            && c.last_state.is_none()
    });
    if never_started {
        return "Pending";
    }
    let terminated: Vec<i32> = obs
        .containers
        .iter()
        .filter_map(|c| match c.state {
            RunState::Terminated { exit_code, .. } => Some(exit_code),
            _ => None,
        })
        .collect();
    if terminated.len() < obs.containers.len() || obs.restart_policy == RestartPolicy::Always {
        return "Running";
    }
    if terminated.iter().all(|&code| code == 0) {
        "Succeeded"
    } else {
        "Failed"
    }
}

fn time(ts: Timestamp) -> Time {
    Time(ts)
}

fn container_state(state: &RunState, container_id: Option<&String>) -> ContainerState {
    match state {
        RunState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        RunState::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(*started_at)),
            }),
            ..Default::default()
        },
        RunState::Terminated {
            exit_code,
            signal,
            started_at,
            finished_at,
        } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                signal: *signal,
                reason: Some(
                    if *exit_code == 0 {
                        "Completed"
                    } else {
                        "Error"
                    }
                    .into(),
                ),
                started_at: Some(time(*started_at)),
                finished_at: Some(time(*finished_at)),
                container_id: container_id.cloned(),
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

fn condition(
    previous: Option<&PodStatus>,
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(time(now));
    PodCondition {
        type_: kind.to_owned(),
        status: status.to_owned(),
        reason: reason.map(str::to_owned),
        message,
        last_transition_time: Some(since),
        ..Default::default()
    }
}

/// The full status to write through `pods/status`. Condition transition times are carried over
/// from `previous` while a condition keeps its value, so repeated reports do not churn them.
pub fn pod_status(obs: &PodObservation, previous: Option<&PodStatus>, now: Timestamp) -> PodStatus {
    let phase = pod_phase(obs);
    let not_ready: Vec<&str> = obs
        .containers
        .iter()
        .filter(|c| !c.is_ready())
        .map(|c| c.name.as_str())
        .collect();
    let containers_ready = obs.sandbox_ready && not_ready.is_empty() && !obs.containers.is_empty();
    let (reason, message) = if containers_ready {
        (None, None)
    } else if phase == "Succeeded" || phase == "Failed" {
        (Some("PodCompleted"), None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                not_ready.join(" ")
            )),
        )
    };
    let conditions = vec![
        condition(
            previous,
            "PodReadyToStartContainers",
            obs.sandbox_ready,
            None,
            None,
            now,
        ),
        condition(previous, "Initialized", true, None, None, now),
        condition(
            previous,
            "Ready",
            containers_ready,
            reason,
            message.clone(),
            now,
        ),
        condition(
            previous,
            "ContainersReady",
            containers_ready,
            reason,
            message,
            now,
        ),
        condition(previous, "PodScheduled", true, None, None, now),
    ];
    let statuses = obs
        .containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone(),
            image_id: String::new(),
            ready: c.is_ready(),
            started: Some(matches!(c.state, RunState::Running { .. })),
            restart_count: c.restart_count,
            state: Some(container_state(&c.state, c.container_id.as_ref())),
            last_state: c.last_state.as_ref().map(|s| container_state(s, None)),
            container_id: c.container_id.clone(),
            ..Default::default()
        })
        .collect();
    let pod_ip = obs.pod_ips.first().cloned();
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: Some(obs.host_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: obs.host_ip.clone(),
        }]),
        pod_ip,
        pod_ips: (!obs.pod_ips.is_empty()).then(|| {
            obs.pod_ips
                .iter()
                .map(|ip| PodIP { ip: ip.clone() })
                .collect()
        }),
        start_time: Some(time(obs.start_time)),
        container_statuses: Some(statuses),
        qos_class: Some("BestEffort".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn record(name: &str, state: RunState) -> ContainerRecord {
        ContainerRecord {
            name: name.into(),
            image: "img".into(),
            state,
            last_state: None,
            restart_count: 0,
            container_id: None,
            ready: true,
        }
    }

    fn obs(containers: Vec<ContainerRecord>, policy: RestartPolicy) -> PodObservation {
        PodObservation {
            host_ip: "172.30.0.11".into(),
            pod_ips: vec!["10.1.0.2".into()],
            sandbox_ready: true,
            start_time: ts(0),
            containers,
            restart_policy: policy,
        }
    }

    fn running() -> RunState {
        RunState::Running { started_at: ts(1) }
    }

    fn exited(code: i32) -> RunState {
        RunState::Terminated {
            exit_code: code,
            signal: None,
            started_at: ts(1),
            finished_at: ts(2),
        }
    }

    fn waiting() -> RunState {
        RunState::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        }
    }

    #[test]
    fn phases() {
        use RestartPolicy::*;
        let mut o = obs(vec![record("a", running())], Always);
        assert_eq!(pod_phase(&o), "Running");
        o.sandbox_ready = false;
        assert_eq!(pod_phase(&o), "Pending");
        assert_eq!(
            pod_phase(&obs(vec![record("a", waiting())], Always)),
            "Pending"
        );
        assert_eq!(
            pod_phase(&obs(
                vec![record("a", exited(0)), record("b", exited(0))],
                Never
            )),
            "Succeeded"
        );
        assert_eq!(
            pod_phase(&obs(
                vec![record("a", exited(0)), record("b", exited(3))],
                Never
            )),
            "Failed"
        );
        assert_eq!(
            pod_phase(&obs(
                vec![record("a", exited(0)), record("b", running())],
                Never
            )),
            "Running"
        );
        assert_eq!(
            pod_phase(&obs(vec![record("a", exited(0))], OnFailure)),
            "Succeeded"
        );
        let mut restarting = record("a", waiting());
        restarting.restart_count = 2;
        assert_eq!(pod_phase(&obs(vec![restarting], Always)), "Running");
        assert_eq!(pod_phase(&obs(vec![], Always)), "Pending");
    }

    #[test]
    fn restart_policy_rules() {
        assert_eq!(RestartPolicy::parse(None), RestartPolicy::Always);
        assert_eq!(RestartPolicy::parse(Some("Never")), RestartPolicy::Never);
        assert!(RestartPolicy::OnFailure.restarts(1));
        assert!(!RestartPolicy::OnFailure.restarts(0));
        assert!(!RestartPolicy::Never.restarts(1));
        assert!(RestartPolicy::Always.restarts(0));
    }

    #[test]
    fn status_fields() {
        let o = obs(vec![record("a", running())], RestartPolicy::Always);
        let s = pod_status(&o, None, ts(5));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.1.0.2"));
        assert_eq!(s.host_ip.as_deref(), Some("172.30.0.11"));
        let conds = s.conditions.clone().unwrap_or_default();
        for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            let c = conds.iter().find(|c| c.type_ == kind);
            assert_eq!(c.map(|c| c.status.as_str()), Some("True"), "{kind}");
        }
        let cs = s.container_statuses.clone().unwrap_or_default();
        assert!(cs[0].ready);
        assert!(
            cs[0]
                .state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .is_some()
        );
        // Unchanged conditions keep their transition time.
        let later = pod_status(&o, Some(&s), ts(50));
        assert_eq!(later.conditions, s.conditions);
    }

    #[test]
    fn completed_pod_status() {
        let o = obs(vec![record("a", exited(0))], RestartPolicy::Never);
        let s = pod_status(&o, None, ts(5));
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        let ready = s
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready");
        assert_eq!(
            ready.and_then(|c| c.reason).as_deref(),
            Some("PodCompleted")
        );
        let term = s.container_statuses.unwrap_or_default()[0]
            .state
            .clone()
            .and_then(|s| s.terminated);
        assert_eq!(
            term.map(|t| (t.exit_code, t.reason)),
            Some((0, Some("Completed".into())))
        );
    }

    fn condition_of<'a>(s: &'a PodStatus, kind: &str) -> Option<&'a PodCondition> {
        s.conditions.iter().flatten().find(|c| c.type_ == kind)
    }

    #[test]
    fn running_but_not_ready_is_not_ready() {
        let mut unready = record("b", running());
        unready.ready = false;
        let o = obs(vec![record("a", running()), unready], RestartPolicy::Always);
        let s = pod_status(&o, None, ts(5));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        for kind in ["ContainersReady", "Ready"] {
            let c = condition_of(&s, kind);
            assert_eq!(c.map(|c| c.status.as_str()), Some("False"), "{kind}");
            assert_eq!(
                c.and_then(|c| c.message.as_deref()),
                Some("containers with unready status: [b]")
            );
            assert_eq!(
                c.and_then(|c| c.reason.as_deref()),
                Some("ContainersNotReady")
            );
        }
        let ready: Vec<bool> = s
            .container_statuses
            .iter()
            .flatten()
            .map(|c| c.ready)
            .collect();
        assert_eq!(ready, [true, false]);
        // A stopped container is not ready, whatever its record says.
        let waiting = record("a", waiting());
        assert!(!waiting.is_ready());
    }

    #[test]
    fn ready_transitions_move_only_on_change() {
        let mut c = record("a", running());
        c.ready = false;
        let not_ready = pod_status(&obs(vec![c.clone()], RestartPolicy::Always), None, ts(5));
        let since = |s: &PodStatus, kind: &str| {
            condition_of(s, kind).and_then(|c| c.last_transition_time.clone())
        };
        c.ready = true;
        let ready = pod_status(
            &obs(vec![c.clone()], RestartPolicy::Always),
            Some(&not_ready),
            ts(9),
        );
        assert_eq!(since(&ready, "Ready"), Some(Time(ts(9))));
        assert_eq!(since(&ready, "ContainersReady"), Some(Time(ts(9))));
        assert_eq!(since(&ready, "PodScheduled"), Some(Time(ts(5))));
        let still = pod_status(
            &obs(vec![c.clone()], RestartPolicy::Always),
            Some(&ready),
            ts(20),
        );
        assert_eq!(since(&still, "Ready"), Some(Time(ts(9))));
        c.ready = false;
        let again = pod_status(&obs(vec![c], RestartPolicy::Always), Some(&still), ts(30));
        assert_eq!(since(&again, "Ready"), Some(Time(ts(30))));
    }
}
