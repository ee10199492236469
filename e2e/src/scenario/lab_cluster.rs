//! [`Cluster`] on a running lab: pods are sandbox namespaces `rl-NAME-p<uid>` (hostNetwork pods
//! their node's namespace), nodes are `rl-NAME-nodeI`, OVN is reached over the lab's sockets.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use super::api::must_get_pod;
use super::cluster::{Cluster, Component, ExecOutput, PodRef};
use super::error::{Result, ScenarioError};
use super::pods;
use super::report;
use crate::lab::{Lab, LabNames, Place, bins, exec_command};

/// How long a restarted component may take to be ready again.
const RESTART_TIMEOUT: Duration = Duration::from_secs(60);

/// A lab seen as a [`Cluster`]. Its `restart` blocks on the lab's own waits, so it must run on
/// a multi-threaded tokio runtime (as [`super::harness::run_on_lab`] provides).
pub struct LabCluster<'a> {
    lab: &'a Lab,
    client: kube::Client,
    podtool: PathBuf,
}

impl<'a> LabCluster<'a> {
    /// Connects to the lab's API server (the lab must run kube).
    pub async fn connect(lab: &'a Lab) -> Result<LabCluster<'a>> {
        let kubeconfig_path = lab.names().kubeconfig();
        let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig_path).map_err(|e| {
            ScenarioError::Exec {
                what: format!("reading {}", kubeconfig_path.display()),
                detail: e.to_string(),
            }
        })?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| ScenarioError::Exec {
            what: format!("loading {}", kubeconfig_path.display()),
            detail: e.to_string(),
        })?;
        let client = kube::Client::try_from(config)
            .map_err(|e| ScenarioError::kube("building the lab's API client", e))?;
        let podtool = bins::default_bin_dir()?.join("rovn-podtool");
        crate::ensure!(
            podtool.is_file(),
            "{} is missing: build rovn-e2e's binaries first",
            podtool.display()
        );
        Ok(LabCluster {
            lab,
            client,
            podtool,
        })
    }

    /// The lab under this cluster.
    pub fn lab(&self) -> &Lab {
        self.lab
    }

    fn names(&self) -> &LabNames {
        self.lab.names()
    }

    fn node_place(&self, node: &str) -> Result<Place> {
        let place: Place = node.parse()?;
        crate::ensure!(
            self.nodes().iter().any(|n| n == node),
            "{node} is not a node of lab {}",
            self.names().name()
        );
        Ok(place)
    }

    /// The namespace a pod's programs run in.
    async fn pod_netns(&self, pod: &PodRef) -> Result<String> {
        let p = must_get_pod(self, pod).await?;
        if pods::is_host_network(&p) {
            let node = pods::node_name(&p)
                .ok_or_else(|| ScenarioError::Check(format!("pod {pod} is not bound")))?;
            return Ok(self.names().netns(self.node_place(node)?));
        }
        let uid = p
            .metadata
            .uid
            .as_deref()
            .ok_or_else(|| ScenarioError::Check(format!("pod {pod} has no uid")))?;
        Ok(self.names().pod_netns(uid))
    }
}

async fn run(mut command: tokio::process::Command, what: &str) -> Result<ExecOutput> {
    let out = command
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| ScenarioError::Exec {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
    Ok(ExecOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Starts `command` with stdin and stdout piped, killed when the child is dropped.
fn spawn_piped(mut command: tokio::process::Command, what: &str) -> Result<tokio::process::Child> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ScenarioError::Exec {
            what: format!("starting {what}"),
            detail: e.to_string(),
        })
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

impl Cluster for LabCluster<'_> {
    fn client(&self) -> kube::Client {
        self.client.clone()
    }

    fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .lab
            .info()
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect();
        nodes.sort();
        nodes
    }

    fn podtool(&self) -> String {
        self.podtool.display().to_string()
    }

    async fn exec_in_pod(&self, pod: &PodRef, argv: &[String]) -> Result<ExecOutput> {
        let ns = self.pod_netns(pod).await?;
        run(
            in_netns(&ns, argv)?,
            &format!("{argv:?} in pod {pod} ({ns})"),
        )
        .await
    }

    async fn spawn_in_pod(&self, pod: &PodRef, argv: &[String]) -> Result<tokio::process::Child> {
        let ns = self.pod_netns(pod).await?;
        spawn_piped(
            in_netns(&ns, argv)?,
            &format!("{argv:?} in pod {pod} ({ns})"),
        )
    }

    async fn exec_on_node(&self, node: &str, argv: &[String]) -> Result<ExecOutput> {
        let place = self.node_place(node)?;
        let (program, args) = argv.split_first().ok_or_else(|| ScenarioError::Exec {
            what: format!("a command on {node}"),
            detail: "empty argv".into(),
        })?;
        let mut command = exec_command(self.names(), place, program);
        command.args(args);
        run(
            tokio::process::Command::from(command),
            &format!("{argv:?} on {node}"),
        )
        .await
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

    async fn nbctl(&self, args: &[&str]) -> Result<String> {
        let mut command = tokio::process::Command::new("ovn-nbctl");
        command
            .arg(format!("--db={}", self.names().nb_remote()))
            .arg("--timeout=10")
            .args(args);
        let what = format!("ovn-nbctl {}", args.join(" "));
        run(command, &what).await?.ok(&what)
    }

    async fn stop(&self, component: &Component) -> Result<()> {
        let lab = self.lab;
        tokio::task::block_in_place(|| match component {
            Component::Controller => lab.stop_controller(),
            Component::Agent(node) => lab.stop_agent(node_index(node)?),
            Component::NbDatabase => lab.stop_nb(),
            Component::OvnController(node) => lab.stop_ovn_controller(node_index(node)?),
        })?;
        tracing::info!(?component, "stopped");
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

    async fn dump(&self, namespaces: &[&str]) -> String {
        report::lab_dump(self, namespaces).await
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
