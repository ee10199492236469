//! The vendored Kubernetes v1.33 OpenAPI v3 documents (`e2e/kubesim/openapi/v1.33/`, see
//! its README), compiled into the binary and parsed once, on first use of a
//! group/version, so a server that never validates a kind pays nothing for it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::SchemaError;

/// The Kubernetes release the vendored documents come from.
pub const KUBERNETES_VERSION: &str = "v1.33";

/// The ObjectMeta schema's name in `components/schemas` (the same in every document).
pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// (group, version, file name, text) of every vendored document.
const DOCUMENTS: &[(&str, &str, &str, &str)] = &[
    (
        "",
        "v1",
        "api__v1_openapi.json",
        include_str!("../../openapi/v1.33/api__v1_openapi.json"),
    ),
    (
        "apps",
        "v1",
        "apis__apps__v1_openapi.json",
        include_str!("../../openapi/v1.33/apis__apps__v1_openapi.json"),
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "apis__rbac.authorization.k8s.io__v1_openapi.json",
        include_str!("../../openapi/v1.33/apis__rbac.authorization.k8s.io__v1_openapi.json"),
    ),
    (
        "policy",
        "v1",
        "apis__policy__v1_openapi.json",
        include_str!("../../openapi/v1.33/apis__policy__v1_openapi.json"),
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "apis__apiextensions.k8s.io__v1_openapi.json",
        include_str!("../../openapi/v1.33/apis__apiextensions.k8s.io__v1_openapi.json"),
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "apis__admissionregistration.k8s.io__v1_openapi.json",
        include_str!("../../openapi/v1.33/apis__admissionregistration.k8s.io__v1_openapi.json"),
    ),
    (
        "coordination.k8s.io",
        "v1",
        "apis__coordination.k8s.io__v1_openapi.json",
        include_str!("../../openapi/v1.33/apis__coordination.k8s.io__v1_openapi.json"),
    ),
    (
        "discovery.k8s.io",
        "v1",
        "apis__discovery.k8s.io__v1_openapi.json",
        include_str!("../../openapi/v1.33/apis__discovery.k8s.io__v1_openapi.json"),
    ),
    (
        "networking.k8s.io",
        "v1",
        "apis__networking.k8s.io__v1_openapi.json",
        include_str!("../../openapi/v1.33/apis__networking.k8s.io__v1_openapi.json"),
    ),
];

/// The text of a group/version's vendored document, as kube-apiserver serves it at
/// `/openapi/v3/...`.
pub fn document_text(group: &str, version: &str) -> Option<&'static str> {
    DOCUMENTS
        .iter()
        .find(|(g, v, _, _)| *g == group && *v == version)
        .map(|(_, _, _, text)| *text)
}

/// One parsed document and its kinds: kind → schema name.
pub struct Document {
    /// The whole OpenAPI document.
    pub doc: Value,
    /// Kinds of this group/version (from `x-kubernetes-group-version-kind`) → the name
    /// of their schema under `components/schemas`.
    pub kinds: BTreeMap<String, String>,
}

fn parse(index: usize) -> Result<Document, SchemaError> {
    let (group, version, file, text) = DOCUMENTS[index];
    let doc: Value =
        serde_json::from_str(text).map_err(|e| SchemaError::BadDocument(file, e.to_string()))?;
    let mut kinds = BTreeMap::new();
    if let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        for (name, schema) in schemas {
            let gvks = schema
                .get("x-kubernetes-group-version-kind")
                .and_then(Value::as_array);
            for gvk in gvks.into_iter().flatten() {
                let field = |k: &str| gvk.get(k).and_then(Value::as_str).unwrap_or("");
                if field("group") == group && field("version") == version {
                    kinds.insert(field("kind").to_string(), name.clone());
                }
            }
        }
    }
    Ok(Document { doc, kinds })
}

/// The parsed document of a group/version, if one is vendored.
pub fn document(group: &str, version: &str) -> Option<Result<&'static Document, SchemaError>> {
    static PARSED: [OnceLock<Result<Document, SchemaError>>; DOCUMENTS.len()] =
        [const { OnceLock::new() }; DOCUMENTS.len()];
    let index = DOCUMENTS
        .iter()
        .position(|(g, v, _, _)| *g == group && *v == version)?;
    Some(
        PARSED[index]
            .get_or_init(|| parse(index))
            .as_ref()
            .map_err(Clone::clone),
    )
}

/// The document holding a kind's schema and that schema's name.
pub fn schema_for(
    group: &str,
    version: &str,
    kind: &str,
) -> Result<(&'static Value, String), SchemaError> {
    let unknown = || SchemaError::UnknownKind {
        api_version: if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.to_string(),
    };
    let d = document(group, version).ok_or_else(unknown)??;
    let name = d.kinds.get(kind).ok_or_else(unknown)?;
    Ok((&d.doc, name.clone()))
}

/// Whether a vendored schema covers this kind.
pub fn has_kind(group: &str, version: &str, kind: &str) -> bool {
    schema_for(group, version, kind).is_ok()
}
