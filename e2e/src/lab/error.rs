//! The one error type of the lab library: every variant names the object it concerns, and
//! failures of daemons carry the tail of their log so `up` is obvious when something breaks.

use std::path::PathBuf;

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A lab name that would break the naming conventions.
    #[error("invalid lab name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A place argument that is not `central`, `outside` or `nodeN`.
    #[error("invalid place {place:?}: expected central, outside or nodeN (N from 1)")]
    InvalidPlace {
        /// The rejected place.
        place: String,
    },
    /// Bad parameters for building a lab, or a machine that cannot host one.
    #[error("invalid lab spec: {0}")]
    InvalidSpec(String),
    /// A file-system operation on a path of the lab failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path (or object) it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A helper command could not be started at all.
    #[error("cannot run {program} (for {what}): {source}")]
    Spawn {
        /// What the command was for.
        what: String,
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A helper command ran and failed.
    #[error("{what}: `{command}` failed ({status}): {stderr}")]
    Command {
        /// What the command was for.
        what: String,
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it said on stderr.
        stderr: String,
    },
    /// A daemon exited while the lab was waiting for it.
    #[error("{daemon} exited unexpectedly; last lines of {}:\n{log_tail}", log.display())]
    DaemonDied {
        /// The daemon's label (`place/program`).
        daemon: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        log_tail: String,
    },
    /// Something did not happen within its deadline.
    #[error("timed out waiting for {what}{}", logs_suffix(.logs))]
    Timeout {
        /// What was awaited.
        what: String,
        /// Log files of the daemons concerned, with their last lines.
        logs: Vec<(PathBuf, String)>,
    },
    /// A binary the lab needs is not built or not where it is looked for.
    #[error("{program} not found in {} (build the workspace's binaries, set ROVN_BIN_DIR, or use --no-kube)", dir.display())]
    MissingBinary {
        /// The program.
        program: String,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// An unexpected answer from the API server or a daemon.
    #[error("{what}: {detail}")]
    Protocol {
        /// What was being asked.
        what: String,
        /// What was wrong with the answer.
        detail: String,
    },
    /// Construction was cancelled (interrupt) before this step.
    #[error("cancelled before {what}")]
    Cancelled {
        /// The step that was not taken.
        what: String,
    },
    /// `down` finished but something of the lab is still there.
    #[error("lab {name} not fully removed: {leftovers}")]
    Leftovers {
        /// The lab.
        name: String,
        /// What remains.
        leftovers: String,
    },
}

fn logs_suffix(logs: &[(PathBuf, String)]) -> String {
    logs.iter()
        .map(|(path, tail)| format!("\n--- last lines of {}:\n{tail}", path.display()))
        .collect()
}

impl LabError {
    /// Shorthand for an [`LabError::Io`] about `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LabError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
