//! The failure dump of a lab cluster: pods with their annotations, Nodes (join addresses) and
//! Subnets (status), OVN's NB and SB views, the rovn rows, every node's OVS interfaces, and the
//! daemons' log tails.

use std::fmt::Write;

use super::api;
use super::cluster::{Cluster, argv};
use super::lab_cluster::LabCluster;
use super::pods;
use crate::lab::Place;
use crate::lab::daemon::log_tail;

/// Lines of each daemon log in a dump.
const LOG_LINES: usize = 40;

/// Everything a maintainer needs when a scenario fails on the lab.
pub async fn lab_dump(cluster: &LabCluster<'_>, namespaces: &[&str]) -> String {
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
    let kubectl = tokio::process::Command::new("kubectl")
        .arg(format!(
            "--kubeconfig={}",
            cluster.lab().names().kubeconfig().display()
        ))
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
        let _ = writeln!(out, "===== {title}");
        let text = cluster.nbctl(&args).await.unwrap_or_else(|e| e.to_string());
        out.push_str(&text);
    }
    let names = cluster.lab().names();
    for (title, args) in [
        ("ovn-sbctl show", vec!["show"]),
        (
            "Port_Binding rows",
            vec![
                "--columns=logical_port,chassis,up,mac",
                "list",
                "Port_Binding",
            ],
        ),
    ] {
        let _ = writeln!(out, "===== {title}");
        let result = tokio::process::Command::new("ovn-sbctl")
            .arg(format!("--db={}", names.sb_remote()))
            .arg("--timeout=10")
            .args(&args)
            .output()
            .await;
        push_output(&mut out, result, "ovn-sbctl");
    }
    for node in cluster.nodes() {
        let _ = writeln!(out, "===== OVS interfaces of {node}");
        let command = argv([
            "ovs-vsctl",
            "--timeout=10",
            "--columns=name,type,ofport,external_ids",
            "list",
            "Interface",
        ]);
        match cluster.exec_on_node(&node, &command).await {
            Ok(o) => {
                out.push_str(&o.stdout);
                out.push_str(&o.stderr);
            }
            Err(e) => {
                let _ = writeln!(out, "({e})");
            }
        }
    }
    let mut logs = vec![
        names.controller_log(),
        names.log_file(Place::Central, "rovn-kubesim"),
        names.log_file(Place::Central, "ovn-northd"),
        names.log_file(Place::Central, "ovnnb_db"),
    ];
    for node in &cluster.lab().info().nodes {
        if let Ok(Place::Node(i)) = node.name.parse::<Place>() {
            logs.push(names.agent_log(i));
            logs.push(names.log_file(Place::Node(i), "rovn-kubelet"));
            logs.push(names.log_file(Place::Node(i), "ovn-controller"));
        }
    }
    for log in logs {
        let _ = writeln!(out, "===== last {LOG_LINES} lines of {}", log.display());
        let _ = writeln!(out, "{}", log_tail(&log, LOG_LINES));
    }
    out
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
