//! The Prometheus metrics the controller exports on `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set `{result=...}` or `{subnet=...}`.
type Labels = Vec<(String, String)>;

/// Every metric, cheap to clone (the handles share their values).
#[derive(Clone)]
pub struct Metrics {
    /// Reconcile rounds run.
    pub rounds: Counter,
    /// Reconcile rounds that failed (some transaction or the diff).
    pub round_errors: Counter,
    /// Round duration in seconds.
    pub round_seconds: Histogram,
    /// NB transactions committed.
    pub nb_transactions: Counter,
    /// NB transactions that failed.
    pub nb_transaction_errors: Counter,
    /// Pod allocations by result (`allocated`, `restored`, `refused`, `patch_failed`).
    pub pod_allocations: Family<Labels, Counter>,
    /// Addresses held, per subnet.
    pub ipam_used: Family<Labels, Gauge>,
    /// Addresses free, per subnet.
    pub ipam_available: Family<Labels, Gauge>,
    /// 1 while this replica leads.
    pub leader: Gauge,
    /// Pods refused an address (each has an Event saying why).
    pub pods_refused: Gauge,
    /// Subnets rejected (each says why in its status).
    pub subnets_rejected: Gauge,
    registry: std::sync::Arc<Registry>,
}

impl Metrics {
    /// Creates and registers every metric under the `rovn_controller_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rovn_controller");
        let rounds = Counter::default();
        let round_errors = Counter::default();
        let round_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let nb_transactions = Counter::default();
        let nb_transaction_errors = Counter::default();
        let pod_allocations = Family::<Labels, Counter>::default();
        let ipam_used = Family::<Labels, Gauge>::default();
        let ipam_available = Family::<Labels, Gauge>::default();
        let leader = Gauge::default();
        let pods_refused = Gauge::default();
        let subnets_rejected = Gauge::default();
        registry.register(
            "pods_refused",
            "Pods refused an address (see their Events)",
            pods_refused.clone(),
        );
        registry.register(
            "subnets_rejected",
            "Subnets rejected (see their status)",
            subnets_rejected.clone(),
        );
        registry.register(
            "reconcile_rounds",
            "NB reconcile rounds run",
            rounds.clone(),
        );
        registry.register(
            "reconcile_errors",
            "NB reconcile rounds that failed",
            round_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one NB reconcile round",
            round_seconds.clone(),
        );
        registry.register(
            "nb_transactions",
            "NB transactions committed",
            nb_transactions.clone(),
        );
        registry.register(
            "nb_transaction_errors",
            "NB transactions that failed",
            nb_transaction_errors.clone(),
        );
        registry.register(
            "pod_allocations",
            "Pod address allocations by result",
            pod_allocations.clone(),
        );
        registry.register(
            "ipam_used_ips",
            "Addresses held per subnet",
            ipam_used.clone(),
        );
        registry.register(
            "ipam_available_ips",
            "Addresses free per subnet",
            ipam_available.clone(),
        );
        registry.register("leader", "1 while this replica leads", leader.clone());
        Metrics {
            rounds,
            round_errors,
            round_seconds,
            nb_transactions,
            nb_transaction_errors,
            pod_allocations,
            ipam_used,
            ipam_available,
            leader,
            pods_refused,
            subnets_rejected,
            registry: std::sync::Arc::new(registry),
        }
    }

    /// Counts one pod allocation outcome.
    pub fn pod_allocation(&self, result: &str) {
        self.pod_allocations
            .get_or_create(&vec![("result".to_string(), result.to_string())])
            .inc();
    }

    /// Records a subnet's address usage.
    pub fn ipam_usage(&self, subnet: &str, used: u64, available: u64) {
        let labels = vec![("subnet".to_string(), subnet.to_string())];
        self.ipam_used
            .get_or_create(&labels)
            .set(i64::try_from(used).unwrap_or(i64::MAX));
        self.ipam_available
            .get_or_create(&labels)
            .set(i64::try_from(available).unwrap_or(i64::MAX));
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
