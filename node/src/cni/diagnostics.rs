//! Diagnostics for `rovn-cni`: stdout belongs to the CNI result, so everything a human may
//! need goes to stderr (which runtimes usually log) and, if the config names one, to an
//! append-only log file that survives the runtime discarding stderr.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where diagnostic lines go for this invocation.
#[derive(Debug, Default)]
pub struct Diagnostics {
    log_file: Option<File>,
}

impl Diagnostics {
    /// Stderr only; used until the config (and its `"logFile"`) has been read.
    pub fn stderr_only() -> Self {
        Diagnostics { log_file: None }
    }

    /// Also appends to `path`. A log file that cannot be opened is reported on stderr and
    /// otherwise ignored: logging must never fail a pod's network setup.
    pub fn with_log_file(&mut self, path: &Path) {
        match OpenOptions::new().create(true).append(true).open(path) {
            Ok(file) => self.log_file = Some(file),
            Err(e) => eprintln!("rovn-cni: cannot open log file {}: {e}", path.display()),
        }
    }

    /// Emits one line, prefixed with the process id and a Unix timestamp so lines from
    /// concurrent invocations can be told apart in a shared log file.
    pub fn line(&mut self, message: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let line = format!(
            "{}.{:03} rovn-cni[{}]: {message}\n",
            now.as_secs(),
            now.subsec_millis(),
            std::process::id()
        );
        // Write failures on diagnostics channels have nowhere better to be reported.
        let _ = std::io::stderr().write_all(line.as_bytes());
        if let Some(file) = self.log_file.as_mut() {
            let _ = file.write_all(line.as_bytes());
        }
    }
}
