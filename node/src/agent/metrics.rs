//! The agent's Prometheus metrics and its `/metrics`, `/healthz` and `/readyz` HTTP endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::errors::AddStep;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// ADD, DEL, CHECK, STATUS, GC.
    pub command: String,
    /// `ok` or `error`.
    pub result: String,
}

/// Labels of the per-step histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    /// One of [`AddStep::as_str`].
    pub step: String,
}

/// Labels of the gateway's sync histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    /// `applied` (a batch was sent), `unchanged` (the read-back matched) or `error`.
    pub result: String,
}

/// Everything the agent counts.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RequestLabels, Histogram>,
    add_step_seconds: Family<StepLabels, Histogram>,
    nft_sync_seconds: Family<SyncLabels, Histogram>,
    gateway_frontends: Gauge,
    ready: AtomicBool,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    /// Registers the metrics under the `rovn_node` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rovn_node");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "cni_requests",
            "CNI requests served, by command and result",
            requests.clone(),
        );
        let request_seconds = Family::<RequestLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "cni_request_duration_seconds",
            "Time to serve a CNI request, by command and result",
            request_seconds.clone(),
        );
        let add_step_seconds = Family::<StepLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "cni_add_step_duration_seconds",
            "Time spent in each step of CNI ADD (annotation, veth, ovs_port, ovn_installed)",
            add_step_seconds.clone(),
        );
        let nft_sync_seconds = Family::<SyncLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "nft_sync_duration_seconds",
            "Time from a computed gateway state to the nftables table rovn in place, by result",
            nft_sync_seconds.clone(),
        );
        let gateway_frontends = Gauge::default();
        registry.register(
            "gateway_frontends",
            "NodePort, externalIP, LoadBalancer and hostPort frontends in the table rovn",
            gateway_frontends.clone(),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            add_step_seconds,
            nft_sync_seconds,
            gateway_frontends,
            ready: AtomicBool::new(false),
        }
    }

    /// Counts one request and how long it took.
    pub fn request(&self, command: &str, ok: bool, took: Duration) {
        let labels = RequestLabels {
            command: command.to_string(),
            result: if ok { "ok" } else { "error" }.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Records one ADD step's time.
    pub fn add_step(&self, step: AddStep, took: Duration) {
        self.add_step_seconds
            .get_or_create(&StepLabels {
                step: step.as_str().to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records one sync of the table `rovn`: `Some(applied)` when it succeeded, `None` when not;
    /// `frontends` is the state's frontend count when it succeeded.
    pub fn nft_sync(&self, applied: Option<bool>, frontends: usize, took: Duration) {
        let result = match applied {
            Some(true) => "applied",
            Some(false) => "unchanged",
            None => "error",
        };
        self.nft_sync_seconds
            .get_or_create(&SyncLabels {
                result: result.to_string(),
            })
            .observe(took.as_secs_f64());
        if applied.is_some() {
            self.gateway_frontends
                .set(i64::try_from(frontends).unwrap_or(i64::MAX));
        }
    }

    /// Marks the agent ready (for `/healthz`).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the agent is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    match metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn healthz(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    if metrics.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Binds `listen` and serves `/metrics`, `/healthz` and `/readyz` in the background; returns the
/// bound address. Both probes answer 200 once start-up finished (the CNI socket serves, `ovn0`
/// and its routes are in place, the conflist is written) and 503 before: `/readyz` is what a
/// DaemonSet's readiness probe and the CNI's callers mean, `/healthz` stays for existing probes.
pub async fn serve(listen: SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<SocketAddr> {
    use anyhow::Context;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(healthz))
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the metrics listener on {listen}"))?;
    let bound = listener
        .local_addr()
        .with_context(|| format!("the address of the metrics listener on {listen}"))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_syncs_and_frontends_show_in_the_exposition() {
        let m = Metrics::new();
        m.nft_sync(Some(true), 3, Duration::from_millis(40));
        m.nft_sync(None, 9, Duration::from_millis(5));
        let text = m.encode().unwrap();
        assert!(
            text.contains(r#"rovn_node_nft_sync_duration_seconds_count{result="applied"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rovn_node_nft_sync_duration_seconds_count{result="error"} 1"#),
            "{text}"
        );
        // A failed sync leaves the last successful count.
        assert!(text.contains("rovn_node_gateway_frontends 3"), "{text}");
    }

    #[test]
    fn counters_and_step_histograms_show_in_the_exposition() {
        let m = Metrics::new();
        m.request("ADD", true, Duration::from_millis(30));
        m.request("DEL", false, Duration::from_millis(3));
        m.add_step(AddStep::OvnInstalled, Duration::from_millis(20));
        let text = m.encode().unwrap();
        assert!(
            text.contains("rovn_node_cni_requests_total{command=\"ADD\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "rovn_node_cni_request_duration_seconds_count{command=\"DEL\",result=\"error\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("step=\"ovn_installed\""), "{text}");
    }

    async fn status_of(addr: SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer.lines().next().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn readyz_is_503_until_start_up_finished_then_200() {
        let metrics = Arc::new(Metrics::new());
        let addr = serve("127.0.0.1:0".parse().unwrap(), metrics.clone())
            .await
            .unwrap();
        assert_eq!(
            status_of(addr, "/readyz").await,
            "HTTP/1.1 503 Service Unavailable"
        );
        metrics.set_ready(true);
        assert_eq!(status_of(addr, "/readyz").await, "HTTP/1.1 200 OK");
    }
}
