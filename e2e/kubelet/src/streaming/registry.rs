//! What the streaming server needs to know about the node's containers, kept up to date by
//! the pod workers: for each pod (by namespace and name) its containers, whether each runs,
//! and the environment and network namespace an exec in it gets (exactly what its process
//! got), and where each run's output starts in the container's log file.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

/// How to run a command "in" a running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTarget {
    /// The container's complete environment.
    pub env: Vec<(String, String)>,
    /// The sandbox namespace; `None` for hostNetwork pods (the node's, the kubelet's own).
    pub netns: Option<PathBuf>,
}

/// One container as the streaming server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEntry {
    /// Set while the container runs.
    pub running: Option<ExecTarget>,
    /// Its log file (all runs appended).
    pub log_path: PathBuf,
    /// Where each of the last two runs' output starts in the log file, oldest first; empty
    /// until it first starts.
    pub run_starts: Vec<u64>,
    /// Counts the runs, so a log follower can tell its run ended.
    pub run: u64,
}

/// One pod.
#[derive(Debug, Clone)]
struct PodEntry {
    uid: String,
    containers: BTreeMap<String, ContainerEntry>,
}

/// Why a lookup found nothing; worded as the real kubelet answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No such pod on this node.
    #[error("pod does not exist")]
    NoPod,
    /// The pod has no container of that name.
    #[error("container not found ({0:?})")]
    NoContainer(String),
}

/// The node's pods, shared by the pod workers (writers) and the streaming server (reader).
#[derive(Debug, Default)]
pub struct Containers {
    pods: Mutex<HashMap<(String, String), PodEntry>>,
}

impl Containers {
    fn pods(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), PodEntry>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pod's worker starts: its containers (name, log file) exist, none running yet.
    pub fn pod_started(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        containers: impl IntoIterator<Item = (String, PathBuf)>,
    ) {
        let containers = containers
            .into_iter()
            .map(|(c, log_path)| {
                (
                    c,
                    ContainerEntry {
                        running: None,
                        log_path,
                        run_starts: Vec::new(),
                        run: 0,
                    },
                )
            })
            .collect();
        self.pods().insert(
            (namespace.to_owned(), name.to_owned()),
            PodEntry {
                uid: uid.to_owned(),
                containers,
            },
        );
    }

    fn with_container(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        container: &str,
        f: impl FnOnce(&mut ContainerEntry),
    ) {
        let mut pods = self.pods();
        if let Some(pod) = pods.get_mut(&(namespace.to_owned(), name.to_owned()))
            && pod.uid == uid
            && let Some(entry) = pod.containers.get_mut(container)
        {
            f(entry);
        }
    }

    /// A container process started, its output from `log_offset` on in its log file.
    pub fn container_started(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        container: &str,
        target: ExecTarget,
        log_offset: u64,
    ) {
        self.with_container(namespace, name, uid, container, |entry| {
            entry.running = Some(target);
            entry.run += 1;
            entry.run_starts.push(log_offset);
            if entry.run_starts.len() > 2 {
                entry.run_starts.remove(0);
            }
        });
    }

    /// A container process ended.
    pub fn container_stopped(&self, namespace: &str, name: &str, uid: &str, container: &str) {
        self.with_container(namespace, name, uid, container, |entry| {
            entry.running = None
        });
    }

    /// The pod (this incarnation of it) is gone from the node.
    pub fn pod_gone(&self, namespace: &str, name: &str, uid: &str) {
        let mut pods = self.pods();
        let key = (namespace.to_owned(), name.to_owned());
        if pods.get(&key).is_some_and(|p| p.uid == uid) {
            pods.remove(&key);
        }
    }

    /// A container of a pod on this node, as it is now.
    pub fn lookup(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
    ) -> Result<ContainerEntry, LookupError> {
        let pods = self.pods();
        let pod = pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .ok_or(LookupError::NoPod)?;
        pod.containers
            .get(container)
            .cloned()
            .ok_or_else(|| LookupError::NoContainer(container.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ExecTarget {
        ExecTarget {
            env: vec![("A".into(), "1".into())],
            netns: None,
        }
    }

    #[test]
    fn tracks_runs_and_ignores_other_incarnations() {
        let c = Containers::default();
        c.pod_started("ns", "p", "u1", [("app".into(), PathBuf::from("/l"))]);
        assert_eq!(c.lookup("ns", "q", "app"), Err(LookupError::NoPod));
        assert_eq!(
            c.lookup("ns", "p", "x"),
            Err(LookupError::NoContainer("x".into()))
        );
        assert!(
            c.lookup("ns", "p", "app")
                .is_ok_and(|e| e.running.is_none())
        );
        c.container_started("ns", "p", "u1", "app", target(), 0);
        c.container_stopped("ns", "p", "u1", "app");
        c.container_started("ns", "p", "u1", "app", target(), 10);
        c.container_started("ns", "p", "u1", "app", target(), 25);
        // Another incarnation's news changes nothing.
        c.container_stopped("ns", "p", "u0", "app");
        let entry = c.lookup("ns", "p", "app");
        assert_eq!(
            entry
                .as_ref()
                .map(|e| (&e.run_starts, e.run, e.running.is_some())),
            Ok((&vec![10, 25], 3, true))
        );
        c.pod_gone("ns", "p", "u0");
        assert!(c.lookup("ns", "p", "app").is_ok());
        c.pod_gone("ns", "p", "u1");
        assert_eq!(c.lookup("ns", "p", "app"), Err(LookupError::NoPod));
    }
}
