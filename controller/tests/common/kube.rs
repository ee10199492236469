//! Controller test fixtures: an in-process `rovn_kubesim` API server on 127.0.0.1:0 with a
//! kube client and a kubeconfig file, object builders, the controller run in-process or as the
//! real binary (killed on drop), and polling helpers.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rovn_api::names::annotations as keys;
use rovn_api::subnet::{Subnet, SubnetSpec};
use rovn_controller::runtime::{self, KubeSource, RunConfig};
use rovn_kubesim::RunningServer;
use rovn_testkit::process::ChildGuard;
use rovn_testkit::wait::Wait;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An API server and a client for it; stops on drop.
pub struct Kube {
    pub server: RunningServer,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl Kube {
    /// A fresh API server on a free loopback port.
    pub async fn start() -> Result<Kube> {
        let config = rovn_kubesim::Config {
            listen: vec!["127.0.0.1:0".parse().context("listen spec")?],
            ..rovn_kubesim::Config::default()
        };
        let server = rovn_kubesim::start(config)
            .await
            .map_err(|e| anyhow!("starting the API server: {e}"))?;
        let url = server.url();
        let client = kube::Client::try_from(kube::Config::new(url.parse().context("server URL")?))
            .context("kube client")?;
        let dir = tempfile::Builder::new()
            .prefix("rovn-ctl-test-")
            .tempdir()
            .context("temp dir")?;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {url}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: sim\n    user: u\ncurrent-context: c\n"
            ),
        )
        .context("writing kubeconfig")?;
        Api::<CustomResourceDefinition>::all(client.clone())
            .create(&PostParams::default(), &rovn_api::subnet::crd())
            .await
            .context("installing the Subnet CRD")?;
        Ok(Kube {
            server,
            client,
            kubeconfig,
            dir,
        })
    }

    /// A scratch directory removed with the fixture.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub async fn namespace(&self, name: &str) -> Result<()> {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        match Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e).with_context(|| format!("creating namespace {name}")),
        }
    }

    pub async fn node(&self, name: &str) -> Result<Node> {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        Api::<Node>::all(self.client.clone())
            .create(&PostParams::default(), &node)
            .await
            .with_context(|| format!("creating node {name}"))
    }

    /// A pod scheduled to `node` with `annotations`.
    pub async fn pod(
        &self,
        namespace: &str,
        name: &str,
        node: &str,
        annotations: &[(&str, &str)],
    ) -> Result<Pod> {
        let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "pause"}]},
        }))?;
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &pod)
            .await
            .with_context(|| format!("creating pod {namespace}/{name}"))
    }

    pub async fn delete_pod(&self, namespace: &str, name: &str) -> Result<()> {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        match Api::<Pod>::namespaced(self.client.clone(), namespace)
            .delete(name, &params)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting pod {namespace}/{name}")),
        }
    }

    /// Sets the pod's `status.phase`, as a kubelet does when its containers end.
    pub async fn pod_phase(&self, namespace: &str, name: &str, phase: &str) -> Result<()> {
        let patch = json!({ "status": { "phase": phase } });
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("setting pod {namespace}/{name} to {phase}"))?;
        Ok(())
    }

    pub async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>> {
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .with_context(|| format!("getting pod {namespace}/{name}"))
    }

    pub async fn pods(&self) -> Result<Vec<Pod>> {
        Ok(Api::<Pod>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .context("listing pods")?
            .items)
    }

    pub async fn subnet(
        &self,
        name: &str,
        cidr: &str,
        namespaces: &[&str],
        exclude: &[&str],
    ) -> Result<Subnet> {
        let subnet = Subnet::new(
            name,
            SubnetSpec {
                cidr_block: cidr.into(),
                gateway: None,
                exclude_ips: exclude.iter().map(|s| s.to_string()).collect(),
                namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
                nat_outgoing: false,
                private: false,
                allow_subnets: Vec::new(),
            },
        );
        Api::<Subnet>::all(self.client.clone())
            .create(&PostParams::default(), &subnet)
            .await
            .with_context(|| format!("creating Subnet {name}"))
    }

    pub async fn get_subnet(&self, name: &str) -> Result<Option<Subnet>> {
        Api::<Subnet>::all(self.client.clone())
            .get_opt(name)
            .await
            .with_context(|| format!("getting Subnet {name}"))
    }

    /// `(reason, note)` of the Events about object `name` in `namespace` (cluster-scoped
    /// objects: "default").
    pub async fn events_about(&self, namespace: &str, name: &str) -> Result<Vec<(String, String)>> {
        let events = Api::<Event>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .context("listing events")?;
        Ok(events
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect())
    }

    /// A controller configuration for this API server and `nb_remote`, without election or
    /// HTTP listener, resync every 300 s.
    pub fn config(&self, nb_remote: &str) -> RunConfig {
        RunConfig::new(
            vec![nb_remote.to_string()],
            KubeSource::Client(self.client.clone()),
        )
    }

    /// Starts the real `rovn-controller` binary against this server (no election unless
    /// `extra` asks for it); its log goes to `<dir>/<log_name>`.
    pub fn spawn_binary(&self, nb_remote: &str, log_name: &str, extra: &[&str]) -> Result<Binary> {
        let log_path = self.dir().join(log_name);
        let log = std::fs::File::create(&log_path).context("creating controller log")?;
        let log_err = log.try_clone().context("cloning log handle")?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rovn-controller"));
        cmd.arg("--nb-remote")
            .arg(nb_remote)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--listen")
            .arg("127.0.0.1:0");
        if !extra.iter().any(|a| a.starts_with("--leader-elect")) {
            cmd.arg("--leader-elect=false");
        }
        let child = cmd
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .context("spawning rovn-controller")?;
        Ok(Binary {
            child: ChildGuard::new(child),
            log: log_path,
        })
    }
}

/// The controller binary; killed (SIGKILL) on drop.
pub struct Binary {
    child: ChildGuard,
    pub log: PathBuf,
}

impl Binary {
    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the `ready after` line.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let ok = wait_for(timeout, || async {
            Ok(self.log_text().contains("ready after"))
        })
        .await?;
        if !ok {
            return Err(anyhow!("controller not ready; log:\n{}", self.log_text()));
        }
        Ok(())
    }

    /// `GET path` (HTTP/1.0) on the controller's listener, found in its log: the whole answer.
    pub async fn http_get(&self, path: &str) -> Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let log = self.log_text();
        let addr = log
            .lines()
            .find(|l| l.contains("serving /metrics"))
            .and_then(|l| l.split("bound=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .context("no listener address in the log")?;
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// SIGTERM, then waits for the exit (SIGKILL after `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.pid()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let child = &mut self.child;
        let exited = Wait::new(timeout)
            .every(Duration::from_millis(50))
            .poll(|| Ok::<_, Infallible>(child.exited()));
        match exited {
            Ok(Some(status)) => Some(status),
            _ => {
                let mut child = self.child.release()?;
                let _ = child.kill();
                child.wait().ok()
            }
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !self.child.is_owned() || self.child.exited().is_some()
    }
}

/// A controller running in-process; stopped on drop.
pub struct InProcess {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<()>>>,
}

impl InProcess {
    pub fn start(config: RunConfig) -> InProcess {
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(runtime::run(config, async move {
            let _ = rx.await;
        }));
        InProcess {
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops it and returns what `run` returned.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.handle.take() {
            Some(h) => h.await.context("controller task")?,
            None => Ok(()),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// Polls `check` every 50 ms until it returns true (`Ok(true)`) or `timeout` passes
/// (`Ok(false)`); an error from `check` ends the wait.
pub async fn wait_for<F, Fut>(timeout: Duration, mut check: F) -> Result<bool>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    Wait::new(timeout)
        .every(Duration::from_millis(50))
        .poll_async(async || Ok(check().await?.then_some(())))
        .await
        .map(|done| done.is_some())
}

/// The pod's annotation `key`.
pub fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The pod's allocated address, once `allocated=true`.
pub fn allocated_ip(pod: &Pod) -> Option<Ipv4Addr> {
    if annotation(pod, keys::ALLOCATED) != Some("true") {
        return None;
    }
    annotation(pod, keys::IP_ADDRESS)?.parse().ok()
}

/// Stops the converged controller `first` with SIGTERM, starts the binary again and checks
/// that the new one, once ready and a second later, has written no NB transaction.
pub async fn restart_writing_nothing(
    kube: &Kube,
    ovn: &super::Ovn,
    mut first: Binary,
) -> Result<Binary> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = first.terminate(Duration::from_secs(10));
    anyhow::ensure!(
        status.is_some_and(|s| s.success()),
        "SIGTERM exit: {status:?}"
    );
    let db = ovn.nb.db_path().to_path_buf();
    let before = db_records(&db)?;
    let mut second = kube.spawn_binary(&ovn.nb_remote(), "second.log", &[])?;
    second.wait_ready(Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = db_records(&db)?;
    anyhow::ensure!(
        after == before,
        "restart wrote {} NB transactions; log:\n{}",
        after - before,
        second.log_text()
    );
    Ok(second)
}

/// The value of metric `name` (no labels) in a `/metrics` answer.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// Number of committed transactions in a standalone OVSDB file (one record each, plus the
/// schema record at the top).
pub fn db_records(db: &Path) -> Result<usize> {
    let text = std::fs::read(db).with_context(|| format!("reading {}", db.display()))?;
    let needle = b"OVSDB JSON ";
    Ok(text.windows(needle.len()).filter(|w| w == needle).count())
}
