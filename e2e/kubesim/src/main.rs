//! `rovn-kubesim`: runs the test API server until SIGTERM/SIGINT.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use ipnet::Ipv4Net;
use rovn_kubesim::{Config, ListenSpec};

/// The lab's Kubernetes API server stand-in (plain HTTP, no auth).
#[derive(Debug, Parser)]
#[command(name = "rovn-kubesim", version)]
struct Args {
    /// Listen address `[NETNS@]IP:PORT`; NETNS is a name under /run/netns. Repeatable.
    #[arg(long = "listen", default_value = "127.0.0.1:0")]
    listen: Vec<ListenSpec>,
    /// Write `{"listen":[...bound addresses...]}` here (atomically) once serving.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Service ClusterIP range.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: Ipv4Net,
    /// Append logs here instead of stderr.
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// Change events kept for resuming watches.
    #[arg(long, default_value_t = 100_000)]
    watch_history: usize,
    /// Events a live watcher may fall behind before it gets 410 Expired.
    #[arg(long, default_value_t = 65_536)]
    watcher_buffer: usize,
    /// Address published as the endpoints of the `kubernetes` Service (default: the
    /// first non-loopback listener, e.g. the lab's 172.30.0.1:6443).
    #[arg(long)]
    advertise_address: Option<std::net::SocketAddr>,
    /// Network namespace (a name under /run/netns) the pod proxy connects from, where pod
    /// addresses are reachable; default: this process's own.
    #[arg(long, value_parser = netns_name)]
    proxy_netns: Option<String>,
    /// Seconds between BOOKMARK events on watches that allow them.
    #[arg(long, default_value_t = 30)]
    bookmark_seconds: u64,
}

fn netns_name(s: &str) -> Result<String, String> {
    if rovn_kubesim::listen::is_netns_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a network namespace name"))
    }
}

fn init_logging(log_file: Option<&Path>) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log file {}", path.display()))?;
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => {
            use std::io::IsTerminal;
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .init()
        }
    }
    Ok(())
}

fn write_ready_file(path: &Path, addrs: &[std::net::SocketAddr]) -> Result<()> {
    let listen: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let body = serde_json::json!({ "listen": listen }).to_string();
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(body.as_bytes())
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    init_logging(args.log_file.as_deref())?;
    let config = Config {
        listen: args.listen,
        service_cidr: args.service_cidr,
        watch_history: args.watch_history,
        watcher_buffer: args.watcher_buffer,
        bookmark_interval: Duration::from_secs(args.bookmark_seconds.max(1)),
        advertise: args.advertise_address,
        proxy_netns: args.proxy_netns,
    };
    let mut server = rovn_kubesim::start(config)
        .await
        .context("starting rovn-kubesim")?;
    if let Some(path) = &args.ready_file {
        write_ready_file(path, server.addrs())?;
    }
    wait_for_signal().await?;
    tracing::info!("shutting down");
    server.stop();
    Ok(())
}
