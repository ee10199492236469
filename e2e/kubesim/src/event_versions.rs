//! One Event storage behind two APIs. The real server keeps `core/v1` and
//! `events.k8s.io/v1` Events in one etcd prefix and converts between them, so an Event
//! written by kube-runtime's `Recorder` (events.k8s.io) shows in `kubectl get events`
//! (core) and the other way round. This server stores the core/v1 form and converts
//! events.k8s.io/v1 objects on the way in and out. Pure functions, no I/O.

use serde_json::{Map, Value, json};

use crate::resources::ResourceDef;

/// Field renames between the two forms: (events.k8s.io/v1 name, core/v1 name).
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Whether `def` is the events.k8s.io view, whose objects are stored in core/v1 form.
pub fn is_events_v1(def: &ResourceDef) -> bool {
    def.group == "events.k8s.io" && def.plural == "events"
}

/// The events.k8s.io/v1 object as it is stored (core/v1), following upstream's
/// conversion. When the writer gave no `deprecatedSource` (as `Recorder` does), the
/// reporting controller and instance also fill `source`, so `kubectl describe` has a
/// "From" to show.
pub fn core_from_events_v1(event: Value) -> Value {
    let Value::Object(fields) = event else {
        return event;
    };
    let mut out = Map::with_capacity(fields.len() + 1);
    out.insert("apiVersion".into(), json!("v1"));
    for (key, value) in fields {
        if key == "apiVersion" || RENAMES.iter().any(|(_, core)| *core == key) {
            continue;
        }
        let key = RENAMES
            .iter()
            .find(|(v1, _)| *v1 == key)
            .map_or(key.clone(), |(_, core)| core.to_string());
        out.insert(key, value);
    }
    if !out.contains_key("source") {
        let mut source = Map::new();
        if let Some(c) = out.get("reportingComponent").filter(|v| is_set(v)) {
            source.insert("component".into(), c.clone());
        }
        if let Some(h) = out.get("reportingInstance").filter(|v| is_set(v)) {
            source.insert("host".into(), h.clone());
        }
        if !source.is_empty() {
            out.insert("source".into(), Value::Object(source));
        }
    }
    Value::Object(out)
}

/// The stored core/v1 Event as events.k8s.io/v1 serves it, following upstream's
/// conversion. An Event written through core/v1 with only `source` (as client-go's old
/// recorder writes them) gets its reporting controller and instance from it.
pub fn events_v1_from_core(event: Value) -> Value {
    let Value::Object(fields) = event else {
        return event;
    };
    let mut out = Map::with_capacity(fields.len() + 1);
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    for (key, value) in fields {
        if key == "apiVersion" || RENAMES.iter().any(|(v1, _)| *v1 == key) {
            continue;
        }
        let key = RENAMES
            .iter()
            .find(|(_, core)| *core == key)
            .map_or(key.clone(), |(v1, _)| v1.to_string());
        out.insert(key, value);
    }
    for (v1, source_field) in [
        ("reportingController", "component"),
        ("reportingInstance", "host"),
    ] {
        if out.get(v1).is_none_or(|v| !is_set(v))
            && let Some(found) = out
                .get("deprecatedSource")
                .and_then(|s| s.get(source_field))
                .filter(|v| is_set(v))
                .cloned()
        {
            out.insert(v1.into(), found);
        }
    }
    Value::Object(out)
}

fn is_set(v: &Value) -> bool {
    !(v.is_null() || v.as_str().is_some_and(str::is_empty))
}

/// A stored object as the resource `def` serves it: converted for events.k8s.io, and
/// with `def`'s apiVersion (CRD versions share storage without conversion).
pub fn served_form(def: &ResourceDef, stored: &Value) -> Value {
    let mut v = if is_events_v1(def) {
        events_v1_from_core(stored.clone())
    } else {
        stored.clone()
    };
    if v.is_object() {
        v["apiVersion"] = json!(def.api_version());
    }
    v
}

/// The stored (core/v1) field a field selector on `group`'s Events names, as upstream's
/// field label conversion maps it; `None` when the name is used as it is.
pub fn stored_field(group: &str, kind: &str, field: &str) -> Option<String> {
    match (group, kind) {
        ("events.k8s.io", "Event") => {
            if let Some(rest) = field.strip_prefix("regarding.") {
                Some(format!("involvedObject.{rest}"))
            } else if field == "reportingController" {
                Some("reportingComponent".into())
            } else {
                None
            }
        }
        // Upstream indexes `source` as the reporting component's name.
        ("", "Event") if field == "source" => Some("source.component".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder_event() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "p.1", "namespace": "ns"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "action": "Wiring",
            "reason": "Wired",
            "type": "Normal",
            "note": "port up",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "ns", "uid": "u1"},
            "related": {"kind": "Node", "name": "n1"},
            "reportingController": "rovn.io/cni",
            "reportingInstance": "n1",
            "series": {"count": 3, "lastObservedTime": "2026-01-01T00:01:00.000000Z"},
            "deprecatedCount": 3,
            "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z",
            "deprecatedLastTimestamp": "2026-01-01T00:01:00Z",
        })
    }

    #[test]
    fn events_v1_is_stored_in_core_form() {
        let core = core_from_events_v1(recorder_event());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["uid"], "u1");
        assert_eq!(core["message"], "port up");
        assert_eq!(core["reportingComponent"], "rovn.io/cni");
        assert_eq!(core["reportingInstance"], "n1");
        assert_eq!(
            core["source"],
            json!({"component": "rovn.io/cni", "host": "n1"})
        );
        assert_eq!(core["count"], 3);
        assert_eq!(core["firstTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(core["lastTimestamp"], "2026-01-01T00:01:00Z");
        assert_eq!(core["series"]["count"], 3);
        assert_eq!(core["related"]["name"], "n1");
        for v1_only in [
            "regarding",
            "note",
            "reportingController",
            "deprecatedCount",
        ] {
            assert!(core.get(v1_only).is_none(), "{v1_only} left in core form");
        }
    }

    #[test]
    fn round_trip_keeps_every_events_v1_field() {
        let original = recorder_event();
        let back = events_v1_from_core(core_from_events_v1(original.clone()));
        for (key, value) in original.as_object().into_iter().flatten() {
            assert_eq!(&back[key], value, "field {key} changed in the round trip");
        }
        assert_eq!(
            back["deprecatedSource"],
            json!({"component": "rovn.io/cni", "host": "n1"})
        );
    }

    #[test]
    fn an_explicit_deprecated_source_wins() {
        let mut e = recorder_event();
        e["deprecatedSource"] = json!({"component": "kubelet"});
        assert_eq!(
            core_from_events_v1(e)["source"],
            json!({"component": "kubelet"})
        );
    }

    #[test]
    fn old_style_core_events_get_reporting_fields_from_source() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "message": "m",
            "source": {"component": "kubelet", "host": "n2"}, "involvedObject": {"name": "p"}});
        let v1 = events_v1_from_core(core);
        assert_eq!(v1["reportingController"], "kubelet");
        assert_eq!(v1["reportingInstance"], "n2");
        assert_eq!(v1["note"], "m");
        assert_eq!(v1["regarding"]["name"], "p");
        assert!(v1.get("message").is_none() && v1.get("source").is_none());
    }

    #[test]
    fn field_selectors_map_to_stored_fields() {
        let f = |g, n| stored_field(g, "Event", n);
        assert_eq!(
            f("events.k8s.io", "regarding.name").as_deref(),
            Some("involvedObject.name")
        );
        assert_eq!(
            f("events.k8s.io", "reportingController").as_deref(),
            Some("reportingComponent")
        );
        assert_eq!(f("", "source").as_deref(), Some("source.component"));
        assert_eq!(f("", "involvedObject.name"), None);
        assert_eq!(f("events.k8s.io", "reason"), None);
    }
}
