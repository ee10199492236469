//! Processes a benchmark starts: started with the lab's daemon machinery (own process group,
//! log file, reaper), stopped when their guard drops, and measured through `/proc`.

use std::time::Duration;

use crate::lab::daemon::{self, Daemon, DaemonSpec};

use super::error::BenchError;

/// How long a stopped process gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running process, stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Running {
    daemon: Option<Daemon>,
}

impl Running {
    /// Starts `spec` in the background.
    pub fn start(spec: &DaemonSpec) -> Result<Running, BenchError> {
        Ok(Running {
            daemon: Some(daemon::start(spec)?),
        })
    }

    /// The started daemon (label, pid, log file).
    pub fn daemon(&self) -> Option<&Daemon> {
        self.daemon.as_ref()
    }

    /// Its process id, while it has not been stopped through this guard.
    pub fn pid(&self) -> Option<i32> {
        self.daemon.as_ref().map(|d| d.pid)
    }

    /// An error with the log tail if the process has exited.
    pub fn ensure_alive(&self) -> Result<(), BenchError> {
        match &self.daemon {
            Some(d) => Ok(d.ensure_alive()?),
            None => Ok(()),
        }
    }

    /// Stops it now and waits until it is gone; an error if it survived SIGKILL.
    pub fn stop(&mut self) -> Result<(), BenchError> {
        let Some(d) = self.daemon.take() else {
            return Ok(());
        };
        let survivors = daemon::stop(&[d.pid], STOP_GRACE);
        if survivors.is_empty() {
            Ok(())
        } else {
            Err(BenchError::protocol(
                format!("stop {}", d.label),
                format!("pid {} survived SIGKILL", d.pid),
            ))
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("rovn-bench: {e}");
        }
    }
}

/// The peak resident set size (`VmHWM`) of a running process, in KiB.
pub fn peak_rss_kib(pid: i32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| BenchError::io("read", &path, e))?;
    parse_vm_hwm_kib(&text)
        .ok_or_else(|| BenchError::protocol(format!("read {path}"), "no VmHWM line"))
}

/// The `VmHWM` value of a `/proc/PID/status` text, in KiB.
pub fn parse_vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// KiB as MiB, for printing.
pub fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_from_the_status_text() {
        let status = "Name:\tx\nVmPeak:\t  1000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_vm_hwm_kib(status), Some(20480));
        assert_eq!(parse_vm_hwm_kib("Name:\tx\n"), None);
        assert_eq!(kib_to_mib(20480), 20.0);
        assert!(peak_rss_kib(std::process::id() as i32).unwrap() > 0);
    }
}
