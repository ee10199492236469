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
/// The image of every scenario pod: rovn's own, which carries `rovn-podtool` (the lab's test
/// kubelet ignores images and runs the command from the host).
pub const IMAGE: &str = "rovn:dev";
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
    /// `restartPolicy` (the API's default, `Always`, when `None`).
    pub restart_policy: Option<String>,
    /// `terminationGracePeriodSeconds` (2 s when `None`).
    pub grace_seconds: Option<i64>,
    /// Labels besides `app: rovn-scenario` (what Service selectors pick).
    pub labels: BTreeMap<String, String>,
    /// A readiness probe on the first container: the command it runs (`exec`), every second.
    pub readiness_exec: Option<Vec<String>>,
    /// Container ports of the first container: what Services' and NetworkPolicies' named
    /// ports resolve against.
    pub ports: Vec<ContainerPortSpec>,
}

/// A declared container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPortSpec {
    /// Its name (≤ 15 characters, as the API requires).
    pub name: String,
    /// The number.
    pub number: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The node port it is published on (`hostPort`), if any.
    pub host_port: Option<u16>,
}

impl PodSpec {
    /// A pod serving TCP ([`TCP_PORT`]) and UDP ([`UDP_PORT`]) echo with `podtool`.
    pub fn server(namespace: &str, name: &str, podtool: &str) -> Self {
        let (tcp, udp) = (TCP_PORT.to_string(), UDP_PORT.to_string());
        PodSpec::serving(
            namespace,
            name,
            &[podtool, "serve", "--tcp", &tcp, "--udp", &udp],
        )
    }

    /// A pod whose one container, `serve`, runs `argv` (a server with options of its own).
    pub fn serving_argv(namespace: &str, name: &str, argv: &[&str]) -> Self {
        PodSpec::serving(namespace, name, argv)
    }

    /// A pod whose one container, `serve`, runs `argv`.
    fn serving(namespace: &str, name: &str, argv: &[&str]) -> Self {
        PodSpec {
            name: name.into(),
            namespace: namespace.into(),
            containers: vec![("serve".into(), argv.iter().map(|a| a.to_string()).collect())],
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

    /// A hostNetwork pod serving TCP echo on [`HOST_TCP_PORT`] in its node's network.
    pub fn host_network_server(namespace: &str, name: &str, podtool: &str) -> Self {
        let tcp = HOST_TCP_PORT.to_string();
        PodSpec {
            host_network: true,
            ..PodSpec::serving(namespace, name, &[podtool, "serve", "--tcp", &tcp])
        }
    }

    /// A pod whose one container runs `argv` once and must not be restarted.
    pub fn run_once(namespace: &str, name: &str, argv: &[&str]) -> Self {
        PodSpec {
            name: name.into(),
            namespace: namespace.into(),
            containers: vec![("once".into(), argv.iter().map(|a| a.to_string()).collect())],
            restart_policy: Some("Never".into()),
            ..PodSpec::default()
        }
    }

    /// Sets `terminationGracePeriodSeconds`.
    pub fn grace(mut self, seconds: i64) -> Self {
        self.grace_seconds = Some(seconds);
        self
    }

    /// Pins the pod to `node`.
    pub fn on(mut self, node: &str) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Gives the first container an exec readiness probe running `argv` every second.
    pub fn ready_while(mut self, argv: &[&str]) -> Self {
        self.readiness_exec = Some(argv.iter().map(|a| a.to_string()).collect());
        self
    }

    /// Declares a named port on the first container.
    pub fn port(mut self, name: &str, number: u16, protocol: &str) -> Self {
        self.ports.push(ContainerPortSpec {
            name: name.into(),
            number,
            protocol: protocol.into(),
            host_port: None,
        });
        self
    }

    /// Publishes the first container's port `number` on `host_port` of its node (`hostPort`,
    /// on the node's IP).
    pub fn host_port(mut self, number: u16, protocol: &str, host_port: u16) -> Self {
        self.ports.push(ContainerPortSpec {
            name: format!("host-{host_port}"),
            number,
            protocol: protocol.into(),
            host_port: Some(host_port),
        });
        self
    }

    /// Adds an annotation.
    pub fn annotate(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// The Pod object. Pure.
    pub fn to_pod(&self) -> Result<Pod> {
        let mut containers: Vec<Value> = self
            .containers
            .iter()
            .map(|(name, argv)| json!({"name": name, "image": IMAGE, "command": argv}))
            .collect();
        if let (Some(first), false) = (containers.first_mut(), self.ports.is_empty()) {
            let ports: Vec<Value> = self
                .ports
                .iter()
                .map(|p| {
                    let mut port =
                        json!({"name": p.name, "containerPort": p.number, "protocol": p.protocol});
                    if let Some(host) = p.host_port {
                        port["hostPort"] = json!(host);
                    }
                    port
                })
                .collect();
            first["ports"] = json!(ports);
        }
        if let (Some(first), Some(probe)) = (containers.first_mut(), &self.readiness_exec) {
            first["readinessProbe"] = json!({
                "exec": {"command": probe},
                "periodSeconds": 1,
                "failureThreshold": 1,
            });
        }
        let mut labels = self.labels.clone();
        labels.insert("app".into(), "rovn-scenario".into());
        let mut spec = json!({
            "containers": containers,
            "terminationGracePeriodSeconds": self.grace_seconds.unwrap_or(GRACE_SECONDS),
        });
        if let Some(policy) = &self.restart_policy {
            spec["restartPolicy"] = json!(policy);
        }
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
                "labels": labels,
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

/// Whether the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `status.hostIP`, if reported and well-formed.
pub fn host_ip(pod: &Pod) -> Option<Ipv4Addr> {
    pod.status.as_ref()?.host_ip.as_deref()?.parse().ok()
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
pub fn uid(pod: &Pod) -> Result<&str> {
    pod.metadata
        .uid
        .as_deref()
        .ok_or_else(|| ScenarioError::Check(format!("pod {:?} has no uid", pod.metadata.name)))
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
        assert!(spec.containers[0].ports.is_none());
        assert_eq!(allocated_ip(&pod), None);
        assert!(spec.restart_policy.is_none());
        assert_eq!(spec.termination_grace_period_seconds, Some(GRACE_SECONDS));
    }

    #[test]
    fn named_ports_go_on_the_first_container() {
        let pod = PodSpec::server("ns", "s", "podtool")
            .port("serve-80-udp", 80, "UDP")
            .to_pod()
            .unwrap();
        let ports = pod.spec.unwrap().containers[0].ports.clone().unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].name.as_deref(), Some("serve-80-udp"));
        assert_eq!(ports[0].container_port, 80);
        assert_eq!(ports[0].protocol.as_deref(), Some("UDP"));
    }

    #[test]
    fn run_once_and_host_network_manifests() {
        let once = PodSpec::run_once("ns", "o", &["true"])
            .on("node2")
            .grace(5)
            .to_pod()
            .unwrap();
        let spec = once.spec.as_ref().unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.termination_grace_period_seconds, Some(5));
        let host = PodSpec::host_network_server("ns", "h", "podtool")
            .to_pod()
            .unwrap();
        assert!(is_host_network(&host));
        assert_eq!(
            host.spec.as_ref().unwrap().containers[0]
                .command
                .as_ref()
                .unwrap()[3],
            HOST_TCP_PORT.to_string()
        );
    }
}
