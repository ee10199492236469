//! Running helper programs and owning daemons.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

/// Runs `cmd` to completion with stdin closed; its stdout, or an error carrying `what`, the
/// exit status and stderr.
pub fn run_checked(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("{what} printed non-UTF-8"))
}

/// The last `lines` lines of a log file (empty if it does not exist), for failure messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A child process killed (SIGKILL) and reaped when dropped, also when the test panics.
#[derive(Debug, Default)]
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    /// Takes responsibility for `child`.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard(Some(child))
    }

    /// Spawns `cmd` with stdio detached (daemons log to files).
    pub fn spawn_daemon(cmd: &mut Command, what: &str) -> Result<ChildGuard> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {what}"))?;
        Ok(ChildGuard::new(child))
    }

    /// The process, while it is owned and not yet reaped.
    pub fn child(&mut self) -> Option<&mut Child> {
        self.0.as_mut()
    }

    /// Its process id while owned.
    pub fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// Whether a process is owned (it may have exited without being reaped yet).
    pub fn is_owned(&self) -> bool {
        self.0.is_some()
    }

    /// `Some(status)` once the process exited (it is then released), `None` while it runs.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.0.as_mut()?.try_wait().ok()??;
        self.0 = None;
        Some(status)
    }

    /// Gives the process up without killing it.
    pub fn release(&mut self) -> Option<Child> {
        self.0.take()
    }

    /// SIGKILL and reap, as a crash would; a no-op once released.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
