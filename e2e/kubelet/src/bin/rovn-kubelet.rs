//! `rovn-kubelet`: the lab's kubelet for one node. Runs inside the node's network namespace.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rovn_kubelet::cni::split_path_list;
use rovn_kubelet::kubelet::{KubeletConfig, KubeletContext};
use rovn_kubelet::node::NodeIdentity;
use rovn_kubelet::sandbox::{self, MountNamespaceChoice};

/// The lab's kubelet: registers the node, runs pods bound to it in sandbox network namespaces
/// wired by the CNI plugins of --cni-conf-dir, reports their status.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Name of this node's Node object.
    #[arg(long)]
    node_name: String,
    /// The node's InternalIP.
    #[arg(long)]
    node_ip: std::net::IpAddr,
    /// Kubeconfig to reach the API server.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Prefix of the lab's namespaces (`rl-NAME-`); sandboxes are `<prefix>p<uid12>`.
    #[arg(long)]
    netns_prefix: String,
    /// Directory whose first `*.conflist` (lexically) is the pod network.
    #[arg(long)]
    cni_conf_dir: PathBuf,
    /// Plugin directories, `DIR[:DIR...]` (becomes CNI_PATH).
    #[arg(long)]
    cni_bin_dir: String,
    /// Cached CNI results, sandbox records and container logs.
    #[arg(long)]
    state_dir: PathBuf,
    /// Log here instead of stderr.
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// Address of the kubelet's server (exec, container logs); all of the node's, as the real
    /// kubelet's default.
    #[arg(long, default_value = "0.0.0.0")]
    address: std::net::IpAddr,
    /// Port of the kubelet's server, published in the Node's `status.daemonEndpoints` for the
    /// API server (which connects to the node's InternalIP).
    #[arg(long, default_value_t = rovn_kubelet::streaming::server::DEFAULT_PORT)]
    port: u16,
    /// Node status and lease renewal period in seconds.
    #[arg(long, default_value_t = 10)]
    heartbeat_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Must happen while the process has a single thread.
    let mount_ns = sandbox::join_shared_mount_namespace();
    rovn_kubelet::client::init_logging(args.log_file.as_deref())
        .with_context(|| format!("opening log file {:?}", args.log_file))?;
    match &mount_ns {
        MountNamespaceChoice::AlreadyShared => {}
        MountNamespaceChoice::JoinedParent(pid) => tracing::info!(
            "joined the mount namespace of parent {pid} so sandbox namespaces are visible system-wide"
        ),
        MountNamespaceChoice::StillPrivate(why) => tracing::warn!(
            "private mount namespace ({why}): sandbox namespaces will not be visible outside this kubelet"
        ),
    }
    let bin_dirs = split_path_list(&args.cni_bin_dir);
    anyhow::ensure!(!bin_dirs.is_empty(), "--cni-bin-dir names no directory");
    anyhow::ensure!(
        !args.netns_prefix.is_empty() && !args.netns_prefix.contains('/'),
        "--netns-prefix must be a non-empty name prefix"
    );
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating state dir {}", args.state_dir.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let client = rovn_kubelet::client::client_from_kubeconfig(&args.kubeconfig).await?;
        // Bound before registering, so the published port is served once the node is seen.
        let server_addr = std::net::SocketAddr::new(args.address, args.port);
        let listener = tokio::net::TcpListener::bind(server_addr)
            .await
            .with_context(|| format!("binding the kubelet server on {server_addr}"))?;
        let config = KubeletConfig {
            node: NodeIdentity {
                name: args.node_name.clone(),
                ip: args.node_ip.to_string(),
                kubelet_port: args.port,
            },
            netns_prefix: args.netns_prefix.clone(),
            cni_conf_dir: args.cni_conf_dir.clone(),
            cni_bin_dirs: bin_dirs,
            state_dir: args.state_dir.clone(),
            own_dir: std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(PathBuf::from)),
            heartbeat: Duration::from_secs(args.heartbeat_seconds.max(1)),
        };
        tracing::info!(node = %args.node_name, "rovn-kubelet starting");
        let ctx = Arc::new(KubeletContext::new(config, client));
        tracing::info!(addr = %server_addr, "kubelet server (exec, containerLogs) listening");
        tokio::spawn(rovn_kubelet::streaming::server::serve(
            listener,
            ctx.streaming(),
        ));
        tokio::select! {
            r = rovn_kubelet::kubelet::run(ctx) => r.context("kubelet stopped"),
            _ = shutdown_signal() => {
                tracing::info!("signal received, exiting (pods keep running)");
                Ok(())
            }
        }
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
