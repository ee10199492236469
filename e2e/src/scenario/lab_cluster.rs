//! The lab as a [`KubectlCluster`]: pods and nodes are reached through the lab's API server
//! like any cluster's, and [`LabInfra`] supplies the rest from the lab's namespaces — the
//! outside namespace, each node's OVS run directory and the databases' sockets for the node
//! shells, and the lab's own daemons to stop and start.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use super::cluster::{Component, ExecOutput};
use super::error::{Result, ScenarioError};
use super::infra::{Infra, NodeShell};
use super::kubectl_cluster::{KubectlCluster, run, spawn_piped};
use super::report;
use crate::lab::{Lab, LabNames, Place, bins};

/// How long a restarted component may take to be ready again.
const RESTART_TIMEOUT: Duration = Duration::from_secs(60);

/// A lab seen as a cluster. Its `start`/`stop` block on the lab's own waits, so it must run on
/// a multi-threaded tokio runtime (as [`super::harness::run_on_lab`] provides).
pub type LabCluster<'a> = KubectlCluster<LabInfra<'a>>;

/// What the lab provides beyond its API server.
pub struct LabInfra<'a> {
    lab: &'a Lab,
    podtool: PathBuf,
}

impl<'a> LabCluster<'a> {
    /// Connects to the lab's API server (the lab must run kube) and starts the node shells.
    pub async fn connect_lab(lab: &'a Lab) -> Result<LabCluster<'a>> {
        let podtool = bins::default_bin_dir()?.join("rovn-podtool");
        crate::ensure!(
            podtool.is_file(),
            "{} is missing: build rovn-e2e's binaries first",
            podtool.display()
        );
        let infra = LabInfra { lab, podtool };
        KubectlCluster::connect(&lab.names().kubeconfig(), infra).await
    }

    /// The lab under this cluster.
    pub fn lab(&self) -> &'a Lab {
        self.infra().lab
    }
}

impl LabInfra<'_> {
    fn names(&self) -> &LabNames {
        self.lab.names()
    }
}

fn in_netns(ns: &str, argv: &[String]) -> Result<tokio::process::Command> {
    let (program, args) = argv.split_first().ok_or_else(|| ScenarioError::Exec {
        what: format!("a command in {ns}"),
        detail: "empty argv".into(),
    })?;
    let mut command = crate::lab::netns::exec_command(ns, program);
    command.args(args);
    Ok(tokio::process::Command::from(command))
}

impl Infra for LabInfra<'_> {
    fn podtool(&self) -> String {
        self.podtool.display().to_string()
    }

    /// The lab's node shells share the host's filesystem: the node's run directory and the
    /// databases' unix sockets are reached by path, named in the environment.
    fn node_shell(&self, node: &str) -> NodeShell {
        let env = match node.parse::<Place>() {
            Ok(place) => self.names().env_for(place),
            Err(_) => Vec::new(),
        };
        NodeShell {
            env,
            host_paths: Vec::new(),
        }
    }

    fn outside_address(&self) -> Ipv4Addr {
        Place::Outside.underlay_ip()
    }

    async fn exec_outside(&self, argv: &[String]) -> Result<ExecOutput> {
        let ns = self.names().netns(Place::Outside);
        run(in_netns(&ns, argv)?, &format!("{argv:?} outside ({ns})")).await
    }

    async fn spawn_outside(&self, argv: &[String]) -> Result<tokio::process::Child> {
        let ns = self.names().netns(Place::Outside);
        spawn_piped(in_netns(&ns, argv)?, &format!("{argv:?} outside ({ns})"))
    }

    async fn stop(&self, component: &Component) -> Result<()> {
        let lab = self.lab;
        tokio::task::block_in_place(|| match component {
            Component::Controller => lab.stop_controller(),
            Component::Agent(node) => lab.stop_agent(node_index(node)?),
            Component::NbDatabase => lab.stop_nb(),
            Component::OvnController(node) => lab.stop_ovn_controller(node_index(node)?),
        })?;
        Ok(())
    }

    async fn start(&self, component: &Component) -> Result<()> {
        let lab = self.lab;
        let started = tokio::task::block_in_place(|| match component {
            Component::Controller => lab.start_controller(RESTART_TIMEOUT),
            Component::Agent(node) => lab.start_agent(node_index(node)?, RESTART_TIMEOUT),
            Component::NbDatabase => lab.start_nb(RESTART_TIMEOUT),
            Component::OvnController(node) => {
                lab.start_ovn_controller(node_index(node)?, RESTART_TIMEOUT)
            }
        })?;
        tracing::info!(daemon = %started.label, pid = started.pid, "started");
        Ok(())
    }

    async fn log_tails(&self) -> String {
        report::lab_log_tails(self.lab)
    }
}

/// The lab node index of a node name (`node2` → 2).
fn node_index(node: &str) -> std::result::Result<u8, crate::lab::LabError> {
    match node.parse::<Place>()? {
        Place::Node(i) => Ok(i),
        _ => Err(crate::lab::LabError::InvalidPlace {
            place: node.to_string(),
        }),
    }
}
