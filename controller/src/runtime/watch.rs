//! Watchers feeding local caches (kube-rs reflectors) and telling the controller which object
//! changed. The caches are the controller's only view of the cluster.

use std::fmt::Debug;
use std::hash::Hash;

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;

/// The kinds the controller watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Pods.
    Pod,
    /// Nodes.
    Node,
    /// Subnets.
    Subnet,
}

/// An object's identity (namespace empty for cluster-scoped ones).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The namespace, or empty.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl Key {
    /// The key of `object`.
    pub fn of<K: Resource>(object: &K) -> Key {
        Key {
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// What a watcher tells the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// An object was added, changed or deleted (look it up in the cache).
    Changed(Kind, Key),
    /// A (re)list finished: the cache is complete; objects deleted meanwhile are simply absent.
    Synced(Kind),
}

/// Starts a watcher on `api` filling a cache, sending a [`Note`] per change. Runs until the
/// receiver is dropped; watch errors are retried with backoff (and logged).
pub fn spawn_reflector<K>(api: Api<K>, kind: Kind, notes: UnboundedSender<Note>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, mut writer) = reflector::store();
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    writer.apply_watcher_event(&event);
                    let note = match &event {
                        Event::Apply(o) | Event::Delete(o) => Note::Changed(kind, Key::of(o)),
                        Event::InitDone => Note::Synced(kind),
                        Event::Init | Event::InitApply(_) => continue,
                    };
                    if notes.send(note).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(?kind, error = %e, "watch failed; retrying"),
            }
        }
    });
    reader
}

use kube::runtime::watcher::watcher;
