//! What every CNI handler shares: configuration, clients, metrics, readiness and the set of
//! containers an ADD is working on (GC must not remove those).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::config::AgentConfig;
use super::kube::events::PodEvents;
use super::metrics::Metrics;
use super::ovs::Ovs;

/// The agent's shared state.
pub struct AgentState {
    /// The configuration.
    pub config: AgentConfig,
    /// The API client.
    pub kube: kube::Client,
    /// The local OVS database.
    pub ovs: Ovs,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Pod Events.
    pub events: PodEvents,
    /// The pod MTU.
    pub mtu: u32,
    /// The node's pods (metadata, ports, phase), for ADD to find allocations without asking the
    /// API and for the gateway's hostPorts.
    pub pods: kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Pod>,
    /// Poked on every change of [`AgentState::pods`].
    pub pods_changed: Arc<tokio::sync::Notify>,
    ready: AtomicBool,
    in_flight: Mutex<BTreeSet<String>>,
}

/// Removes a container from the in-flight set when its ADD ends, however it ends.
pub struct InFlight<'a> {
    state: &'a AgentState,
    container_id: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut set = self
            .state
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        set.remove(&self.container_id);
    }
}

impl AgentState {
    /// Shared state for a started agent (not ready yet).
    pub fn new(
        config: AgentConfig,
        kube: kube::Client,
        ovs: Ovs,
        metrics: Arc<Metrics>,
        events: PodEvents,
        mtu: u32,
    ) -> AgentState {
        let pods_changed = Arc::new(tokio::sync::Notify::new());
        let pods = super::kube::pods::watch_node_pods(
            kube.clone(),
            &config.node_name,
            pods_changed.clone(),
        );
        AgentState {
            config,
            kube,
            ovs,
            metrics,
            events,
            mtu,
            pods,
            pods_changed,
            ready: AtomicBool::new(false),
            in_flight: Mutex::new(BTreeSet::new()),
        }
    }

    /// Whether start-up finished (STATUS answers ok only then).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Marks start-up finished.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
        self.metrics.set_ready(true);
    }

    /// Records that an ADD for `container_id` runs until the guard drops.
    pub fn begin_add(&self, container_id: &str) -> InFlight<'_> {
        let mut set = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(container_id.to_string());
        InFlight {
            state: self,
            container_id: container_id.to_string(),
        }
    }

    /// The containers with an ADD in progress.
    pub fn in_flight(&self) -> BTreeSet<String> {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
