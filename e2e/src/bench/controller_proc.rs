//! One run of `rovn-controller` as the controller benchmark drives it: started with the fixed
//! command line of contracts.md, ready once `/readyz` answers 200, and measured (peak RSS,
//! the `ready after X ms` it logs).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::lab::daemon::DaemonSpec;
use crate::lab::kube::http_get;

use super::error::BenchError;
use super::procs::{Running, peak_rss_kib};

/// How often `/readyz` is asked; short, as it bounds the precision of the ready time.
const READYZ_INTERVAL: Duration = Duration::from_millis(5);

/// Where and how to start the controller.
#[derive(Debug, Clone)]
pub struct ControllerLaunch {
    /// The `rovn-controller` executable.
    pub program: PathBuf,
    /// `--nb-remote`.
    pub nb_remote: String,
    /// `--kubeconfig`.
    pub kubeconfig: PathBuf,
    /// The directory for its pidfile and log.
    pub dir: PathBuf,
}

/// A running controller; stopped (SIGTERM) when dropped.
#[derive(Debug)]
pub struct ControllerRun {
    process: Running,
    /// Its `--listen` address.
    pub listen: SocketAddr,
    /// When it was spawned.
    pub started: Instant,
    /// Its log file.
    pub log_file: PathBuf,
    /// The log's length at start: this run's lines follow it.
    log_offset: u64,
}

impl ControllerRun {
    /// Starts the controller on a free loopback port without leader election.
    pub fn start(launch: &ControllerLaunch) -> Result<ControllerRun, BenchError> {
        let listen = free_loopback_port()?;
        let log_file = launch.dir.join("rovn-controller.log");
        let log_offset = std::fs::metadata(&log_file).map(|m| m.len()).unwrap_or(0);
        let spec = DaemonSpec {
            label: "bench/rovn-controller".into(),
            netns: None,
            program: launch.program.clone(),
            args: vec![
                "--leader-elect".into(),
                "false".into(),
                "--nb-remote".into(),
                launch.nb_remote.clone().into(),
                "--kubeconfig".into(),
                launch.kubeconfig.clone().into(),
                "--listen".into(),
                listen.to_string().into(),
                "--log-format".into(),
                "text".into(),
            ],
            env: vec![],
            pidfile: launch.dir.join("rovn-controller.pid"),
            log_file: log_file.clone(),
            writes_own_pidfile: false,
        };
        let started = Instant::now();
        let process = Running::start(&spec)?;
        Ok(ControllerRun {
            process,
            listen,
            started,
            log_file,
            log_offset,
        })
    }

    /// An error with the log tail if the controller has exited.
    pub fn ensure_alive(&self) -> Result<(), BenchError> {
        self.process.ensure_alive()
    }

    /// Waits until `/readyz` answers 200; returns when.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Instant, BenchError> {
        let deadline = Instant::now() + timeout;
        let addr = self.listen;
        loop {
            self.ensure_alive()?;
            let answered = tokio::task::spawn_blocking(move || http_get(addr, "/readyz")).await;
            if matches!(&answered, Ok(Ok(body)) if body.trim() == crate::lab::rovn::READY_LEADING) {
                return Ok(Instant::now());
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout {
                    what: format!("rovn-controller /readyz at {addr}"),
                    detail: format!("see {}", self.log_file.display()),
                });
            }
            tokio::time::sleep(READYZ_INTERVAL).await;
        }
    }

    /// The controller's peak RSS so far, in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64, BenchError> {
        let pid = self
            .process
            .pid()
            .ok_or_else(|| BenchError::protocol("read the controller's RSS", "it was stopped"))?;
        peak_rss_kib(pid)
    }

    /// The value of the unlabelled sample `name` (e.g. `rovn_controller_reconcile_duration_seconds_sum`)
    /// on the controller's `/metrics`: how much of its time rounds took.
    pub async fn metric(&self, name: &str) -> Result<Option<f64>, BenchError> {
        let addr = self.listen;
        let text = tokio::task::spawn_blocking(move || http_get(addr, "/metrics"))
            .await
            .map_err(|e| BenchError::protocol("read the controller's /metrics", e.to_string()))??;
        Ok(sample(&text, name))
    }

    /// The `ready after X ms` figure this run logged, if it did.
    pub fn logged_ready_ms(&self) -> Option<f64> {
        let text = read_from(&self.log_file, self.log_offset)?;
        ready_ms_from_log(&text)
    }

    /// SIGTERM, and waits until it has exited (SIGKILL after the grace period).
    pub fn stop(mut self) -> Result<(), BenchError> {
        self.process.stop()
    }
}

fn read_from(path: &Path, offset: u64) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let start = usize::try_from(offset).ok()?.min(bytes.len());
    Some(String::from_utf8_lossy(&bytes[start..]).into_owned())
}

/// The first `ready after` figure of a controller log, in milliseconds: the `ready_ms` field
/// if the line has one, else the number in `ready after X ms`.
pub fn ready_ms_from_log(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.contains("ready after"))?;
    let field = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ready_ms="))
        .and_then(|v| v.trim_matches('"').parse().ok());
    field.or_else(|| {
        let (_, after) = line.split_once("ready after")?;
        after.split_whitespace().next()?.parse().ok()
    })
}

/// The value of the unlabelled sample `name` in a Prometheus text exposition. Pure.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// A loopback address nobody listens on right now (bound, then released).
pub fn free_loopback_port() -> Result<SocketAddr, BenchError> {
    let probe =
        TcpListener::bind("127.0.0.1:0").map_err(|e| BenchError::io("bind", "127.0.0.1:0", e))?;
    probe
        .local_addr()
        .map_err(|e| BenchError::io("read the address of", "127.0.0.1:0", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_figure_is_found_in_either_form() {
        let log =
            "2026 INFO x: starting\n2026 INFO rovn_controller: ready after 812 ms ready_ms=812\n";
        assert_eq!(ready_ms_from_log(log), Some(812.0));
        assert_eq!(ready_ms_from_log("INFO ready after 95.5 ms\n"), Some(95.5));
        assert_eq!(ready_ms_from_log("INFO starting\n"), None);
    }

    #[test]
    fn samples_are_read_by_exact_name() {
        let text = "# HELP x\nrovn_controller_rounds_total 7\nrovn_controller_reconcile_duration_seconds_sum 0.25\nrovn_controller_reconcile_duration_seconds_count 7\n";
        assert_eq!(
            sample(text, "rovn_controller_reconcile_duration_seconds_sum"),
            Some(0.25)
        );
        assert_eq!(
            sample(text, "rovn_controller_reconcile_duration_seconds"),
            None
        );
        assert_eq!(sample(text, "missing"), None);
    }

    #[test]
    fn free_ports_are_loopback() {
        assert!(free_loopback_port().unwrap().ip().is_loopback());
    }
}
