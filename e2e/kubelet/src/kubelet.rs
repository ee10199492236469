//! The kubelet's main loop: register the node, watch the pods bound to it, give each pod a
//! worker, and at startup clean up sandboxes whose pods are gone and GC the CNI network.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};

use crate::cni::{CniRuntime, load_first_conflist};
use crate::node::{self, NodeIdentity};
use crate::pod_sandbox::{self, SandboxRecord};
use crate::pod_worker;
use crate::sandbox;
use crate::streaming::registry::Containers;
use crate::streaming::server::StreamingConfig;

/// How the kubelet was configured (its command line).
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// The node this kubelet runs.
    pub node: NodeIdentity,
    /// Prefix of the lab's namespaces (`rl-NAME-`); sandboxes are `<prefix>p<uid12>`.
    pub netns_prefix: String,
    /// Where the `*.conflist` is.
    pub cni_conf_dir: PathBuf,
    /// Where plugins are (`CNI_PATH`).
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Cached CNI results, sandbox records and container logs.
    pub state_dir: PathBuf,
    /// Directory of the kubelet's executable, searched first for container programs.
    pub own_dir: Option<PathBuf>,
    /// Node status and lease renewal period.
    pub heartbeat: Duration,
}

/// What every pod worker shares.
pub struct KubeletContext {
    /// The configuration.
    pub config: KubeletConfig,
    /// API client.
    pub client: Client,
    /// The CNI runtime (cache under `<state-dir>/cni/results`).
    pub cni: CniRuntime,
    /// Event recorder for pod events.
    pub recorder: Recorder,
    /// The `PATH` containers get and bare program names are searched in.
    pub path_env: String,
    /// The containers the streaming server (exec, logs) can reach.
    pub containers: Arc<Containers>,
}

impl KubeletContext {
    /// Builds the shared context; creates nothing on disk.
    pub fn new(config: KubeletConfig, client: Client) -> Self {
        let cni = CniRuntime::new(
            config.cni_bin_dirs.clone(),
            config.state_dir.join("cni").join("results"),
        );
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "kubelet".into(),
                instance: Some(config.node.name.clone()),
            },
        );
        Self {
            config,
            client,
            cni,
            recorder,
            path_env: crate::containers::inherited_path(),
            containers: Arc::new(Containers::default()),
        }
    }

    /// What the streaming server needs.
    pub fn streaming(&self) -> StreamingConfig {
        StreamingConfig {
            containers: self.containers.clone(),
            own_dir: self.config.own_dir.clone(),
            path_env: self.path_env.clone(),
        }
    }

    /// Where sandbox records live (one JSON per sandbox namespace).
    pub fn records_dir(&self) -> PathBuf {
        self.config.state_dir.join("sandboxes")
    }
}

/// The kubelet could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The pod watch stream ended, which only happens when the client is dropped.
    #[error("pod watch for node {0} ended")]
    WatchEnded(String),
}

struct WorkerHandle {
    pod: watch::Sender<Option<Pod>>,
}

/// Runs the kubelet until the watch ends: registration and heartbeats, the pod loop, startup
/// cleanup after the first full list.
pub async fn run(ctx: Arc<KubeletContext>) -> Result<(), KubeletError> {
    let node_name = ctx.config.node.name.clone();
    loop {
        match node::register(&ctx.client, &ctx.config.node).await {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(node = %node_name, "registering node (will retry): {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tracing::info!(node = %node_name, ip = %ctx.config.node.ip, "node registered");
    tokio::spawn(node::heartbeat_loop(
        ctx.client.clone(),
        ctx.config.node.clone(),
        ctx.config.heartbeat,
    ));

    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let selector = format!("spec.nodeName={node_name}");
    let mut stream = watcher::watcher(pods, watcher::Config::default().fields(&selector))
        .default_backoff()
        .boxed();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut workers: HashMap<String, WorkerHandle> = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut listing: Option<HashMap<String, Pod>> = None;
    let mut started = false;

    loop {
        tokio::select! {
            Some(uid) = done_rx.recv() => {
                workers.remove(&uid);
                finished.insert(uid);
            }
            event = stream.next() => {
                let Some(event) = event else {
                    return Err(KubeletError::WatchEnded(node_name));
                };
                match event {
                    Err(e) => tracing::warn!(node = %node_name, "pod watch: {e}"),
                    Ok(Event::Init) => listing = Some(HashMap::new()),
                    Ok(Event::InitApply(pod)) => {
                        if let (Some(l), Some(uid)) = (listing.as_mut(), pod.metadata.uid.clone()) {
                            l.insert(uid, pod);
                        }
                    }
                    Ok(Event::InitDone) => {
                        let listed = listing.take().unwrap_or_default();
                        if !started {
                            started = true;
                            startup_cleanup(&ctx, &listed).await;
                        }
                        for uid in workers.keys() {
                            if !listed.contains_key(uid) {
                                vanished(&workers, uid);
                            }
                        }
                        for pod in listed.into_values() {
                            dispatch(&ctx, &mut workers, &finished, &done_tx, pod);
                        }
                    }
                    Ok(Event::Apply(pod)) => dispatch(&ctx, &mut workers, &finished, &done_tx, pod),
                    Ok(Event::Delete(pod)) => {
                        if let Some(uid) = pod.metadata.uid.as_deref() {
                            vanished(&workers, uid);
                        }
                    }
                }
            }
        }
    }
}

fn vanished(workers: &HashMap<String, WorkerHandle>, uid: &str) {
    if let Some(w) = workers.get(uid) {
        w.pod.send_replace(None);
    }
}

fn dispatch(
    ctx: &Arc<KubeletContext>,
    workers: &mut HashMap<String, WorkerHandle>,
    finished: &HashSet<String>,
    done: &mpsc::UnboundedSender<String>,
    pod: Pod,
) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    if finished.contains(&uid) {
        return;
    }
    if let Some(w) = workers.get(&uid) {
        w.pod.send_replace(Some(pod));
        return;
    }
    let (tx, rx) = watch::channel(Some(pod));
    let ctx = Arc::clone(ctx);
    let done = done.clone();
    let worker_uid = uid.clone();
    tokio::spawn(async move {
        pod_worker::run(ctx, rx).await;
        let _ = done.send(worker_uid);
    });
    workers.insert(uid, WorkerHandle { pod: tx });
}

/// After the first full list: tear down sandboxes of pods no longer bound here, then GC the
/// CNI network with the sandboxes that remain as the valid attachments.
async fn startup_cleanup(ctx: &Arc<KubeletContext>, listed: &HashMap<String, Pod>) {
    let prefix = sandbox::sandbox_name_prefix(&ctx.config.netns_prefix);
    let wanted: HashSet<String> = listed
        .keys()
        .map(|uid| sandbox::sandbox_netns_name(&ctx.config.netns_prefix, uid))
        .collect();
    let existing = match sandbox::list_netns(&prefix) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("listing sandboxes with prefix {prefix}: {e}");
            Vec::new()
        }
    };
    let mut alive = Vec::new();
    for name in existing {
        let record = SandboxRecord::load(&ctx.records_dir(), &name);
        if wanted.contains(&name) {
            if let Some(r) = record {
                alive.push((r.container_id, pod_sandbox::IFNAME.to_owned()));
            }
            continue;
        }
        tracing::info!(netns = %name, "tearing down sandbox of a pod no longer on this node");
        let target = record.as_ref().map(|r| r.target());
        pod_sandbox::destroy_sandbox(ctx, &name, target.as_ref()).await;
    }
    match load_first_conflist(&ctx.config.cni_conf_dir) {
        Ok(list) => {
            let report = ctx.cni.gc(&list, &alive).await;
            for (id, ifname) in &report.deleted {
                tracing::info!(network = %list.name, "GC removed stale attachment {id}/{ifname}");
            }
            for e in &report.errors {
                tracing::warn!(network = %list.name, "GC: {e}");
            }
        }
        Err(e) => tracing::warn!("CNI GC skipped: {e}"),
    }
}
