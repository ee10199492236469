//! What a scenario needs from a cluster, and nothing more: the Kubernetes API, commands inside
//! pods and on nodes, OVN's view, restarting rovn's parts, and a dump for failures. The lab
//! implements it with network namespaces; a real cluster would with `kubectl exec`.

use std::future::Future;

use super::error::Result;

/// A pod by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodRef {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl PodRef {
    /// `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        PodRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The OVN logical switch port (and OVS `iface-id`) rovn names after the pod.
    pub fn lsp_name(&self) -> String {
        rovn_api::names::pod_port(&self.namespace, &self.name)
    }
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What a finished command said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Whether it exited 0.
    pub success: bool,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl ExecOutput {
    /// stdout when the command succeeded, else an error with `what` and its stderr.
    pub fn ok(self, what: &str) -> Result<String> {
        if self.success {
            Ok(self.stdout)
        } else {
            Err(super::ScenarioError::Exec {
                what: what.to_string(),
                detail: format!(
                    "failed: {}{}",
                    self.stderr.trim(),
                    if self.stdout.trim().is_empty() {
                        String::new()
                    } else {
                        format!(" (stdout: {})", self.stdout.trim())
                    }
                ),
            })
        }
    }
}

/// A part of rovn (or of OVN under it) a scenario may restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Component {
    /// The central controller.
    Controller,
    /// The node agent of the named node.
    Agent(String),
    /// The Northbound database server (its content survives).
    NbDatabase,
    /// OVN's ovn-controller of the named node (stopped as by a crash: its SB Chassis stays).
    OvnController(String),
}

/// A cluster the scenarios run against.
pub trait Cluster: Sync {
    /// A client of the cluster's API server.
    fn client(&self) -> kube::Client;

    /// The names of the cluster's nodes, sorted.
    fn nodes(&self) -> Vec<String>;

    /// How pods invoke the test program (`rovn-podtool`): a path or a name in the pod's PATH.
    fn podtool(&self) -> String;

    /// Runs `argv` inside the network of `pod` (its sandbox, or its node for hostNetwork pods)
    /// to completion.
    fn exec_in_pod(
        &self,
        pod: &PodRef,
        argv: &[String],
    ) -> impl Future<Output = Result<ExecOutput>> + Send;

    /// Starts `argv` inside the network of `pod` with stdin and stdout piped, for long-lived
    /// exchanges; the child is killed when dropped.
    fn spawn_in_pod(
        &self,
        pod: &PodRef,
        argv: &[String],
    ) -> impl Future<Output = Result<tokio::process::Child>> + Send;

    /// Runs `argv` on node `node` (its host network, with the OVS tools pointed at its switch).
    fn exec_on_node(
        &self,
        node: &str,
        argv: &[String],
    ) -> impl Future<Output = Result<ExecOutput>> + Send;

    /// The address of a host outside the cluster (on the nodes' network, not a node): the
    /// world pods leave to and the client of NodePorts, externalIPs and LoadBalancer IPs.
    fn outside_address(&self) -> std::net::Ipv4Addr;

    /// Runs `argv` on the host outside the cluster to completion.
    fn exec_outside(&self, argv: &[String]) -> impl Future<Output = Result<ExecOutput>> + Send;

    /// Starts `argv` on the host outside the cluster with stdin and stdout piped (a server the
    /// pods talk to); the child is killed when dropped.
    fn spawn_outside(
        &self,
        argv: &[String],
    ) -> impl Future<Output = Result<tokio::process::Child>> + Send;

    /// Runs `ovn-nbctl ARGS` against the cluster's Northbound database.
    fn nbctl(&self, args: &[&str]) -> impl Future<Output = Result<String>> + Send;

    /// Stops a component; it stays down until [`Cluster::start`]. Fails if it was not running.
    fn stop(&self, component: &Component) -> impl Future<Output = Result<()>> + Send;

    /// Starts a stopped component and waits until it is ready.
    fn start(&self, component: &Component) -> impl Future<Output = Result<()>> + Send;

    /// Restarts a component and waits until it is ready again.
    fn restart(&self, component: &Component) -> impl Future<Output = Result<()>> + Send {
        async move {
            self.stop(component).await?;
            self.start(component).await
        }
    }

    /// Everything a maintainer needs when a scenario fails in `namespaces`: pods with their
    /// annotations, OVN's view, OVS ports of the nodes, daemon log tails.
    fn dump(&self, namespaces: &[&str]) -> impl Future<Output = String> + Send;
}

/// The first two nodes of the cluster, for scenarios that need traffic across nodes.
pub fn two_nodes(cluster: &impl Cluster) -> Result<(String, String)> {
    let nodes = cluster.nodes();
    match nodes.as_slice() {
        [a, b, ..] => Ok((a.clone(), b.clone())),
        _ => Err(super::ScenarioError::Check(format!(
            "the scenario needs two nodes, the cluster has {nodes:?}"
        ))),
    }
}

/// `args` as owned strings, for the `argv` parameters.
pub fn argv<I, S>(args: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    args.into_iter().map(|a| a.as_ref().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_name_their_logical_switch_port() {
        let pod = PodRef::new("demo", "server-node1");
        assert_eq!(pod.lsp_name(), "server-node1.demo");
        assert_eq!(pod.to_string(), "demo/server-node1");
    }

    #[test]
    fn failed_output_becomes_an_error_with_stderr() {
        let out = ExecOutput {
            success: false,
            stdout: String::new(),
            stderr: "connection refused\n".into(),
        };
        let err = out.ok("connect to x").unwrap_err().to_string();
        assert!(err.contains("connect to x"), "{err}");
        assert!(err.contains("connection refused"), "{err}");
    }
}
