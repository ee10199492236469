//! The kubelet's HTTP server (the real one's port 10250, here plain HTTP without
//! authentication, reachable only inside the lab): `/exec/NS/POD/CONTAINER` upgraded to a
//! WebSocket speaking the channel protocol, `/containerLogs/NS/POD/CONTAINER`, `/healthz`.
//! The API server relays `pods/exec` and `pods/log` here.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::channel::{self, ExecRequest};
use super::exec::{self, Session};
use super::logs::{self, LogRequest};
use super::registry::{Containers, LookupError};

/// The default port, the real kubelet's.
pub const DEFAULT_PORT: u16 = 10250;

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// What the server needs from the kubelet.
#[derive(Debug, Clone)]
pub struct StreamingConfig {
    /// The node's containers.
    pub containers: Arc<Containers>,
    /// Searched first for bare program names.
    pub own_dir: Option<std::path::PathBuf>,
    /// The `PATH` program names are searched in.
    pub path_env: String,
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A `metav1.Status` error answer: the API server relays it unchanged, and kubectl and kube-rs
/// print its message.
fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Response<Body> {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.into(),
        "reason": reason,
        "code": code.as_u16(),
    });
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn lookup_error(e: LookupError) -> Response<Body> {
    status(StatusCode::NOT_FOUND, "NotFound", e.to_string())
}

fn header_has(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Serves connections from `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, config: StreamingConfig) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("streaming server: accepting a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let config = config.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let config = config.clone();
                async move { Ok::<_, Infallible>(handle(&config, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
            {
                tracing::debug!("streaming server connection: {e}");
            }
        });
    }
}

async fn handle(config: &StreamingConfig, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz"] => Response::new(full("ok")),
        ["exec", namespace, pod, container] => {
            let key = (
                namespace.to_string(),
                pod.to_string(),
                container.to_string(),
            );
            exec(config, req, key).await
        }
        ["containerLogs", namespace, pod, container] => {
            let key = (
                namespace.to_string(),
                pod.to_string(),
                container.to_string(),
            );
            container_logs(config, &req, key).await
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no handler for {path}"),
        ),
    }
}

async fn exec(
    config: &StreamingConfig,
    mut req: Request<Incoming>,
    (namespace, pod, container): (String, String, String),
) -> Response<Body> {
    let request = match ExecRequest::parse(req.uri().query().unwrap_or("")) {
        Ok(r) => r,
        Err(message) => return status(StatusCode::BAD_REQUEST, "BadRequest", message),
    };
    let entry = match config.containers.lookup(&namespace, &pod, &container) {
        Ok(entry) => entry,
        Err(e) => return lookup_error(e),
    };
    let Some(target) = entry.running else {
        return status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("container not found ({container:?})"),
        );
    };
    if !header_has(&req, header::UPGRADE, "websocket") {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "this kubelet streams over WebSocket only (v5.channel.k8s.io, v4.channel.k8s.io); SPDY is not supported",
        );
    }
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let version_ok = req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let (Some(key), true, true) = (key, version_ok, req.method() == Method::GET) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "invalid WebSocket upgrade: GET with Sec-WebSocket-Key and Sec-WebSocket-Version 13 expected",
        );
    };
    let offered: Vec<&str> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let Some(protocol) = channel::negotiate(&offered.join(",")) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "requested protocol(s) are not supported: {offered:?}; supports {:?}",
                channel::PROTOCOLS
            ),
        );
    };
    let session = Session {
        label: format!("{namespace}/{pod}/{container}"),
        protocol,
        request,
        target,
        own_dir: config.own_dir.clone(),
        path_env: config.path_env.clone(),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                exec::run(ws, session).await;
            }
            Err(e) => tracing::warn!(exec = %session.label, "WebSocket upgrade failed: {e}"),
        }
    });
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    response
}

async fn container_logs(
    config: &StreamingConfig,
    req: &Request<Incoming>,
    (namespace, pod, container): (String, String, String),
) -> Response<Body> {
    let request = match LogRequest::parse(req.uri().query().unwrap_or("")) {
        Ok(r) => r,
        Err(message) => return status(StatusCode::BAD_REQUEST, "BadRequest", message),
    };
    let entry = match config.containers.lookup(&namespace, &pod, &container) {
        Ok(entry) => entry,
        Err(e) => return lookup_error(e),
    };
    let key = (namespace, pod, container);
    match logs::stream(config.containers.clone(), key, entry, request).await {
        Ok(rx) => {
            let chunks = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item.map(Frame::data), rx))
            });
            let mut response = Response::new(StreamBody::new(chunks).boxed_unsync());
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        Err(message) => status(StatusCode::BAD_REQUEST, "BadRequest", message),
    }
}
