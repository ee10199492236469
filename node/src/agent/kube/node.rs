//! The agent's own Node: its InternalIP (default tunnel endpoint), the `rovn.io/chassis`
//! annotation the agent writes, and the join annotations it waits for.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use rovn_api::annotations::{self, Ipv4NodeJoin};
use rovn_api::names::annotations::CHASSIS;

/// Reads the Node.
pub async fn get(api: &Api<Node>, name: &str) -> anyhow::Result<Node> {
    use anyhow::Context;
    api.get(name)
        .await
        .with_context(|| format!("reading Node {name}"))
}

/// Sets `rovn.io/chassis` to `system_id` unless it already says so.
pub async fn annotate_chassis(
    api: &Api<Node>,
    node: &Node,
    system_id: &str,
) -> anyhow::Result<bool> {
    use anyhow::Context;
    let name = node.metadata.name.clone().unwrap_or_default();
    let current = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CHASSIS));
    if current.map(String::as_str) == Some(system_id) {
        return Ok(false);
    }
    let patch = serde_json::json!({"metadata": {"annotations": {CHASSIS: system_id}}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotating Node {name} with {CHASSIS}={system_id}"))?;
    Ok(true)
}

/// Watches the Node until the controller has written valid join annotations.
pub async fn wait_join(api: &Api<Node>, name: &str) -> anyhow::Result<Ipv4NodeJoin> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api.clone(), config).default_backoff().boxed();
    let mut waited_logged = false;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.next()).await;
        let event = match next {
            Err(_) => {
                tracing::info!(
                    node = name,
                    "still waiting for the controller's join annotations on the Node"
                );
                continue;
            }
            Ok(None) => anyhow::bail!("the watch on Node {name} ended"),
            Ok(Some(Err(e))) => {
                tracing::warn!(node = name, error = %e, "watching the Node");
                continue;
            }
            Ok(Some(Ok(event))) => event,
        };
        let node = match event {
            watcher::Event::Apply(n) | watcher::Event::InitApply(n) => n,
            _ => continue,
        };
        let empty = Default::default();
        let annotations = node.metadata.annotations.as_ref().unwrap_or(&empty);
        // `ovn0` is configured in IPv4 only: an IPv6 join address is refused, like a malformed one.
        let parsed = annotations::parse_node_join(annotations)
            .and_then(|j| j.map(Ipv4NodeJoin::try_from).transpose());
        match parsed {
            Ok(Some(join)) => return Ok(join),
            Ok(None) => {
                if !waited_logged {
                    tracing::info!(
                        node = name,
                        "waiting for the controller's join annotations on the Node"
                    );
                    waited_logged = true;
                }
            }
            Err(e) => {
                tracing::warn!(node = name, error = %e, "the Node's join annotations are invalid")
            }
        }
    }
}
