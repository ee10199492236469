//! Label selectors (equality- and set-based) and field selectors, parsed from the
//! `labelSelector` / `fieldSelector` query strings and matched against JSON objects.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelRequirement {
    /// `key=value` / `key==value`.
    Equals(String, String),
    /// `key!=value` (also true when the key is absent).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also true when absent).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(pub Vec<LabelRequirement>);

/// One requirement of a field selector: field path, wanted value, negated.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRequirement {
    /// Dotted field path, e.g. `spec.nodeName`.
    pub field: String,
    /// Value compared as a string (absent fields compare as `""`).
    pub value: String,
    /// `!=` instead of `=`.
    pub negated: bool,
}

/// A parsed field selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

/// Why a selector string was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SelectorError {
    /// The text does not parse.
    #[error("unable to parse requirement {0:?}: {1}")]
    Syntax(String, &'static str),
    /// A field selector names a field the kind does not index.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn valid_label_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 316
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn parse_set(req: &str, rest: &str) -> Result<Vec<String>, SelectorError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            SelectorError::Syntax(req.to_string(), "expected a parenthesised value set")
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    /// Parses `labelSelector` syntax.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for req in split_top_level(text) {
            let syntax = |why| SelectorError::Syntax(req.to_string(), why);
            let parsed = if let Some(key) = req.strip_prefix('!') {
                LabelRequirement::DoesNotExist(key.trim().to_string())
            } else if let Some((k, v)) = req.split_once("!=") {
                LabelRequirement::NotEquals(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = req.split_once("==") {
                LabelRequirement::Equals(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = req.split_once('=') {
                LabelRequirement::Equals(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, rest)) = req.split_once(" notin ") {
                LabelRequirement::NotIn(k.trim().to_string(), parse_set(req, rest)?)
            } else if let Some((k, rest)) = req.split_once(" in ") {
                LabelRequirement::In(k.trim().to_string(), parse_set(req, rest)?)
            } else if req.contains(['(', ')', ' ', '<', '>']) {
                return Err(syntax("unknown operator"));
            } else {
                LabelRequirement::Exists(req.to_string())
            };
            let key = match &parsed {
                LabelRequirement::Equals(k, _)
                | LabelRequirement::NotEquals(k, _)
                | LabelRequirement::In(k, _)
                | LabelRequirement::NotIn(k, _)
                | LabelRequirement::Exists(k)
                | LabelRequirement::DoesNotExist(k) => k,
            };
            if !valid_label_key(key) {
                return Err(syntax("invalid label key"));
            }
            reqs.push(parsed);
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether the object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    /// Whether this selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every field path any served kind can be selected by, beyond metadata.
const SELECTABLE_PATHS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "spec.unschedulable",
    "spec.clusterIP",
    "spec.type",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "reason",
    "reportingComponent",
    "reportingController",
    "source",
    "type",
];

/// The part of an object selectors can look at (name, namespace, labels and the
/// selectable fields), so watch history can filter without keeping or re-parsing
/// whole objects.
pub fn selectable_view(obj: &Value) -> Value {
    let mut view = serde_json::json!({});
    let mut meta = serde_json::Map::new();
    if let Some(Value::Object(m)) = obj.get("metadata") {
        for key in ["name", "namespace", "labels"] {
            if let Some(v) = m.get(key) {
                meta.insert(key.to_string(), v.clone());
            }
        }
    }
    view["metadata"] = Value::Object(meta);
    for path in SELECTABLE_PATHS {
        let top = path.split('.').next().unwrap_or(path);
        if obj.get(top).is_none() {
            continue;
        }
        let mut src = Some(obj);
        for part in path.split('.') {
            src = src.and_then(|n| n.get(part));
        }
        let Some(found) = src else { continue };
        let mut dst = &mut view;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            if !dst.is_object() {
                break;
            }
            if i + 1 == parts.len() {
                dst[*part] = found.clone();
            } else {
                if !dst.get(*part).is_some_and(Value::is_object) {
                    dst[*part] = serde_json::json!({});
                }
                dst = &mut dst[*part];
            }
        }
    }
    view
}

/// The fields the real server indexes for a kind (beyond `metadata.name/namespace`).
fn supported_fields(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Node") => &["spec.unschedulable"],
        ("", "Namespace") => &["status.phase"],
        ("", "Service") => &["spec.clusterIP", "spec.type"],
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "Event") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parses `fieldSelector` syntax, refusing fields the kind does not support
    /// (as the real server does with a 400).
    pub fn parse(text: &str, group: &str, kind: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for req in split_top_level(text) {
            let (field, value, negated) = if let Some((f, v)) = req.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = req.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = req.split_once('=') {
                (f, v, false)
            } else {
                return Err(SelectorError::Syntax(req.to_string(), "expected = or !="));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !supported_fields(group, kind).contains(&field)
            {
                return Err(SelectorError::UnsupportedField(field.to_string()));
            }
            reqs.push(FieldRequirement {
                field: crate::event_versions::stored_field(group, kind, field)
                    .unwrap_or_else(|| field.to_string()),
                value: value.trim().to_string(),
                negated,
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether the object satisfies every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|r| {
            let mut node = Some(object);
            for part in r.field.split('.') {
                node = node.and_then(|n| n.get(part));
            }
            let actual = match node {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == r.value) != r.negated
        })
    }

    /// Whether this selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"app": "web", "tier": "fe"}},
               "spec": {"nodeName": "node1", "hostNetwork": false}, "status": {"phase": "Running"}})
    }

    #[test]
    fn equality_and_sets() {
        let p = pod();
        for (sel, want) in [
            ("app=web", true),
            ("app==web,tier=fe", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing,app in (web)", true),
            ("", true),
        ] {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&p), want, "{sel}");
        }
    }

    #[test]
    fn selectable_view_keeps_what_selectors_need() {
        let view = selectable_view(&pod());
        assert_eq!(view["metadata"]["labels"]["app"], "web");
        assert_eq!(view["spec"]["nodeName"], "node1");
        assert_eq!(view["status"]["phase"], "Running");
        assert!(view.pointer("/spec/containers").is_none());
        let sel = FieldSelector::parse("spec.nodeName=node1,status.phase=Running", "", "Pod")
            .unwrap_or_default();
        assert!(
            sel.matches(&view) && LabelSelector::parse("app=web").is_ok_and(|l| l.matches(&view))
        );
    }

    #[test]
    fn bad_label_selectors_are_errors() {
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b").is_err());
    }

    #[test]
    fn fields() {
        let p = pod();
        let sel = |t| FieldSelector::parse(t, "", "Pod");
        assert!(sel("spec.nodeName=node1").is_ok_and(|s| s.matches(&p)));
        assert!(sel("spec.nodeName!=node1").is_ok_and(|s| !s.matches(&p)));
        assert!(sel("status.phase=Running,metadata.namespace=ns").is_ok_and(|s| s.matches(&p)));
        assert!(sel("spec.hostNetwork=false").is_ok_and(|s| s.matches(&p)));
        assert!(sel("spec.nodeName=").is_ok_and(|s| !s.matches(&p)));
        assert_eq!(
            sel("spec.containers=x"),
            Err(SelectorError::UnsupportedField("spec.containers".into()))
        );
    }
}
