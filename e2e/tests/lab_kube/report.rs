//! What a failed run prints before the lab is torn down: the pods as `kubectl` shows them,
//! their events, and the tails of the kubelets', scheduler's and API server's logs and of the
//! containers' output. Armed for the whole test, it speaks only when the test is unwinding.

use std::path::{Path, PathBuf};
use std::process::Command;

use rovn_e2e::lab::daemon::log_tail;
use rovn_e2e::lab::{LabNames, Place};

/// Lines of each log printed on failure.
const TAIL_LINES: usize = 60;

/// Prints the lab's Kubernetes state if dropped during a panic; must be declared after the
/// lab's guard so that it runs while the lab still exists.
pub struct FailureReport {
    names: LabNames,
    nodes: u8,
    kubeconfig: PathBuf,
    namespace: String,
}

impl FailureReport {
    /// Arms the report for lab `names` with `nodes` nodes and the test's pod namespace.
    pub fn new(names: &LabNames, nodes: u8, namespace: &str) -> Self {
        FailureReport {
            names: names.clone(),
            nodes,
            kubeconfig: names.kubeconfig(),
            namespace: namespace.to_string(),
        }
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output();
        match out {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("cannot run kubectl: {e}\n"),
        }
    }

    fn print(&self) {
        eprintln!("===== kubectl get pods -A -o wide");
        eprint!("{}", self.kubectl(&["get", "pods", "-A", "-o", "wide"]));
        eprintln!("===== events in namespace {}", self.namespace);
        eprint!(
            "{}",
            self.kubectl(&["get", "events", "-n", &self.namespace, "-o", "wide"])
        );
        let mut logs = vec![
            self.names.log_file(Place::Central, "rovn-kubesim"),
            self.names.log_file(Place::Central, "rovn-scheduler"),
        ];
        for node in 1..=self.nodes {
            logs.push(self.names.log_file(Place::Node(node), "rovn-kubelet"));
            logs.extend(container_logs(
                &self.names.kubelet_state_dir(node).join("logs"),
            ));
        }
        for log in logs {
            eprintln!("===== last {TAIL_LINES} lines of {}", log.display());
            eprintln!("{}", log_tail(&log, TAIL_LINES));
        }
    }
}

fn container_logs(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

impl Drop for FailureReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print();
        }
    }
}
