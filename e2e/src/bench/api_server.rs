//! A private test API server (`rovn-kubesim`) on a free loopback port, with a kubeconfig for
//! it, for the controller benchmark.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::lab::daemon::DaemonSpec;
use crate::lab::{kube as lab_kube, poll};

use super::error::BenchError;
use super::procs::Running;

/// The running API server; stopped when dropped.
#[derive(Debug)]
pub struct ScratchApiServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A kubeconfig pointing at it.
    pub kubeconfig: PathBuf,
    process: Running,
}

impl ScratchApiServer {
    /// An error with the log tail if the server has exited.
    pub fn ensure_alive(&self) -> Result<(), BenchError> {
        self.process.ensure_alive()
    }
}

/// Starts `program` (rovn-kubesim) with its files in `dir` and waits until it serves.
pub fn start(
    program: &Path,
    dir: &Path,
    deadline: Instant,
) -> Result<ScratchApiServer, BenchError> {
    let ready_file = dir.join("kubesim-ready.json");
    let process = Running::start(&DaemonSpec {
        label: "bench/rovn-kubesim".into(),
        netns: None,
        program: program.to_path_buf(),
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--ready-file".into(),
            ready_file.clone().into(),
        ],
        env: vec![],
        pidfile: dir.join("rovn-kubesim.pid"),
        log_file: dir.join("rovn-kubesim.log"),
        writes_own_pidfile: false,
    })?;
    let found = poll::until(deadline, poll::INTERVAL, || {
        match std::fs::read_to_string(&ready_file) {
            Ok(text) => Ok(Some(lab_kube::parse_ready_file(&text)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                process.ensure_alive().map(|_| None)
            }
            Err(e) => Err(BenchError::io("read", &ready_file, e)),
        }
    })?;
    let addr = found.ok_or_else(|| BenchError::Timeout {
        what: "rovn-kubesim to serve".into(),
        detail: format!("no {} yet", ready_file.display()),
    })?;
    let kubeconfig = dir.join("kubeconfig");
    let text = lab_kube::render_kubeconfig("rovn-bench", &format!("http://{addr}"));
    std::fs::write(&kubeconfig, text).map_err(|e| BenchError::io("write", &kubeconfig, e))?;
    Ok(ScratchApiServer {
        addr,
        kubeconfig,
        process,
    })
}

/// A client for the cluster of a kubeconfig file.
pub async fn client(kubeconfig: &Path) -> Result<kube::Client, BenchError> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let what = format!("kubeconfig {}", kubeconfig.display());
    let parsed = Kubeconfig::read_from(kubeconfig)
        .map_err(|e| BenchError::protocol(what.clone(), e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
        .await
        .map_err(|e| BenchError::protocol(what.clone(), e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| BenchError::kube(what, e))
}
