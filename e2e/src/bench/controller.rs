//! `rovn-bench controller`: the controller from an empty NB to 10,000 routed pods, then a
//! restart on the converged cluster, and pods created one at a time on it ([`super::pod_latency`]).
//!
//! Everything runs privately in a scratch directory: the test API server on a free loopback
//! port, NB + SB + ovn-northd on unix sockets, the controller without leader election. The
//! benchmark watches (never polls) the pods' `routed` annotation and the NB ports, and counts
//! committed NB transactions in the standalone database file.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use rovn_api::names::{self, annotations};
use tokio::time::Instant;

use crate::lab::bins;

use super::api_server;
use super::central;
use super::controller_proc::{ControllerLaunch, ControllerRun};
use super::error::BenchError;
use super::figures::Figures;
use super::load;
use super::lsp_watch::LspWatch;
use super::nb_log::{RecordCounter, Records};
use super::objects;
use super::pod_latency::{self, LatencyRun};
use super::pod_watch::wait_for_annotation;
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

/// What to run.
#[derive(Debug, Clone)]
pub struct ControllerBench {
    /// Node objects to create.
    pub nodes: usize,
    /// Pods to create, spread round robin over the nodes.
    pub pods: usize,
    /// Create requests in flight at once.
    pub in_flight: usize,
    /// Pods created one at a time after convergence, for the latency of one pod on a big
    /// cluster (0 skips the phase).
    pub latency_pods: usize,
    /// The time between two of those creates.
    pub latency_gap: Duration,
    /// Bound on each wait (convergence, readiness).
    pub timeout: Duration,
    /// Leave the scratch directory (databases, logs) in place.
    pub keep: bool,
    /// Where `rovn-kubesim` and `rovn-controller` are; `None` for next to this executable.
    pub bin_dir: Option<PathBuf>,
}

impl ControllerBench {
    fn validate(&self) -> Result<(), BenchError> {
        if self.nodes == 0 || self.pods == 0 {
            return Err(BenchError::InvalidArgs(
                "--nodes and --pods must be at least 1".into(),
            ));
        }
        if self.nodes > 60_000 {
            return Err(BenchError::InvalidArgs(
                "--nodes is at most 60000 (node IPs come from 172.31.0.0/16)".into(),
            ));
        }
        Ok(())
    }
}

/// Runs the benchmark and returns its figures; everything started is stopped on return, on
/// error, and when the returned future is dropped (Ctrl-C).
pub async fn run(bench: &ControllerBench) -> Result<Figures, BenchError> {
    bench.validate()?;
    let bin_dir = match &bench.bin_dir {
        Some(dir) => dir.clone(),
        None => bins::default_bin_dir()?,
    };
    let kubesim_bin = bins::find(&bin_dir, "rovn-kubesim")?;
    let controller_bin = bins::find(&bin_dir, "rovn-controller")?;
    let mut scratch = ScratchDir::create("rovn-bench")?;
    if bench.keep {
        scratch.keep();
    }
    let dir = scratch.path().to_path_buf();
    let setup_deadline = std::time::Instant::now() + SETUP_TIMEOUT;
    let ovn = tokio::task::block_in_place(|| central::start(&dir, setup_deadline))?;
    let api =
        tokio::task::block_in_place(|| api_server::start(&kubesim_bin, &dir, setup_deadline))?;
    let client = api_server::client(&api.kubeconfig).await?;

    let node_names: Vec<String> = (0..bench.nodes).map(objects::node_name).collect();
    let nodes = (0..bench.nodes)
        .map(|i| objects::ready_node(&node_names[i], objects::node_ip(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let pod_names: Vec<String> = (0..bench.pods).map(objects::pod_name).collect();
    let pods = pod_names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let node = objects::node_of_pod(i, &node_names).unwrap_or_default();
            objects::bound_pod(name, NAMESPACE, node)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let create_started = Instant::now();
    load::create_nodes(&client, nodes, bench.in_flight).await?;
    load::create_pods(&client, NAMESPACE, pods, bench.in_flight).await?;
    let create_time = create_started.elapsed();
    let expected_ports: BTreeSet<String> = pod_names
        .iter()
        .map(|p| names::pod_port(NAMESPACE, p))
        .collect();
    let mut lsps = LspWatch::start(&ovn.nb_remote(), bench.timeout).await?;
    let mut nb_records = RecordCounter::new(&ovn.nb_db);
    let records_at_start = wait_for_quiet_nb(&ovn, &mut nb_records, bench.timeout).await?;

    let launch = ControllerLaunch {
        program: controller_bin,
        nb_remote: ovn.nb_remote(),
        kubeconfig: api.kubeconfig.clone(),
        dir: dir.clone(),
    };
    let first = ControllerRun::start(&launch)?;
    let converged = async {
        tokio::try_join!(
            first.wait_ready(bench.timeout),
            wait_for_annotation(
                &client,
                NAMESPACE,
                annotations::ROUTED,
                "true",
                bench.pods,
                bench.timeout
            ),
            lsps.wait_for_all(&expected_ports, bench.timeout),
        )
    };
    let (first_ready, (routed_at, _), ports_at) = while_alive(converged, || {
        first.ensure_alive()?;
        api.ensure_alive()?;
        ovn.ensure_alive()
    })
    .await?;
    let converge = routed_at.max(ports_at) - first.started;
    wait_for_quiet_nb(&ovn, &mut nb_records, bench.timeout).await?;
    let latency_run = LatencyRun {
        namespace: NAMESPACE.to_string(),
        pods: (bench.pods..bench.pods + bench.latency_pods)
            .map(objects::pod_name)
            .collect(),
        nodes: (bench.pods..bench.pods + bench.latency_pods)
            .map(|i| {
                objects::node_of_pod(i, &node_names)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect(),
        gap: bench.latency_gap,
        timeout: bench.timeout,
    };
    let latencies = if bench.latency_pods > 0 {
        let measured = while_alive(
            pod_latency::measure(&client, &ovn.nb_remote(), &latency_run),
            || {
                first.ensure_alive()?;
                api.ensure_alive()?;
                ovn.ensure_alive()
            },
        )
        .await?;
        wait_for_quiet_nb(&ovn, &mut nb_records, bench.timeout).await?;
        Some(measured)
    } else {
        None
    };
    let first_peak = first.peak_rss_kib()?;
    let first_logged = first.logged_ready_ms();
    let first_started = first.started;
    first.stop()?;
    let records_before_restart = nb_records.count()?;

    let second = ControllerRun::start(&launch)?;
    let second_ready = second.wait_ready(bench.timeout).await?;
    let records_after_restart = wait_for_quiet_nb(&ovn, &mut nb_records, bench.timeout).await?;
    let second_peak = second.peak_rss_kib()?;
    let second_logged = second.logged_ready_ms();
    let restart_ready = second_ready - second.started;
    second.stop()?;
    ovn.ensure_alive()?;

    let mut f = Figures::new();
    f.put("nodes", bench.nodes);
    f.put("pods", bench.pods);
    f.seconds("create_s", create_time);
    f.seconds("converge_s", converge);
    f.real(
        "pods_per_sec",
        bench.pods as f64 / converge.as_secs_f64().max(1e-9),
    );
    f.put(
        "converge_nb_txns",
        records_before_restart
            .rovn
            .saturating_sub(records_at_start.rovn),
    );
    if let Some(latencies) = &latencies {
        let (routed, nb) = latencies.percentiles();
        f.put("latency_pods", bench.latency_pods);
        if let Some(p) = routed {
            f.real("pod_routed_p50_ms", p.p50_ms);
            f.real("pod_routed_p99_ms", p.p99_ms);
        }
        if let Some(p) = nb {
            f.real("pod_nb_p50_ms", p.p50_ms);
            f.real("pod_nb_p99_ms", p.p99_ms);
        }
    }
    f.seconds("first_start_ready_s", first_ready - first_started);
    if let Some(ms) = first_logged {
        f.real("first_start_ready_log_ms", ms);
    }
    f.seconds("restart_ready_s", restart_ready);
    if let Some(ms) = second_logged {
        f.real("restart_ready_log_ms", ms);
    }
    f.put(
        "restart_nb_writes",
        records_after_restart
            .rovn
            .saturating_sub(records_before_restart.rovn),
    );
    // Everything committed over the restart, ovn-northd's writes (ports' `up`) included.
    f.put(
        "restart_nb_records",
        records_after_restart
            .all
            .saturating_sub(records_before_restart.all),
    );
    f.real("peak_rss_mb", kib_to_mib(first_peak.max(second_peak)));
    f.real("first_run_peak_rss_mb", kib_to_mib(first_peak));
    f.real("restart_peak_rss_mb", kib_to_mib(second_peak));
    if bench.keep {
        f.put("dir", dir.display());
    }
    // Clients before the servers they talk to, so nothing logs a lost session.
    drop(lsps);
    drop(client);
    drop(api);
    drop(ovn);
    Ok(f)
}

/// Runs `work`, failing early when `alive` reports a dead process (checked every 200 ms).
async fn while_alive<T>(
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

/// Waits until NB has committed no transaction for [`QUIET_FOR`], so that a phase's writes
/// (the controller's, and ovn-northd's follow-ups such as ports' `up`) are all in; returns the
/// record counts then.
async fn wait_for_quiet_nb(
    ovn: &central::ScratchCentral,
    records: &mut RecordCounter,
    timeout: Duration,
) -> Result<Records, BenchError> {
    let deadline = Instant::now() + timeout;
    let mut last = records.count()?;
    let mut quiet_since = Instant::now();
    loop {
        tokio::time::sleep(QUIET_POLL).await;
        let now = records.count()?;
        if now != last {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= QUIET_FOR {
            return Ok(now);
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout {
                what: "NB to stop committing transactions".into(),
                detail: format!("{} records in {}", last.all, ovn.nb_db.display()),
            });
        }
    }
}
