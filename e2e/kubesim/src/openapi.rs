//! OpenAPI v3 documents: the root index; for the built-in group/versions with a vendored
//! Kubernetes v1.33 document, that document verbatim (so `kubectl explain` and kubectl's
//! patch computation see the real schemas); for the others (CRD groups,
//! `events.k8s.io/v1`), a minimal one: one PATCH operation per kind declaring the
//! `fieldValidation` query parameter and no schemas. The parameter is what kubectl looks
//! for to decide that the server validates fields itself (it does: `field_validation`),
//! so `kubectl apply/create` work with default flags.
//!
//! `/openapi/v2` is an empty Swagger document (no definitions), in the protobuf form kubectl
//! asks for: kubectl validates a `kind: List` (what `kubectl get -o yaml` prints for several
//! objects) on the client against the v2 models, since no server parameter covers a List, and
//! a kind without a model there is let through to the server.

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
    if vendored(registry, group, version).is_some() {
        for b in crate::schema::builtin::KUBERNETES_VERSION.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
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

/// The content type of [`v2_document`], as the real server labels it (the `@` form kubectl
/// puts in `Accept` is no valid media type, and kubectl refuses it in a response).
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// One length-delimited protobuf field (wire type 2) with a one-byte tag.
fn proto_bytes(field: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(field << 3) | 2];
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(payload);
    out
}

/// `/openapi/v2`: `openapi_v2.Document{swagger: "2.0", info: {title, version}}` and nothing
/// else, protobuf-encoded.
pub fn v2_document() -> Vec<u8> {
    let info = [proto_bytes(1, b"Kubernetes"), proto_bytes(2, b"v1.33.0")].concat();
    [proto_bytes(1, b"2.0"), proto_bytes(2, &info)].concat()
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

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/G/V` of a built-in group/version with a
/// vendored Kubernetes document ([`crate::schema::builtin`]): that document, verbatim
/// (it describes some kinds this server does not serve; kubectl only looks up the ones
/// it uses). `None` if not served or not vendored.
pub fn vendored(registry: &Registry, group: &str, version: &str) -> Option<&'static str> {
    let served = registry.in_group_version(group, version);
    if served.is_empty() || served.iter().any(|d| d.custom) {
        return None;
    }
    crate::schema::builtin::document_text(group, version)
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/G/V` of the other group/versions: PATCH
/// operations only; `None` if not served.
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
    fn the_v2_document_is_swagger_2_with_info() {
        let doc = v2_document();
        assert_eq!(&doc[..5], b"\x0a\x032.0");
        assert_eq!(doc[5], 0x12);
        assert_eq!(usize::from(doc[6]), doc.len() - 7);
        assert_eq!(proto_bytes(1, &[0; 200])[1..3], [0xc8, 0x01]);
    }

    #[test]
    fn built_in_group_versions_publish_the_vendored_document() {
        let reg = Registry::new();
        let apps = vendored(&reg, "apps", "v1").unwrap_or_default();
        assert!(apps.contains("\"io.k8s.api.apps.v1.DeploymentSpec\""));
        assert!(vendored(&reg, "events.k8s.io", "v1").is_none());
        assert!(vendored(&reg, "rovn.io", "v1").is_none());
        assert_ne!(
            content_hash(&reg, "apps", "v1"),
            content_hash(&Registry::new(), "events.k8s.io", "v1")
        );
    }

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
