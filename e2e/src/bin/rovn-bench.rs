//! `rovn-bench`: runs one benchmark and prints its figures as `key=value` lines on stdout.
//! Progress and errors go to stderr. Ctrl-C or SIGTERM stops everything the run started.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rovn_e2e::bench::{self, BenchError, Figures};

/// rovn benchmarks (run as root; they start OVN, the test API server and rovn).
#[derive(Debug, Parser)]
#[command(name = "rovn-bench", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

/// The loaded cluster the controller benchmarks run on, and how long they wait.
#[derive(Debug, clap::Args)]
struct StageArgs {
    /// Node objects to create.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Pods to create, bound round robin to the nodes.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Create requests in flight at once.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Bound on each wait, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Keep the scratch directory (databases, logs) and print its path.
    #[arg(long)]
    keep: bool,
    /// Where rovn-kubesim and rovn-controller are (default: next to rovn-bench, or
    /// $ROVN_BIN_DIR).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

impl StageArgs {
    fn spec(self) -> (bench::stage::StageSpec, Duration) {
        let spec = bench::stage::StageSpec {
            nodes: self.nodes,
            pods: self.pods,
            in_flight: self.in_flight,
            keep: self.keep,
            bin_dir: self.bin_dir,
        };
        (spec, Duration::from_secs(self.timeout))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// rovn-controller from an empty NB to every pod routed, then a restart, and one pod at a time on the converged cluster.
    Controller {
        #[command(flatten)]
        stage: StageArgs,
        /// After convergence, pods created one at a time for the latency of one pod on a big
        /// cluster (0 skips it).
        #[arg(long, default_value_t = 200)]
        latency_pods: usize,
        /// Milliseconds between two of those creates.
        #[arg(long, default_value_t = 50)]
        latency_gap_ms: u64,
    },
    /// Service load balancers on top of a loaded cluster: every VIP in NB, EndpointSlice
    /// changes one at a time, NB/SB sizes, a restart.
    Services {
        #[command(flatten)]
        stage: StageArgs,
        /// Services, each with one EndpointSlice.
        #[arg(long, default_value_t = 1000)]
        services: usize,
        /// Endpoints per Service.
        #[arg(long, default_value_t = 5)]
        endpoints: usize,
        /// EndpointSlice changes measured one at a time.
        #[arg(long, default_value_t = 200)]
        updates: usize,
        /// Milliseconds between two of them.
        #[arg(long, default_value_t = 50)]
        update_gap_ms: u64,
    },
    /// NetworkPolicy on top of a loaded cluster: every policy's rows in NB, NB/SB sizes beside
    /// a naive layout, policy edits and pod label changes one at a time, a restart.
    Netpol {
        #[command(flatten)]
        stage: StageArgs,
        /// Namespaces the pods and policies are spread over.
        #[arg(long, default_value_t = 100)]
        namespaces: usize,
        /// NetworkPolicies (a mix of eight kinds).
        #[arg(long, default_value_t = 500)]
        policies: usize,
        /// Policy edits (a port or a namespace selector) measured one at a time.
        #[arg(long, default_value_t = 100)]
        policy_edits: usize,
        /// Pod label changes (into or out of a peer selector) measured one at a time.
        #[arg(long, default_value_t = 100)]
        label_changes: usize,
        /// Milliseconds between two changes.
        #[arg(long, default_value_t = 50)]
        change_gap_ms: u64,
    },
    /// Pod network-ready latency (CNI ADD) beside the OVN floor, interleaved, on a lab.
    PodReady {
        /// Lab nodes.
        #[arg(long, default_value_t = 2)]
        nodes: u8,
        /// Pods, bound round robin to the nodes.
        #[arg(long, default_value_t = 200)]
        pods: usize,
        /// CNI ADDs and floor plugs (interleaved, together) in flight per node.
        #[arg(long, default_value_t = 8)]
        per_node: usize,
        /// Floor ports (default: as many as pods).
        #[arg(long)]
        floor_ports: Option<usize>,
        /// Bound on bringing the lab up and on each wait, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Where the project's binaries are (default: next to rovn-bench, or $ROVN_BIN_DIR).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rovn-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_interruptible(args.command)) {
        Ok(figures) => {
            for line in figures.lines() {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rovn-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark until it ends or a signal arrives; on a signal the benchmark's future
/// is dropped, and with it every guard of what it started.
async fn run_interruptible(command: Command) -> Result<Figures, BenchError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| BenchError::io("install a handler for", "SIGTERM", e))?;
    tokio::select! {
        result = run(command) => result,
        _ = tokio::signal::ctrl_c() => interrupted(),
        _ = term.recv() => interrupted(),
    }
}

fn interrupted() -> Result<Figures, BenchError> {
    // No lab part is made any more; what exists is torn down by the dropped guards.
    rovn_e2e::lab::cancel::cancel();
    Err(BenchError::Interrupted)
}

async fn run(command: Command) -> Result<Figures, BenchError> {
    match command {
        Command::Controller {
            stage,
            latency_pods,
            latency_gap_ms,
        } => {
            let (stage, timeout) = stage.spec();
            bench::controller::run(&bench::controller::ControllerBench {
                stage,
                latency_pods,
                latency_gap: Duration::from_millis(latency_gap_ms),
                timeout,
            })
            .await
        }
        Command::Services {
            stage,
            services,
            endpoints,
            updates,
            update_gap_ms,
        } => {
            let (stage, timeout) = stage.spec();
            bench::services::run(&bench::services::ServicesBench {
                stage,
                services,
                endpoints,
                updates,
                update_gap: Duration::from_millis(update_gap_ms),
                timeout,
            })
            .await
        }
        Command::Netpol {
            stage,
            namespaces,
            policies,
            policy_edits,
            label_changes,
            change_gap_ms,
        } => {
            let (stage, timeout) = stage.spec();
            bench::netpol::run(&bench::netpol::NetpolBench {
                stage,
                namespaces,
                policies,
                policy_edits,
                label_changes,
                change_gap: Duration::from_millis(change_gap_ms),
                timeout,
            })
            .await
        }
        Command::PodReady {
            nodes,
            pods,
            per_node,
            floor_ports,
            timeout,
            bin_dir,
        } => {
            bench::pod_ready::run(&bench::pod_ready::PodReadyBench {
                nodes,
                pods,
                per_node,
                floor_ports,
                timeout: Duration::from_secs(timeout),
                bin_dir,
            })
            .await
        }
    }
}
