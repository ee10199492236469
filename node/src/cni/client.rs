//! The socket side of `rovn-cni`: one connection per request, one overall deadline.

use std::io::{self, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::protocol::{
    CniCommand, CniError, CniRequest, CniResponse, ProtocolError, codes, read_message,
    write_message,
};

/// Where the agent listens and how long this invocation may wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEndpoint {
    /// The agent's unix socket.
    pub socket_path: PathBuf,
    /// Budget for connect + send + the agent's whole work + reply.
    pub timeout: Duration,
}

/// Why the agent could not answer; each maps to the CNI code the runtime should act on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody accepts on the socket (agent not started, restarting, or wrong path).
    #[error("rovn-node agent unreachable at {path}: {source}")]
    Unreachable {
        /// The socket tried.
        path: PathBuf,
        /// The errno from `connect`.
        #[source]
        source: io::Error,
    },
    /// The agent did not accept, or did not answer, within the budget.
    #[error("rovn-node agent at {path} did not answer within {}s (stuck {stage})", after.as_secs())]
    TimedOut {
        /// The socket used.
        path: PathBuf,
        /// The budget that ran out.
        after: Duration,
        /// Where the time ran out, to tell a wedged agent from a slow ADD.
        stage: &'static str,
    },
    /// The connection broke while sending or receiving.
    #[error("I/O with rovn-node agent at {path} failed: {source}")]
    Io {
        /// The socket used.
        path: PathBuf,
        /// The failure.
        #[source]
        source: ProtocolError,
    },
    /// The agent answered with something that is not a [`CniResponse`].
    #[error("rovn-node agent at {path} sent an invalid response: {source}")]
    BadResponse {
        /// The socket used.
        path: PathBuf,
        /// The decode failure.
        #[source]
        source: ProtocolError,
    },
}

impl ClientError {
    /// The CNI error to print. An agent that is down or slow is transient (11, "try again
    /// later"), except for STATUS, whose spec answer for that is 50 "plugin not available".
    pub fn to_cni_error(&self, command: CniCommand) -> CniError {
        let code = match self {
            ClientError::Unreachable { .. } | ClientError::TimedOut { .. } => {
                if command == CniCommand::Status {
                    codes::PLUGIN_NOT_AVAILABLE
                } else {
                    codes::TRY_AGAIN_LATER
                }
            }
            ClientError::Io { .. } => codes::IO_FAILURE,
            ClientError::BadResponse { .. } => codes::AGENT_PROTOCOL_VIOLATION,
        };
        CniError::new(code, self.to_string())
    }
}

/// Sends `request` to the agent and waits for its single response, within
/// `endpoint.timeout` overall.
pub fn call_agent(
    endpoint: &AgentEndpoint,
    request: &CniRequest,
) -> Result<CniResponse, ClientError> {
    let path = endpoint.socket_path.as_path();
    let deadline = Instant::now() + endpoint.timeout;
    let stream = connect_before(path, deadline).map_err(|source| {
        if is_timeout(&source) {
            ClientError::TimedOut {
                path: path.to_path_buf(),
                after: endpoint.timeout,
                stage: "connecting",
            }
        } else {
            ClientError::Unreachable {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;

    let mut writer = DeadlineStream {
        stream: &stream,
        deadline,
    };
    write_message(&mut writer, request).map_err(|e| classify(e, endpoint))?;

    let mut reader = BufReader::new(DeadlineStream {
        stream: &stream,
        deadline,
    });
    match read_message::<_, CniResponse>(&mut reader) {
        Ok(response) => Ok(response),
        Err(source @ ProtocolError::Decode(_)) => Err(ClientError::BadResponse {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) => Err(classify(e, endpoint)),
    }
}

/// `connect(2)` on a unix socket blocks while the listener's backlog is full (an agent that
/// is wedged or not accepting); std offers no timeout for it, so the connect runs on a helper
/// thread and is abandoned when the deadline passes (the process exits soon after anyway).
fn connect_before(path: &Path, deadline: Instant) -> io::Result<UnixStream> {
    let (sender, receiver) = mpsc::channel();
    let target = path.to_path_buf();
    std::thread::Builder::new()
        .name("rovn-cni-connect".into())
        .spawn(move || {
            let _ = sender.send(UnixStream::connect(&target));
        })?;
    let left = deadline.saturating_duration_since(Instant::now());
    receiver.recv_timeout(left).unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "connect did not complete before the deadline",
        ))
    })
}

fn classify(error: ProtocolError, endpoint: &AgentEndpoint) -> ClientError {
    let path = endpoint.socket_path.clone();
    match error {
        ProtocolError::Io(ref e) if is_timeout(e) => ClientError::TimedOut {
            path,
            after: endpoint.timeout,
            stage: "exchanging the request",
        },
        source => ClientError::Io { path, source },
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// A socket whose every read and write gets only the time left until one deadline, so
/// a slowly trickling peer cannot stretch the budget.
struct DeadlineStream<'a> {
    stream: &'a UnixStream,
    deadline: Instant,
}

impl DeadlineStream<'_> {
    fn remaining(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
        } else {
            Ok(left)
        }
    }
}

impl Read for DeadlineStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.remaining()?))?;
        let mut stream = self.stream;
        stream.read(buf)
    }
}

impl io::Write for DeadlineStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.remaining()?))?;
        let mut stream = self.stream;
        stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut stream = self.stream;
        stream.flush()
    }
}
