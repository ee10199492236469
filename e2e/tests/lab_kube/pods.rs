//! The pods the test runs, and the facts it reads back from their status.

use std::net::Ipv4Addr;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// The TCP port every serving pod listens on.
pub const TCP_PORT: u16 = 8080;
/// The UDP port every serving pod listens on.
pub const UDP_PORT: u16 = 8081;
/// The TCP port of the hostNetwork pod, inside the node's namespace (which the lab owns).
pub const HOST_TCP_PORT: u16 = 18080;
/// Short grace: `rovn-podtool serve` exits on SIGTERM at once.
const GRACE_SECONDS: i64 = 5;

/// What a pod asks of the scheduler and the kubelet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement<'a> {
    /// Pinned to a node with `nodeSelector kubernetes.io/hostname`.
    Pinned(&'a str),
    /// Left to the scheduler.
    Free,
}

fn manifest(name: &str, namespace: &str, placement: Placement<'_>, spec: Value) -> Value {
    let mut spec = spec;
    spec["terminationGracePeriodSeconds"] = json!(GRACE_SECONDS);
    if let Placement::Pinned(node) = placement {
        spec["nodeSelector"] = json!({"kubernetes.io/hostname": node});
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "labkube"}},
        "spec": spec
    })
}

fn to_pod(value: Value, name: &str) -> anyhow::Result<Pod> {
    serde_json::from_value(value).with_context(|| format!("building the manifest of pod {name}"))
}

/// A pod serving TCP and UDP on its pod IP, as the pods do.
pub fn server(name: &str, namespace: &str, placement: Placement<'_>) -> anyhow::Result<Pod> {
    let spec = json!({
        "containers": [{
            "name": "serve",
            "image": "rovn-podtool",
            "command": ["rovn-podtool", "serve",
                        "--tcp", TCP_PORT.to_string(), "--udp", UDP_PORT.to_string()]
        }]
    });
    to_pod(manifest(name, namespace, placement, spec), name)
}

/// A hostNetwork pod serving TCP in the node's own namespace.
pub fn host_network_server(name: &str, namespace: &str, node: &str) -> anyhow::Result<Pod> {
    let spec = json!({
        "hostNetwork": true,
        "containers": [{
            "name": "serve",
            "image": "rovn-podtool",
            "command": ["rovn-podtool", "serve", "--tcp", HOST_TCP_PORT.to_string()]
        }]
    });
    to_pod(
        manifest(name, namespace, Placement::Pinned(node), spec),
        name,
    )
}

/// A pod whose only container exits 0 and must not be restarted.
pub fn run_once(name: &str, namespace: &str, node: &str) -> anyhow::Result<Pod> {
    let spec = json!({
        "restartPolicy": "Never",
        "containers": [{"name": "once", "image": "busybox", "command": ["true"]}]
    });
    to_pod(
        manifest(name, namespace, Placement::Pinned(node), spec),
        name,
    )
}

/// The pod's phase, if reported.
pub fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `status.podIP` as an address, if reported and well-formed.
pub fn pod_ip(pod: &Pod) -> Option<Ipv4Addr> {
    pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

/// `status.hostIP` as an address, if reported and well-formed.
pub fn host_ip(pod: &Pod) -> Option<Ipv4Addr> {
    pod.status.as_ref()?.host_ip.as_deref()?.parse().ok()
}

/// `spec.nodeName`, once bound.
pub fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// The exit code of the pod's first container, once it terminated.
pub fn exit_code(pod: &Pod) -> Option<i32> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .first()?
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

/// The pod's UID.
pub fn uid(pod: &Pod) -> anyhow::Result<&str> {
    pod.metadata
        .uid
        .as_deref()
        .with_context(|| format!("pod {:?} has no uid", pod.metadata.name))
}

/// Splits a `rovn-podtool` greeting line `hostname=H client=IP:PORT` into `(H, IP)`.
pub fn parse_greeting(line: &str) -> Option<(&str, Ipv4Addr)> {
    let rest = line.trim().strip_prefix("hostname=")?;
    let (host, client) = rest.split_once(" client=")?;
    let ip = client.rsplit_once(':')?.0.parse().ok()?;
    Some((host, ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_give_server_name_and_client_ip() {
        assert_eq!(
            parse_greeting("hostname=a2 client=10.244.1.3:41234\n"),
            Some(("a2", Ipv4Addr::new(10, 244, 1, 3)))
        );
        assert_eq!(parse_greeting("hostname=a2"), None);
        assert_eq!(parse_greeting("hello"), None);
    }

    #[test]
    fn manifests_pin_with_the_hostname_label() -> anyhow::Result<()> {
        let pod = server("a1", "ns", Placement::Pinned("node1"))?;
        let spec = pod.spec.context("spec")?;
        assert_eq!(
            spec.node_selector
                .and_then(|s| s.get("kubernetes.io/hostname").cloned()),
            Some("node1".to_string())
        );
        let free = server("f", "ns", Placement::Free)?;
        assert!(free.spec.context("spec")?.node_selector.is_none());
        let once = run_once("o", "ns", "node2")?;
        assert_eq!(
            once.spec.context("spec")?.restart_policy.as_deref(),
            Some("Never")
        );
        Ok(())
    }
}
