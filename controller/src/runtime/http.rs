//! `/metrics`, `/healthz`, `/readyz` and `/debug/plan` over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

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
    /// Asks the controller task for its dry run ([`PlanRequest`]).
    pub plans: mpsc::UnboundedSender<PlanRequest>,
}

/// A request for the controller's diff of the state it last rendered against the live NB,
/// answered with the plan as text, or why there is none now.
pub type PlanRequest = oneshot::Sender<Result<String, String>>;

/// How long `/debug/plan` waits for the controller task.
const PLAN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
        .route("/debug/plan", get(plan))
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

/// The controller's dry run (`kubectl rovn diagnose` reads it): 200 with the plan, 503 when
/// this replica does not lead, no round has finished yet, or one is running.
async fn plan(State(health): State<Health>) -> (StatusCode, String) {
    let (reply, answer) = oneshot::channel();
    if health.plans.send(reply).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "not leading\n".into());
    }
    match tokio::time::timeout(PLAN_TIMEOUT, answer).await {
        Ok(Ok(Ok(plan))) => (StatusCode::OK, plan),
        Ok(Ok(Err(why))) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        Ok(Err(_)) => (StatusCode::SERVICE_UNAVAILABLE, "not leading\n".into()),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the controller did not answer within {PLAN_TIMEOUT:?}\n"),
        ),
    }
}

/// `/readyz`'s body for the leader that has reconciled NB.
pub const READY_LEADING: &str = "leading";
/// `/readyz`'s body for a replica waiting for the Lease.
pub const READY_STANDBY: &str = "standby";
