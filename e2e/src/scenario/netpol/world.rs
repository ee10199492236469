//! Upstream's NetworkPolicy test world on any cluster: namespaces `x`, `y`, `z` labelled
//! `ns=<name>`, pods `a`, `b`, `c` in each labelled `pod=<name>`, spread over two nodes, each
//! serving TCP and UDP on 80 and 81 under named container ports. `x/a` and `x/b` also call
//! one of their TCP ports `web` (80 on `a`, 81 on `b`), so one port name means two numbers.

use std::collections::BTreeMap;

use crate::scenario::api;
use crate::scenario::cluster::{Cluster, PodRef};
use crate::scenario::error::Result;
use crate::scenario::pods::PodSpec;

/// The test namespaces.
pub const NAMESPACES: [&str; 3] = ["x", "y", "z"];
/// The pods of each namespace.
pub const PODS: [&str; 3] = ["a", "b", "c"];
/// The ports every pod serves, on TCP and UDP.
pub const PORTS: [u16; 2] = [80, 81];
/// The label key namespaces carry their name under.
pub const NS_LABEL: &str = "ns";
/// The label key pods carry their name under.
pub const POD_LABEL: &str = "pod";
/// The port name that is 80 on `x/a` and 81 on `x/b`.
pub const WEB: &str = "web";

/// The name of the container port a pod serves `port`/`protocol` on, e.g. `serve-80-tcp`.
pub fn serve_port_name(port: u16, protocol: &str) -> String {
    format!("serve-{port}-{}", protocol.to_lowercase())
}

/// A pod of the world: serving 80 and 81 on TCP and UDP under their `serve-*` names,
/// labelled `pod=<name>`, on `node`.
pub fn server(namespace: &str, name: &str, tool: &str, node: &str) -> PodSpec {
    let mut argv = vec![tool.to_string(), "serve".to_string()];
    for proto in ["--tcp", "--udp"] {
        for port in PORTS {
            argv.extend([proto.to_string(), port.to_string()]);
        }
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut spec = PodSpec::serving_argv(namespace, name, &argv)
        .label(POD_LABEL, name)
        .on(node);
    for port in PORTS {
        for protocol in ["TCP", "UDP"] {
            spec = spec.port(&serve_port_name(port, protocol), port, protocol);
        }
    }
    spec
}

/// The nine pods, `x/a` to `z/c`, in that order.
pub fn pod_refs() -> Vec<PodRef> {
    NAMESPACES
        .iter()
        .flat_map(|ns| PODS.iter().map(move |p| PodRef::new(ns, p)))
        .collect()
}

/// Creates the namespaces and the nine pods (alternating between the first two nodes, so
/// pairs on one node and across nodes both occur) and waits until all run. Returns them.
pub async fn create(cluster: &impl Cluster) -> Result<Vec<PodRef>> {
    let client = cluster.client();
    let (n1, n2) = crate::scenario::cluster::two_nodes(cluster)?;
    let tool = cluster.podtool();
    for ns in NAMESPACES {
        let labels = BTreeMap::from([(NS_LABEL.to_string(), ns.to_string())]);
        api::ensure_labelled_namespace(&client, ns, &labels).await?;
    }
    let specs: Vec<PodSpec> = pod_refs()
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let node = if i % 2 == 0 { &n1 } else { &n2 };
            let spec = server(&pod.namespace, &pod.name, &tool, node);
            match (pod.namespace.as_str(), pod.name.as_str()) {
                ("x", "a") => spec.port(WEB, 80, "TCP"),
                ("x", "b") => spec.port(WEB, 81, "TCP"),
                _ => spec,
            }
        })
        .collect();
    api::create_and_wait(&client, &specs).await?;
    Ok(pod_refs())
}
