//! The one error type of the benchmarks: every variant names what the benchmark was doing, so
//! a failed run says which object or step it concerns instead of a bare I/O or API error.

use std::path::PathBuf;

use crate::lab::LabError;

/// Why a benchmark could not produce its figures.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Starting, waiting for or tearing down lab parts (daemons, namespaces, commands).
    #[error(transparent)]
    Lab(Box<LabError>),
    /// A Kubernetes API request failed.
    #[error("{what}: {source}")]
    Kube {
        /// The request, naming its object.
        what: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// An OVSDB client could not be started or synced.
    #[error("{what}: {source}")]
    Ovsdb {
        /// What the client was for.
        what: String,
        /// The client's error.
        #[source]
        source: Box<rovn_ovsdb::Error>,
    },
    /// An OVSDB transaction failed.
    #[error("{what}: {source}")]
    Transact {
        /// What the transaction was for.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<rovn_ovsdb::TransactError>,
    },
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Something did not happen in time; `detail` says how far it got.
    #[error("timed out waiting for {what}: {detail}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The progress made, and where to look.
        detail: String,
    },
    /// A peer answered something the benchmark cannot use.
    #[error("{what}: {detail}")]
    Protocol {
        /// What was being read.
        what: String,
        /// What was wrong with it.
        detail: String,
    },
    /// A netlink request (the floor's veths) failed.
    #[error("{what}: {source}")]
    Netlink {
        /// The request, naming its device.
        what: String,
        /// The kernel's or the socket's error.
        #[source]
        source: Box<rtnetlink::Error>,
    },
    /// A CNI invocation failed.
    #[error("CNI {command} for pod {pod}: {detail}")]
    Cni {
        /// ADD or DEL.
        command: &'static str,
        /// `namespace/name`.
        pod: String,
        /// The plugin's exit status and output.
        detail: String,
    },
    /// The arguments ask for something the benchmark cannot do.
    #[error("invalid benchmark arguments: {0}")]
    InvalidArgs(String),
    /// The run was interrupted (Ctrl-C / SIGTERM); everything started has been stopped.
    #[error("interrupted")]
    Interrupted,
}

impl From<LabError> for BenchError {
    fn from(e: LabError) -> Self {
        BenchError::Lab(Box::new(e))
    }
}

impl BenchError {
    /// An I/O error on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BenchError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A Kubernetes API error for `what`.
    pub fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        BenchError::Kube {
            what: what.into(),
            source: Box::new(source),
        }
    }

    /// An OVSDB client error for `what`.
    pub fn ovsdb(what: impl Into<String>, source: rovn_ovsdb::Error) -> Self {
        BenchError::Ovsdb {
            what: what.into(),
            source: Box::new(source),
        }
    }

    /// A failed OVSDB transaction for `what`.
    pub fn transact(what: impl Into<String>, source: rovn_ovsdb::TransactError) -> Self {
        BenchError::Transact {
            what: what.into(),
            source: Box::new(source),
        }
    }

    /// A protocol error for `what`.
    pub fn protocol(what: impl Into<String>, detail: impl Into<String>) -> Self {
        BenchError::Protocol {
            what: what.into(),
            detail: detail.into(),
        }
    }
}
