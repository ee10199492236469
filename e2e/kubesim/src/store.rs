//! Object storage with one cluster-wide resourceVersion counter and a bounded history of
//! change events for resuming watches. Pure data structure: no HTTP, no locking (the
//! server wraps it in one lock), no I/O. Each object is serialised once when written;
//! lists and watch events reuse those bytes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::resources::StorageKey;
use crate::selectors::selectable_view;

/// An object as stored: its JSON value and the same value serialised.
#[derive(Debug)]
pub struct StoredObject {
    /// The full object, `metadata.resourceVersion` included.
    pub value: Value,
    /// `value` serialised, reused by every list and watch that returns it.
    pub json: Bytes,
    /// The resourceVersion of this state of the object.
    pub rv: u64,
}

impl StoredObject {
    fn new(value: Value, rv: u64) -> Self {
        let json = Bytes::from(value.to_string());
        StoredObject { value, json, rv }
    }

    /// `metadata.namespace` (`""` for cluster-scoped objects).
    pub fn namespace(&self) -> &str {
        meta_str(&self.value, "namespace")
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        meta_str(&self.value, "name")
    }
}

/// Reads a string field of `metadata`, `""` when absent.
pub fn meta_str<'a>(value: &'a Value, field: &str) -> &'a str {
    value
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The watch event types a change produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventKind {
    /// The wire name (`ADDED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One committed change, shared by the history and every watcher. It holds only the
/// serialised object (the same buffer the stored object owns), so the history keeps
/// old versions as compact JSON rather than as parsed trees.
#[derive(Debug)]
pub struct ChangeEvent {
    /// The resourceVersion the change was committed at.
    pub rv: u64,
    /// Which collection changed.
    pub storage: StorageKey,
    /// What happened.
    pub kind: EventKind,
    /// The object's namespace (`""` for cluster-scoped), for cheap namespace filtering.
    pub namespace: Box<str>,
    /// The object's `apiVersion` (CRD versions may differ from the watched one).
    pub api_version: Box<str>,
    /// The object after the change (for DELETED: its last state, at `rv`), as JSON.
    pub object: Bytes,
    /// What selectors see of the object after the change.
    pub selectable: Value,
    /// What selectors saw of the object before the change, so filtered watches can
    /// tell "stopped matching" (sent as DELETED) from "never matched".
    pub previous_selectable: Option<Value>,
}

/// Builds a newline-terminated watch event line around pre-serialised object JSON.
pub fn watch_line(kind: &str, object_json: &[u8]) -> Bytes {
    let mut line = Vec::with_capacity(object_json.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object_json);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// A watch asked for history the store no longer has.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too old resource version: {requested} ({oldest})")]
pub struct TooOld {
    /// The resourceVersion the client asked to resume from.
    pub requested: u64,
    /// The oldest resourceVersion a watch can still resume from.
    pub oldest: u64,
}

/// A resumed watch: the recorded events to replay, then the live feed.
pub type Subscription = (Vec<Arc<ChangeEvent>>, broadcast::Receiver<Arc<ChangeEvent>>);

/// Key of an object within its collection: (namespace, name).
pub type ObjectKey = (String, String);

/// All objects, the resourceVersion counter and the change history.
pub struct Store {
    rv: u64,
    collections: HashMap<StorageKey, BTreeMap<ObjectKey, Arc<StoredObject>>>,
    history: VecDeque<Arc<ChangeEvent>>,
    history_limit: usize,
    compacted_rv: u64,
    events: broadcast::Sender<Arc<ChangeEvent>>,
}

impl Store {
    /// An empty store keeping `history_limit` events for watch resumption and letting
    /// each live watcher fall at most `watcher_buffer` events behind.
    pub fn new(history_limit: usize, watcher_buffer: usize) -> Self {
        let (events, _) = broadcast::channel(watcher_buffer.max(16));
        Store {
            rv: 1,
            collections: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted_rv: 0,
            events,
        }
    }

    /// The latest committed resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// One object.
    pub fn get(&self, storage: &str, namespace: &str, name: &str) -> Option<&Arc<StoredObject>> {
        self.collections
            .get(storage)?
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// Objects of a collection in (namespace, name) order, optionally one namespace only.
    pub fn list<'a>(
        &'a self,
        storage: &str,
        namespace: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = &'a Arc<StoredObject>> + 'a> {
        let Some(coll) = self.collections.get(storage) else {
            return Box::new(std::iter::empty());
        };
        match namespace {
            None => Box::new(coll.values()),
            Some(ns) => Box::new(
                coll.range((ns.to_string(), String::new())..)
                    .take_while(move |((n, _), _)| n == ns)
                    .map(|(_, v)| v),
            ),
        }
    }

    /// Whether a collection holds anything in `namespace`.
    pub fn any_in_namespace(&self, storage: &str, namespace: &str) -> bool {
        self.list(storage, Some(namespace)).next().is_some()
    }

    fn commit(
        &mut self,
        storage: &StorageKey,
        kind: EventKind,
        object: Arc<StoredObject>,
        previous: Option<Arc<StoredObject>>,
    ) {
        let event = Arc::new(ChangeEvent {
            rv: object.rv,
            storage: storage.clone(),
            kind,
            namespace: object.namespace().into(),
            api_version: object
                .value
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            object: object.json.clone(),
            selectable: selectable_view(&object.value),
            previous_selectable: previous.map(|p| selectable_view(&p.value)),
        });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted_rv = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
    }

    fn stamp(&mut self, mut value: Value) -> Arc<StoredObject> {
        self.rv += 1;
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        }
        Arc::new(StoredObject::new(value, self.rv))
    }

    /// Stores `value` (created or replaced, by its metadata namespace/name) at a new
    /// resourceVersion and records the change.
    pub fn put(&mut self, storage: &StorageKey, value: Value) -> Arc<StoredObject> {
        let key = (
            meta_str(&value, "namespace").to_string(),
            meta_str(&value, "name").to_string(),
        );
        let object = self.stamp(value);
        let previous = self
            .collections
            .entry(storage.clone())
            .or_default()
            .insert(key, object.clone());
        let kind = if previous.is_some() {
            EventKind::Modified
        } else {
            EventKind::Added
        };
        self.commit(storage, kind, object.clone(), previous);
        object
    }

    /// Removes an object; its last state, stamped with the deletion's resourceVersion,
    /// is returned and sent to watchers.
    pub fn delete(
        &mut self,
        storage: &StorageKey,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<StoredObject>> {
        let previous = self
            .collections
            .get_mut(storage)?
            .remove(&(namespace.to_string(), name.to_string()))?;
        let object = self.stamp(previous.value.clone());
        self.commit(storage, EventKind::Deleted, object.clone(), Some(previous));
        Some(object)
    }

    /// Removes a whole collection (CRD deletion), sending DELETED for each object.
    pub fn drop_collection(&mut self, storage: &StorageKey) -> usize {
        let keys: Vec<ObjectKey> = self
            .collections
            .get(storage)
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        for (ns, name) in &keys {
            self.delete(storage, ns, name);
        }
        self.collections.remove(storage);
        keys.len()
    }

    /// Subscribes to changes after `rv`: the recorded events of `storage` newer than
    /// `rv`, plus a receiver for everything committed from now on (no gap, no overlap:
    /// the caller holds the store lock across this call).
    pub fn watch_from(&self, storage: &str, rv: u64) -> Result<Subscription, TooOld> {
        if rv < self.compacted_rv {
            return Err(TooOld {
                requested: rv,
                oldest: self.compacted_rv,
            });
        }
        let start = self.history.partition_point(|e| e.rv <= rv);
        let backlog = self
            .history
            .range(start..)
            .filter(|e| &*e.storage == storage)
            .cloned()
            .collect();
        Ok((backlog, self.events.subscribe()))
    }

    /// A receiver for changes committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(s: &str) -> StorageKey {
        Arc::from(s)
    }

    #[test]
    fn resource_versions_increase_and_history_resumes() {
        let mut s = Store::new(3, 16);
        let pods = key("/pods");
        let a = s.put(&pods, json!({"metadata": {"name": "a", "namespace": "x"}}));
        let b = s.put(&pods, json!({"metadata": {"name": "b", "namespace": "x"}}));
        assert!(b.rv > a.rv);
        assert_eq!(
            b.value["metadata"]["resourceVersion"],
            json!(b.rv.to_string())
        );
        let (backlog, _) = s
            .watch_from("/pods", a.rv)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(backlog.len(), 1);
        assert_eq!(backlog[0].kind, EventKind::Added);
        s.put(
            &pods,
            json!({"metadata": {"name": "a", "namespace": "x", "labels": {"v": "2"}}}),
        );
        let gone = s.delete(&pods, "x", "b").map(|o| o.rv);
        assert!(gone > Some(b.rv));
        assert!(
            s.watch_from("/pods", a.rv).is_ok(),
            "every event after a.rv is still held"
        );
        assert!(
            s.watch_from("/pods", a.rv - 1).is_err(),
            "a's ADDED event was compacted"
        );
        assert_eq!(s.list("/pods", Some("x")).count(), 1);
        assert_eq!(s.list("/pods", Some("y")).count(), 0);
    }

    #[test]
    fn watch_lines_are_ndjson() {
        let line = watch_line("ADDED", b"{\"a\":1}");
        let parsed: Value = serde_json::from_slice(&line).unwrap_or_default();
        assert_eq!(parsed, json!({"type": "ADDED", "object": {"a": 1}}));
        assert!(line.ends_with(b"\n"));
    }
}
