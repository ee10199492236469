//! Finding and running plugin executables: the only process I/O of the CNI runtime.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::CniError;

/// The first executable file named `plugin_type` in `dirs`, searched in order as `CNI_PATH` is.
pub fn find_plugin(plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, CniError> {
    use std::os::unix::fs::PermissionsExt;
    dirs.iter()
        .map(|d| d.join(plugin_type))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| CniError::PluginNotFound {
            plugin: plugin_type.to_owned(),
            path: dirs.to_vec(),
        })
}

/// What a finished plugin process produced.
#[derive(Debug)]
pub struct RawOutput {
    /// Exit status 0.
    pub success: bool,
    /// Everything it printed on stdout (the protocol channel).
    pub stdout: Vec<u8>,
    /// Its diagnostics.
    pub stderr: Vec<u8>,
}

/// Runs one plugin with the runtime's environment plus `env`, feeding `stdin` and collecting
/// stdout and stderr concurrently so a chatty plugin cannot dead-lock on a full pipe. A plugin
/// that outlives `timeout` is killed.
pub async fn run_plugin(
    exe: &Path,
    plugin: &str,
    verb: &'static str,
    env: &[(String, String)],
    stdin: Vec<u8>,
    timeout: Duration,
) -> Result<RawOutput, CniError> {
    let io = |what: &str| {
        let what = format!("{what} plugin {} ({verb})", exe.display());
        move |source| CniError::Io { what, source }
    };
    let mut child = tokio::process::Command::new(exe)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(io("starting"))?;
    let mut pipe = child.stdin.take();
    let feed = async move {
        if let Some(p) = pipe.as_mut() {
            // A plugin may exit without reading its config; a broken pipe is then not our error.
            let _ = p.write_all(&stdin).await;
            let _ = p.shutdown().await;
        }
        drop(pipe);
    };
    let run = async {
        let (_, out) = tokio::join!(feed, child.wait_with_output());
        out
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(out) => {
            let out = out.map_err(io("waiting for"))?;
            Ok(RawOutput {
                success: out.status.success(),
                stdout: out.stdout,
                stderr: out.stderr,
            })
        }
        Err(_) => Err(CniError::Timeout {
            plugin: plugin.to_owned(),
            verb,
            secs: timeout.as_secs(),
        }),
    }
}
