//! A pod's sandbox: its on-disk record, its setup (namespace, CNI ADD, or adoption of one an
//! earlier kubelet left) and its complete, idempotent removal (CNI DEL, namespace deleted).

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::cni::cache::cached_list;
use crate::cni::{AttachmentTarget, CniError, kubernetes_args, load_first_conflist, result_ips};
use crate::kubelet::KubeletContext;
use crate::sandbox;

/// The interface name every sandbox gets.
pub const IFNAME: &str = "eth0";

/// What the kubelet remembers about a sandbox on disk, so that a restarted kubelet can DEL it
/// with the same `CNI_ARGS` even when its pod is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod UID.
    pub uid: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// Namespace name under /run/netns.
    pub netns: String,
}

impl SandboxRecord {
    /// The CNI target this sandbox was attached as.
    pub fn target(&self) -> AttachmentTarget {
        AttachmentTarget {
            container_id: self.container_id.clone(),
            netns: sandbox::netns_path(&self.netns),
            ifname: IFNAME.into(),
            args: kubernetes_args(&self.namespace, &self.name, &self.container_id, &self.uid),
        }
    }

    fn path(dir: &Path, netns: &str) -> PathBuf {
        dir.join(format!("{netns}.json"))
    }

    /// Reads the record of a sandbox namespace; `None` when absent or unreadable.
    pub fn load(dir: &Path, netns: &str) -> Option<Self> {
        let bytes = std::fs::read(Self::path(dir, netns)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn store(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let path = Self::path(dir, &self.netns);
        let tmp = path.with_extension("tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, path)
    }

    fn remove(dir: &Path, netns: &str) {
        let _ = std::fs::remove_file(Self::path(dir, netns));
    }
}

/// The pod's network once set up.
#[derive(Debug, Clone)]
pub struct PodNetwork {
    /// The sandbox namespace (`None` for hostNetwork).
    pub netns: Option<String>,
    /// Its IPs (the CNI result's, or the node's).
    pub ips: Vec<String>,
}

/// Why a sandbox could not be set up; the message goes into the pod event.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The CNI config or a plugin failed.
    #[error(transparent)]
    Cni(#[from] CniError),
    /// The namespace could not be made.
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    /// The record could not be written.
    #[error("writing sandbox record: {0}")]
    Record(std::io::Error),
    /// The thread creating the namespace died.
    #[error("creating the sandbox namespace: {0}")]
    Task(String),
}

/// hostNetwork pods run in the node's namespace, without sandbox or CNI.
pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// Gives the pod its network: the node's for hostNetwork pods; else adopts the sandbox an
/// earlier kubelet left when its attachment is cached, or creates the namespace and runs CNI
/// ADD. A failure leaves things for [`destroy_sandbox`] to clean.
pub async fn setup(
    ctx: &KubeletContext,
    pod: &Pod,
    record: &SandboxRecord,
    key: &str,
) -> Result<PodNetwork, SetupError> {
    if host_network(pod) {
        return Ok(PodNetwork {
            netns: None,
            ips: vec![ctx.config.node.ip.clone()],
        });
    }
    let list = load_first_conflist(&ctx.config.cni_conf_dir)?;
    let target = record.target();
    if sandbox::netns_exists(&record.netns) {
        // Left by an earlier kubelet: adopt it when its attachment is known, else start over.
        if let Ok(Some(cached)) = ctx
            .cni
            .cache()
            .load(&list.name, &target.container_id, IFNAME)
        {
            kill_processes_in(&record.netns);
            tracing::info!(pod = %key, netns = %record.netns, "adopting existing sandbox");
            return Ok(PodNetwork {
                netns: Some(record.netns.clone()),
                ips: result_ips(&cached.result),
            });
        }
        destroy_sandbox(ctx, &record.netns, Some(&target)).await;
    }
    record
        .store(&ctx.records_dir())
        .map_err(SetupError::Record)?;
    let name = record.netns.clone();
    tokio::task::spawn_blocking(move || sandbox::create_netns(&name))
        .await
        .map_err(|e| SetupError::Task(e.to_string()))??;
    let caps = capability_args(pod);
    let result = ctx.cni.add(&list, &target, &caps).await?;
    let ips = result_ips(&result);
    if ips.is_empty() {
        tracing::warn!(pod = %key, "CNI result has no IPs: {result}");
    }
    Ok(PodNetwork {
        netns: Some(record.netns.clone()),
        ips,
    })
}

/// The capability arguments containerd offers plugins: `portMappings` (for `portmap`) from
/// containers' `hostPort`s, and `io.kubernetes.cri.pod-annotations` with the pod's
/// annotations. Plugins only see those they declare in `capabilities`.
pub fn capability_args(pod: &Pod) -> Map<String, Value> {
    let mappings: Vec<Value> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = p.host_port.filter(|h| *h > 0)?;
            Some(json!({
                "hostPort": host_port,
                "containerPort": p.container_port,
                "protocol": p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                "hostIP": p.host_ip.clone().unwrap_or_default(),
            }))
        })
        .collect();
    let mut caps = Map::new();
    if !mappings.is_empty() {
        caps.insert("portMappings".into(), Value::Array(mappings));
    }
    if let Some(annotations) = pod.metadata.annotations.as_ref().filter(|a| !a.is_empty()) {
        caps.insert(
            "io.kubernetes.cri.pod-annotations".into(),
            json!(annotations),
        );
    }
    caps
}

fn kill_processes_in(netns: &str) {
    for pid in sandbox::pids_in_netns(&sandbox::netns_path(netns)) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Removes a sandbox completely and idempotently: kills what still runs in it, CNI DEL (with
/// the config it was ADDed with when cached, else the current one), deletes the namespace and
/// the record. DEL failures are logged and retried a few times; the namespace goes regardless.
pub async fn destroy_sandbox(ctx: &KubeletContext, netns: &str, target: Option<&AttachmentTarget>) {
    kill_processes_in(netns);
    if let Some(target) = target {
        let list = ctx
            .cni
            .cache()
            .find_by_container(&target.container_id, &target.ifname)
            .and_then(|c| cached_list(&c))
            .map(Ok)
            .unwrap_or_else(|| load_first_conflist(&ctx.config.cni_conf_dir));
        match list {
            Ok(list) => {
                for attempt in 1..=3 {
                    match ctx.cni.del(&list, target).await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(netns, attempt, "CNI DEL: {e}");
                            tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(netns, "CNI DEL skipped: {e}"),
        }
    }
    let name = netns.to_owned();
    match tokio::task::spawn_blocking(move || sandbox::delete_netns(&name)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(netns, "{e}"),
        Err(e) => tracing::warn!(netns, "deleting namespace: {e}"),
    }
    SandboxRecord::remove(&ctx.records_dir(), netns);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};

    #[test]
    fn host_ports_become_port_mappings() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![
                        ContainerPort {
                            container_port: 80,
                            host_port: Some(8080),
                            ..Default::default()
                        },
                        ContainerPort {
                            container_port: 53,
                            protocol: Some("UDP".into()),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut annotated = pod.clone();
        annotated.metadata.annotations =
            Some([("rovn.io/ip_address".to_owned(), "10.16.0.9".to_owned())].into());
        assert_eq!(
            capability_args(&annotated).get("io.kubernetes.cri.pod-annotations"),
            Some(&json!({"rovn.io/ip_address": "10.16.0.9"}))
        );
        let caps = capability_args(&pod);
        assert_eq!(
            caps.get("portMappings"),
            Some(&json!([{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":""}]))
        );
        assert!(capability_args(&Pod::default()).is_empty());
    }

    #[test]
    fn record_target_uses_kubernetes_args() {
        let r = SandboxRecord {
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u-1".into(),
            container_id: "u1".into(),
            netns: "rl-x-pu1".into(),
        };
        let t = r.target();
        assert_eq!(t.netns, PathBuf::from("/run/netns/rl-x-pu1"));
        assert_eq!(t.ifname, "eth0");
        assert!(t.args.contains(&("K8S_POD_UID".into(), "u-1".into())));
    }
}
