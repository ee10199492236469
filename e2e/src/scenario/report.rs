//! What a failed run prints: [`cluster_dump`], the dump of a cluster (pods with their
//! annotations, Nodes and Subnets, OVN's NB and SB views, the rovn rows, every node's OVS
//! interfaces), [`lab_log_tails`], the lab daemons' log tails, and [`FailureReport`], the
//! Kubernetes side of a lab (pods, events, the kubelets', scheduler's and API server's logs, the containers' output)
//! printed when a test panics.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::api;
use super::cluster::{Cluster, argv};
use super::infra::Infra;
use super::kubectl_cluster::KubectlCluster;
use super::pods;
use crate::lab::daemon::log_tail;
use crate::lab::{Lab, LabNames, Place};

/// Lines of each daemon log in a dump.
const LOG_LINES: usize = 40;

/// Everything a maintainer needs when a scenario fails, as seen through the cluster's API and
/// its node shells: pods with their annotations, Nodes and Subnets, OVN's Northbound view and
/// rovn's ports, and every node's OVS interfaces.
pub async fn cluster_dump<I: Infra>(cluster: &KubectlCluster<I>, namespaces: &[&str]) -> String {
    let mut out = String::new();
    let client = cluster.client();
    for ns in namespaces {
        let _ = writeln!(out, "===== pods in {ns}");
        match api::list_pods(&client, ns).await {
            Ok(list) => {
                for p in &list {
                    let _ = writeln!(
                        out,
                        "{} node={:?} phase={:?} podIP={:?} annotations={:?}",
                        p.metadata.name.as_deref().unwrap_or("?"),
                        pods::node_name(p),
                        pods::phase(p),
                        pods::pod_ip(p),
                        p.metadata.annotations.clone().unwrap_or_default()
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(out, "(cannot list: {e})");
            }
        }
    }
    let _ = writeln!(out, "===== Nodes and Subnets");
    let kubectl = cluster
        .kubectl()
        .args(["get", "nodes,subnets", "-o", "yaml"])
        .output()
        .await;
    push_output(&mut out, kubectl, "kubectl");
    let nb = [
        ("ovn-nbctl show", vec!["show"]),
        (
            "Logical_Switch_Port rows",
            vec![
                "--columns=name,addresses,up,options,external_ids",
                "list",
                "Logical_Switch_Port",
            ],
        ),
    ];
    for (title, args) in nb {
        let text = cluster.nbctl(&args).await.unwrap_or_else(|e| e.to_string());
        out.push_str(&section(title, text));
    }
    let sb_show = cluster
        .sbctl(&["show"])
        .await
        .unwrap_or_else(|e| e.to_string());
    out.push_str(&section("ovn-sbctl show", sb_show));
    let port_bindings = cluster
        .sbctl(&[
            "--columns=logical_port,chassis,up,mac",
            "list",
            "Port_Binding",
        ])
        .await
        .unwrap_or_else(|e| e.to_string());
    out.push_str(&section("Port_Binding rows", port_bindings));
    for node in cluster.nodes() {
        let command = argv([
            "ovs-vsctl",
            "--timeout=10",
            "--columns=name,type,ofport,external_ids",
            "list",
            "Interface",
        ]);
        let text = match cluster.exec_on_node(&node, &command).await {
            Ok(o) => o.stdout + &o.stderr,
            Err(e) => e.to_string(),
        };
        out.push_str(&section(&format!("OVS interfaces of {node}"), text));
    }
    out
}

/// `text` under a dump header.
pub fn section(title: &str, text: String) -> String {
    format!("===== {title}\n{text}")
}

/// The tails of the lab's daemon logs: the controller, API server, northd, NB, and every
/// node's agent, kubelet and ovn-controller.
pub fn lab_log_tails(lab: &Lab) -> String {
    let names = lab.names();
    let mut logs = vec![
        names.controller_log(),
        names.log_file(Place::Central, "rovn-kubesim"),
        names.log_file(Place::Central, "ovn-northd"),
        names.log_file(Place::Central, "ovnnb_db"),
    ];
    for node in &lab.info().nodes {
        if let Ok(Place::Node(i)) = node.name.parse::<Place>() {
            logs.push(names.agent_log(i));
            logs.push(names.log_file(Place::Node(i), "rovn-kubelet"));
            logs.push(names.log_file(Place::Node(i), "ovn-controller"));
        }
    }
    let mut out = String::new();
    push_log_tails(&mut out, &logs, LOG_LINES);
    out
}

/// `kubectl` with the lab's root-namespace kubeconfig.
fn kubectl(names: &LabNames) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.arg(format!("--kubeconfig={}", names.kubeconfig().display()));
    cmd
}

/// Appends the last `lines` lines of each log, under a header naming it.
fn push_log_tails(out: &mut String, logs: &[PathBuf], lines: usize) {
    for log in logs {
        let _ = writeln!(out, "===== last {lines} lines of {}", log.display());
        let _ = writeln!(out, "{}", log_tail(log, lines));
    }
}

/// Lines of each log a [`FailureReport`] prints.
const REPORT_LOG_LINES: usize = 60;

/// Prints a lab's Kubernetes state if dropped during a panic: pods as `kubectl` shows them,
/// the events of the test's namespace, and the tails of the API server's, scheduler's and
/// kubelets' logs and of every container's output. Declare it after the lab's guard so that
/// it runs while the lab still exists.
pub struct FailureReport {
    names: LabNames,
    nodes: u8,
    namespace: String,
}

impl FailureReport {
    /// Arms the report for lab `names` with `nodes` nodes and the test's pod namespace.
    pub fn new(names: &LabNames, nodes: u8, namespace: &str) -> Self {
        FailureReport {
            names: names.clone(),
            nodes,
            namespace: namespace.to_string(),
        }
    }

    /// What the report prints.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "===== kubectl get pods -A -o wide");
        let pods = kubectl(&self.names)
            .args(["get", "pods", "-A", "-o", "wide"])
            .output();
        push_output(&mut out, pods, "kubectl");
        let _ = writeln!(out, "===== events in namespace {}", self.namespace);
        let events = kubectl(&self.names)
            .args(["get", "events", "-n", &self.namespace, "-o", "wide"])
            .output();
        push_output(&mut out, events, "kubectl");
        let mut logs = vec![
            self.names.log_file(Place::Central, "rovn-kubesim"),
            self.names.log_file(Place::Central, "rovn-scheduler"),
        ];
        for node in 1..=self.nodes {
            logs.push(self.names.log_file(Place::Node(node), "rovn-kubelet"));
            logs.extend(files_in(&self.names.kubelet_state_dir(node).join("logs")));
        }
        push_log_tails(&mut out, &logs, REPORT_LOG_LINES);
        out
    }
}

impl Drop for FailureReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprint!("{}", self.text());
        }
    }
}

/// The files of a directory, sorted (none if it does not exist).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Appends what a command printed, or why it could not run.
fn push_output(out: &mut String, result: std::io::Result<std::process::Output>, program: &str) {
    match result {
        Ok(o) => {
            out.push_str(&String::from_utf8_lossy(&o.stdout));
            out.push_str(&String::from_utf8_lossy(&o.stderr));
        }
        Err(e) => {
            let _ = writeln!(out, "(cannot run {program}: {e})");
        }
    }
}
