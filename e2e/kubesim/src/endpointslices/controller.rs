//! The I/O half of the EndpointSlice controller: a task that follows the store's
//! change feed, keeps the [`Index`] current, and every few milliseconds reconciles the
//! Services it dirtied, writing slices through the same `State` methods API requests
//! use (so resourceVersions, generation, watch events and history are a client's).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::task::JoinHandle;

use super::desired::{self, CONTROLLER_NAME, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, LABEL_ZONE};
use super::index::{Index, Key};
use crate::cluster::{State, Target};
use crate::deletion::DeleteOptions;
use crate::resources::ResourceDef;
use crate::server::Cluster;
use crate::store::{ChangeEvent, EventKind, StoredObject};

/// How long to let changes pile up after the first one before reconciling, so a burst
/// (a Deployment's pods, a kubelet's status storm) costs one reconcile per Service
/// rather than one per event (upstream's `endpointUpdatesBatchPeriod`, shortened for
/// tests that wait on slices).
pub const BATCH: Duration = Duration::from_millis(5);

/// At most this many changes are filed before reconciling, so a writer that never
/// pauses cannot keep the slices from being written.
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// The kinds the controller reads and writes, resolved once.
struct Defs {
    pods: Arc<ResourceDef>,
    services: Arc<ResourceDef>,
    slices: Arc<ResourceDef>,
    nodes: Arc<ResourceDef>,
}

impl Defs {
    fn resolve(state: &State) -> Option<Defs> {
        Some(Defs {
            pods: state.registry.get("", "v1", "pods")?,
            services: state.registry.get("", "v1", "services")?,
            slices: state
                .registry
                .get("discovery.k8s.io", "v1", "endpointslices")?,
            nodes: state.registry.get("", "v1", "nodes")?,
        })
    }
}

/// The Service a slice is managed for, if this controller manages it.
fn managed_for(slice: &Value) -> Option<&str> {
    let labels = slice.pointer("/metadata/labels")?;
    (labels.get(LABEL_MANAGED_BY).and_then(Value::as_str) == Some(CONTROLLER_NAME)).then(|| {
        labels
            .get(LABEL_SERVICE_NAME)
            .and_then(Value::as_str)
            .unwrap_or("")
    })
}

/// An index of everything in the store, every Service dirty: the starting point, and
/// the way back after the controller fell behind the change feed.
fn rebuild(state: &State, defs: &Defs) -> Index {
    let mut index = Index::default();
    for svc in state.store.list(&defs.services.storage, None) {
        let ns = svc.namespace();
        let pods = state
            .store
            .list(&defs.pods.storage, Some(ns))
            .map(|p| (p.name(), &p.value));
        let selector = desired::selector_of(&svc.value).ok().flatten();
        index.service_changed(ns, svc.name(), selector, pods);
    }
    for slice in state.store.list(&defs.slices.storage, None) {
        let managed = managed_for(&slice.value);
        index.slice_changed(slice.namespace(), slice.name(), managed, slice.rv, false);
    }
    index
}

/// Starts the controller on the current runtime; it ends when the server's shutdown
/// signal flips (or when the returned task is aborted, as `RunningServer::stop` does).
/// Subscribing and indexing happen under one read lock, so no change falls between.
pub fn spawn(cluster: Arc<Cluster>) -> Option<JoinHandle<()>> {
    let (defs, index, rx) = {
        let state = cluster.read();
        let Some(defs) = Defs::resolve(&state) else {
            tracing::error!("EndpointSlice controller not started: a built-in kind is missing");
            return None;
        };
        let rx = state.store.subscribe();
        let index = rebuild(&state, &defs);
        (defs, index, rx)
    };
    Some(tokio::spawn(run(cluster, defs, index, rx)))
}

async fn run(
    cluster: Arc<Cluster>,
    defs: Defs,
    mut index: Index,
    mut rx: tokio::sync::broadcast::Receiver<Arc<ChangeEvent>>,
) {
    let mut shutdown = cluster.shutdown.clone();
    loop {
        if *shutdown.borrow() {
            return;
        }
        if index.has_dirty() {
            reconcile_dirty(&cluster, &defs, &mut index);
        }
        let first = tokio::select! {
            r = rx.recv() => r,
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        tokio::time::sleep(BATCH).await;
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(received) = next.take() {
            taken += 1;
            match received {
                Ok(event) => handle(&cluster, &defs, &mut index, &event),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "EndpointSlice controller fell behind the change feed; re-indexing"
                    );
                    let state = cluster.read();
                    rx = state.store.subscribe();
                    index = rebuild(&state, &defs);
                }
                Err(RecvError::Closed) => return,
            }
            if taken >= MAX_BATCH_EVENTS {
                break;
            }
            next = match rx.try_recv() {
                Ok(event) => Some(Ok(event)),
                Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                Err(TryRecvError::Empty) => None,
            };
        }
    }
}

/// Files one change into the index. Only Service events are parsed; pod and slice
/// events are read through their selectable view (name, namespace, labels).
fn handle(cluster: &Cluster, defs: &Defs, index: &mut Index, event: &ChangeEvent) {
    let view = &event.selectable;
    let name = view
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ns = &*event.namespace;
    let gone = event.kind == EventKind::Deleted;
    if event.storage == defs.pods.storage {
        index.pod_changed(ns, name, (!gone).then_some(view));
    } else if event.storage == defs.slices.storage {
        index.slice_changed(ns, name, managed_for(view), event.rv, gone);
    } else if event.storage == defs.services.storage {
        let selector = if gone {
            None
        } else {
            // A malformed Service manages nothing here; its reconcile logs why.
            serde_json::from_slice::<Value>(&event.object)
                .ok()
                .and_then(|svc| desired::selector_of(&svc).ok().flatten())
        };
        let state = cluster.read();
        let pods = state
            .store
            .list(&defs.pods.storage, Some(ns))
            .map(|p| (p.name(), &p.value));
        index.service_changed(ns, name, selector, pods);
    }
}

/// Reconciles every dirty Service, taking the state lock per Service so API requests
/// interleave with a large batch.
fn reconcile_dirty(cluster: &Cluster, defs: &Defs, index: &mut Index) {
    for service in index.take_dirty() {
        let mut state = cluster.write();
        reconcile(&mut state, defs, index, &service);
    }
}

fn reconcile(state: &mut State, defs: &Defs, index: &mut Index, service: &Key) {
    let (ns, name) = (service.0.as_str(), service.1.as_str());
    let existing: Vec<Arc<StoredObject>> = index
        .slices(service)
        .filter_map(|s| state.store.get(&defs.slices.storage, ns, s).cloned())
        .filter(|s| managed_for(&s.value) == Some(name))
        .collect();
    let existing_values: Vec<&Value> = existing.iter().map(|s| &s.value).collect();
    let svc = state.store.get(&defs.services.storage, ns, name).cloned();
    let plan = match svc.map(|s| desired::parse_service(&s.value)) {
        None | Some(Ok(None)) => desired::plan_removal(&existing_values),
        Some(Err(why)) => {
            tracing::warn!(service = %format!("{ns}/{name}"), %why, "EndpointSlice controller skips a malformed Service");
            return;
        }
        Some(Ok(Some(svc))) => {
            let pods: Vec<Arc<StoredObject>> = index
                .members(service)
                .filter_map(|p| state.store.get(&defs.pods.storage, ns, p).cloned())
                .filter(|p| svc.selector.matches(&p.value))
                .collect();
            let pod_values: Vec<&Value> = pods.iter().map(|p| &p.value).collect();
            let zone_of = |node: &str| {
                state
                    .store
                    .get(&defs.nodes.storage, "", node)
                    .and_then(|n| {
                        n.value
                            .pointer("/metadata/labels")?
                            .get(LABEL_ZONE)?
                            .as_str()
                            .map(str::to_string)
                    })
            };
            desired::plan(
                &svc,
                &pod_values,
                &existing_values,
                desired::MAX_ENDPOINTS_PER_SLICE,
                &zone_of,
            )
        }
    };
    if plan.is_empty() {
        return;
    }
    tracing::debug!(service = %format!("{ns}/{name}"), create = plan.create.len(), update = plan.update.len(), delete = plan.delete.len(), "reconciling EndpointSlices");
    apply(state, defs, index, service, plan);
}

/// Writes a plan. A failed write is logged; the Service is retried on its next
/// change (a terminating namespace refuses creates for good, as upstream drops them).
fn apply(state: &mut State, defs: &Defs, index: &mut Index, service: &Key, plan: desired::Plan) {
    let (ns, name) = (service.0.as_str(), service.1.as_str());
    let def = defs.slices.clone();
    let written = |index: &mut Index, before: u64, obj: &StoredObject, gone: bool| {
        if obj.rv > before {
            index.wrote_slice(ns, obj.name(), name, obj.rv, gone);
        }
    };
    let fail = |what: &str, slice: &str, e: &crate::status::ApiError| {
        if e.code == 403 {
            tracing::debug!(service = %format!("{ns}/{name}"), slice, error = %e, "EndpointSlice {what} refused");
        } else {
            tracing::warn!(service = %format!("{ns}/{name}"), slice, error = %e, "EndpointSlice {what} failed");
        }
    };
    for slice in plan.delete {
        let before = state.store.resource_version();
        match state.delete(&def, ns, &slice, &DeleteOptions::default(), false) {
            Ok(d) => written(index, before, &d.object, d.removed),
            Err(e) if e.code == 404 => {}
            Err(e) => fail("delete", &slice, &e),
        }
    }
    for body in plan.update {
        let slice = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let before = state.store.resource_version();
        match state.update(&def, ns, &slice, body, Target::Main, false) {
            Ok(obj) => written(index, before, &obj, false),
            Err(e) => fail("update", &slice, &e),
        }
    }
    for body in plan.create {
        let before = state.store.resource_version();
        match state.create(&def, Some(ns), body, false) {
            Ok(obj) => written(index, before, &obj, false),
            Err(e) => fail("create", "", &e),
        }
    }
}
