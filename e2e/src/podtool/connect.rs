//! The client of `rovn-podtool connect`: one exchange with a server, everything it said
//! returned as text, every failure a one-line reason.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};

use super::http;

/// Which protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TCP echo: read the greeting, optionally send a line and read its echo.
    Tcp,
    /// UDP echo: send one datagram, read one reply.
    Udp,
    /// HTTP GET.
    Http,
}

/// One exchange to perform.
#[derive(Debug, Clone)]
pub struct ConnectSpec {
    /// Protocol.
    pub proto: Proto,
    /// `HOST:PORT`, resolved at connect time.
    pub target: String,
    /// Bound on the whole exchange.
    pub timeout: Duration,
    /// Line to echo (TCP/UDP) or `msg` for `/echo` (HTTP).
    pub message: Option<String>,
    /// HTTP path when no message is given.
    pub path: String,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The whole exchange took longer than the timeout.
    #[error("timed out after {0:?} talking to {1}")]
    Timeout(Duration, String),
    /// A socket operation failed (refused, unreachable, reset...).
    #[error("{action} {target}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The `HOST:PORT` it was done to.
        target: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server answered something unexpected.
    #[error("{target}: {detail}")]
    Protocol {
        /// The `HOST:PORT` talked to.
        target: String,
        /// What was wrong.
        detail: String,
    },
}

/// Performs the exchange and returns what the server said.
pub async fn connect(spec: &ConnectSpec) -> Result<String, ConnectError> {
    match tokio::time::timeout(spec.timeout, exchange(spec)).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Timeout(spec.timeout, spec.target.clone())),
    }
}

async fn exchange(spec: &ConnectSpec) -> Result<String, ConnectError> {
    let target = &spec.target;
    let io = |action: &'static str| {
        move |source| ConnectError::Io {
            action,
            target: target.clone(),
            source,
        }
    };
    let addr = resolve(target).await?;
    match spec.proto {
        Proto::Tcp => {
            let stream = TcpStream::connect(addr).await.map_err(io("connect to"))?;
            let mut reader = BufReader::new(stream);
            let mut said = String::new();
            reader.read_line(&mut said).await.map_err(io("read from"))?;
            if said.is_empty() {
                return Err(ConnectError::Protocol {
                    target: target.clone(),
                    detail: "closed the connection without a greeting".into(),
                });
            }
            if let Some(message) = &spec.message {
                let line = format!("{message}\n");
                reader
                    .get_mut()
                    .write_all(line.as_bytes())
                    .await
                    .map_err(io("write to"))?;
                let mut echo = String::new();
                reader.read_line(&mut echo).await.map_err(io("read from"))?;
                said.push_str(&echo);
            }
            Ok(said)
        }
        Proto::Udp => {
            let local: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let socket = UdpSocket::bind(local).await.map_err(io("bind for"))?;
            socket.connect(addr).await.map_err(io("connect to"))?;
            let message = spec.message.clone().unwrap_or_else(|| "hello".into());
            socket
                .send(message.as_bytes())
                .await
                .map_err(io("send to"))?;
            let mut buf = vec![0u8; 65536];
            let n = socket.recv(&mut buf).await.map_err(io("receive from"))?;
            Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
        }
        Proto::Http => {
            let path = match &spec.message {
                Some(m) => format!("/echo?msg={}", http::percent_encode(m)),
                None => spec.path.clone(),
            };
            let mut stream = TcpStream::connect(addr).await.map_err(io("connect to"))?;
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(io("write to"))?;
            let mut raw = Vec::new();
            stream
                .read_to_end(&mut raw)
                .await
                .map_err(io("read from"))?;
            let (status, body) =
                http::parse_response(&raw).map_err(|detail| ConnectError::Protocol {
                    target: target.clone(),
                    detail,
                })?;
            if status != 200 {
                return Err(ConnectError::Protocol {
                    target: target.clone(),
                    detail: format!("GET {path} answered {status}: {}", body.trim()),
                });
            }
            Ok(body)
        }
    }
}

async fn resolve(target: &str) -> Result<SocketAddr, ConnectError> {
    let mut addrs = tokio::net::lookup_host(target)
        .await
        .map_err(|source| ConnectError::Io {
            action: "resolve",
            target: target.to_string(),
            source,
        })?;
    addrs.next().ok_or_else(|| ConnectError::Protocol {
        target: target.to_string(),
        detail: "resolves to no address".into(),
    })
}
