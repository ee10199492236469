//! Reading the API server with the user's kubeconfig, as kubectl plugins do: `--kubeconfig`
//! and `--context` when given, else kube-rs's inference (`$KUBECONFIG`, `~/.kube/config`,
//! in-cluster). Pods, nodes and Services become the plain views of [`crate::snapshot`].

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use rovn_api::annotations::{parse_node_join, parse_pod_allocation};

use crate::remotes::{CONFIGMAP_NAME, CONFIGMAP_NAMESPACE};
use crate::snapshot::{KubeSnapshot, NodeView, PodView, ServicePortView, ServiceView};

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
    let config = match kubeconfig {
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
