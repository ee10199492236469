//! What the controller benchmarks share: OVN, the test API server and a loaded cluster (nodes
//! and bound pods) in a scratch directory, and a controller ready to be launched on it; plus
//! waiting for NB to fall quiet and failing early when a process dies.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use tokio::time::Instant;

use crate::lab::bins;

use super::api_server::{self, ScratchApiServer};
use super::central::{self, ScratchCentral};
use super::controller_proc::{ControllerLaunch, ControllerRun};
use super::error::BenchError;
use super::figures::Figures;
use super::load;
use super::nb_log::{RecordCounter, Records};
use super::objects;
use super::procs::kib_to_mib;
use super::scratch::ScratchDir;

/// The namespace the benchmark pods live in.
pub const NAMESPACE: &str = "default";
/// How long NB must see no new transaction before it counts as quiet.
const QUIET_FOR: Duration = Duration::from_secs(2);
/// How often the NB file is re-counted while waiting for quiet.
const QUIET_POLL: Duration = Duration::from_millis(200);
/// Bound on starting the API server and OVN.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The cluster to load.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// Node objects to create.
    pub nodes: usize,
    /// Pods to create, spread round robin over the nodes.
    pub pods: usize,
    /// Create requests in flight at once.
    pub in_flight: usize,
    /// Leave the scratch directory in place.
    pub keep: bool,
    /// Where `rovn-kubesim` and `rovn-controller` are; `None` for next to this executable.
    pub bin_dir: Option<PathBuf>,
}

/// A loaded cluster with no controller yet. Dropping it stops everything and removes the
/// scratch directory (unless kept).
pub struct Stage {
    /// OVN central (NB, SB, ovn-northd).
    pub ovn: ScratchCentral,
    /// The API server.
    pub api: ScratchApiServer,
    /// A client of it.
    pub client: kube::Client,
    /// How to start the controller on this cluster.
    pub launch: ControllerLaunch,
    /// The nodes' names.
    pub node_names: Vec<String>,
    /// The pods' names (in [`NAMESPACE`] with [`DefaultPods`]; a [`PodLayout`] says where
    /// its own pods are).
    pub pod_names: Vec<String>,
    /// How long creating the nodes and pods took.
    pub create_time: Duration,
    /// The scratch directory (databases, logs).
    pub dir: PathBuf,
    /// Whether it stays after the run.
    pub keep: bool,
    _scratch: ScratchDir,
}

/// The pods a stage creates: a benchmark that needs labelled pods in namespaces of their own
/// (NetworkPolicy) says how, and the stage creates them as it creates the plain ones.
pub trait PodLayout {
    /// The namespaces to create before any pod (none for pods in [`NAMESPACE`], which the
    /// API server has).
    fn namespaces(&self) -> Result<Vec<Namespace>, BenchError>;

    /// Pod `index`, bound to `node`.
    fn pod(&self, index: usize, node: &str) -> Result<Pod, BenchError>;
}

/// The controller benchmarks' plain pods: unlabelled but for the bench label, all in
/// [`NAMESPACE`].
pub struct DefaultPods;

impl PodLayout for DefaultPods {
    fn namespaces(&self) -> Result<Vec<Namespace>, BenchError> {
        Ok(Vec::new())
    }

    fn pod(&self, index: usize, node: &str) -> Result<Pod, BenchError> {
        objects::bound_pod(&objects::pod_name(index), NAMESPACE, node)
    }
}

impl Stage {
    /// Starts OVN and the API server and creates the nodes and the plain pods.
    pub async fn start(spec: &StageSpec) -> Result<Stage, BenchError> {
        Stage::start_with(spec, &DefaultPods).await
    }

    /// Starts OVN and the API server and creates the nodes, then `layout`'s namespaces and
    /// pods.
    pub async fn start_with(spec: &StageSpec, layout: &dyn PodLayout) -> Result<Stage, BenchError> {
        if spec.nodes == 0 || spec.pods == 0 {
            return Err(BenchError::InvalidArgs(
                "--nodes and --pods must be at least 1".into(),
            ));
        }
        if spec.nodes > 60_000 {
            return Err(BenchError::InvalidArgs(
                "--nodes is at most 60000 (node IPs come from 172.31.0.0/16)".into(),
            ));
        }
        let bin_dir = match &spec.bin_dir {
            Some(dir) => dir.clone(),
            None => bins::default_bin_dir()?,
        };
        let kubesim_bin = bins::find(&bin_dir, "rovn-kubesim")?;
        let controller_bin = bins::find(&bin_dir, "rovn-controller")?;
        let mut scratch = ScratchDir::create("rovn-bench")?;
        if spec.keep {
            scratch.keep();
        }
        let dir = scratch.path().to_path_buf();
        let setup_deadline = std::time::Instant::now() + SETUP_TIMEOUT;
        let ovn = tokio::task::block_in_place(|| central::start(&dir, setup_deadline))?;
        let api =
            tokio::task::block_in_place(|| api_server::start(&kubesim_bin, &dir, setup_deadline))?;
        let client = api_server::client(&api.kubeconfig).await?;

        let node_names: Vec<String> = (0..spec.nodes).map(objects::node_name).collect();
        let nodes = (0..spec.nodes)
            .map(|i| objects::ready_node(&node_names[i], objects::node_ip(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let pods = (0..spec.pods)
            .map(|i| layout.pod(i, objects::node_of_pod(i, &node_names).unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()?;
        let pod_names: Vec<String> = pods.iter().map(ResourceExt::name_any).collect();
        let create_started = Instant::now();
        load::create_all(&kube::Api::all(client.clone()), nodes, spec.in_flight).await?;
        load::create_all(
            &kube::Api::all(client.clone()),
            layout.namespaces()?,
            spec.in_flight,
        )
        .await?;
        load::create_all_namespaced(&client, pods, spec.in_flight).await?;
        let create_time = create_started.elapsed();
        let launch = ControllerLaunch {
            program: controller_bin,
            nb_remote: ovn.nb_remote(),
            kubeconfig: api.kubeconfig.clone(),
            dir: dir.clone(),
        };
        Ok(Stage {
            ovn,
            api,
            client,
            launch,
            node_names,
            pod_names,
            create_time,
            dir,
            keep: spec.keep,
            _scratch: scratch,
        })
    }
}

/// Runs `work`, failing early when `alive` reports a dead process (checked every 200 ms).
pub async fn while_alive<T>(
    work: impl std::future::Future<Output = Result<T, BenchError>>,
    alive: impl Fn() -> Result<(), BenchError>,
) -> Result<T, BenchError> {
    let watchdog = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Err(dead) = alive() {
                break dead;
            }
        }
    };
    tokio::select! {
        done = work => done,
        dead = watchdog => Err(dead),
    }
}

/// Reads `read` every `poll` until it returns the same value for `still`, and returns that
/// value; after `timeout` fails with `what` and `detail` of the last value.
pub async fn until_still<T: PartialEq>(
    poll: Duration,
    still: Duration,
    timeout: Duration,
    what: &str,
    detail: impl Fn(&T) -> String,
    mut read: impl FnMut() -> Result<T, BenchError>,
) -> Result<T, BenchError> {
    let deadline = Instant::now() + timeout;
    let mut last = read()?;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(poll).await;
        let now = read()?;
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= still {
            return Ok(now);
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout {
                what: what.into(),
                detail: detail(&last),
            });
        }
    }
}

/// Waits until NB has committed no transaction for [`QUIET_FOR`], so that a phase's writes
/// (the controller's, and ovn-northd's follow-ups such as ports' `up`) are all in; returns the
/// record counts then.
pub async fn wait_for_quiet_nb(
    ovn: &ScratchCentral,
    records: &mut RecordCounter,
    timeout: Duration,
) -> Result<Records, BenchError> {
    until_still(
        QUIET_POLL,
        QUIET_FOR,
        timeout,
        "NB to stop committing transactions",
        |last: &Records| format!("{} records in {}", last.all, ovn.nb_db.display()),
        || records.count(),
    )
    .await
}

/// What restarting the controller on a converged cluster showed.
#[derive(Debug, Clone, Copy)]
pub struct Restart {
    /// From the second start to `/readyz`.
    pub ready: Duration,
    /// NB transactions rovn wrote over the restart (0 when converged).
    pub nb_writes: usize,
    /// The peak RSS of either run, in KiB.
    pub peak_rss_kib: u64,
}

impl Restart {
    /// Records `restart_ready_s`, `restart_nb_writes` and `peak_rss_mb`.
    pub fn put_into(&self, f: &mut Figures) {
        f.seconds("restart_ready_s", self.ready);
        f.put("restart_nb_writes", self.nb_writes);
        f.real("peak_rss_mb", kib_to_mib(self.peak_rss_kib));
    }
}

/// Stops `first` and starts the controller again on the cluster it converged, until NB is
/// quiet again; the second run is stopped too.
pub async fn restart(
    first: ControllerRun,
    launch: &ControllerLaunch,
    ovn: &ScratchCentral,
    records: &mut RecordCounter,
    timeout: Duration,
) -> Result<Restart, BenchError> {
    let first_peak = first.peak_rss_kib()?;
    first.stop()?;
    let before = records.count()?;
    let second = ControllerRun::start(launch)?;
    let ready_at = second.wait_ready(timeout).await?;
    let after = wait_for_quiet_nb(ovn, records, timeout).await?;
    let ready = ready_at - second.started;
    let second_peak = second.peak_rss_kib()?;
    second.stop()?;
    Ok(Restart {
        ready,
        nb_writes: after.rovn.saturating_sub(before.rovn),
        peak_rss_kib: first_peak.max(second_peak),
    })
}
