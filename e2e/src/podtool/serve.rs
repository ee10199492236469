//! The servers of `rovn-podtool serve`: TCP echo, UDP echo and a tiny HTTP server, each
//! telling the client which pod answered and which address it saw the client as.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

use super::{greeting, http};

/// Largest request head the HTTP server reads.
const MAX_HTTP_HEAD: usize = 16 * 1024;

/// The listeners to run.
#[derive(Debug, Clone, Default)]
pub struct ServeSpec {
    /// TCP echo ports.
    pub tcp: Vec<u16>,
    /// UDP echo ports.
    pub udp: Vec<u16>,
    /// HTTP ports.
    pub http: Vec<u16>,
}

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Nothing was asked for.
    #[error("nothing to serve: give at least one of --tcp, --udp, --http")]
    NothingToServe,
    /// A port could not be bound.
    #[error("bind {proto} port {port}: {source}")]
    Bind {
        /// `tcp`, `udp` or `http`.
        proto: &'static str,
        /// The port.
        port: u16,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A UDP socket failed.
    #[error("udp port {port}: {source}")]
    Udp {
        /// The port.
        port: u16,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Binds every listener (failing before serving anything if one cannot be bound), then serves
/// until `shutdown` completes.
pub async fn serve(
    spec: &ServeSpec,
    hostname: String,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    if spec.tcp.is_empty() && spec.udp.is_empty() && spec.http.is_empty() {
        return Err(ServeError::NothingToServe);
    }
    let hostname: Arc<str> = hostname.into();
    let any = |port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let mut tasks = JoinSet::new();
    for &port in &spec.tcp {
        let listener = TcpListener::bind(any(port))
            .await
            .map_err(|source| ServeError::Bind {
                proto: "tcp",
                port,
                source,
            })?;
        tracing::info!(port, "serving tcp echo");
        tasks.spawn(accept_loop(listener, hostname.clone(), Protocol::Echo));
    }
    for &port in &spec.http {
        let listener = TcpListener::bind(any(port))
            .await
            .map_err(|source| ServeError::Bind {
                proto: "http",
                port,
                source,
            })?;
        tracing::info!(port, "serving http");
        tasks.spawn(accept_loop(listener, hostname.clone(), Protocol::Http));
    }
    for &port in &spec.udp {
        let socket = UdpSocket::bind(any(port))
            .await
            .map_err(|source| ServeError::Bind {
                proto: "udp",
                port,
                source,
            })?;
        tracing::info!(port, "serving udp echo");
        tasks.spawn(udp_loop(socket, port, hostname.clone()));
    }
    tokio::select! {
        () = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
        Some(done) = tasks.join_next() => match done {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(error = %e, "server task failed");
                Ok(())
            }
        },
    }
}

#[derive(Debug, Clone, Copy)]
enum Protocol {
    Echo,
    Http,
}

async fn accept_loop(
    listener: TcpListener,
    hostname: Arc<str>,
    protocol: Protocol,
) -> Result<(), ServeError> {
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let hostname = hostname.clone();
        tokio::spawn(async move {
            let result = match protocol {
                Protocol::Echo => tcp_echo(stream, client, &hostname).await,
                Protocol::Http => http_once(stream, client, &hostname).await,
            };
            if let Err(e) = result {
                tracing::warn!(%client, error = %e, "connection failed");
            }
        });
    }
}

async fn tcp_echo(
    mut stream: TcpStream,
    client: SocketAddr,
    hostname: &str,
) -> std::io::Result<()> {
    tracing::info!(%client, "tcp connection");
    stream
        .write_all(greeting(hostname, client).as_bytes())
        .await?;
    let (mut reader, mut writer) = stream.split();
    tokio::io::copy(&mut reader, &mut writer).await?;
    Ok(())
}

async fn http_once(
    mut stream: TcpStream,
    client: SocketAddr,
    hostname: &str,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HTTP_HEAD {
            let response = http::render_response(400, "request head too large\n");
            return stream.write_all(response.as_bytes()).await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = match http::parse_request(&String::from_utf8_lossy(&head)) {
        Ok(request) => {
            tracing::info!(%client, path = %request.path, "http request");
            http::route(&request, hostname, client)
        }
        Err(reason) => (400, format!("{reason}\n")),
    };
    stream
        .write_all(http::render_response(status, &body).as_bytes())
        .await?;
    stream.shutdown().await
}

async fn udp_loop(socket: UdpSocket, port: u16, hostname: Arc<str>) -> Result<(), ServeError> {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, client) = socket
            .recv_from(&mut buf)
            .await
            .map_err(|source| ServeError::Udp { port, source })?;
        tracing::info!(%client, bytes = n, "udp datagram");
        let mut reply = greeting(&hostname, client).into_bytes();
        reply.extend_from_slice(&buf[..n]);
        if let Err(e) = socket.send_to(&reply, client).await {
            tracing::warn!(%client, error = %e, "udp reply failed");
        }
    }
}
