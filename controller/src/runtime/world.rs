//! What every resource module of the controller task shares: settings, the Kubernetes client
//! and caches, Events and metrics, IPAM and the Subnet set, the queue of the next NB round, and
//! the one way to run a write in the background and hear back.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::reflector::Store;
use rovn_api::Owner;
use rovn_api::subnet::Subnet;
use rovn_ovsdb::Backoff;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use super::allocator::Allocator;
use super::kubeio::Events;
use super::metrics::Metrics;
use super::reports::Done;
use crate::reconcile::ApplyOptions;
use crate::subnets::{Reserved, SubnetSet};

/// How long changes are collected before a reconcile round starts.
const DEBOUNCE: Duration = Duration::from_millis(10);

/// The one retry policy of the controller task (failed rounds, failed patches): the OVSDB
/// client's, capped at 10 s.
pub(super) const BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(10),
};

/// The controller's fixed settings.
#[derive(Clone)]
pub struct Settings {
    /// The join network.
    pub join_cidr: Ipv4Net,
    /// Ranges no Subnet may overlap.
    pub reserved: Reserved,
    /// `ovn-default` when the controller creates it.
    pub default_cidr: Ipv4Net,
    /// Its gateway.
    pub default_gateway: Option<Ipv4Addr>,
    /// Its `excludeIps`.
    pub default_exclude_ips: Vec<String>,
    /// Its `natOutgoing`.
    pub default_nat_outgoing: bool,
    /// How NB transactions are cut.
    pub apply: ApplyOptions,
    /// Kubernetes patches in flight at once.
    pub max_concurrent_patches: usize,
    /// Interval of the full resync round.
    pub resync_interval: Duration,
}

impl Settings {
    /// The `ovn-default` object these settings describe, as the controller creates it.
    pub fn default_subnet(&self) -> rovn_api::subnet::Subnet {
        crate::subnets::default_subnet(
            self.default_cidr,
            self.default_gateway,
            self.default_exclude_ips.clone(),
            self.default_nat_outgoing,
        )
    }
}

/// The caches the controller decides from.
pub struct Caches {
    /// Pods.
    pub pods: Store<Pod>,
    /// Nodes.
    pub nodes: Store<Node>,
    /// Subnets.
    pub subnets: Store<Subnet>,
    /// Services.
    pub services: Store<Service>,
    /// EndpointSlices.
    pub slices: Store<EndpointSlice>,
    /// NetworkPolicies.
    pub policies: Store<NetworkPolicy>,
    /// Namespaces.
    pub namespaces: Store<Namespace>,
}

/// When the next NB round runs and what it must look at.
#[derive(Debug, Default)]
pub(super) struct RoundQueue {
    /// When it is due.
    pub due: Option<Instant>,
    /// Owners whose rows may differ from NB.
    pub dirty: BTreeSet<Owner>,
    /// Render and diff everything, not only `dirty`.
    pub everything: bool,
    /// How long the last round took.
    pub last_duration: Duration,
    /// When the last round ended.
    pub last_end: Option<Instant>,
}

impl RoundQueue {
    /// `owner`'s rows may have changed: the next round diffs them.
    pub fn touch(&mut self, owner: Owner) {
        self.dirty.insert(owner);
        self.request_paced();
    }

    /// Something many rows depend on changed (a Subnet, a Node): the next round renders and
    /// diffs the whole cluster.
    pub fn everything(&mut self) {
        self.everything = true;
        self.request_paced();
    }

    /// Runs a round at most `delay` from now.
    pub fn request(&mut self, delay: Duration) {
        let at = Instant::now() + delay;
        self.due = Some(self.due.map_or(at, |due| due.min(at)));
    }

    /// Runs a round after [`DEBOUNCE`], and no sooner after the last one ended than that one
    /// took: rounds over a large cluster never take more than about half the CPU away from
    /// allocations and patches, while a round after a quiet spell starts at once, whatever the
    /// last one cost.
    fn request_paced(&mut self) {
        let now = Instant::now();
        let paced = self.last_end.map_or(now, |end| end + self.last_duration);
        let at = (now + DEBOUNCE).max(paced);
        self.request(at.saturating_duration_since(now));
    }
}

/// The shared state every module reads and changes; owned by the one controller task, so
/// nothing here needs a lock.
pub(super) struct World {
    pub settings: Settings,
    pub kube: kube::Client,
    pub caches: Caches,
    pub events: Events,
    pub metrics: Metrics,
    /// Every address pool: IPAM.
    pub alloc: Allocator,
    /// The validated Subnets.
    pub subnet_set: SubnetSet,
    pub queue: RoundQueue,
    done: UnboundedSender<Done>,
    permits: Arc<Semaphore>,
}

impl World {
    pub fn new(
        settings: Settings,
        kube: kube::Client,
        caches: Caches,
        events: Events,
        metrics: Metrics,
        done: UnboundedSender<Done>,
    ) -> Result<World, crate::ipam::IpamError> {
        let alloc = Allocator::new(settings.join_cidr)?;
        let permits = Arc::new(Semaphore::new(settings.max_concurrent_patches.max(1)));
        Ok(World {
            settings,
            kube,
            caches,
            events,
            metrics,
            alloc,
            subnet_set: SubnetSet::default(),
            queue: RoundQueue::default(),
            done,
            permits,
        })
    }

    /// Runs `write` in a task of its own, at most `max_concurrent_patches` at once, and reports
    /// its outcome as the [`Done`] `report` makes of it.
    pub fn spawn<T: Send + 'static>(
        &self,
        write: impl Future<Output = T> + Send + 'static,
        report: impl FnOnce(T) -> Done + Send + 'static,
    ) {
        let (permits, done) = (self.permits.clone(), self.done.clone());
        tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let _ = done.send(report(write.await));
        });
    }

    /// Reports `done` after `delay`: a retry.
    pub fn after(&self, delay: Duration, done: Done) {
        let sender = self.done.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = sender.send(done);
        });
    }

    /// The sender background tasks report on.
    pub fn done(&self) -> UnboundedSender<Done> {
        self.done.clone()
    }
}

/// The delay after `attempt` failures (1 = the first): [`BACKOFF`] doubled per attempt.
fn retry_delay(attempt: u32) -> Duration {
    (1..attempt.max(1)).fold(BACKOFF.initial, |d, _| BACKOFF.next(d))
}

/// Failed attempts per object, so each object's retries back off on their own.
#[derive(Debug)]
pub(super) struct Retries<K>(HashMap<K, u32>);

impl<K> Default for Retries<K> {
    fn default() -> Self {
        Retries(HashMap::new())
    }
}

impl<K: Eq + Hash + Clone> Retries<K> {
    /// Counts one more failure of `key` and returns how long to wait before the next attempt.
    pub fn failed(&mut self, key: &K) -> Duration {
        let attempt = self.0.entry(key.clone()).or_insert(0);
        *attempt = attempt.saturating_add(1);
        retry_delay(*attempt)
    }

    /// `key` succeeded or is gone.
    pub fn forget(&mut self, key: &K) {
        self.0.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_a_bound() {
        assert_eq!(retry_delay(1), BACKOFF.initial);
        assert_eq!(retry_delay(2), BACKOFF.initial * 2);
        assert_eq!(retry_delay(40), BACKOFF.max);
    }
}
