//! Starting the API server, kubelet and scheduler as processes for the integration tests, with
//! guards that stop them even when a test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Kills (SIGKILL) and reaps its process on drop.
pub struct ProcessGuard {
    pub name: String,
    child: Child,
}

impl ProcessGuard {
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Self, BoxError> {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    /// Fails when the process has already exited (it should run until dropped).
    pub fn ensure_running(&mut self) -> Result<(), BoxError> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(st) => Err(format!("{} exited early: {st}", self.name).into()),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the test finds `rovn-kubesim`: `$ROVN_KUBESIM`, else next to this package's binaries
/// (same target dir; build it with `cargo build -p rovn-kubesim`).
pub fn kubesim_binary() -> Result<PathBuf, BoxError> {
    if let Ok(p) = std::env::var("ROVN_KUBESIM") {
        return Ok(PathBuf::from(p));
    }
    let kubelet = PathBuf::from(env!("CARGO_BIN_EXE_rovn-kubelet"));
    let candidate = kubelet
        .parent()
        .map(|d| d.join("rovn-kubesim"))
        .ok_or("no target dir")?;
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(format!(
            "{} not built: run `CARGO_TARGET_DIR=<same target dir> cargo build -p rovn-kubesim` \
             first, or set ROVN_KUBESIM",
            candidate.display()
        )
        .into())
    }
}

/// A kubeconfig for a plain-HTTP server with no auth.
pub fn write_kubeconfig(path: &Path, server: &str) -> std::io::Result<()> {
    let doc = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "sim", "cluster": {"server": format!("http://{server}")}}],
        "users": [{"name": "test", "user": {}}],
        "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "test"}}],
        "current-context": "sim"
    });
    std::fs::write(path, doc.to_string())
}

/// Starts `rovn-kubesim` with the given listeners and returns it with the bound addresses, in
/// listener order, once its ready file appears.
pub fn start_kubesim(
    dir: &Path,
    listeners: &[String],
) -> Result<(ProcessGuard, Vec<String>), BoxError> {
    let bin = kubesim_binary()?;
    let ready = dir.join("kubesim-ready.json");
    let mut cmd = Command::new(bin);
    for l in listeners {
        cmd.arg("--listen").arg(l);
    }
    cmd.arg("--ready-file")
        .arg(&ready)
        .arg("--log-file")
        .arg(dir.join("kubesim.log"));
    let mut guard = ProcessGuard::spawn("rovn-kubesim", &mut cmd)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(bytes) = std::fs::read(&ready)
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
        {
            let addrs: Vec<String> = v["listen"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if addrs.len() == listeners.len() {
                return Ok((guard, addrs));
            }
        }
        guard.ensure_running()?;
        if Instant::now() > deadline {
            return Err("rovn-kubesim not ready after 15s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` every 100 ms until it yields a value or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T, BoxError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let found = rovn_testkit::wait::until_async(timeout, what, async || {
        Ok::<_, std::convert::Infallible>(check().await)
    });
    Ok(found.await?)
}
