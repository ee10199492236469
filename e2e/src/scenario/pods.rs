//! The pods scenarios run (pure manifest builders) and the facts read back from them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;
use rovn_api::names::annotations;
use serde_json::{Value, json};

use super::error::{Result, ScenarioError};

/// The TCP echo port of every serving pod.
pub const TCP_PORT: u16 = 8080;
/// The UDP echo port of every serving pod.
pub const UDP_PORT: u16 = 8081;
/// The TCP port of hostNetwork servers (inside the node's network, which the cluster owns).
pub const HOST_TCP_PORT: u16 = 18080;
/// Short grace: `rovn-podtool serve` exits on SIGTERM at once.
const GRACE_SECONDS: i64 = 2;

/// How a scenario pod is made.
#[derive(Debug, Clone, Default)]
pub struct PodSpec {
    /// Pod name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Node to pin to (`kubernetes.io/hostname`), or left to the scheduler.
    pub node: Option<String>,
    /// Annotations (static address requests).
    pub annotations: BTreeMap<String, String>,
    /// Run in the node's network.
    pub host_network: bool,
    /// Containers: name and argv.
    pub containers: Vec<(String, Vec<String>)>,
}

impl PodSpec {
    /// A pod serving TCP ([`TCP_PORT`]) and UDP ([`UDP_PORT`]) echo with `podtool`.
    pub fn server(namespace: &str, name: &str, podtool: &str) -> Self {
        PodSpec {
            name: name.into(),
            namespace: namespace.into(),
            containers: vec![(
                "serve".into(),
                vec![
                    podtool.into(),
                    "serve".into(),
                    "--tcp".into(),
                    TCP_PORT.to_string(),
                    "--udp".into(),
                    UDP_PORT.to_string(),
                ],
            )],
            ..PodSpec::default()
        }
    }

    /// A pod that only exists (a client that the scenario runs commands in).
    pub fn idle(namespace: &str, name: &str, podtool: &str) -> Self {
        PodSpec {
            name: name.into(),
            namespace: namespace.into(),
            containers: vec![("pause".into(), vec![podtool.into(), "pause".into()])],
            ..PodSpec::default()
        }
    }

    /// Pins the pod to `node`.
    pub fn on(mut self, node: &str) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Adds an annotation.
    pub fn annotate(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// The Pod object. Pure.
    pub fn to_pod(&self) -> Result<Pod> {
        let containers: Vec<Value> = self
            .containers
            .iter()
            .map(|(name, argv)| json!({"name": name, "image": "rovn-podtool", "command": argv}))
            .collect();
        let mut spec = json!({
            "containers": containers,
            "terminationGracePeriodSeconds": GRACE_SECONDS,
        });
        if let Some(node) = &self.node {
            spec["nodeSelector"] = json!({"kubernetes.io/hostname": node});
        }
        if self.host_network {
            spec["hostNetwork"] = json!(true);
        }
        let value = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app": "rovn-scenario"},
                "annotations": self.annotations,
            },
            "spec": spec,
        });
        serde_json::from_value(value).map_err(|e| {
            ScenarioError::Check(format!(
                "manifest of pod {}/{}: {e}",
                self.namespace, self.name
            ))
        })
    }
}

/// The pod's namespace and name.
pub fn pod_ref(pod: &Pod) -> super::cluster::PodRef {
    super::cluster::PodRef::new(
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// The pod's phase, if reported.
pub fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// `status.podIP`, if reported and well-formed.
pub fn pod_ip(pod: &Pod) -> Option<Ipv4Addr> {
    pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

/// `spec.nodeName`, once bound.
pub fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// Whether the pod runs in its node's network.
pub fn is_host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// One annotation of the pod.
pub fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// The address rovn allocated (annotation), if allocated.
pub fn allocated_ip(pod: &Pod) -> Option<Ipv4Addr> {
    if annotation(pod, annotations::ALLOCATED) != Some("true") {
        return None;
    }
    annotation(pod, annotations::IP_ADDRESS)?.parse().ok()
}

/// Splits a `rovn-podtool` greeting `hostname=H client=IP:PORT` into `(H, IP)`. Pure.
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
    fn greetings_give_server_and_client() {
        assert_eq!(
            parse_greeting("hostname=s1 client=10.16.0.3:4123\n"),
            Some(("s1", Ipv4Addr::new(10, 16, 0, 3)))
        );
        assert_eq!(parse_greeting("nonsense"), None);
    }

    #[test]
    fn server_manifest_pins_and_annotates() {
        let pod = PodSpec::server("ns", "s", "/bin/podtool")
            .on("node2")
            .annotate(annotations::IP_ADDRESS, "10.16.0.9")
            .to_pod()
            .unwrap();
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(
            spec.node_selector.as_ref().unwrap()["kubernetes.io/hostname"],
            "node2"
        );
        assert_eq!(
            spec.containers[0].command.as_ref().unwrap()[..2],
            ["/bin/podtool".to_string(), "serve".to_string()]
        );
        assert_eq!(annotation(&pod, annotations::IP_ADDRESS), Some("10.16.0.9"));
        assert_eq!(allocated_ip(&pod), None);
    }
}
