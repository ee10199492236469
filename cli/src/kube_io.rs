//! Reading the API server with the user's kubeconfig, as kubectl plugins do: `--kubeconfig`
//! and `--context` when given, else kube-rs's inference (`$KUBECONFIG`, `~/.kube/config`,
//! in-cluster). Pods, nodes and Services become the plain views of [`crate::snapshot`].

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use kube::api::{AttachParams, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use rovn_api::annotations::{parse_node_join, parse_pod_allocation};
use rovn_api::names::{CONTROLLER_HTTP_PORT, CONTROLLER_LEASE, CONTROLLER_LEASE_NAMESPACE};

use crate::remotes::{CONFIGMAP_NAME, CONFIGMAP_NAMESPACE};
use crate::snapshot::{KubeSnapshot, NodeView, PodView, ServicePortView, ServiceView};
use crate::tools::Captured;

/// Talking to the API server failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeIoError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig: {0}")]
    Config(String),
    /// A request failed.
    #[error("{what}: {source}")]
    Api {
        /// What was asked.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An exec was refused or its stream failed.
    #[error("{what}: {detail}")]
    Exec {
        /// What was run where.
        what: String,
        /// The API server's answer or the stream's error.
        detail: String,
    },
}

/// A client from `kubeconfig` (a path) and `context`, or from the usual inference.
pub async fn client(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Client, KubeIoError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let mut config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| KubeIoError::Config(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| KubeIoError::Config(format!("{}: {e}", path.display())))?
        }
        None if context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| KubeIoError::Config(e.to_string()))?,
        None => Config::infer()
            .await
            .map_err(|e| KubeIoError::Config(e.to_string()))?,
    };
    // kube-rs retries 503s for minutes by default; a debugging command answers at once, as
    // kubectl does, and a leader busy with a round (its `/debug/plan` is 503) is a note.
    config.default_retry = false;
    Client::try_from(config).map_err(|source| KubeIoError::Api {
        what: "building the API client".into(),
        source,
    })
}

/// The ConfigMap `kube-system/rovn-config`'s data, or `None` when it does not exist.
pub async fn rovn_config(client: &Client) -> Result<Option<BTreeMap<String, String>>, KubeIoError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), CONFIGMAP_NAMESPACE);
    let map = api
        .get_opt(CONFIGMAP_NAME)
        .await
        .map_err(|source| KubeIoError::Api {
            what: format!("reading ConfigMap {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}"),
            source,
        })?;
    Ok(map.map(|m| m.data.unwrap_or_default()))
}

/// The running pod among `pods` that is on `node`, by name: the one to exec into. Pure (the
/// node is checked here too, as a server may ignore the field selector).
pub fn running_on(pods: &[Pod], node: &str) -> Option<String> {
    pods.iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .find_map(|p| p.metadata.name.clone())
}

/// The running pod in `namespace` labelled `selector` on `node` (a node's OVS pod).
pub async fn pod_on_node(
    client: &Client,
    namespace: &str,
    selector: &str,
    node: &str,
) -> Result<Option<String>, KubeIoError> {
    let lp = ListParams::default()
        .labels(selector)
        .fields(&format!("spec.nodeName={node}"));
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&lp)
        .await
        .map_err(|source| KubeIoError::Api {
            what: format!("listing pods in {namespace} labelled {selector} on node {node}"),
            source,
        })?;
    Ok(running_on(&pods.items, node))
}

/// Runs `argv` in pod `namespace/name` (its `container`, else its only one) through the
/// `pods/exec` subresource, and captures its output and whether it exited 0.
pub async fn exec(
    client: &Client,
    namespace: &str,
    name: &str,
    container: Option<&str>,
    argv: &[String],
) -> Result<Captured, KubeIoError> {
    use tokio::io::AsyncReadExt;

    let what = format!("exec {} in pod {namespace}/{name}", argv.join(" "));
    let mut params = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(true);
    if let Some(container) = container {
        params = params.container(container);
    }
    let mut attached = Api::<Pod>::namespaced(client.clone(), namespace)
        .exec(name, argv.to_vec(), &params)
        .await
        .map_err(|source| match &source {
            // The answer says it all; kube's own error repeats it down its chain.
            kube::Error::Api(status) => KubeIoError::Exec {
                what: what.clone(),
                detail: format!(
                    "the API server answered {} {}: {}{}",
                    status.code,
                    status.reason,
                    status.message,
                    if status.code == 404 {
                        " (the pod is gone, or this API server does not serve pods/exec)"
                    } else {
                        ""
                    }
                ),
            },
            _ => KubeIoError::Api {
                what: what.clone(),
                source,
            },
        })?;
    let status = attached.take_status();
    // Both streams drained together: the process blocks on a full pipe otherwise.
    let drain = |reader: Option<tokio::io::ReadHalf<tokio::io::SimplexStream>>| async move {
        let mut bytes = Vec::new();
        if let Some(mut reader) = reader {
            // A broken stream ends the output; the status below says how the command ended.
            let _ = reader.read_to_end(&mut bytes).await;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let (stdout, mut stderr) = tokio::join!(drain(attached.stdout()), drain(attached.stderr()));
    let status = match status {
        Some(status) => status.await,
        None => None,
    };
    attached.join().await.map_err(|source| KubeIoError::Exec {
        what: what.clone(),
        detail: source.to_string(),
    })?;
    let success = status.as_ref().and_then(|s| s.status.as_deref()) == Some("Success");
    if !success && let Some(message) = status.as_ref().and_then(|s| s.message.as_deref()) {
        stderr.push_str(message);
    }
    Ok(Captured {
        success,
        stdout,
        stderr,
    })
}

/// The leading controller's pod (the holder of its Lease) and its `/debug/plan` answer,
/// fetched through the API server's pod proxy, as `kubectl get --raw` would: the plugin needs
/// no route to the controller. `Err` says why there is no plan to read (no Lease, no holder,
/// the leader busy or unreachable); that is a note, not a finding.
pub async fn controller_plan(client: &Client) -> Result<(String, String), String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), CONTROLLER_LEASE_NAMESPACE);
    let lease_name = format!("Lease {CONTROLLER_LEASE_NAMESPACE}/{CONTROLLER_LEASE}");
    let lease = leases
        .get_opt(CONTROLLER_LEASE)
        .await
        .map_err(|e| format!("reading {lease_name}: {e}"))?
        .ok_or_else(|| {
            format!("no {lease_name}: is rovn-controller running with leader election?")
        })?;
    let leader = lease
        .spec
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{lease_name} has no holder: no controller leads"))?;
    let path = format!(
        "/api/v1/namespaces/{CONTROLLER_LEASE_NAMESPACE}/pods/{leader}:{CONTROLLER_HTTP_PORT}/proxy/debug/plan"
    );
    let request = http::Request::get(&path)
        .body(Vec::new())
        .map_err(|e| format!("building GET {path}: {e}"))?;
    let text = client.request_text(request).await.map_err(|e| match e {
        kube::Error::Api(status) => format!(
            "the leader {leader} did not give its plan ({} {}): {}",
            status.code,
            status.reason,
            status.message.trim()
        ),
        other => format!("GET {path}: {other}"),
    })?;
    Ok((leader, text))
}

/// Pods, nodes and Services of the whole cluster.
pub async fn snapshot(client: &Client) -> Result<KubeSnapshot, KubeIoError> {
    let lp = ListParams::default();
    let pods = Api::<Pod>::all(client.clone())
        .list(&lp)
        .await
        .map_err(|source| KubeIoError::Api {
            what: "listing pods".into(),
            source,
        })?;
    let nodes = Api::<Node>::all(client.clone())
        .list(&lp)
        .await
        .map_err(|source| KubeIoError::Api {
            what: "listing nodes".into(),
            source,
        })?;
    let services = Api::<Service>::all(client.clone())
        .list(&lp)
        .await
        .map_err(|source| KubeIoError::Api {
            what: "listing services".into(),
            source,
        })?;
    Ok(KubeSnapshot {
        pods: pods.items.iter().map(pod_view).collect(),
        nodes: nodes.items.iter().map(node_view).collect(),
        services: services.items.iter().map(service_view).collect(),
    })
}

/// The plugin's view of a pod. Pure.
pub fn pod_view(pod: &Pod) -> PodView {
    let meta = &pod.metadata;
    let empty = BTreeMap::new();
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    let spec = pod.spec.as_ref();
    PodView {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        node: spec.and_then(|s| s.node_name.clone()),
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        terminal: matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ),
        allocation: parse_pod_allocation(annotations).map_err(|e| e.to_string()),
    }
}

/// The plugin's view of a node. Pure.
pub fn node_view(node: &Node) -> NodeView {
    let empty = BTreeMap::new();
    let annotations = node.metadata.annotations.as_ref().unwrap_or(&empty);
    NodeView {
        name: node.metadata.name.clone().unwrap_or_default(),
        chassis: rovn_api::annotations::parse_chassis(annotations),
        join: parse_node_join(annotations).ok().flatten(),
    }
}

/// The plugin's view of a Service. Pure.
pub fn service_view(svc: &Service) -> ServiceView {
    let spec = svc.spec.as_ref();
    let mut ips: Vec<String> = spec.and_then(|s| s.cluster_ips.clone()).unwrap_or_default();
    if ips.is_empty()
        && let Some(ip) = spec.and_then(|s| s.cluster_ip.clone())
    {
        ips.push(ip);
    }
    ServiceView {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        cluster_ips: ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
        ports: spec
            .and_then(|s| s.ports.as_ref())
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|p| {
                        Some(ServicePortView {
                            name: p.name.clone().unwrap_or_default(),
                            port: u16::try_from(p.port).ok()?,
                            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn the_running_pod_on_the_node_is_chosen() {
        let pods = [
            pod("ovs-a", "node2", "Running"),
            pod("ovs-b", "node1", "Pending"),
            pod("ovs-c", "node1", "Running"),
        ];
        assert_eq!(running_on(&pods, "node1").as_deref(), Some("ovs-c"));
        assert_eq!(running_on(&pods, "node3"), None);
        let mut leaving = pod("ovs-d", "node3", "Running");
        leaving.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
        );
        assert_eq!(running_on(&[leaving], "node3"), None);
    }
}
