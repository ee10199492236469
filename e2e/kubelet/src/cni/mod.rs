//! A CNI 1.1 runtime that drives plugins exactly as libcni (containerd, CRI-O) does: conflist
//! loading, plugin lookup in `CNI_PATH`, the `CNI_*` environment, `prevResult` chaining, the
//! result cache, DEL in reverse order, CHECK, STATUS and GC. Pure parts (config, environment,
//! output interpretation, versions) are separate from process execution and the disk cache.

pub mod cache;
pub mod config;
pub mod exec;
pub mod invocation;
pub mod output;
pub mod runtime;
pub mod version;

use std::path::PathBuf;

pub use config::{CapabilityArgs, NetworkConfigList, load_first_conflist};
pub use invocation::{AttachmentTarget, Verb, kubernetes_args, split_path_list};
pub use output::{PluginErrorObject, result_ips};
pub use runtime::CniRuntime;

/// Why a CNI operation failed; every variant names the plugin, file or network concerned.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The conflist is not usable.
    #[error("invalid CNI config {}: {reason}", source_file.display())]
    InvalidConfig {
        /// The conflist file.
        source_file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The config directory holds no `*.conflist`: the network is not ready.
    #[error("no *.conflist in CNI config dir {}", .0.display())]
    NoConfig(PathBuf),
    /// The plugin executable is in none of the bin dirs.
    #[error("failed to find plugin {plugin:?} in path {}", path_list(.path))]
    PluginNotFound {
        /// The plugin type.
        plugin: String,
        /// The searched directories.
        path: Vec<PathBuf>,
    },
    /// The plugin answered with a CNI error object.
    #[error("plugin type={plugin:?} failed ({verb}): {error}")]
    Plugin {
        /// The plugin type.
        plugin: String,
        /// The CNI command.
        verb: &'static str,
        /// The error object the plugin printed.
        error: PluginErrorObject,
    },
    /// The plugin failed without an error object.
    #[error("plugin type={plugin:?} failed ({verb}): {output}")]
    PluginFailed {
        /// The plugin type.
        plugin: String,
        /// The CNI command.
        verb: &'static str,
        /// What it printed (stdout, else stderr).
        output: String,
    },
    /// The plugin did not finish in time and was killed.
    #[error("plugin type={plugin:?} timed out after {secs}s ({verb})")]
    Timeout {
        /// The plugin type.
        plugin: String,
        /// The CNI command.
        verb: &'static str,
        /// The time limit.
        secs: u64,
    },
    /// ADD succeeded without printing a result, which the spec forbids.
    #[error("plugin type={plugin:?} returned no result for ADD")]
    MissingResult {
        /// The plugin type.
        plugin: String,
    },
    /// The list's version predates the verb.
    #[error("network {network:?}: cniVersion {version} does not support {verb}")]
    Unsupported {
        /// The network name.
        network: String,
        /// The list's version.
        version: String,
        /// The CNI command.
        verb: &'static str,
    },
    /// CHECK needs the result of the ADD, which is not cached.
    #[error("network {network:?}: no cached result for container {container_id} ({ifname})")]
    NoCachedResult {
        /// The network name.
        network: String,
        /// The sandbox id.
        container_id: String,
        /// The interface name.
        ifname: String,
    },
    /// File or process I/O failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file or plugin.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl CniError {
    /// The plugin's error object, when the failure came with one (its `code` matters to callers:
    /// e.g. 11 = try again later).
    pub fn plugin_error(&self) -> Option<&PluginErrorObject> {
        match self {
            CniError::Plugin { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn path_list(path: &[PathBuf]) -> String {
    let parts: Vec<String> = path.iter().map(|p| p.display().to_string()).collect();
    format!("[{}]", parts.join(" "))
}
