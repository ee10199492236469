//! The one error type of the OVSDB client.
//!
//! Every variant names what it concerns (the remote, the method, the operation) so that an
//! error logged far from the call that caused it still says what failed.

use std::time::Duration;

use serde_json::Value as Json;

use crate::framing::FramingError;
use crate::schema::SchemaError;
use crate::value::ValueError;

/// Anything that can go wrong between a caller and an OVSDB server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting to, reading from or writing to the remote failed.
    #[error("I/O error on OVSDB remote {remote}: {source}")]
    Io {
        /// The remote, as `unix:PATH`, `tcp:HOST:PORT`, ...
        remote: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be set up: unreadable PEM files, a bad key, a failed handshake.
    #[error("TLS error on OVSDB remote {remote}: {reason}")]
    Tls {
        /// The remote.
        remote: String,
        /// What went wrong, naming the file or the check.
        reason: String,
    },
    /// Something took longer than allowed.
    #[error("timed out: {what}")]
    Timeout {
        /// What was being waited for, e.g. "connecting to tcp:127.0.0.1:6641".
        what: String,
    },
    /// The session was closed by this client ([`crate::connection::Connection::close`], or
    /// the last handle dropped). A server that hangs up gives [`Error::Io`] instead.
    #[error("the OVSDB session was closed by this client")]
    Closed,
    /// Nothing was received from the server for two inactivity-probe intervals, even though an
    /// `echo` was sent after the first.
    #[error(
        "the OVSDB server did not answer the inactivity probe (no message for two probe intervals)"
    )]
    ProbeTimeout,
    /// The byte stream is not a sequence of JSON texts.
    #[error("OVSDB remote {remote} sent an unreadable stream: {source}")]
    Framing {
        /// The remote.
        remote: String,
        /// What was wrong with the bytes.
        #[source]
        source: FramingError,
    },
    /// A message is valid JSON but not what RFC 7047 allows at that point.
    #[error("OVSDB protocol error: {0}")]
    Protocol(String),
    /// The server answered a request with a JSON-RPC error.
    #[error("OVSDB server rejected {method}: {error}")]
    Rpc {
        /// The method called.
        method: String,
        /// The `error` member of the response (usually `{"error": ..., "details": ...}`).
        error: Json,
    },
    /// One operation of a transaction failed (or, with `op == "commit"`, the commit itself,
    /// e.g. a referential-integrity or index violation).
    #[error("transaction failed at operation {index} ({op}): {error}{}", details.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Transaction {
        /// Index of the failing operation in the request; equal to the number of operations
        /// when the commit failed.
        index: usize,
        /// The server's `error` string, e.g. "constraint violation".
        error: String,
        /// The server's `details`, if it gave any.
        details: Option<String>,
        /// Which operation it was, e.g. "insert Logical_Switch_Port".
        op: String,
    },
    /// A value could not be decoded for a column.
    #[error("bad value for {context}: {source}")]
    Value {
        /// Where the value was: "Logical_Switch_Port.addresses", ...
        context: String,
        /// Why it is invalid.
        #[source]
        source: ValueError,
    },
    /// The server's schema could not be parsed.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// No connection could be made within the time allowed.
    #[error("not connected to any OVSDB server after waiting {waited:?}")]
    NotConnected {
        /// How long we waited.
        waited: Duration,
    },
    /// None of the clustered servers is the raft leader.
    #[error("no OVSDB server among the remotes is the cluster leader")]
    NoLeader,
    /// A remote string could not be parsed.
    #[error("invalid OVSDB remote {remote:?}: {reason}")]
    BadRemote {
        /// The string given.
        remote: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// Wraps an I/O error with the remote it happened on.
    pub fn io(remote: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            remote: remote.into(),
            source,
        }
    }

    /// Whether the error means the session is gone (the caller should reconnect), as opposed
    /// to a rejected request on a healthy session.
    pub fn is_session_lost(&self) -> bool {
        matches!(
            self,
            Error::Io { .. }
                | Error::Tls { .. }
                | Error::Closed
                | Error::ProbeTimeout
                | Error::Framing { .. }
                | Error::Protocol(_)
                | Error::NotConnected { .. }
                | Error::Timeout { .. }
        )
    }
}
