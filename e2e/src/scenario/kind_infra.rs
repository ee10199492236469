//! A kind cluster (or any cluster installed from `deploy/`) as the scenarios' [`Infra`]: the
//! host running the tests is the outside (kind's nodes sit on a bridge of that host; it runs
//! `rovn-podtool` from its PATH, where `e2e/kind/run.sh` puts the build's), the node
//! shells mount the host's OVS and OVN run directories, and rovn's components are stopped and
//! started through their workloads.

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use rovn_api::names;

use super::cluster::{Component, ExecOutput};
use super::error::{Result, ScenarioError};
use super::infra::{Infra, NodeShell};
use super::kubectl_cluster::{run, spawn_piped};

/// The namespace rovn and OVN are installed in.
const SYSTEM_NAMESPACE: &str = rovn_api::names::CONFIG_MAP_NAMESPACE;
/// How long a component may take to come back.
const START_TIMEOUT: &str = "180s";

/// A cluster installed from `deploy/`, reached with `kubeconfig` from the outside host.
pub struct KindInfra {
    kubeconfig: std::path::PathBuf,
    outside: Ipv4Addr,
    nb_remote: String,
    sb_remote: String,
}

impl KindInfra {
    /// Reads where the databases are from the ConfigMap `kube-system/rovn-config`;
    /// `outside` is this host's address on the nodes' network (kind: the bridge's gateway).
    pub async fn new(kubeconfig: &std::path::Path, outside: Ipv4Addr) -> Result<KindInfra> {
        let client = super::kubectl_cluster::client_from(kubeconfig).await?;
        let config = Api::<ConfigMap>::namespaced(client, SYSTEM_NAMESPACE)
            .get(names::CONFIG_MAP)
            .await
            .map_err(|e| ScenarioError::kube("reading kube-system/rovn-config", e))?;
        let data = config.data.unwrap_or_default();
        let value = |key: &str| {
            data.get(key).cloned().ok_or_else(|| {
                ScenarioError::Check(format!("kube-system/rovn-config has no {key:?}"))
            })
        };
        Ok(KindInfra {
            kubeconfig: kubeconfig.to_path_buf(),
            outside,
            nb_remote: value(names::CONFIG_NB_KEY)?,
            sb_remote: value(names::CONFIG_SB_KEY)?,
        })
    }

    fn kubectl(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", SYSTEM_NAMESPACE])
            .args(args);
        command
    }

    async fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let what = format!("kubectl {}", args.join(" "));
        run(self.kubectl(args), &what).await?.ok(&what)
    }
}

fn local(argv: &[String]) -> Result<tokio::process::Command> {
    let (program, args) = argv.split_first().ok_or_else(|| ScenarioError::Exec {
        what: "a command outside".into(),
        detail: "empty argv".into(),
    })?;
    let mut command = tokio::process::Command::new(program);
    command.args(args).stdin(Stdio::null());
    Ok(command)
}

impl Infra for KindInfra {
    fn podtool(&self) -> String {
        "rovn-podtool".into()
    }

    fn node_shell(&self, _node: &str) -> NodeShell {
        NodeShell {
            env: vec![
                ("OVN_NB_DB".into(), self.nb_remote.clone()),
                ("OVN_SB_DB".into(), self.sb_remote.clone()),
            ],
            host_paths: vec!["/run/openvswitch".into(), "/run/ovn".into()],
        }
    }

    fn outside_address(&self) -> Ipv4Addr {
        self.outside
    }

    async fn exec_outside(&self, argv: &[String]) -> Result<ExecOutput> {
        run(local(argv)?, &format!("{argv:?} outside")).await
    }

    async fn spawn_outside(&self, argv: &[String]) -> Result<tokio::process::Child> {
        spawn_piped(local(argv)?, &format!("{argv:?} outside"))
    }

    async fn stop(&self, component: &Component) -> Result<()> {
        match component {
            Component::Controller => {
                self.kubectl_ok(&["scale", "deployment/rovn-controller", "--replicas=0"])
                    .await?;
                self.kubectl_ok(&[
                    "wait",
                    "--for=delete",
                    "pod",
                    "-l",
                    "app.kubernetes.io/name=rovn-controller",
                    &format!("--timeout={START_TIMEOUT}"),
                ])
                .await?;
            }
            Component::Agent(node) => {
                let label = format!("{}=true", names::AGENT_STOPPED_LABEL);
                self.kubectl_ok(&["label", "node", node, &label, "--overwrite"])
                    .await?;
                let selector = format!("spec.nodeName={node}");
                self.kubectl_ok(&[
                    "wait",
                    "--for=delete",
                    "pod",
                    "-l",
                    "app.kubernetes.io/name=rovn-node",
                    "--field-selector",
                    &selector,
                    &format!("--timeout={START_TIMEOUT}"),
                ])
                .await?;
            }
            other => return Err(not_on_kind(other)),
        }
        Ok(())
    }

    async fn start(&self, component: &Component) -> Result<()> {
        match component {
            Component::Controller => {
                self.kubectl_ok(&["scale", "deployment/rovn-controller", "--replicas=2"])
                    .await?;
                self.kubectl_ok(&[
                    "rollout",
                    "status",
                    "deployment/rovn-controller",
                    &format!("--timeout={START_TIMEOUT}"),
                ])
                .await?;
            }
            Component::Agent(node) => {
                let label = format!("{}-", names::AGENT_STOPPED_LABEL);
                self.kubectl_ok(&["label", "node", node, &label]).await?;
                self.kubectl_ok(&[
                    "rollout",
                    "status",
                    "daemonset/rovn-node",
                    &format!("--timeout={START_TIMEOUT}"),
                ])
                .await?;
            }
            other => return Err(not_on_kind(other)),
        }
        // The rollout reports the pods Ready; give watches a moment to settle as the lab's
        // own readiness waits do.
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    }

    async fn log_tails(&self) -> String {
        let mut out = String::new();
        for app in ["rovn-controller", "rovn-node", "ovn-central", "ovs-ovn"] {
            let selector = format!("app.kubernetes.io/name={app}");
            let args = [
                "logs",
                "-l",
                &selector,
                "--all-containers",
                "--prefix",
                "--tail=40",
            ];
            out.push_str(&format!("===== logs of {app}\n"));
            match run(self.kubectl(&args), "kubectl logs").await {
                Ok(o) => {
                    out.push_str(&o.stdout);
                    out.push_str(&o.stderr);
                }
                Err(e) => out.push_str(&format!("({e})\n")),
            }
        }
        out
    }
}

fn not_on_kind(component: &Component) -> ScenarioError {
    ScenarioError::Check(format!(
        "stopping {component:?} is not supported on a cluster installed from deploy/: \
         its scenarios run on the lab only"
    ))
}
