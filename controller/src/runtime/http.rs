//! `/metrics`, `/healthz` and `/readyz` over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use super::metrics::Metrics;

/// What the endpoints report, shared with the controller.
#[derive(Clone)]
pub struct Health {
    /// The metrics to render.
    pub metrics: Metrics,
    /// Set once this replica leads, its caches synced, IPAM restored and the first NB round
    /// finished.
    pub ready: Arc<AtomicBool>,
    /// Set while this replica waits for the Lease: a healthy standby is ready to take over, so
    /// a Deployment's rollout (which waits for new replicas to be Ready) does not stall on it.
    pub standby: Arc<AtomicBool>,
}

/// Binds `addr` and serves until `shutdown` resolves. Returns the bound address (port 0 picks
/// one) once listening.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "HTTP server stopped");
        }
    });
    Ok(bound)
}

async fn metrics(State(health): State<Health>) -> ([(&'static str, &'static str); 1], String) {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        health.metrics.render(),
    )
}

/// 200 `leading` once this replica leads and has reconciled NB, 200 `standby` while it waits
/// for the Lease, 503 otherwise (leading but still starting, or stopping). Tools that need
/// the leader's work done (the lab, the benchmarks) wait for `leading`.
async fn readyz(State(health): State<Health>) -> (StatusCode, &'static str) {
    if health.ready.load(Ordering::Acquire) {
        (StatusCode::OK, READY_LEADING)
    } else if health.standby.load(Ordering::Acquire) {
        (StatusCode::OK, READY_STANDBY)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// `/readyz`'s body for the leader that has reconciled NB.
pub const READY_LEADING: &str = "leading";
/// `/readyz`'s body for a replica waiting for the Lease.
pub const READY_STANDBY: &str = "standby";
