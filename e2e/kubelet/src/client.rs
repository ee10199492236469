//! API clients from a kubeconfig file, as both binaries and the tests need them.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Reading the kubeconfig or building the client failed; names the file.
#[derive(Debug, thiserror::Error)]
#[error("kubeconfig {path}: {reason}")]
pub struct ClientError {
    path: String,
    reason: String,
}

/// A client for the cluster and user of the kubeconfig's current context.
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client, ClientError> {
    let err = |reason: String| ClientError {
        path: path.display().to_string(),
        reason,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    Client::try_from(config).map_err(|e| err(e.to_string()))
}

/// Sets up logging to `log_file` (appending) or stderr, filtered by `RUST_LOG` (default info).
pub fn init_logging(log_file: Option<&Path>) -> std::io::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match log_file {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => {
            use std::io::IsTerminal;
            // Daemons' stderr is usually a log file: colour codes only for a terminal.
            let ansi = std::io::stderr().is_terminal();
            builder.with_ansi(ansi).with_writer(std::io::stderr).init()
        }
    }
    Ok(())
}
