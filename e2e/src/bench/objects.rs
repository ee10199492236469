//! The Kubernetes objects the benchmarks create: Ready nodes without a datapath and pods
//! already bound to a node. Pure.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

use super::error::BenchError;

/// Label on every benchmark pod, so watches see only them.
pub const POD_LABEL_KEY: &str = "rovn.io/bench";
/// Value of [`POD_LABEL_KEY`].
pub const POD_LABEL_VALUE: &str = "true";

/// `POD_LABEL_KEY=POD_LABEL_VALUE`, for watches.
pub fn pod_selector() -> String {
    format!("{POD_LABEL_KEY}={POD_LABEL_VALUE}")
}

/// The name of benchmark node `index` (0-based).
pub fn node_name(index: usize) -> String {
    format!("bench-node-{index}")
}

/// The InternalIP of benchmark node `index`: 172.31.0.0/16 onwards, never used by the lab.
pub fn node_ip(index: usize) -> Ipv4Addr {
    let base = u32::from(Ipv4Addr::new(172, 31, 0, 1));
    Ipv4Addr::from(base.wrapping_add(index as u32))
}

/// The name of benchmark pod `index` (0-based).
pub fn pod_name(index: usize) -> String {
    format!("bench-pod-{index}")
}

/// The node pod `index` is bound to: round robin over `nodes`.
pub fn node_of_pod(index: usize, nodes: &[String]) -> Option<&str> {
    if nodes.is_empty() {
        return None;
    }
    nodes.get(index % nodes.len()).map(String::as_str)
}

/// A Ready node with an InternalIP, as a kubelet would have registered it.
pub fn ready_node(name: &str, ip: Ipv4Addr) -> Result<Node, BenchError> {
    let value = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": ip.to_string()},
                {"type": "Hostname", "address": name}
            ],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]
        }
    });
    serde_json::from_value(value).map_err(|e| {
        BenchError::protocol(format!("build the manifest of node {name}"), e.to_string())
    })
}

/// A pod already bound to `node` (`spec.nodeName`), as the scheduler leaves it.
pub fn bound_pod(name: &str, namespace: &str, node: &str) -> Result<Pod, BenchError> {
    let value = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {POD_LABEL_KEY: POD_LABEL_VALUE}
        },
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]
        }
    });
    serde_json::from_value(value).map_err(|e| {
        BenchError::protocol(
            format!("build the manifest of pod {namespace}/{name}"),
            e.to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_spread_round_robin() {
        let nodes: Vec<String> = (0..3).map(node_name).collect();
        let placed: Vec<&str> = (0..5).filter_map(|i| node_of_pod(i, &nodes)).collect();
        assert_eq!(
            placed,
            [
                "bench-node-0",
                "bench-node-1",
                "bench-node-2",
                "bench-node-0",
                "bench-node-1"
            ]
        );
        assert_eq!(node_of_pod(0, &[]), None);
    }

    #[test]
    fn manifests_carry_what_the_controller_reads() {
        let node = ready_node("bench-node-0", node_ip(0)).unwrap();
        let status = node.status.unwrap();
        assert_eq!(status.addresses.unwrap()[0].address, "172.31.0.1");
        assert_eq!(status.conditions.unwrap()[0].status, "True");
        assert_eq!(node_ip(255), Ipv4Addr::new(172, 31, 1, 0));
        let pod = bound_pod("bench-pod-0", "default", "bench-node-0").unwrap();
        assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("bench-node-0"));
        assert_eq!(pod.metadata.labels.unwrap()[POD_LABEL_KEY], POD_LABEL_VALUE);
    }
}
