//! The scheduler against `rovn-kubesim`: round robin over Ready nodes, nodeSelector, speed.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::procs::{BoxError, ProcessGuard, start_kubesim, wait_for, write_kubeconfig};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn add_node(api: &Api<Node>, name: &str, zone: &str, ready: bool) -> Result<(), BoxError> {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"zone": zone}}
    }))?;
    api.create(&PostParams::default(), &node).await?;
    let status = json!({"status": {"conditions": [{
        "type": "Ready", "status": if ready { "True" } else { "False" },
        "reason": "Test", "message": "set by test"}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_round_robin_honouring_node_selector() -> Result<(), BoxError> {
    let count: usize = std::env::var("ROVN_SCHED_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir()?;
    let (_kubesim, addrs) = start_kubesim(dir.path(), &["127.0.0.1:0".into()])?;
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, &addrs[0])?;
    let client = rovn_kubelet::client::client_from_kubeconfig(&kubeconfig).await?;

    let nodes: Api<Node> = Api::all(client.clone());
    add_node(&nodes, "node-c", "z", true).await?;
    add_node(&nodes, "node-a", "x", true).await?;
    add_node(&nodes, "node-b", "x", true).await?;
    add_node(&nodes, "node-d", "z", false).await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let make = |i: usize| -> Result<Pod, serde_json::Error> {
        let mut spec =
            json!({"containers": [{"name": "c", "image": "x", "command": ["sleep", "1"]}]});
        if i.is_multiple_of(10) {
            spec["nodeSelector"] = json!({"zone": "z"});
        }
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("p{i:05}")}, "spec": spec
        }))
    };
    futures::stream::iter(0..count)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let p = make(i)?;
                pods.create(&PostParams::default(), &p).await?;
                Ok::<_, BoxError>(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;

    let started = Instant::now();
    let mut scheduler = ProcessGuard::spawn(
        "rovn-scheduler",
        Command::new(env!("CARGO_BIN_EXE_rovn-scheduler"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--log-file")
            .arg(dir.path().join("scheduler.log")),
    )?;
    let bound = wait_for(Duration::from_secs(120), "every pod bound", || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let all = list.items.iter().all(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty())
        });
        (all && list.items.len() == count).then_some(list.items)
    })
    .await?;
    let elapsed = started.elapsed();
    scheduler.ensure_running()?;
    eprintln!(
        "scheduler bound {count} pods in {:.2}s ({:.0} pods/s, including scheduler start-up)",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );

    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in &bound {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let selected = p
            .spec
            .as_ref()
            .and_then(|s| s.node_selector.as_ref())
            .is_some();
        if selected {
            assert_eq!(
                node, "node-c",
                "{:?} ignored its nodeSelector",
                p.metadata.name
            );
        }
        *per_node.entry(node).or_default() += 1;
    }
    assert!(
        !per_node.contains_key("node-d"),
        "a NotReady node got pods: {per_node:?}"
    );
    let unselected = count - count.div_ceil(10);
    for n in ["node-a", "node-b"] {
        let got = per_node.get(n).copied().unwrap_or(0);
        assert!(
            got * 4 >= unselected,
            "{n} got only {got} of {unselected}: {per_node:?}"
        );
    }
    Ok(())
}
