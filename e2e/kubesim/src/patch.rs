//! The three patch formats of the Kubernetes API: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902) and strategic merge patch (maps merge, lists of known kinds merge by key,
//! `$patch` / `$retainKeys` / `$deleteFromPrimitiveList` / `$setElementOrder` directives).
//! Pure functions on `serde_json::Value`.

use serde_json::{Map, Value};

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchError {
    /// The patch document has the wrong shape.
    #[error("invalid patch: {0}")]
    Malformed(String),
    /// A JSON patch `test` failed or a path was missing.
    #[error("the JSON patch could not be applied: {0}")]
    Failed(String),
}

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target_map) = target {
        for (k, v) in patch_map {
            if v.is_null() {
                target_map.shift_remove(k);
            } else {
                merge_patch(target_map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn unescape_token(t: &str) -> String {
    t.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<Vec<String>, PatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| PatchError::Malformed(format!("path {path:?} does not start with /")))?;
    Ok(rest.split('/').map(unescape_token).collect())
}

fn resolve_mut<'a>(
    root: &'a mut Value,
    tokens: &[String],
    path: &str,
) -> Result<&'a mut Value, PatchError> {
    let mut node = root;
    for t in tokens {
        node = match node {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| PatchError::Failed(format!("path {path:?} does not exist")))?;
    }
    Ok(node)
}

fn add_at(root: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    let tokens = split_pointer(path)?;
    let Some((last, parent_tokens)) = tokens.split_last() else {
        *root = value;
        return Ok(());
    };
    match resolve_mut(root, parent_tokens, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let idx = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| PatchError::Failed(format!("bad array index in {path:?}")))?
            };
            if idx > a.len() {
                return Err(PatchError::Failed(format!(
                    "array index out of range in {path:?}"
                )));
            }
            a.insert(idx, value);
            Ok(())
        }
        _ => Err(PatchError::Failed(format!(
            "parent of {path:?} is not a container"
        ))),
    }
}

fn remove_at(root: &mut Value, path: &str) -> Result<Value, PatchError> {
    let tokens = split_pointer(path)?;
    let Some((last, parent_tokens)) = tokens.split_last() else {
        return Err(PatchError::Failed(
            "cannot remove the whole document".into(),
        ));
    };
    let missing = || PatchError::Failed(format!("path {path:?} does not exist"));
    match resolve_mut(root, parent_tokens, path)? {
        Value::Object(m) => m.shift_remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let idx = last.parse::<usize>().map_err(|_| missing())?;
            if idx >= a.len() {
                return Err(missing());
            }
            Ok(a.remove(idx))
        }
        _ => Err(missing()),
    }
}

/// RFC 6902 JSON patch: add, remove, replace, move, copy, test.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops = patch.as_array().ok_or_else(|| {
        PatchError::Malformed("a JSON patch must be an array of operations".into())
    })?;
    for op in ops {
        let field = |name: &str| {
            op.get(name).and_then(Value::as_str).ok_or_else(|| {
                PatchError::Malformed(format!("operation {op} lacks string {name:?}"))
            })
        };
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError::Malformed(format!("operation {op} lacks \"value\"")))
        };
        let path = field("path")?;
        match field("op")? {
            "add" => add_at(target, path, value()?)?,
            "remove" => {
                remove_at(target, path)?;
            }
            "replace" => {
                let tokens = split_pointer(path)?;
                *resolve_mut(target, &tokens, path)? = value()?;
            }
            "move" => {
                let from = field("from")?;
                let moved = remove_at(target, from)?;
                add_at(target, path, moved)?;
            }
            "copy" => {
                let from = field("from")?;
                let tokens = split_pointer(from)?;
                let copied = resolve_mut(target, &tokens, from)?.clone();
                add_at(target, path, copied)?;
            }
            "test" => {
                let tokens = split_pointer(path)?;
                if *resolve_mut(target, &tokens, path)? != value()? {
                    return Err(PatchError::Failed(format!("test of {path:?} failed")));
                }
            }
            other => {
                return Err(PatchError::Malformed(format!(
                    "unknown operation {other:?}"
                )));
            }
        }
    }
    Ok(())
}

/// How a strategic merge patch combines one list field.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ListStrategy {
    Replace,
    MergeByKey(&'static str),
    MergePrimitives,
}

/// Upstream's `patchStrategy`/`patchMergeKey` tags for the served kinds, by field path
/// (field names only; list positions do not appear in `path`).
fn list_strategy(kind: &str, path: &[String]) -> ListStrategy {
    let n = path.len();
    let Some(field) = path.last().map(String::as_str) else {
        return ListStrategy::Replace;
    };
    let parent = if n >= 2 { path[n - 2].as_str() } else { "" };
    let in_container = matches!(
        parent,
        "containers" | "initContainers" | "ephemeralContainers"
    );
    use ListStrategy::*;
    match field {
        "finalizers" if parent == "metadata" => MergePrimitives,
        "ownerReferences" if parent == "metadata" => MergeByKey("uid"),
        "containers" | "initContainers" | "ephemeralContainers" => MergeByKey("name"),
        "ports" if in_container => MergeByKey("containerPort"),
        "ports" if kind == "Service" && n == 2 && parent == "spec" => MergeByKey("port"),
        "env" if in_container => MergeByKey("name"),
        "volumeMounts" if in_container => MergeByKey("mountPath"),
        "volumeDevices" if in_container => MergeByKey("devicePath"),
        "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims"
            if parent == "spec" =>
        {
            MergeByKey("name")
        }
        "containerStatuses" | "initContainerStatuses" | "ephemeralContainerStatuses" => {
            MergeByKey("name")
        }
        "conditions" if parent == "status" => MergeByKey("type"),
        "addresses" if kind == "Node" => MergeByKey("type"),
        "taints" if kind == "Node" => MergeByKey("key"),
        "podCIDRs" if kind == "Node" => MergePrimitives,
        "podIPs" | "hostIPs" if kind == "Pod" => MergeByKey("ip"),
        "hostAliases" if kind == "Pod" => MergeByKey("ip"),
        "topologySpreadConstraints" if kind == "Pod" => MergeByKey("topologyKey"),
        _ => Replace,
    }
}

/// Removes every `$`-directive from a value that is being stored as-is.
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Applies a strategic merge patch to an object of `kind`.
pub fn strategic_merge_patch(
    target: &mut Value,
    patch: &Value,
    kind: &str,
) -> Result<(), PatchError> {
    if !patch.is_object() {
        return Err(PatchError::Malformed(
            "a strategic merge patch must be a JSON object".into(),
        ));
    }
    let mut path = Vec::new();
    if merge_map(target, patch, kind, &mut path)? == MapOutcome::Delete {
        *target = Value::Object(Map::new());
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
enum MapOutcome {
    Keep,
    Delete,
}

fn merge_map(
    target: &mut Value,
    patch: &Value,
    kind: &str,
    path: &mut Vec<String>,
) -> Result<MapOutcome, PatchError> {
    let Value::Object(pm) = patch else {
        *target = strip_directives(patch);
        return Ok(MapOutcome::Keep);
    };
    match pm.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(MapOutcome::Delete),
        Some("replace") => {
            *target = strip_directives(patch);
            return Ok(MapOutcome::Keep);
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(PatchError::Malformed(format!(
                "unknown $patch directive {other:?}"
            )));
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(tm) = target else {
        return Ok(MapOutcome::Keep);
    };
    if let Some(keep) = pm.get("$retainKeys") {
        let keep: Vec<&str> = keep
            .as_array()
            .ok_or_else(|| PatchError::Malformed("$retainKeys must be a list".into()))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        tm.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in pm {
        if k.starts_with('$') {
            if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
                let remove = v
                    .as_array()
                    .ok_or_else(|| PatchError::Malformed(format!("{k} must be a list")))?;
                if let Some(Value::Array(list)) = tm.get_mut(field) {
                    list.retain(|item| !remove.contains(item));
                }
            }
            continue;
        }
        if v.is_null() {
            tm.shift_remove(k);
            continue;
        }
        path.push(k.clone());
        let result = match v {
            Value::Object(_) => {
                let slot = tm.entry(k.clone()).or_insert(Value::Null);
                merge_map(slot, v, kind, path).map(|o| {
                    if o == MapOutcome::Delete {
                        tm.shift_remove(k);
                    }
                })
            }
            Value::Array(items) => {
                let strategy = list_strategy(kind, path);
                let slot = tm.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                merge_list(slot, items, strategy, kind, path)
            }
            other => {
                tm.insert(k.clone(), other.clone());
                Ok(())
            }
        };
        path.pop();
        result?;
    }
    Ok(MapOutcome::Keep)
}

fn merge_list(
    target: &mut Value,
    items: &[Value],
    strategy: ListStrategy,
    kind: &str,
    path: &mut Vec<String>,
) -> Result<(), PatchError> {
    let replace_all = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    if replace_all || strategy == ListStrategy::Replace || !target.is_array() {
        let kept: Vec<Value> = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(strip_directives)
            .collect();
        *target = Value::Array(kept);
        return Ok(());
    }
    let Value::Array(list) = target else {
        return Ok(());
    };
    match strategy {
        ListStrategy::MergePrimitives => {
            for item in items {
                if !list.contains(item) {
                    list.push(item.clone());
                }
            }
        }
        ListStrategy::MergeByKey(key) => {
            for item in items {
                let Some(id) = item.get(key) else {
                    return Err(PatchError::Malformed(format!(
                        "list item in {} lacks its merge key {key:?}",
                        path.join(".")
                    )));
                };
                let existing = list.iter().position(|e| e.get(key) == Some(id));
                if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                    list.retain(|e| e.get(key) != Some(id));
                    continue;
                }
                match existing {
                    Some(i) => {
                        if merge_map(&mut list[i], item, kind, path)? == MapOutcome::Delete {
                            list.remove(i);
                        }
                    }
                    None => list.push(strip_directives(item)),
                }
            }
        }
        ListStrategy::Replace => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_deletes_with_null() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut v, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(v, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn json_patch_ops() {
        let mut v = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2]});
        let p = json!([
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "replace", "path": "/list/0", "value": 0},
            {"op": "copy", "from": "/list", "path": "/copy"},
            {"op": "move", "from": "/copy", "path": "/moved"},
            {"op": "test", "path": "/moved/2", "value": 3}
        ]);
        assert_eq!(json_patch(&mut v, &p), Ok(()));
        assert_eq!(
            v,
            json!({"metadata": {"labels": {"b/c": "2"}}, "list": [0, 2, 3], "moved": [0, 2, 3]})
        );
        assert!(
            json_patch(
                &mut v,
                &json!([{"op": "test", "path": "/list/0", "value": 9}])
            )
            .is_err()
        );
        assert!(json_patch(&mut v, &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(json_patch(&mut v, &json!({"op": "add"})).is_err());
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 80}], "env": [{"name": "E", "value": "1"}]},
            {"name": "b", "image": "y"}
        ], "tolerations": [{"key": "k"}]}});
        let patch = json!({"spec": {"containers": [
            {"name": "a", "image": "x2", "ports": [{"containerPort": 81}], "env": [{"name": "E", "value": "2"}]},
            {"name": "b", "$patch": "delete"},
            {"name": "c", "image": "z"}
        ], "tolerations": [{"key": "t"}]}});
        assert_eq!(strategic_merge_patch(&mut pod, &patch, "Pod"), Ok(()));
        assert_eq!(
            pod,
            json!({"spec": {"containers": [
            {"name": "a", "image": "x2", "ports": [{"containerPort": 80}, {"containerPort": 81}], "env": [{"name": "E", "value": "2"}]},
            {"name": "c", "image": "z"}
        ], "tolerations": [{"key": "t"}]}})
        );
    }

    #[test]
    fn strategic_conditions_finalizers_and_directives() {
        let mut node = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Disk", "status": "False"}]}});
        let patch = json!({"metadata": {"finalizers": ["b"], "labels": {"x": null},
                "$deleteFromPrimitiveList/finalizers": ["a"]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "$setElementOrder/conditions": []}});
        assert_eq!(strategic_merge_patch(&mut node, &patch, "Node"), Ok(()));
        assert_eq!(
            node,
            json!({"metadata": {"finalizers": ["b"], "labels": {"y": "2"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Disk", "status": "False"}]}})
        );
        let mut svc = json!({"spec": {"selector": {"a": "1", "b": "2"}}});
        let replace = json!({"spec": {"selector": {"$patch": "replace", "c": "3"}}});
        assert_eq!(strategic_merge_patch(&mut svc, &replace, "Service"), Ok(()));
        assert_eq!(svc, json!({"spec": {"selector": {"c": "3"}}}));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z$/~0-9]{0,8}".prop_map(Value::from),
            prop_oneof![
                Just("$patch"),
                Just("delete"),
                Just("replace"),
                Just("name"),
                Just("$retainKeys")
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let key = prop_oneof![
                "[a-z]{1,6}".prop_map(String::from),
                prop_oneof![
                    Just("$patch"),
                    Just("$retainKeys"),
                    Just("$deleteFromPrimitiveList/finalizers"),
                    Just("containers"),
                    Just("ports"),
                    Just("conditions"),
                    Just("metadata"),
                    Just("finalizers"),
                    Just("name"),
                    Just("spec"),
                    Just("status"),
                ]
                .prop_map(String::from),
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn patches_never_panic(mut target in json_value(), patch in json_value(), kind in prop_oneof![Just("Pod"), Just("Node"), Just("Service")]) {
            let mut t2 = target.clone();
            let mut t3 = target.clone();
            let _ = strategic_merge_patch(&mut target, &patch, kind);
            merge_patch(&mut t2, &patch);
            let _ = json_patch(&mut t3, &patch);
        }

        #[test]
        fn json_patch_ops_never_panic(mut target in json_value(), path in "(/[a-z0-9~-]{0,3}){0,4}", value in json_value(), op in prop_oneof![Just("add"), Just("remove"), Just("replace"), Just("move"), Just("copy"), Just("test")]) {
            let patch = serde_json::json!([{"op": op, "path": path, "from": path, "value": value}]);
            let _ = json_patch(&mut target, &patch);
        }
    }
}
