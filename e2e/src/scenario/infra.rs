//! What a scenario needs that the Kubernetes API cannot give: a host outside the cluster, the
//! OVS and OVN tools of each node, and stopping and starting rovn's own daemons. A
//! [`super::KubectlCluster`] does everything else through the API; an [`Infra`] says how the
//! rest is done where the cluster runs (the lab's namespaces, or a kind cluster's host).

use std::future::Future;
use std::net::Ipv4Addr;

use super::cluster::{Component, ExecOutput};
use super::error::Result;

/// How the node shell pod of one node is made: a privileged hostNetwork pod whose environment
/// and host directories point the OVS and OVN command-line tools at that node's switch and at
/// the cluster's databases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeShell {
    /// Environment of the shell's container (`OVS_RUNDIR`, `OVN_NB_DB`, …).
    pub env: Vec<(String, String)>,
    /// Host directories mounted at the same path (`/run/openvswitch`, …).
    pub host_paths: Vec<String>,
}

/// The part of a cluster outside its API, for [`super::KubectlCluster`].
pub trait Infra: Sync {
    /// How pods invoke the test program (`rovn-podtool`): a path, or a name in the image's PATH.
    fn podtool(&self) -> String;

    /// What the node shell pod on `node` needs.
    fn node_shell(&self, node: &str) -> NodeShell;

    /// The address of the host outside the cluster (on the nodes' network, not a node).
    fn outside_address(&self) -> Ipv4Addr;

    /// Runs `argv` on the host outside the cluster to completion.
    fn exec_outside(&self, argv: &[String]) -> impl Future<Output = Result<ExecOutput>> + Send;

    /// Starts `argv` on the host outside the cluster with stdin and stdout piped; the child is
    /// killed when dropped.
    fn spawn_outside(
        &self,
        argv: &[String],
    ) -> impl Future<Output = Result<tokio::process::Child>> + Send;

    /// Stops a component; it stays down until [`Infra::start`].
    fn stop(&self, component: &Component) -> impl Future<Output = Result<()>> + Send;

    /// Starts a stopped component and waits until it is ready.
    fn start(&self, component: &Component) -> impl Future<Output = Result<()>> + Send;

    /// The daemons' recent logs, for a failure's dump.
    fn log_tails(&self) -> impl Future<Output = String> + Send;
}
