//! Watch streams: newline-delimited JSON events from a resourceVersion, selector
//! filtering (objects that stop matching are sent as DELETED), BOOKMARKs, streaming
//! lists (`sendInitialEvents`), 410 `Expired` for history that is gone or for a watcher
//! that fell too far behind. Writers never wait for watchers: each watcher reads a
//! bounded broadcast ring and is cut off with 410 when it laps.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::resources::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::Cluster;
use crate::status::ApiError;
use crate::store::{ChangeEvent, EventKind, StoredObject, watch_line};
use crate::table::{self, IncludeObject};

/// A parsed watch request.
pub struct WatchRequest {
    /// What is watched.
    pub def: Arc<ResourceDef>,
    /// Only this namespace, if set.
    pub namespace: Option<String>,
    /// Label filter.
    pub labels: LabelSelector,
    /// Field filter.
    pub fields: FieldSelector,
    /// `resourceVersion` query value.
    pub resource_version: Option<String>,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `sendInitialEvents=true`.
    pub send_initial_events: bool,
    /// `timeoutSeconds`.
    pub timeout: Duration,
    /// `Some` when the client wants each event's object as a Table (kubectl get -w).
    pub table: Option<IncludeObject>,
    /// The client wants `PartialObjectMetadata` objects (kube-rs metadata watches).
    pub metadata_only: bool,
}

struct Watcher {
    req: WatchRequest,
    api_version: String,
    last_rv: u64,
    headers_sent: bool,
}

impl Watcher {
    fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.req.namespace
            && obj.pointer("/metadata/namespace").and_then(Value::as_str) != Some(ns.as_str())
        {
            return false;
        }
        self.req.labels.matches(obj) && self.req.fields.matches(obj)
    }

    /// Renders an object whose JSON can be sent as stored.
    fn render_stored(&mut self, kind: &str, obj: &StoredObject) -> Bytes {
        let same_version =
            obj.value.get("apiVersion").and_then(Value::as_str) == Some(self.api_version.as_str());
        if self.req.table.is_none() && !self.req.metadata_only && same_version {
            watch_line(kind, &obj.json)
        } else {
            self.render_value(kind, obj.value.clone(), obj.rv)
        }
    }

    /// Renders an object that needs rewriting (other CRD version, or a Table).
    fn render_value(&mut self, kind: &str, value: Value, rv: u64) -> Bytes {
        let value = crate::event_versions::served_form(&self.req.def, &value);
        if self.req.metadata_only {
            return watch_line(
                kind,
                table::partial_object_metadata(&value)
                    .to_string()
                    .as_bytes(),
            );
        }
        if let Some(include) = self.req.table {
            let t = table::table(
                &self.req.def,
                std::iter::once(&value),
                rv,
                None,
                include,
                !self.headers_sent,
            );
            self.headers_sent = true;
            return watch_line(kind, t.to_string().as_bytes());
        }
        watch_line(kind, value.to_string().as_bytes())
    }

    /// The line one committed change produces for this watcher, if any.
    fn on_change(&mut self, ev: &ChangeEvent) -> Option<Bytes> {
        self.last_rv = self.last_rv.max(ev.rv);
        if ev.storage != self.req.def.storage {
            return None;
        }
        if let Some(ns) = &self.req.namespace
            && *ev.namespace != **ns
        {
            return None;
        }
        let now = self.matches(&ev.selectable);
        let before = ev
            .previous_selectable
            .as_ref()
            .is_some_and(|p| self.matches(p));
        let kind = match ev.kind {
            EventKind::Added if now => "ADDED",
            EventKind::Modified if now && before => "MODIFIED",
            EventKind::Modified if now => "ADDED",
            EventKind::Modified if before => "DELETED",
            EventKind::Deleted if now || before => "DELETED",
            _ => return None,
        };
        // The stored bytes go out as they are unless the client wants another form.
        if self.req.table.is_none()
            && !self.req.metadata_only
            && *ev.api_version == *self.api_version
        {
            return Some(watch_line(kind, &ev.object));
        }
        let value: Value = serde_json::from_slice(&ev.object).ok()?;
        Some(self.render_value(kind, value, ev.rv))
    }

    fn bookmark(&self, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": self.last_rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj =
            json!({"kind": self.req.def.kind, "apiVersion": self.api_version, "metadata": meta});
        watch_line("BOOKMARK", obj.to_string().as_bytes())
    }
}

/// The ERROR event a watch ends with when its history is gone.
pub fn expired_line(message: &str) -> Bytes {
    let status = ApiError::expired(message).to_status();
    watch_line("ERROR", status.to_string().as_bytes())
}

enum Start {
    Initial(Vec<Arc<StoredObject>>),
    Backlog(Vec<Arc<ChangeEvent>>),
}

/// Starts a watch and returns its body stream.
pub fn start(
    cluster: Arc<Cluster>,
    req: WatchRequest,
) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static, ApiError> {
    let requested_rv = match req.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {text:?}")))?,
        ),
    };
    let initial_list = req.send_initial_events || requested_rv.is_none();
    let api_version = req.def.api_version();
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let (start, receiver, snapshot_rv) = {
        let state = cluster.read();
        let rv = state.store.resource_version();
        if initial_list {
            let objs: Vec<Arc<StoredObject>> = state
                .store
                .list(&req.def.storage, req.namespace.as_deref())
                .cloned()
                .collect();
            (Start::Initial(objs), state.store.subscribe(), rv)
        } else {
            let from = requested_rv.unwrap_or(rv);
            match state.store.watch_from(&req.def.storage, from) {
                Ok((backlog, receiver)) => (Start::Backlog(backlog), receiver, from),
                Err(too_old) => {
                    drop(state);
                    let line = expired_line(&too_old.to_string());
                    return Ok(body_stream(rx, Some((tx, line))));
                }
            }
        }
    };
    let mut watcher = Watcher {
        req,
        api_version,
        last_rv: snapshot_rv,
        headers_sent: false,
    };
    let bookmark_every = cluster.bookmark_interval;
    let mut shutdown = cluster.shutdown.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(watcher.req.timeout);
        tokio::pin!(deadline);
        match start {
            Start::Initial(objs) => {
                for obj in &objs {
                    if !watcher.matches(&obj.value) {
                        continue;
                    }
                    let line = watcher.render_stored("ADDED", obj);
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
                if watcher.req.send_initial_events
                    && watcher.req.bookmarks
                    && tx.send(watcher.bookmark(true)).await.is_err()
                {
                    return;
                }
            }
            Start::Backlog(events) => {
                for ev in events {
                    if let Some(line) = watcher.on_change(&ev)
                        && tx.send(line).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
        run(
            watcher,
            receiver,
            tx,
            bookmark_every,
            deadline,
            &mut shutdown,
        )
        .await;
    });
    Ok(body_stream(rx, None))
}

async fn run(
    mut watcher: Watcher,
    mut receiver: broadcast::Receiver<Arc<ChangeEvent>>,
    tx: mpsc::Sender<Bytes>,
    bookmark_every: Duration,
    mut deadline: std::pin::Pin<&mut tokio::time::Sleep>,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) {
    let mut bookmarks =
        tokio::time::interval_at(tokio::time::Instant::now() + bookmark_every, bookmark_every);
    loop {
        let line = tokio::select! {
            ev = receiver.recv() => match ev {
                Ok(ev) => match watcher.on_change(&ev) {
                    Some(line) => line,
                    None => continue,
                },
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::info!(resource = %watcher.req.def.plural, missed = n, "watcher fell behind; ending it with 410");
                    let _ = tx.send(expired_line(&format!("watcher fell {n} events behind; re-list"))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = bookmarks.tick(), if watcher.req.bookmarks => watcher.bookmark(false),
            _ = &mut deadline => return,
            _ = shutdown.changed() => return,
            _ = tx.closed() => return,
        };
        if tx.send(line).await.is_err() {
            return;
        }
    }
}

fn body_stream(
    rx: mpsc::Receiver<Bytes>,
    first: Option<(mpsc::Sender<Bytes>, Bytes)>,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    if let Some((tx, line)) = first {
        let _ = tx.try_send(line);
    }
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) },
    )
}
