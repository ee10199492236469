//! `rovn-bench controller`: the controller from an empty NB to 10,000 routed pods, then a
//! restart on the converged cluster, and pods created one at a time on it ([`super::pod_latency`]).
//!
//! Everything runs privately in a scratch directory: the test API server on a free loopback
//! port, NB + SB + ovn-northd on unix sockets, the controller without leader election. The
//! benchmark watches (never polls) the pods' `routed` annotation and the NB ports, and counts
//! committed NB transactions in the standalone database file.

use std::collections::BTreeSet;
use std::time::Duration;

use rovn_api::names::{self, annotations};

use super::controller_proc::ControllerRun;
use super::error::BenchError;
use super::figures::Figures;
use super::lsp_watch::LspWatch;
use super::nb_log::RecordCounter;
use super::objects;
use super::pod_latency::{self, LatencyRun};
use super::pod_watch::wait_for_annotation;
use super::procs::kib_to_mib;
use super::stage::{NAMESPACE, Stage, StageSpec, wait_for_quiet_nb, while_alive};

/// What to run.
#[derive(Debug, Clone)]
pub struct ControllerBench {
    /// The cluster: nodes and pods.
    pub stage: StageSpec,
    /// Pods created one at a time after convergence, for the latency of one pod on a big
    /// cluster (0 skips the phase).
    pub latency_pods: usize,
    /// The time between two of those creates.
    pub latency_gap: Duration,
    /// Bound on each wait (convergence, readiness).
    pub timeout: Duration,
}

/// Runs the benchmark and returns its figures; everything started is stopped on return, on
/// error, and when the returned future is dropped (Ctrl-C).
pub async fn run(bench: &ControllerBench) -> Result<Figures, BenchError> {
    let stage = Stage::start(&bench.stage).await?;
    let Stage {
        ovn,
        api,
        client,
        launch,
        node_names,
        pod_names,
        create_time,
        ..
    } = &stage;
    let expected_ports: BTreeSet<String> = pod_names
        .iter()
        .map(|p| names::pod_port(NAMESPACE, p))
        .collect();
    let mut lsps = LspWatch::start(&ovn.nb_remote(), bench.timeout).await?;
    let mut nb_records = RecordCounter::new(&ovn.nb_db);
    let records_at_start = wait_for_quiet_nb(ovn, &mut nb_records, bench.timeout).await?;

    let first = ControllerRun::start(launch)?;
    let converged = async {
        tokio::try_join!(
            first.wait_ready(bench.timeout),
            wait_for_annotation(
                client,
                NAMESPACE,
                annotations::ROUTED,
                "true",
                bench.stage.pods,
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
    wait_for_quiet_nb(ovn, &mut nb_records, bench.timeout).await?;
    let latency_run = LatencyRun {
        namespace: NAMESPACE.to_string(),
        pods: (bench.stage.pods..bench.stage.pods + bench.latency_pods)
            .map(objects::pod_name)
            .collect(),
        nodes: (bench.stage.pods..bench.stage.pods + bench.latency_pods)
            .map(|i| {
                objects::node_of_pod(i, node_names)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect(),
        gap: bench.latency_gap,
        timeout: bench.timeout,
    };
    let latencies = if bench.latency_pods > 0 {
        let measured = while_alive(
            pod_latency::measure(client, &ovn.nb_remote(), &latency_run),
            || {
                first.ensure_alive()?;
                api.ensure_alive()?;
                ovn.ensure_alive()
            },
        )
        .await?;
        wait_for_quiet_nb(ovn, &mut nb_records, bench.timeout).await?;
        Some(measured)
    } else {
        None
    };
    let first_peak = first.peak_rss_kib()?;
    let first_logged = first.logged_ready_ms();
    let first_started = first.started;
    first.stop()?;
    let records_before_restart = nb_records.count()?;

    let second = ControllerRun::start(launch)?;
    let second_ready = second.wait_ready(bench.timeout).await?;
    let records_after_restart = wait_for_quiet_nb(ovn, &mut nb_records, bench.timeout).await?;
    let second_peak = second.peak_rss_kib()?;
    let second_logged = second.logged_ready_ms();
    let restart_ready = second_ready - second.started;
    second.stop()?;
    ovn.ensure_alive()?;

    let mut f = Figures::new();
    f.put("nodes", bench.stage.nodes);
    f.put("pods", bench.stage.pods);
    f.seconds("create_s", *create_time);
    f.seconds("converge_s", converge);
    f.real(
        "pods_per_sec",
        bench.stage.pods as f64 / converge.as_secs_f64().max(1e-9),
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
    if stage.keep {
        f.put("dir", stage.dir.display());
    }
    // Clients before the servers they talk to, so nothing logs a lost session.
    drop(lsps);
    drop(stage);
    Ok(f)
}
