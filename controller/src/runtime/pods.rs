//! Pods: who holds which address, the allocation patch, refusals, and `routed=true` once a
//! pod's port is in NB.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;
use rovn_api::annotations::{
    Ipv4PodAllocation, Ipv4PodRequest, is_routed, parse_pod_allocation, render_pod_allocation,
};
use rovn_api::{MacAddr, Owner, names};

use super::decide::{Held, PodAction, decide_pod, is_host_network, is_terminal, node_of};
use super::kubeio::{self, WriteError};
use super::ledger::Recorded;
use super::reports::{Done as WorldDone, PodDone as Done};
use super::subnets::Holders;
use super::watch::Key;
use super::world::{Retries, World};
use crate::desired::PodPort;
use crate::ipam::Request;

/// A pod's address as the controller holds it.
#[derive(Debug, Clone)]
struct PodRecord {
    uid: String,
    node: String,
    switch: String,
    ip: Ipv4Addr,
    mac: MacAddr,
    /// The annotation patch has succeeded (or the pod carried the allocation already).
    written: bool,
    /// `rovn.io/routed=true` is written (seen on the pod or patched by this controller).
    routed: bool,
}

/// A pod that could not be given an address, and why (reported once per message).
#[derive(Debug, Clone)]
struct Refusal {
    uid: String,
    message: String,
    /// The pod carries an allocation of its own: its NB rows are kept as they are.
    keep_rows: bool,
}

fn owner(key: &Key) -> Owner {
    Owner::pod(&key.namespace, &key.name)
}

/// The pods' bookkeeping.
#[derive(Default)]
pub(super) struct Pods {
    records: HashMap<Key, PodRecord>,
    refused: HashMap<Key, Refusal>,
    attempts: Retries<Key>,
    routed_pending: HashMap<Key, String>,
    /// An address was freed or a Subnet changed: refused pods may fit now.
    retry_refused: bool,
    /// What rovn's NB ports recorded at start-up, for pods not restored yet.
    recorded: HashMap<Key, Recorded>,
    /// Pods whose edited allocation annotations are being written back.
    reverting: HashSet<Key>,
    /// Subnets a pod took an address on or gave one back since the controller last looked.
    switches_changed: BTreeSet<String>,
}

fn cached(world: &World, key: &Key) -> Option<Arc<Pod>> {
    world
        .caches
        .pods
        .get(&ObjectRef::new(&key.name).within(&key.namespace))
}

impl Pods {
    /// At start-up: first the pods whose NB port records their address (`recorded`, oldest pod
    /// first, so the oldest wins a contested address), then pods whose annotations carry an
    /// allocation without such a port (as static requests), then the rest. Returns how many
    /// were restored from NB.
    pub fn start(&mut self, world: &mut World, recorded: HashMap<Key, Recorded>) -> usize {
        self.recorded = recorded;
        let mut pods: Vec<Arc<Pod>> = world.caches.pods.state();
        let rank = |pod: &Pod| {
            let key = Key::of(pod);
            let recorded = self
                .recorded
                .get(&key)
                .is_some_and(|r| pod.metadata.uid.as_deref() == Some(r.uid.as_str()));
            let annotated = pod
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| matches!(parse_pod_allocation(a), Ok(Some(_))));
            (
                !recorded,
                !annotated,
                pod.metadata.creation_timestamp.clone(),
                key,
            )
        };
        pods.sort_by_cached_key(|p| rank(p));
        for pod in &pods {
            self.changed(world, &Key::of(pod.as_ref()));
        }
        let restored = self.records.values().filter(|r| r.written).count();
        let present: HashSet<Key> = pods.iter().map(|p| Key::of(p.as_ref())).collect();
        self.recorded.retain(|key, _| present.contains(key));
        restored
    }

    /// How many pods hold an address.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// After a relist: every pod known before or now.
    pub fn resync(&mut self, world: &mut World) {
        let mut keys: BTreeSet<Key> = self.records.keys().cloned().collect();
        keys.extend(
            world
                .caches
                .pods
                .state()
                .iter()
                .map(|p| Key::of(p.as_ref())),
        );
        for key in keys {
            self.changed(world, &key);
        }
    }

    /// Acts on the pod `key` as it is in the cache now.
    pub fn changed(&mut self, world: &mut World, key: &Key) {
        let pod = cached(world, key);
        let held = self.records.get(key).map(|r| r.uid.clone());
        let action = decide_pod(
            pod.as_deref(),
            held.as_deref().map_or(Held::Nothing, Held::Address),
            self.recorded.get(key),
        );
        match action {
            PodAction::Skip => match pod {
                Some(pod) if !is_terminal(&pod) && !is_host_network(&pod) => {
                    self.revert_edits(world, key, &pod);
                }
                _ => self.forget(world, key),
            },
            PodAction::Release => {
                self.release(world, key);
                if pod.is_some() {
                    self.changed(world, key);
                } else {
                    self.forget(world, key);
                }
            }
            PodAction::Restore(recorded) => {
                if let Some(pod) = pod {
                    self.restore(world, key, &pod, recorded);
                }
            }
            PodAction::Allocate(request) => {
                if let Some(pod) = pod {
                    self.allocate(world, key, &pod, request);
                }
            }
            PodAction::Refuse(error) => {
                if let Some(pod) = pod {
                    let keep = pod
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(names::annotations::ALLOCATED))
                        .is_some_and(|v| v == "true");
                    self.refuse(world, &pod, "InvalidAnnotation", error.to_string(), keep);
                }
            }
        }
    }

    /// A pod that is gone (or needs no address) is no longer refused or retried.
    fn forget(&mut self, world: &mut World, key: &Key) {
        self.recorded.remove(key);
        if self.refused.remove(key).is_some_and(|r| r.keep_rows) {
            world.queue.touch(owner(key));
        }
        self.attempts.forget(key);
    }

    fn refuse(
        &mut self,
        world: &mut World,
        pod: &Pod,
        reason: &str,
        message: String,
        keep_rows: bool,
    ) {
        let key = Key::of(pod);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let repeated = self
            .refused
            .get(&key)
            .is_some_and(|r| r.uid == uid && r.message == message);
        if !repeated {
            world.metrics.pod_allocation("refused");
            world.events.warn(
                kubeio::reference(pod),
                reason,
                "AllocateAddress",
                format!("{}: {message}", owner(&key)),
            );
        }
        self.refused.insert(
            key,
            Refusal {
                uid,
                message,
                keep_rows,
            },
        );
    }

    fn restore(&mut self, world: &mut World, key: &Key, pod: &Pod, recorded: Recorded) {
        let Some(pool) = world.alloc.pool(&recorded.switch) else {
            let message = format!(
                "its port is on Subnet {}, which is not ready",
                recorded.switch
            );
            self.refuse(world, pod, "UnknownSubnet", message, true);
            return;
        };
        match pool.restore(&owner(key).to_string(), recorded.ip, recorded.mac) {
            Ok(_) => {
                self.refused.remove(key);
                self.recorded.remove(key);
                world.metrics.pod_allocation("restored");
                self.switches_changed.insert(recorded.switch.clone());
                self.records.insert(
                    key.clone(),
                    PodRecord {
                        uid: recorded.uid,
                        node: node_of(pod).unwrap_or_default().to_string(),
                        switch: recorded.switch,
                        ip: recorded.ip,
                        mac: recorded.mac,
                        written: true,
                        routed: pod.metadata.annotations.as_ref().is_some_and(is_routed),
                    },
                );
                world.queue.touch(owner(key));
                self.revert_edits(world, key, pod);
            }
            Err(e) => self.refuse(world, pod, "AddressConflict", e.to_string(), true),
        }
    }

    /// A held pod's allocation annotations say something else than what the controller holds
    /// (someone edited them): writes them back, with an Event. A running pod's address never
    /// changes under it; a pod that wants another address must be re-created.
    fn revert_edits(&mut self, world: &mut World, key: &Key, pod: &Pod) {
        let Some(record) = self.records.get(key).filter(|r| r.written) else {
            return;
        };
        if self.reverting.contains(key) {
            return;
        }
        let Some(config) = world.subnet_set.get(&record.switch) else {
            return;
        };
        let expected = render_pod_allocation(
            &Ipv4PodAllocation {
                ip: record.ip,
                mac: record.mac,
                cidr: config.cidr,
                gateway: config.gateway,
                switch: record.switch.clone(),
            }
            .into(),
        );
        let empty = BTreeMap::new();
        let current = pod.metadata.annotations.as_ref().unwrap_or(&empty);
        let edited: Vec<String> = expected
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, v)| match current.get(k) {
                Some(now) => format!("{k}={now:?} (holds {v:?})"),
                None => format!("{k} removed (holds {v:?})"),
            })
            .collect();
        if edited.is_empty() {
            return;
        }
        world.events.warn(
            kubeio::reference(pod),
            "AllocationReverted",
            "AllocateAddress",
            format!(
                "{}: its allocation was edited ({}); a running pod's address never changes, so \
                 it was written back. Re-create the pod to change its address.",
                owner(key),
                edited.join(", ")
            ),
        );
        self.reverting.insert(key.clone());
        let kube = world.kube.clone();
        let uid = record.uid.clone();
        let (key, ns, name) = (key.clone(), key.namespace.clone(), key.name.clone());
        world.spawn(
            async move {
                kubeio::patch_pod_annotations(kube, &ns, &name, &uid, None, &expected)
                    .await
                    .map(drop)
            },
            move |result| WorldDone::Pod(Done::Reverted { key, result }),
        );
    }

    fn allocate(&mut self, world: &mut World, key: &Key, pod: &Pod, request: Ipv4PodRequest) {
        let subnet = match world
            .subnet_set
            .for_pod(&key.namespace, request.switch.as_deref())
        {
            Ok(subnet) => subnet.clone(),
            Err(e) => {
                self.refuse(world, pod, e.reason(), e.to_string(), false);
                return;
            }
        };
        let Some(pool) = world.alloc.pool(&subnet.name) else {
            let message = format!("Subnet {} has no address pool", subnet.name);
            self.refuse(world, pod, "SubnetNotReady", message, false);
            return;
        };
        let request = Request {
            ip: request.ip,
            mac: request.mac,
        };
        let allocation = match pool.allocate(&owner(key).to_string(), request) {
            Ok(a) => a,
            Err(e) => {
                self.refuse(world, pod, e.reason(), e.to_string(), false);
                return;
            }
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.switches_changed.insert(subnet.name.clone());
        self.records.insert(
            key.clone(),
            PodRecord {
                uid: uid.clone(),
                node: node_of(pod).unwrap_or_default().to_string(),
                switch: subnet.name.clone(),
                ip: allocation.ip,
                mac: allocation.mac,
                written: false,
                routed: false,
            },
        );
        let annotations = render_pod_allocation(
            &Ipv4PodAllocation {
                ip: allocation.ip,
                mac: allocation.mac,
                cidr: subnet.cidr,
                gateway: subnet.gateway,
                switch: subnet.name,
            }
            .into(),
        );
        let rv = pod.metadata.resource_version.clone();
        let (kube, key) = (world.kube.clone(), key.clone());
        let (ns, name, patch_uid) = (key.namespace.clone(), key.name.clone(), uid.clone());
        world.spawn(
            async move {
                kubeio::patch_pod_annotations(
                    kube,
                    &ns,
                    &name,
                    &patch_uid,
                    rv.as_deref(),
                    &annotations,
                )
                .await
                .map(drop)
            },
            move |result| WorldDone::Pod(Done::Patched { key, uid, result }),
        );
    }

    fn release(&mut self, world: &mut World, key: &Key) {
        self.routed_pending.remove(key);
        let Some(record) = self.records.remove(key) else {
            return;
        };
        self.switches_changed.insert(record.switch.clone());
        if let Some(pool) = world.alloc.pool(&record.switch) {
            pool.release(&owner(key).to_string());
        }
        if record.written {
            world.queue.touch(owner(key));
        }
        self.retry_refused = true;
    }

    /// A background write of a pod's is done.
    pub fn done(&mut self, world: &mut World, done: Done) {
        match done {
            Done::Patched { key, uid, result } => self.patched(world, key, uid, result),
            Done::Routed { key, uid, result } => self.routed(world, key, uid, result),
            Done::Retry(key) => self.changed(world, &key),
            Done::Reverted { key, result } => {
                self.reverting.remove(&key);
                if let Err(e) = result {
                    tracing::warn!(pod = %key, error = %e, "writing back an edited allocation failed");
                }
                self.changed(world, &key);
            }
        }
    }

    fn patched(
        &mut self,
        world: &mut World,
        key: Key,
        uid: String,
        result: Result<(), WriteError>,
    ) {
        let Some(record) = self.records.get_mut(&key) else {
            return;
        };
        if record.uid != uid || record.written {
            return;
        }
        match result {
            Ok(()) => {
                record.written = true;
                self.attempts.forget(&key);
                self.refused.remove(&key);
                world.metrics.pod_allocation("allocated");
                world.queue.touch(owner(&key));
            }
            Err(e) => {
                world.metrics.pod_allocation("patch_failed");
                self.release(world, &key);
                if e.is_not_found() {
                    return;
                }
                tracing::warn!(pod = %key, error = %e, "annotation patch failed; retrying");
                let delay = self.attempts.failed(&key);
                world.after(delay, WorldDone::Pod(Done::Retry(key)));
            }
        }
    }

    fn routed(&mut self, world: &mut World, key: Key, uid: String, result: Result<(), WriteError>) {
        match result {
            Ok(()) => {
                if let Some(record) = self.records.get_mut(&key)
                    && record.uid == uid
                {
                    record.routed = true;
                    self.routed_pending.remove(&key);
                }
            }
            Err(e) => {
                if self.routed_pending.get(&key) == Some(&uid) {
                    self.routed_pending.remove(&key);
                }
                if !e.is_not_found() {
                    tracing::warn!(pod = %key, error = %e, "routed patch failed; retrying");
                    world.queue.request(BACKOFF_ROUTED);
                }
            }
        }
    }

    /// Pods refused since the last call get another try when an address was freed or a Subnet
    /// changed.
    pub fn retry_refused(&mut self, world: &mut World) {
        if !std::mem::take(&mut self.retry_refused) {
            return;
        }
        let keys: Vec<Key> = self.refused.keys().cloned().collect();
        for key in keys {
            self.changed(world, &key);
        }
    }

    /// After Subnets changed: pods of a Subnet whose pool was rebuilt take their addresses
    /// again (a pod whose address no longer fits is refused, its rows kept); refused pods get
    /// another try.
    pub fn subnets_changed(&mut self, world: &mut World, rebuilt: &[String]) {
        for name in rebuilt {
            let holders: Vec<(Key, PodRecord)> = self
                .records
                .iter()
                .filter(|(_, r)| &r.switch == name)
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect();
            for (key, record) in holders {
                let restored = world
                    .alloc
                    .pool(name)
                    .map(|pool| pool.restore(&owner(&key).to_string(), record.ip, record.mac));
                if let Some(Err(e)) = restored {
                    tracing::warn!(pod = %key, error = %e, "address no longer fits its rebuilt Subnet");
                    self.records.remove(&key);
                    self.switches_changed.insert(name.clone());
                    if let Some(pod) = cached(world, &key) {
                        self.refuse(world, &pod, "AddressConflict", e.to_string(), true);
                    }
                }
            }
        }
        self.retry_refused = true;
    }

    /// The pods holding an address on each Subnet (what Subnet validation calls its holders).
    pub fn holders(&self) -> Holders {
        let mut out = Holders::new();
        for (key, record) in &self.records {
            out.entry(record.switch.clone())
                .or_default()
                .push((record.ip, owner(key).to_string()));
        }
        out
    }

    /// The holders a start-up knows before any pod is restored: the pods present whose rovn
    /// NB port records their address (`recorded`, kept by [`Pods::start`]).
    pub fn recorded_holders(world: &World, recorded: &HashMap<Key, Recorded>) -> Holders {
        let mut out = Holders::new();
        for (key, r) in recorded {
            let present = cached(world, key)
                .is_some_and(|pod| pod.metadata.uid.as_deref() == Some(r.uid.as_str()));
            if present {
                out.entry(r.switch.clone())
                    .or_default()
                    .push((r.ip, owner(key).to_string()));
            }
        }
        out
    }

    /// The Subnets a pod took an address on or gave one back since the last call.
    pub fn take_switches_changed(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.switches_changed)
    }

    /// The port of every pod whose allocation is written, for a full render.
    pub fn ports(&self) -> Vec<PodPort> {
        self.records
            .iter()
            .filter(|(_, r)| r.written)
            .map(|(key, r)| port(key, r))
            .collect()
    }

    /// The port of the pod `owner`, when it has a written allocation.
    pub fn port_of(&self, owner: &Owner) -> Option<PodPort> {
        let key = Key {
            namespace: owner.namespace()?.to_string(),
            name: owner.name().to_string(),
        };
        self.records
            .get(&key)
            .filter(|r| r.written)
            .map(|r| port(&key, r))
    }

    /// How many pods are refused an address now.
    pub fn refused_count(&self) -> usize {
        self.refused.len()
    }

    /// Pods whose NB rows stay as they are although they have no port to render: refused while
    /// they carry an allocation of their own.
    pub fn kept(&self) -> impl Iterator<Item = Owner> + '_ {
        self.refused
            .iter()
            .filter(|(_, r)| r.keep_rows)
            .map(|(key, _)| owner(key))
    }

    /// Whether the pod `key`'s rows are kept as they are although it has no port to render.
    pub fn is_kept(&self, key: &Key) -> bool {
        self.refused.get(key).is_some_and(|r| r.keep_rows)
    }

    /// Pods whose port a successful round will have committed and that are not routed yet.
    pub fn unrouted(&self) -> Vec<(Key, String)> {
        self.records
            .iter()
            .filter(|(_, r)| r.written && !r.routed)
            .map(|(k, r)| (k.clone(), r.uid.clone()))
            .collect()
    }

    /// Patches `routed=true` onto `pods` (as captured when the round started), but not onto
    /// pods whose rows were held.
    pub fn mark_routed(
        &mut self,
        world: &mut World,
        pods: &[(Key, String)],
        held: &BTreeSet<Owner>,
    ) {
        for (key, uid) in pods {
            if self.routed_pending.get(key) == Some(uid) || held.contains(&owner(key)) {
                continue;
            }
            let Some(pod) = cached(world, key) else {
                continue;
            };
            if pod.metadata.uid.as_ref() != Some(uid) {
                continue;
            }
            if pod.metadata.annotations.as_ref().is_some_and(is_routed) {
                if let Some(record) = self.records.get_mut(key) {
                    record.routed = true;
                }
                continue;
            }
            self.routed_pending.insert(key.clone(), uid.clone());
            let kube = world.kube.clone();
            let (key, uid) = (key.clone(), uid.clone());
            let (ns, name, patch_uid) = (key.namespace.clone(), key.name.clone(), uid.clone());
            world.spawn(
                async move {
                    let annotations = BTreeMap::from([(
                        names::annotations::ROUTED.to_string(),
                        "true".to_string(),
                    )]);
                    kubeio::patch_pod_annotations(kube, &ns, &name, &patch_uid, None, &annotations)
                        .await
                        .map(drop)
                },
                move |result| WorldDone::Pod(Done::Routed { key, uid, result }),
            );
        }
    }
}

/// How soon a round runs again after a `routed` patch failed.
const BACKOFF_ROUTED: std::time::Duration = std::time::Duration::from_millis(500);

fn port(key: &Key, r: &PodRecord) -> PodPort {
    PodPort {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        uid: r.uid.clone(),
        node: r.node.clone(),
        switch: r.switch.clone(),
        ip: r.ip,
        mac: r.mac,
    }
}
