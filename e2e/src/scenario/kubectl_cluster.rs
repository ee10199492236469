//! [`Cluster`] through the Kubernetes API, as an operator reaches a real cluster: commands in
//! pods go through `kubectl exec` (the `pods/exec` subresource), commands on a node through
//! `kubectl exec` into a privileged hostNetwork "node shell" pod on it, and OVN's databases
//! through the OVN tools in a node shell. What the API cannot reach comes from an [`Infra`].
//! The lab is such a cluster too ([`super::LabCluster`]), so every scenario that runs in
//! `make test` exercises the path a kind cluster takes.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};

use super::api;
use super::cluster::{Cluster, Component, ExecOutput, PodRef, argv};
use super::error::{Result, ScenarioError};
use super::infra::{Infra, NodeShell};
use super::pods;
use super::report;

/// The namespace of the node shell pods.
pub const SHELL_NAMESPACE: &str = "rovn-e2e-shell";

/// A cluster reached through its API server with `kubectl`, plus an [`Infra`].
pub struct KubectlCluster<I> {
    kubeconfig: PathBuf,
    client: kube::Client,
    nodes: Vec<String>,
    shells: Vec<(String, PodRef)>,
    infra: I,
}

impl<I: Infra> KubectlCluster<I> {
    /// Connects with `kubeconfig` (its current context), lists the nodes, and starts a node
    /// shell pod on each (or reuses the ones a previous run left).
    pub async fn connect(kubeconfig: &Path, infra: I) -> Result<KubectlCluster<I>> {
        let client = client_from(kubeconfig).await?;
        let node_list = Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| ScenarioError::kube("listing nodes", e))?;
        let mut nodes: Vec<String> = node_list
            .items
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        nodes.sort();
        api::ensure_namespace(&client, SHELL_NAMESPACE).await?;
        let mut shells = Vec::new();
        for node in &nodes {
            let pod = node_shell_pod(node, &infra.node_shell(node))?;
            shells.push((node.clone(), ensure_pod(&client, &pod).await?));
        }
        for (_, shell) in &shells {
            api::wait_running(&client, shell).await?;
        }
        Ok(KubectlCluster {
            kubeconfig: kubeconfig.to_path_buf(),
            client,
            nodes,
            shells,
            infra,
        })
    }

    /// The infrastructure under the cluster.
    pub fn infra(&self) -> &I {
        &self.infra
    }

    /// `kubectl` pointed at the cluster.
    pub fn kubectl(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("kubectl");
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// `kubectl exec` into `pod`, `-i` when stdin is to be passed on.
    fn kubectl_exec(&self, pod: &PodRef, argv: &[String], stdin: bool) -> tokio::process::Command {
        let mut command = self.kubectl();
        command.args(["exec", "--namespace", &pod.namespace, &pod.name]);
        if stdin {
            command.arg("--stdin");
        }
        command.arg("--").args(argv);
        command
    }

    fn shell(&self, node: &str) -> Result<&PodRef> {
        self.shells
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, pod)| pod)
            .ok_or_else(|| {
                ScenarioError::Check(format!(
                    "{node} is not a node of the cluster ({:?})",
                    self.nodes
                ))
            })
    }

    /// The node whose shell reaches the cluster's databases: any will do, the first is used.
    fn database_shell(&self) -> Result<&str> {
        self.nodes
            .first()
            .map(String::as_str)
            .ok_or_else(|| ScenarioError::Check("the cluster has no node".into()))
    }

    /// Runs `ovn-sbctl ARGS` against the cluster's Southbound database.
    pub async fn sbctl(&self, args: &[&str]) -> Result<String> {
        self.ovn_tool("ovn-sbctl", args).await
    }

    async fn ovn_tool(&self, tool: &str, args: &[&str]) -> Result<String> {
        let mut command = vec![tool, "--timeout=10"];
        command.extend_from_slice(args);
        let what = format!("{tool} {}", args.join(" "));
        self.exec_on_node(self.database_shell()?, &argv(command))
            .await?
            .ok(&what)
    }
}

/// A client of the API server `kubeconfig` names.
pub async fn client_from(kubeconfig: &Path) -> Result<kube::Client> {
    let parsed =
        kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| ScenarioError::Exec {
            what: format!("reading {}", kubeconfig.display()),
            detail: e.to_string(),
        })?;
    let config =
        kube::Config::from_custom_kubeconfig(parsed, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| ScenarioError::Exec {
                what: format!("loading {}", kubeconfig.display()),
                detail: e.to_string(),
            })?;
    kube::Client::try_from(config).map_err(|e| ScenarioError::kube("building the API client", e))
}

/// The node shell pod of `node`. Pure.
fn node_shell_pod(node: &str, shell: &NodeShell) -> Result<Pod> {
    let env: Vec<Value> = shell
        .env
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    let volume_name = |i: usize| format!("host-{i}");
    let mounts: Vec<Value> = shell
        .host_paths
        .iter()
        .enumerate()
        .map(|(i, path)| json!({"name": volume_name(i), "mountPath": path}))
        .collect();
    let volumes: Vec<Value> = shell
        .host_paths
        .iter()
        .enumerate()
        .map(|(i, path)| json!({"name": volume_name(i), "hostPath": {"path": path}}))
        .collect();
    let value = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("shell-{node}"),
            "namespace": SHELL_NAMESPACE,
            "labels": {"app": "rovn-e2e-shell"},
        },
        "spec": {
            "hostNetwork": true,
            "nodeSelector": {"kubernetes.io/hostname": node},
            "tolerations": [{"operator": "Exists"}],
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "shell",
                "image": pods::IMAGE,
                "command": ["sleep", "infinity"],
                "env": env,
                "volumeMounts": mounts,
                "securityContext": {"privileged": true},
            }],
            "volumes": volumes,
        },
    });
    serde_json::from_value(value)
        .map_err(|e| ScenarioError::Check(format!("node shell manifest for {node}: {e}")))
}

/// Creates `pod` unless a pod of that name exists (a shell left by an earlier run).
async fn ensure_pod(client: &kube::Client, pod: &Pod) -> Result<PodRef> {
    let pod_ref = pods::pod_ref(pod);
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod_ref.namespace);
    if api::get_pod(client, &pod_ref).await?.is_none() {
        api.create(&PostParams::default(), pod)
            .await
            .map_err(|e| ScenarioError::kube(format!("creating pod {pod_ref}"), e))?;
    }
    Ok(pod_ref)
}

/// Runs `command` to completion, with its output.
pub(super) async fn run(mut command: tokio::process::Command, what: &str) -> Result<ExecOutput> {
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
pub(super) fn spawn_piped(
    mut command: tokio::process::Command,
    what: &str,
) -> Result<tokio::process::Child> {
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

impl<I: Infra> Cluster for KubectlCluster<I> {
    fn client(&self) -> kube::Client {
        self.client.clone()
    }

    fn nodes(&self) -> Vec<String> {
        self.nodes.clone()
    }

    fn podtool(&self) -> String {
        self.infra.podtool()
    }

    async fn exec_in_pod(&self, pod: &PodRef, argv: &[String]) -> Result<ExecOutput> {
        run(
            self.kubectl_exec(pod, argv, false),
            &format!("kubectl exec {pod} -- {argv:?}"),
        )
        .await
    }

    async fn spawn_in_pod(&self, pod: &PodRef, argv: &[String]) -> Result<tokio::process::Child> {
        spawn_piped(
            self.kubectl_exec(pod, argv, true),
            &format!("kubectl exec -i {pod} -- {argv:?}"),
        )
    }

    async fn exec_on_node(&self, node: &str, argv: &[String]) -> Result<ExecOutput> {
        let shell = self.shell(node)?;
        run(
            self.kubectl_exec(shell, argv, false),
            &format!("{argv:?} on {node} (kubectl exec {shell})"),
        )
        .await
    }

    fn outside_address(&self) -> Ipv4Addr {
        self.infra.outside_address()
    }

    async fn exec_outside(&self, argv: &[String]) -> Result<ExecOutput> {
        self.infra.exec_outside(argv).await
    }

    async fn spawn_outside(&self, argv: &[String]) -> Result<tokio::process::Child> {
        self.infra.spawn_outside(argv).await
    }

    async fn nbctl(&self, args: &[&str]) -> Result<String> {
        self.ovn_tool("ovn-nbctl", args).await
    }

    async fn stop(&self, component: &Component) -> Result<()> {
        self.infra.stop(component).await?;
        tracing::info!(?component, "stopped");
        Ok(())
    }

    async fn start(&self, component: &Component) -> Result<()> {
        self.infra.start(component).await?;
        tracing::info!(?component, "started");
        Ok(())
    }

    async fn dump(&self, namespaces: &[&str]) -> String {
        let mut out = report::cluster_dump(self, namespaces).await;
        out.push_str(&self.infra.log_tails().await);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_shell_is_a_privileged_host_network_pod_pinned_to_its_node() {
        let shell = NodeShell {
            env: vec![("OVN_NB_DB".into(), "unix:/x/nb.sock".into())],
            host_paths: vec!["/run/openvswitch".into()],
        };
        let pod = node_shell_pod("node2", &shell).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("shell-node2"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some(SHELL_NAMESPACE));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.host_network, Some(true));
        assert_eq!(
            spec.node_selector.unwrap().get("kubernetes.io/hostname"),
            Some(&"node2".to_string())
        );
        let container = &spec.containers[0];
        assert_eq!(
            container.security_context.as_ref().unwrap().privileged,
            Some(true)
        );
        let env = container.env.as_ref().unwrap();
        assert_eq!(env[0].name, "OVN_NB_DB");
        assert_eq!(env[0].value.as_deref(), Some("unix:/x/nb.sock"));
        assert_eq!(
            container.volume_mounts.as_ref().unwrap()[0].mount_path,
            "/run/openvswitch"
        );
        assert_eq!(
            spec.volumes.unwrap()[0].host_path.as_ref().unwrap().path,
            "/run/openvswitch"
        );
    }
}
