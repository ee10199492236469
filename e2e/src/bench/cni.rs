//! Calling `rovn-cni` exactly as a container runtime does: inside the node's namespace, the
//! CNI_* environment, the network config on stdin, the result on stdout. The request building
//! is pure; [`invoke`] runs one call and times it from exec to result.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::error::BenchError;

/// The interface name the runtime asks for inside the sandbox.
pub const IFNAME: &str = "eth0";

/// One pod's CNI call.
#[derive(Debug, Clone)]
pub struct CniCall {
    /// `ADD` or `DEL`.
    pub command: &'static str,
    /// The node's network namespace, where the runtime (and so the plugin) runs.
    pub node_netns: String,
    /// The plugin executable.
    pub plugin: PathBuf,
    /// `CNI_PATH`.
    pub cni_path: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// The sandbox's netns name (`CNI_NETNS` is its path under /run/netns).
    pub sandbox: String,
    /// Pod namespace.
    pub pod_namespace: String,
    /// Pod name.
    pub pod_name: String,
    /// Pod UID.
    pub pod_uid: String,
    /// The network config sent on stdin.
    pub config: String,
}

impl CniCall {
    /// `namespace/name`, for messages.
    pub fn pod(&self) -> String {
        format!("{}/{}", self.pod_namespace, self.pod_name)
    }

    /// The CNI_* variables of the call.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CNI_COMMAND", self.command.to_string()),
            ("CNI_CONTAINERID", self.container_id.clone()),
            ("CNI_NETNS", format!("/run/netns/{}", self.sandbox)),
            ("CNI_IFNAME", IFNAME.to_string()),
            (
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
                    self.pod_namespace, self.pod_name, self.container_id, self.pod_uid
                ),
            ),
            ("CNI_PATH", self.cni_path.clone()),
        ]
    }
}

/// A container ID for a pod sandbox, as runtimes make them (64 hex digits), from its UID.
pub fn container_id(pod_uid: &str) -> String {
    let hex: String = pod_uid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("{hex:0<64}").chars().take(64).collect()
}

/// The network config a runtime passes a plugin of a conflist: the plugin's entry with the
/// list's `name` and `cniVersion` added.
pub fn plugin_config(conflist: &str) -> Result<String, String> {
    let list: Value = serde_json::from_str(conflist).map_err(|e| e.to_string())?;
    let mut plugin = list
        .pointer("/plugins/0")
        .filter(|p| p.is_object())
        .cloned()
        .ok_or("the conflist has no plugins")?;
    for key in ["name", "cniVersion"] {
        let value = list
            .get(key)
            .cloned()
            .ok_or_else(|| format!("the conflist has no {key}"))?;
        plugin[key] = value;
    }
    Ok(plugin.to_string())
}

/// The first address of a CNI result, checking it is one.
pub fn result_address(stdout: &str) -> Result<String, String> {
    let result: Value =
        serde_json::from_str(stdout).map_err(|e| format!("result is not JSON: {e}"))?;
    result
        .pointer("/ips/0/address")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("result without ips: {stdout}"))
}

/// Runs one call; returns its stdout and how long it took from exec to exit. A non-zero exit
/// is an error carrying the plugin's output (its CNI error object).
pub async fn invoke(call: &CniCall, timeout: Duration) -> Result<(String, Duration), BenchError> {
    // The plugin runs in the node's network namespace, entered with setns(2) between fork and
    // exec as a runtime living on the node would be there already: `ip netns exec` would add an
    // exec and a sysfs mount to every timed call.
    let ns_path = Path::new(crate::lab::names::NETNS_DIR).join(&call.node_netns);
    let ns = std::fs::File::open(&ns_path).map_err(|e| BenchError::Cni {
        command: call.command,
        pod: call.pod(),
        detail: format!("opening {}: {e}", ns_path.display()),
    })?;
    let mut command = tokio::process::Command::new(&call.plugin);
    // SAFETY: the closure runs between fork and exec and only calls setns(2), which is
    // async-signal-safe; `ns` is an open descriptor owned by the closure.
    unsafe {
        command.pre_exec(move || {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
        });
    }
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(call.env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let fail = |detail: String| BenchError::Cni {
        command: call.command,
        pod: call.pod(),
        detail,
    };
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| fail(format!("cannot run {}: {e}", call.plugin.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(call.config.as_bytes())
            .await
            .map_err(|e| fail(format!("writing the config to its stdin: {e}")))?;
    }
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| fail(format!("no result after {timeout:?}")))?
        .map_err(|e| fail(format!("waiting for it: {e}")))?;
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(fail(format!(
            "{}: {} {}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok((stdout, took))
}

/// The plugin a node's runtime would find first on `dirs`.
pub fn find_plugin(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// `dirs` joined as a CNI_PATH.
pub fn cni_path(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Reads the conflist at `path` and returns its plugin config.
pub fn read_plugin_config(path: &Path) -> Result<String, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io("read", path, e))?;
    plugin_config(&text)
        .map_err(|detail| BenchError::protocol(format!("conflist {}", path.display()), detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_config_carries_name_and_version() {
        let conflist = r#"{"cniVersion":"1.1.0","name":"rovn","plugins":[{"type":"rovn-cni","socket":"/run/x.sock"}]}"#;
        let config: Value = serde_json::from_str(&plugin_config(conflist).unwrap()).unwrap();
        assert_eq!(config["type"], "rovn-cni");
        assert_eq!(config["socket"], "/run/x.sock");
        assert_eq!(config["name"], "rovn");
        assert_eq!(config["cniVersion"], "1.1.0");
        assert!(plugin_config(r#"{"name":"x","plugins":[]}"#).is_err());
        assert!(plugin_config("{").is_err());
    }

    #[test]
    fn container_ids_look_like_a_runtime_s() {
        let id = container_id("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
        assert_eq!(id.len(), 64);
        assert!(id.starts_with("0f1e2d3c4b5a69788796a5b4c3d2e1f0"));
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn the_call_environment_is_the_runtime_s() {
        let call = CniCall {
            command: "ADD",
            node_netns: "rl-x-node1".into(),
            plugin: "/bin/rovn-cni".into(),
            cni_path: "/a:/b".into(),
            container_id: "c1".into(),
            sandbox: "rl-x-pabc".into(),
            pod_namespace: "default".into(),
            pod_name: "p".into(),
            pod_uid: "u".into(),
            config: "{}".into(),
        };
        let env = call.env();
        assert!(env.contains(&("CNI_NETNS", "/run/netns/rl-x-pabc".to_string())));
        let args = &env.iter().find(|(k, _)| *k == "CNI_ARGS").unwrap().1;
        assert!(
            args.contains("K8S_POD_NAMESPACE=default;K8S_POD_NAME=p"),
            "{args}"
        );
        assert_eq!(cni_path(&["/a".into(), "/b".into()]), "/a:/b");
    }

    #[test]
    fn results_must_carry_an_address() {
        assert_eq!(
            result_address(r#"{"cniVersion":"1.1.0","ips":[{"address":"10.16.0.5/16"}]}"#).unwrap(),
            "10.16.0.5/16"
        );
        assert!(result_address(r#"{"cniVersion":"1.1.0"}"#).is_err());
    }
}
