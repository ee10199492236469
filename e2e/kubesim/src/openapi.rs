//! Minimal OpenAPI v3 documents: the root index and, per group/version, one PATCH
//! operation per kind declaring the `fieldValidation` query parameter. That is what
//! kubectl looks for to decide that the server validates fields itself, so
//! `kubectl apply/create` work with default flags without a full schema (which this
//! server does not have). No schemas are published, so kubectl's client-side patch
//! computation falls back to its built-in types.

use serde_json::{Value, json};

use crate::resources::Registry;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A short stable hash of a group/version's kinds, for the `?hash=` cache key.
fn content_hash(registry: &Registry, group: &str, version: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for d in registry.in_group_version(group, version) {
        for b in d
            .kind
            .bytes()
            .chain(d.plural.bytes())
            .chain([u8::from(d.namespaced), u8::from(d.status_subresource)])
        {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: where each group/version's document lives.
pub fn root(registry: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for (group, versions) in registry.groups() {
        for version in versions {
            let p = gv_path(&group, &version);
            let url = format!(
                "/openapi/v3/{p}?hash={}",
                content_hash(registry, &group, &version)
            );
            paths.insert(p, json!({"serverRelativeURL": url}));
        }
    }
    json!({"paths": paths})
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/G/V`; `None` if not served.
pub fn group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs = registry.in_group_version(group, version);
    if defs.is_empty() {
        return None;
    }
    let base = gv_path(group, version);
    let mut paths = serde_json::Map::new();
    for d in defs {
        let item = if d.namespaced {
            format!("/{base}/namespaces/{{namespace}}/{}/{{name}}", d.plural)
        } else {
            format!("/{base}/{}/{{name}}", d.plural)
        };
        let op = json!({
            "operationId": format!("patch{}", d.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": d.group, "version": d.version, "kind": d.kind},
            "parameters": [query_param("dryRun"), query_param("fieldManager"), query_param("fieldValidation"), query_param("force")],
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(item, json!({"patch": op}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_patch_declares_field_validation() {
        let reg = Registry::new();
        let root = root(&reg);
        assert!(
            root["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .is_some_and(|u| u.starts_with("/openapi/v3/api/v1?hash="))
        );
        let doc = group_version(&reg, "", "v1").unwrap_or_default();
        let op = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(
            op["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == "fieldValidation"))
        );
    }
}
