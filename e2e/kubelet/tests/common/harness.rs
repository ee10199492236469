//! One lab node for the kubelet's end-to-end tests: the API server, a node namespace with the
//! kubelet in it, the scheduler, and a CNI config of real plugins (bridge + host-local, tuning)
//! plus a recording spy. Shared by every test file that runs pods through the kubelet.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use rovn_kubelet::sandbox;
use serde_json::json;

use super::procs::{BoxError, ProcessGuard, start_kubesim, wait_for, write_kubeconfig};
use super::{NetnsGuard, spy_plugin};

/// The node's address as the kubelet registers it.
pub const NODE_IP: &str = "172.30.0.11";

/// A pod in `default` whose one container `main` runs `sh -c script`; `extra_spec` keys are
/// merged into the spec.
pub fn pod(name: &str, script: &str, extra_spec: serde_json::Value) -> Result<Pod, BoxError> {
    let mut spec = json!({
        "terminationGracePeriodSeconds": 5,
        "containers": [{
            "name": "main", "image": "ignored",
            "command": ["sh", "-c", script],
            "env": [{"name": "GREETING", "value": "hello"}]
        }]
    });
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec
    }))?)
}

/// The pod's phase, once it has a status.
pub async fn phase_of(api: &Api<Pod>, name: &str) -> Option<(String, Pod)> {
    let p = api.get_opt(name).await.ok().flatten()?;
    let phase = p.status.as_ref()?.phase.clone()?;
    Some((phase, p))
}

/// Waits until the pod is Running with an IP.
pub async fn running_with_ip(api: &Api<Pod>, name: &str) -> Result<(String, Pod), BoxError> {
    wait_for(
        Duration::from_secs(30),
        &format!("pod {name} Running with an IP"),
        || async {
            let (phase, p) = phase_of(api, name).await?;
            let ip = p.status.as_ref()?.pod_ip.clone()?;
            (phase == "Running").then_some((ip, p))
        },
    )
    .await
}

/// One node namespace with a kubelet, the API server and the scheduler. Fields drop in
/// declaration order: processes first, then namespaces, then the temp dir.
pub struct Harness {
    pub scheduler: Option<ProcessGuard>,
    pub kubelet: Option<ProcessGuard>,
    _kubesim: ProcessGuard,
    _netns: NetnsGuard,
    pub client: Client,
    pub prefix: String,
    pub node_ns: String,
    pub kc_node: PathBuf,
    pub conf_dir: PathBuf,
    pub extra_bin: PathBuf,
    pub spy_dir: PathBuf,
    pub ipam_dir: PathBuf,
    pub net_name: String,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start(tag: &str) -> Result<Self, BoxError> {
        let prefix = super::unique_prefix(tag);
        let dir = tempfile::tempdir()?;
        let mut netns = NetnsGuard::new();
        let node_ns = format!("{prefix}node1");
        netns.create(&node_ns)?;
        netns.cover_prefix(&sandbox::sandbox_name_prefix(&prefix));

        // API server on the root loopback (tests, scheduler) and on the node's (kubelet).
        let (kubesim, addrs) = start_kubesim(
            dir.path(),
            &["127.0.0.1:0".into(), format!("{node_ns}@127.0.0.1:0")],
        )?;
        let kc_root = dir.path().join("kubeconfig");
        let kc_node = dir.path().join("kubeconfig-node");
        write_kubeconfig(&kc_root, &addrs[0])?;
        write_kubeconfig(&kc_node, &addrs[1])?;

        let conf_dir = dir.path().join("cni-conf");
        let extra_bin = dir.path().join("cni-bin");
        let spy_dir = dir.path().join("spy");
        std::fs::create_dir_all(&conf_dir)?;
        std::fs::create_dir_all(&extra_bin)?;
        spy_plugin(&extra_bin.join("spy"), &spy_dir, None)?;
        spy_plugin(
            &extra_bin.join("spyfail"),
            &dir.path().join("spyfail"),
            Some("ADD"),
        )?;
        // A later file in lexical order must be ignored.
        std::fs::write(conf_dir.join("99-other.conflist"), "{not json")?;

        let scheduler = ProcessGuard::spawn(
            "rovn-scheduler",
            Command::new(env!("CARGO_BIN_EXE_rovn-scheduler"))
                .arg("--kubeconfig")
                .arg(&kc_root)
                .arg("--log-file")
                .arg(dir.path().join("scheduler.log")),
        )?;
        let client = rovn_kubelet::client::client_from_kubeconfig(&kc_root).await?;
        let mut h = Self {
            scheduler: Some(scheduler),
            kubelet: None,
            _kubesim: kubesim,
            _netns: netns,
            client,
            net_name: format!("{prefix}pods"),
            ipam_dir: dir.path().join("ipam"),
            prefix,
            node_ns,
            kc_node,
            conf_dir,
            extra_bin,
            spy_dir,
            dir,
        };
        h.write_conflist(false)?;
        h.start_kubelet()?;
        Ok(h)
    }

    /// bridge + host-local, tuning (needs prevResult), the recording spy; with `failing`, a
    /// plugin that refuses ADD comes last.
    pub fn write_conflist(&self, failing: bool) -> Result<(), BoxError> {
        let mut plugins = vec![
            json!({"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
                   "ipam": {"type": "host-local", "dataDir": self.ipam_dir,
                            "ranges": [[{"subnet": "10.244.9.0/24"}]]}}),
            json!({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}}),
            json!({"type": "spy", "capabilities": {"portMappings": true}}),
        ];
        if failing {
            plugins.push(json!({"type": "spyfail"}));
        }
        let conflist = json!({"cniVersion": "1.0.0", "name": self.net_name, "plugins": plugins});
        let tmp = self.conf_dir.join("10-pods.tmp");
        std::fs::write(&tmp, conflist.to_string())?;
        std::fs::rename(tmp, self.conf_dir.join("10-pods.conflist"))?;
        Ok(())
    }

    /// Starts the kubelet the way the lab does: `ip netns exec <node> rovn-kubelet ...`.
    pub fn start_kubelet(&mut self) -> Result<(), BoxError> {
        let kubelet = ProcessGuard::spawn(
            "rovn-kubelet",
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.node_ns,
                    env!("CARGO_BIN_EXE_rovn-kubelet"),
                ])
                .args(["--node-name", "node1", "--node-ip", NODE_IP])
                .arg("--kubeconfig")
                .arg(&self.kc_node)
                .args(["--netns-prefix", &self.prefix])
                .arg("--cni-conf-dir")
                .arg(&self.conf_dir)
                .arg("--cni-bin-dir")
                .arg(format!("/usr/lib/cni:{}", self.extra_bin.display()))
                .arg("--state-dir")
                .arg(self.dir.path().join("state"))
                .arg("--log-file")
                .arg(self.dir.path().join("kubelet.log")),
        )?;
        self.kubelet = Some(kubelet);
        Ok(())
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Runs a scenario; on failure prints the daemons' logs; checks the daemons survived.
    pub async fn check<F: std::future::Future<Output = Result<(), BoxError>>>(
        &mut self,
        result: F,
    ) -> Result<(), BoxError> {
        let result = result.await;
        if result.is_err() {
            for log in ["kubelet.log", "scheduler.log"] {
                let text = std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default();
                eprintln!("--- {log} ---\n{text}");
            }
        }
        result?;
        for guard in [self.kubelet.as_mut(), self.scheduler.as_mut()]
            .into_iter()
            .flatten()
        {
            guard.ensure_running()?;
        }
        Ok(())
    }
}
