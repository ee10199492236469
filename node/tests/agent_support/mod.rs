//! Helpers of the agent's lab tests: unique lab names, a throwaway pod sandbox, running
//! `rovn-cni` the way a runtime does, and small API and node-namespace utilities.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::await_condition;
use rovn_e2e::lab::{LabName, LabNames, Place, bins, netns};
use serde_json::{Value, json};

/// A lab name unique to this process and `tag` (≤ 3 chars), so tests run beside other labs.
pub fn unique_name(tag: &str) -> LabName {
    let name = rovn_testkit::unique::per_process(tag);
    name.parse()
        .unwrap_or_else(|e| panic!("{name} is not a lab name: {e}"))
}

/// The lab's API client (root-namespace kubeconfig).
pub async fn kube_client(names: &LabNames) -> anyhow::Result<kube::Client> {
    let file = kube::config::Kubeconfig::read_from(names.kubeconfig())
        .with_context(|| format!("reading {}", names.kubeconfig().display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .context("loading the lab kubeconfig")?;
    kube::Client::try_from(config).context("building the API client")
}

/// A network namespace standing in for a pod sandbox, deleted on drop (its name carries the
/// lab's prefix, so tearing the lab down removes it too should the test die).
pub struct Sandbox {
    pub name: String,
}

impl Sandbox {
    pub fn new(names: &LabNames, tag: &str) -> anyhow::Result<Sandbox> {
        let name = format!("{}t{tag}", names.netns_prefix());
        netns::add(&name).with_context(|| format!("creating netns {name}"))?;
        Ok(Sandbox { name })
    }

    /// The path runtimes pass as `CNI_NETNS`.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs `program args` inside the sandbox.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        run(netns::exec_command(&self.name, program).args(args))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(e) = netns::delete(&self.name) {
            eprintln!("deleting netns {}: {e}", self.name);
        }
    }
}

/// Runs a command to completion (never panics on failure: callers assert on the output).
pub fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(127 << 8),
        stdout: Vec::new(),
        stderr: format!("cannot run {command:?}: {e}").into_bytes(),
    })
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `program args` on node `index`'s host network.
pub fn on_node(names: &LabNames, index: u8, program: &str, args: &[&str]) -> Output {
    run(netns::exec_command(&names.netns(Place::Node(index)), program).args(args))
}

/// `ovs-vsctl ARGS` against node `index`'s switch.
pub fn vsctl(names: &LabNames, index: u8, args: &[&str]) -> anyhow::Result<String> {
    let db = format!("--db={}", names.node_db_remote(index));
    let out = run(Command::new("ovs-vsctl").arg(db).args(args));
    if !out.status.success() {
        bail!(
            "ovs-vsctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // ovs-vsctl quotes only some strings; the tests compare values, not its quoting.
    Ok(stdout(&out).trim().replace('"', ""))
}

/// What one runtime call of a CNI plugin needs.
pub struct CniCall<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: Option<&'a str>,
    pub ifname: &'a str,
    pub pod: Option<(&'a str, &'a str, &'a str)>,
}

/// Runs `plugin` like a runtime: `CNI_*` in the environment, `config` on stdin. Returns the
/// exit success and stdout parsed as JSON (`Null` when empty).
pub fn run_plugin(
    plugin: &Path,
    call: &CniCall<'_>,
    config: &Value,
) -> anyhow::Result<(bool, Value)> {
    let mut command = Command::new(plugin);
    command
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", call.command)
        .env("CNI_CONTAINERID", call.container_id)
        .env("CNI_IFNAME", call.ifname)
        .env(
            "CNI_PATH",
            format!(
                "{}:/usr/lib/cni",
                plugin.parent().unwrap_or(Path::new("/")).display()
            ),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ns) = call.netns {
        command.env("CNI_NETNS", ns);
    }
    if let Some((namespace, name, uid)) = call.pod {
        command.env(
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};K8S_POD_UID={uid}"),
        );
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", plugin.display()))?;
    let stdin_bytes = serde_json::to_vec(config)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&stdin_bytes)
            .context("writing the plugin's stdin")?;
    }
    let out = child.wait_with_output().context("waiting for the plugin")?;
    let text = stdout(&out);
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} printed no JSON: {text:?} (stderr {})",
                plugin.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        })?
    };
    Ok((out.status.success(), value))
}

/// rovn's network config as the agent writes it, plus `extra` keys.
pub fn rovn_config(socket: &Path, extra: Value) -> Value {
    let mut config =
        json!({"cniVersion": "1.1.0", "name": "rovn", "type": "rovn-cni", "socket": socket});
    if let (Some(map), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            map.insert(k.clone(), v.clone());
        }
    }
    config
}

/// The project's binary directory (target/debug).
pub fn bin_dir() -> PathBuf {
    bins::default_bin_dir().unwrap_or_else(|e| panic!("finding the binaries: {e}"))
}

/// Creates namespace `name` (an existing one is fine).
pub async fn ensure_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating namespace {name}")),
    }
}

/// Creates a pod bound to `node` (no kubelet runs it in these labs) with `annotations`.
pub async fn create_pod(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    node: &str,
    annotations: BTreeMap<String, String>,
) -> anyhow::Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "rovn-podtool"}]},
    }))?;
    api.create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating pod {namespace}/{name}"))
}

/// Waits (watching) until the controller has allocated the pod; returns it.
pub async fn wait_allocated(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let allocated = |pod: Option<&Pod>| {
        pod.and_then(|p| p.metadata.annotations.as_ref())
            .and_then(|a| a.get("rovn.io/allocated"))
            .is_some_and(|v| v == "true")
    };
    let pod = tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(api, name, allocated),
    )
    .await
    .with_context(|| format!("pod {namespace}/{name} not allocated within 30s"))?
    .with_context(|| format!("watching pod {namespace}/{name}"))?;
    pod.with_context(|| format!("pod {namespace}/{name} vanished"))
}

/// Deletes a pod at once.
pub async fn delete_pod(client: &kube::Client, namespace: &str, name: &str) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.delete(name, &DeleteParams::default().grace_period(0))
        .await
        .with_context(|| format!("deleting pod {namespace}/{name}"))?;
    Ok(())
}

/// Retries `check` every 100 ms until it holds or `timeout` passes; the last failure explains.
pub async fn eventually(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    rovn_testkit::wait::until_async(timeout, what, async || check().map(Some)).await?;
    Ok(())
}
