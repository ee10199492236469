//! LoadBalancer Services: each of rovn's gets an address of the `--lb-cidr` pool in
//! `status.loadBalancer.ingress` and a node to announce it in the `rovn.io/lb-node`
//! annotation (decided purely by [`crate::loadbalancers::decide`] from the caches; this module
//! only writes the differences and reports what could not be done). Without a pool, nothing
//! here runs. Runs only in the leader, as the whole controller task does.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ipnet::Ipv4Net;
use rovn_api::Owner;

use super::kubeio::{self, Problems};
use super::reports::Done;
use super::watch::Key;
use super::world::{Retries, World};
use crate::loadbalancers::{self as lb, Decision, LbService, Pool};
use crate::services::service_of_slice;

/// The LoadBalancer Services' bookkeeping.
pub(super) struct LoadBalancers {
    pool: Option<Pool>,
    /// Something they depend on changed since the last [`LoadBalancers::sync`].
    dirty: bool,
    /// Services with a write in flight, and the address that write records: the next
    /// decisions count it as written, so no other Service is given it meanwhile.
    in_flight: HashMap<Key, Option<std::net::Ipv4Addr>>,
    /// The address this process last wrote into each Service's status.
    written: HashMap<Key, Option<std::net::Ipv4Addr>>,
    /// Problems reported, by Event reason.
    problems: BTreeMap<&'static str, Problems>,
    retries: Retries<Key>,
}

impl LoadBalancers {
    /// The bookkeeping for the pool `cidr` (`None`: no pool, nothing is allocated).
    pub fn new(cidr: Option<Ipv4Net>) -> LoadBalancers {
        LoadBalancers {
            pool: cidr.map(Pool::new),
            dirty: true,
            in_flight: HashMap::new(),
            written: HashMap::new(),
            problems: BTreeMap::new(),
            retries: Retries::default(),
        }
    }

    /// A Service, slice or node changed: decide again at the next [`LoadBalancers::sync`].
    pub fn changed(&mut self) {
        self.dirty = true;
    }

    /// A write finished: on success the watch brings the result; a failure is retried later.
    pub fn done(&mut self, world: &mut World, key: Key, result: Result<(), kubeio::WriteError>) {
        let ip = self.in_flight.remove(&key);
        self.dirty = true;
        match result {
            Ok(()) => {
                self.retries.forget(&key);
                if let Some(ip) = ip {
                    self.written.insert(key, ip);
                }
            }
            Err(e) if e.is_not_found() => {
                self.retries.forget(&key);
                self.written.remove(&key);
            }
            Err(e) => {
                let delay = self.retries.failed(&key);
                tracing::warn!(error = %e, retry_in = ?delay, "LoadBalancer write failed");
                world.after(delay, Done::LoadBalancersRecheck);
            }
        }
    }

    /// Decides every LoadBalancer Service again when anything changed, and writes what differs.
    pub fn sync(&mut self, world: &mut World) {
        let Some(pool) = self.pool else { return };
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let mut slices_of: HashMap<Key, Vec<_>> = HashMap::new();
        for slice in world.caches.slices.state() {
            if let Some(service) = service_of_slice(&slice) {
                let key = Key {
                    namespace: slice.metadata.namespace.clone().unwrap_or_default(),
                    name: service.to_string(),
                };
                slices_of.entry(key).or_default().push(slice.clone());
            }
        }
        let services: Vec<LbService> = world
            .caches
            .services
            .state()
            .iter()
            .map(|service| {
                let key = Key::of(service.as_ref());
                let slices = slices_of.get(&key).into_iter().flatten();
                let mut view = lb::lb_service(service, slices.map(AsRef::as_ref));
                if let Some(ip) = self.in_flight.get(&key) {
                    view.status_ips = ip.iter().map(ToString::to_string).collect();
                }
                view.recorded = self
                    .written
                    .get(&key)
                    .copied()
                    .flatten()
                    .is_some_and(|ip| lb::pool_address(&view, &pool) == Some(ip));
                view
            })
            .collect();
        let nodes: BTreeSet<String> = world
            .caches
            .nodes
            .state()
            .iter()
            .filter(|n| lb::node_may_announce(n))
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        let by_key: HashMap<(String, String), &LbService> =
            services.iter().map(|s| (s.key(), s)).collect();
        let decisions = lb::decide(&pool, &services, &nodes);
        let mut seen = HashSet::new();
        for decision in &decisions {
            let key = Key {
                namespace: decision.namespace.clone(),
                name: decision.name.clone(),
            };
            seen.insert(Owner::service(&key.namespace, &key.name));
            self.report(world, decision);
            let Some(service) = by_key.get(&(key.namespace.clone(), key.name.clone())) else {
                continue;
            };
            if self.in_flight.contains_key(&key) {
                continue;
            }
            let ip = decision
                .status_differs(service, &pool)
                .then_some(decision.ip);
            let announcer = decision
                .announcer_differs(service)
                .then(|| decision.announcer.clone());
            if ip.is_none() && announcer.is_none() {
                continue;
            }
            tracing::info!(
                service = %Owner::service(&key.namespace, &key.name),
                address = ?decision.ip,
                announcer = ?decision.announcer,
                "LoadBalancer address"
            );
            self.in_flight
                .insert(key.clone(), ip.unwrap_or(decision.ip));
            let client = world.kube.clone();
            let (namespace, name) = (key.namespace.clone(), key.name.clone());
            world.spawn(
                async move { kubeio::patch_service_lb(client, &namespace, &name, ip, announcer).await },
                move |result| Done::LoadBalancerWritten(key, result),
            );
        }
        // Services that left (deleted, foreign now): nothing of them is remembered.
        self.written
            .retain(|key, _| seen.contains(&Owner::service(&key.namespace, &key.name)));
        for problems in self.problems.values_mut() {
            problems.retain(|owner| seen.contains(owner));
        }
    }

    fn report(&mut self, world: &World, decision: &Decision) {
        let owner = Owner::service(&decision.namespace, &decision.name);
        for reason in lb::REASONS {
            let messages = decision
                .problems
                .iter()
                .filter(|(r, _)| *r == reason)
                .map(|(_, m)| m.clone());
            self.problems.entry(reason).or_default().report(
                &world.events,
                &owner,
                reason,
                "AllocateLoadBalancerIP",
                messages,
            );
        }
    }
}
