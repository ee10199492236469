//! Creating many objects with many requests in flight, as a busy cluster would.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::PostParams;

use super::error::BenchError;

/// Creates every node, `in_flight` requests at a time.
pub async fn create_nodes(
    client: &kube::Client,
    nodes: Vec<Node>,
    in_flight: usize,
) -> Result<(), BenchError> {
    let api: Api<Node> = Api::all(client.clone());
    futures::stream::iter(nodes)
        .map(|node| {
            let api = api.clone();
            async move {
                let name = node.metadata.name.clone().unwrap_or_default();
                api.create(&PostParams::default(), &node)
                    .await
                    .map(drop)
                    .map_err(|e| BenchError::kube(format!("create node {name}"), e))
            }
        })
        .buffer_unordered(in_flight.max(1))
        .try_collect::<()>()
        .await
}

/// Creates every pod in `namespace`, `in_flight` requests at a time.
pub async fn create_pods(
    client: &kube::Client,
    namespace: &str,
    pods: Vec<Pod>,
    in_flight: usize,
) -> Result<(), BenchError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    futures::stream::iter(pods)
        .map(|pod| {
            let api = api.clone();
            async move {
                let name = pod.metadata.name.clone().unwrap_or_default();
                api.create(&PostParams::default(), &pod)
                    .await
                    .map(drop)
                    .map_err(|e| BenchError::kube(format!("create pod {namespace}/{name}"), e))
            }
        })
        .buffer_unordered(in_flight.max(1))
        .try_collect::<()>()
        .await
}
