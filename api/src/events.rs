//! How rovn's components publish Events (pure: what to write, not the writing).
//!
//! Both the controller and the node agent publish `core/v1` Events the way client-go's event
//! recorder does, not `events.k8s.io/v1` through kube-rs' `Recorder`: an `events.k8s.io/v1`
//! Event's note and timestamps are immutable once created, so a repeated Warning would keep its
//! first message (naming, say, a Subnet deleted since) and carry no `lastTimestamp`, which
//! `kubectl get events --sort-by=.lastTimestamp` and the "LAST SEEN" column read. Here the first
//! occurrence of a (type, reason, action, object) creates an Event with `firstTimestamp`,
//! `lastTimestamp` and `count: 1`; every repeat patches `message`, `lastTimestamp` and `count`,
//! so the Event always says what is true now.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

/// The longest message written; the API server refuses notes over 1 KiB.
pub const MAX_MESSAGE_BYTES: usize = 1000;

/// How long a published Event is patched rather than re-created: the API server's default
/// Event TTL, after which the object is gone anyway.
const SERIES_TTL: SignedDuration = SignedDuration::from_hours(1);

/// An Event to publish, before it is tied to an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    /// CamelCase, e.g. `AllocationFailed`.
    pub reason: String,
    /// What the component was doing, e.g. `AddPodNetwork`.
    pub action: String,
    /// The human-readable message (truncated to [`MAX_MESSAGE_BYTES`]).
    pub message: String,
}

impl EventNote {
    /// A Warning.
    pub fn warning(reason: &str, action: &str, message: &str) -> EventNote {
        EventNote {
            type_: "Warning",
            reason: reason.to_string(),
            action: action.to_string(),
            message: truncate(message, MAX_MESSAGE_BYTES).to_string(),
        }
    }
}

/// Who publishes: `source.component` / `reportingComponent` and the instance (node or replica).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventReporter {
    /// `rovn-controller` or `rovn-node`.
    pub component: String,
    /// The node name or the replica's identity.
    pub instance: String,
}

/// One write to the API server.
#[derive(Debug, Clone, PartialEq)]
pub enum EventWrite {
    /// `POST` the Event in `namespace`.
    Create {
        /// The Event's namespace (the object's, or `default` for cluster-scoped objects).
        namespace: String,
        /// The whole Event.
        event: Box<Event>,
    },
    /// JSON merge patch of an existing Event.
    Patch {
        /// The Event's namespace.
        namespace: String,
        /// The Event's name.
        name: String,
        /// `message`, `count`, `lastTimestamp`.
        patch: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    type_: &'static str,
    reason: String,
    action: String,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
}

#[derive(Debug, Clone)]
struct Series {
    namespace: String,
    name: String,
    count: i32,
    last: Timestamp,
}

/// The Events a component has published, so a repeat patches the same object. One per
/// component, shared by its tasks.
#[derive(Debug)]
pub struct EventBook {
    reporter: EventReporter,
    series: Mutex<HashMap<SeriesKey, Series>>,
}

fn key(regarding: &ObjectReference, note: &EventNote) -> SeriesKey {
    SeriesKey {
        type_: note.type_,
        reason: note.reason.clone(),
        action: note.action.clone(),
        kind: regarding.kind.clone(),
        namespace: regarding.namespace.clone(),
        name: regarding.name.clone(),
        uid: regarding.uid.clone(),
    }
}

impl EventBook {
    /// A book for `reporter`'s Events.
    pub fn new(reporter: EventReporter) -> EventBook {
        EventBook {
            reporter,
            series: Mutex::new(HashMap::new()),
        }
    }

    /// What to write for `note` about `regarding` at `now`: a new Event the first time, else a
    /// patch of the earlier one with the current message, count and time.
    pub fn record(
        &self,
        regarding: &ObjectReference,
        note: &EventNote,
        now: Timestamp,
    ) -> EventWrite {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.retain(|_, s| s.last + SERIES_TTL > now);
        let key = key(regarding, note);
        if let Some(s) = series.get_mut(&key) {
            s.count = s.count.saturating_add(1);
            s.last = now;
            return EventWrite::Patch {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                patch: json!({
                    "message": note.message,
                    "count": s.count,
                    "lastTimestamp": Time(now),
                }),
            };
        }
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let name = format!(
            "{}.{:x}",
            regarding
                .name
                .as_deref()
                .unwrap_or(&self.reporter.component),
            now.as_nanosecond()
        );
        series.insert(
            key,
            Series {
                namespace: namespace.clone(),
                name: name.clone(),
                count: 1,
                last: now,
            },
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: regarding.clone(),
            type_: Some(note.type_.to_string()),
            reason: Some(note.reason.clone()),
            action: Some(note.action.clone()),
            message: Some(note.message.clone()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            source: Some(EventSource {
                component: Some(self.reporter.component.clone()),
                host: Some(self.reporter.instance.clone()),
            }),
            reporting_component: Some(self.reporter.component.clone()),
            reporting_instance: Some(self.reporter.instance.clone()),
            ..Default::default()
        };
        EventWrite::Create {
            namespace,
            event: Box::new(event),
        }
    }

    /// Drops what the book knows about `note` on `regarding`, after a write failed: the next
    /// occurrence creates a fresh Event (the old one may be gone).
    pub fn forget(&self, regarding: &ObjectReference, note: &EventNote) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.remove(&key(regarding, note));
    }
}

/// `message` cut to at most `max` bytes on a character boundary.
pub fn truncate(message: &str, max: usize) -> &str {
    let mut end = message.len().min(max);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some("t1".into()),
            name: Some("p7".into()),
            uid: Some("u7".into()),
            ..Default::default()
        }
    }

    fn book() -> EventBook {
        EventBook::new(EventReporter {
            component: "rovn-node".into(),
            instance: "node1".into(),
        })
    }

    #[test]
    fn a_repeat_patches_the_current_message_time_and_count() {
        let book = book();
        let t0 = Timestamp::from_second(1_700_000_000).unwrap_or_default();
        let first = book.record(&pod(), &EventNote::warning("R", "A", "old"), t0);
        let EventWrite::Create { namespace, event } = first else {
            panic!("first is a create: {first:?}");
        };
        assert_eq!(namespace, "t1");
        assert_eq!(event.count, Some(1));
        assert_eq!(event.first_timestamp, Some(Time(t0)));
        assert_eq!(event.last_timestamp, Some(Time(t0)));
        assert_eq!(event.message.as_deref(), Some("old"));
        let t1 = t0 + SignedDuration::from_secs(5);
        let again = book.record(&pod(), &EventNote::warning("R", "A", "new"), t1);
        assert_eq!(
            again,
            EventWrite::Patch {
                namespace: "t1".into(),
                name: event.metadata.name.clone().unwrap_or_default(),
                patch: json!({"message": "new", "count": 2, "lastTimestamp": "2023-11-14T22:13:25Z"}),
            }
        );
        book.forget(&pod(), &EventNote::warning("R", "A", "new"));
        assert!(matches!(
            book.record(&pod(), &EventNote::warning("R", "A", "x"), t1),
            EventWrite::Create { .. }
        ));
        let late = t1 + SERIES_TTL;
        assert!(matches!(
            book.record(&pod(), &EventNote::warning("R", "A", "x"), late),
            EventWrite::Create { .. }
        ));
    }

    #[test]
    fn cluster_scoped_objects_get_events_in_default_and_messages_are_bounded() {
        let node = ObjectReference {
            kind: Some("Node".into()),
            name: Some("node1".into()),
            ..Default::default()
        };
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let write = book().record(
            &node,
            &EventNote::warning("R", "A", &long),
            Timestamp::UNIX_EPOCH,
        );
        let EventWrite::Create { namespace, event } = write else {
            panic!("a create");
        };
        assert_eq!(namespace, "default");
        assert!(event.message.unwrap_or_default().len() <= MAX_MESSAGE_BYTES);
    }
}
