//! `rovn-scheduler`: binds unscheduled pods to Ready nodes, round robin.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use rovn_kubelet::scheduler::{self, SchedulerConfig};

/// The lab's scheduler: binds pods with no node to Ready nodes (round robin over nodes sorted
/// by name, honouring nodeSelector) through the pods/binding subresource.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Kubeconfig to reach the API server.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Binds in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Log here instead of stderr.
    #[arg(long)]
    log_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    rovn_kubelet::client::init_logging(args.log_file.as_deref())
        .with_context(|| format!("opening log file {:?}", args.log_file))?;
    let client = rovn_kubelet::client::client_from_kubeconfig(&args.kubeconfig).await?;
    let config = SchedulerConfig {
        concurrency: args.concurrency.max(1),
        ..SchedulerConfig::default()
    };
    tracing::info!(concurrency = config.concurrency, "rovn-scheduler starting");
    tokio::select! {
        r = scheduler::run(client, config) => r.context("scheduler stopped"),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = terminate() => Ok(()),
    }
}

async fn terminate() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
