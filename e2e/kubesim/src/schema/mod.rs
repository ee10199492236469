//! Validation of objects against OpenAPI v3 schemas, as kube-apiserver's decoding and
//! strict field validation do: the vendored Kubernetes v1.33 documents for built-in kinds
//! (`openapi/v1.33/`, [`builtin`]) and a CRD's `openAPIV3Schema` for its custom
//! resources. Pure: the API server ([`crate::cluster`]) and the manifest tests share it,
//! so a manifest the tests pass is one the lab's server (and a real one) accepts.
//!
//! What is checked: `$ref`/`allOf` resolution, `type`, `x-kubernetes-int-or-string` and
//! `oneOf` of types (IntOrString, Quantity), maps (`additionalProperties`), `required`,
//! `enum`, `nullable`, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-embedded-resource`, and unknown fields, each reported with its path
//! (`spec.template.spec.containers[0].imagePullPolcy`). Not checked: formats, patterns,
//! bounds, CEL rules and the per-kind semantic validation (`crate::validation` has the
//! part the lab needs).

pub mod builtin;
mod walk;

use serde_json::Value;

pub use walk::Flavor;

/// Why an object does not match its schema at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A field the schema does not declare (strict field validation's `unknown field`).
    UnknownField,
    /// A value of the wrong JSON type (kube-apiserver fails to decode it).
    WrongType {
        /// The schema's type, e.g. `integer`, `string`, `int-or-string`.
        expected: String,
        /// The JSON type found, e.g. `string`.
        found: &'static str,
    },
    /// A field listed in the schema's `required` is absent.
    Required,
    /// A value outside the schema's `enum`.
    NotInEnum {
        /// The value found, as JSON.
        found: String,
        /// The allowed values, as JSON.
        allowed: Vec<String>,
    },
}

/// One mismatch between an object and its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path from the object's root without a leading dot, as kube-apiserver prints it:
    /// `spec.template.spec.containers[0].imagePullPolcy`, `metadata.labels[app]`.
    pub path: String,
    /// What is wrong there.
    pub problem: Problem,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.problem {
            Problem::UnknownField => write!(f, ".{}: unknown field", self.path),
            Problem::WrongType { expected, found } => {
                write!(f, ".{}: expected {expected}, found {found}", self.path)
            }
            Problem::Required => write!(f, ".{}: required field missing", self.path),
            Problem::NotInEnum { found, allowed } => write!(
                f,
                ".{}: {found} is not one of {}",
                self.path,
                allowed.join(", ")
            ),
        }
    }
}

impl FieldError {
    /// Whether this is an unknown field (the kind of error `fieldValidation` governs).
    pub fn is_unknown_field(&self) -> bool {
        self.problem == Problem::UnknownField
    }
}

/// Why an object could not be validated at all.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    /// No vendored document covers this group/version/kind.
    #[error("no schema for {kind} in {api_version} (vendored: Kubernetes v1.33 built-ins)")]
    UnknownKind {
        /// `group/version` as in `apiVersion`.
        api_version: String,
        /// The kind.
        kind: String,
    },
    /// The CRD has no `openAPIV3Schema` for this version (or does not serve it).
    #[error("CustomResourceDefinition {crd} has no schema for version {version}")]
    NoCrdSchema {
        /// The CRD's name.
        crd: String,
        /// The version asked for.
        version: String,
    },
    /// The object's `apiVersion` or `kind` is missing.
    #[error("the object has no apiVersion or kind")]
    NoKind,
    /// A vendored document is not valid JSON (a broken refresh).
    #[error("vendored OpenAPI document {0} is not valid: {1}")]
    BadDocument(&'static str, String),
}

/// Validates a built-in object against the vendored Kubernetes schema of its kind.
pub fn validate_builtin(
    group: &str,
    version: &str,
    kind: &str,
    obj: &Value,
) -> Result<Vec<FieldError>, SchemaError> {
    let (doc, name) = builtin::schema_for(group, version, kind)?;
    let components = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object);
    let schema = components
        .and_then(|c| c.get(&name))
        .ok_or_else(|| SchemaError::UnknownKind {
            api_version: api_version(group, version),
            kind: kind.to_string(),
        })?;
    Ok(walk::validate(schema, components, Flavor::Builtin, obj))
}

/// The `openAPIV3Schema` a CRD declares for `version`, if it serves that version.
pub fn crd_version_schema<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))?
        .pointer("/schema/openAPIV3Schema")
}

/// Validates a custom resource against its CRD's schema for `version`, as the real
/// server's structural-schema decoding does: `apiVersion` and `kind` are implicit and
/// `metadata` is checked against the built-in ObjectMeta schema.
pub fn validate_custom(
    crd: &Value,
    version: &str,
    obj: &Value,
) -> Result<Vec<FieldError>, SchemaError> {
    let schema = crd_version_schema(crd, version).ok_or_else(|| SchemaError::NoCrdSchema {
        crd: crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        version: version.to_string(),
    })?;
    let mut body = obj.clone();
    let meta = body.as_object_mut().and_then(|m| {
        m.remove("apiVersion");
        m.remove("kind");
        m.remove("metadata")
    });
    let mut errors = walk::validate(schema, None, Flavor::Custom, &body);
    if let Some(meta) = meta {
        let (doc, _) = builtin::schema_for("", "v1", "Pod")?;
        let components = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object);
        if let Some(om) = components.and_then(|c| c.get(builtin::OBJECT_META)) {
            let mut meta_errors = walk::validate(om, components, Flavor::Builtin, &meta);
            for e in &mut meta_errors {
                e.path = format!("metadata.{}", e.path);
            }
            meta_errors.append(&mut errors);
            errors = meta_errors;
        }
    }
    Ok(errors)
}

/// Validates any object by its `apiVersion` and `kind`: built-ins against the vendored
/// schemas, custom resources against the matching CRD among `crds`.
pub fn validate(obj: &Value, crds: &[Value]) -> Result<Vec<FieldError>, SchemaError> {
    let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if api_version.is_empty() || kind.is_empty() {
        return Err(SchemaError::NoKind);
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let crd = crds.iter().find(|c| {
        c.pointer("/spec/group").and_then(Value::as_str) == Some(group)
            && c.pointer("/spec/names/kind").and_then(Value::as_str) == Some(kind)
    });
    match crd {
        Some(crd) => validate_custom(crd, version, obj),
        None => validate_builtin(group, version, kind, obj),
    }
}

fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "containers": [{
                            "name": "main", "image": "rovn:dev", "imagePullPolicy": "IfNotPresent",
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "resources": {"requests": {"cpu": "100m", "memory": 64}},
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                        }],
                    },
                },
            },
        })
    }

    fn errors_of(obj: &Value) -> Vec<String> {
        match validate(obj, &[]) {
            Ok(errors) => errors.iter().map(ToString::to_string).collect(),
            Err(e) => vec![format!("not validated: {e}")],
        }
    }

    #[test]
    fn a_valid_deployment_passes() {
        assert_eq!(errors_of(&deployment()), Vec::<String>::new());
    }

    #[test]
    fn a_typo_is_an_unknown_field_with_its_path() {
        let mut d = deployment();
        let c = &mut d["spec"]["template"]["spec"]["containers"][0];
        let policy = c["imagePullPolicy"].take();
        c["imagePullPolcy"] = policy;
        if let Some(m) = c.as_object_mut() {
            m.remove("imagePullPolicy");
        }
        let errors = validate(&d, &[]).unwrap_or_default();
        assert_eq!(
            errors,
            vec![FieldError {
                path: "spec.template.spec.containers[0].imagePullPolcy".into(),
                problem: Problem::UnknownField,
            }]
        );
        assert_eq!(
            errors[0].to_string(),
            ".spec.template.spec.containers[0].imagePullPolcy: unknown field"
        );
    }

    #[test]
    fn a_wrong_type_is_reported() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!("2");
        assert_eq!(
            errors_of(&d),
            vec![".spec.replicas: expected integer, found string"]
        );
        d["spec"]["replicas"] = json!(2.5);
        assert_eq!(
            errors_of(&d),
            vec![".spec.replicas: expected integer, found number"]
        );
    }

    #[test]
    fn a_missing_required_field_is_reported() {
        let mut d = deployment();
        if let Some(m) = d["spec"]["template"]["spec"]["containers"][0].as_object_mut() {
            m.remove("name");
        }
        assert_eq!(
            errors_of(&d),
            vec![".spec.template.spec.containers[0].name: required field missing"]
        );
    }

    #[test]
    fn int_or_string_takes_either_and_nothing_else() {
        let mut d = deployment();
        d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = json!(1);
        assert!(errors_of(&d).is_empty());
        d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = json!(true);
        assert_eq!(
            errors_of(&d),
            vec![".spec.strategy.rollingUpdate.maxSurge: expected int-or-string, found boolean"]
        );
    }

    #[test]
    fn map_values_are_checked_against_additional_properties() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["nodeSelector"]["zone"] = json!(1);
        d["metadata"]["labels"]["tier"] = json!({"a": "b"});
        assert_eq!(
            errors_of(&d),
            vec![
                ".metadata.labels[tier]: expected string, found object",
                ".spec.template.spec.nodeSelector[zone]: expected string, found integer",
            ]
        );
    }

    #[test]
    fn quantities_take_strings_and_numbers() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] =
            json!({"cpu": 0.5, "memory": [1]});
        assert_eq!(
            errors_of(&d),
            vec![
                ".spec.template.spec.containers[0].resources.limits[memory]: expected string or number, found array"
            ]
        );
    }

    #[test]
    fn built_in_null_fields_decode_as_absent() {
        let mut d = deployment();
        d["spec"]["strategy"] = Value::Null;
        d["metadata"]["annotations"] = Value::Null;
        assert!(errors_of(&d).is_empty());
    }

    #[test]
    fn unknown_kinds_and_versions_are_errors_not_passes() {
        let mut d = deployment();
        d["kind"] = json!("Deploymnet");
        assert!(matches!(
            validate(&d, &[]),
            Err(SchemaError::UnknownKind { .. })
        ));
        d["apiVersion"] = json!("apps/v1beta9");
        assert!(validate(&d, &[]).is_err());
        assert_eq!(validate(&json!({}), &[]), Err(SchemaError::NoKind));
    }

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "subnets.rovn.io"},
            "spec": {"group": "rovn.io", "scope": "Cluster",
                "names": {"plural": "subnets", "kind": "Subnet"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "required": ["cidrBlock"], "properties": {
                            "cidrBlock": {"type": "string"},
                            "gateway": {"type": "string", "nullable": true},
                            "protocol": {"type": "string", "enum": ["IPv4", "IPv6"]},
                            "excludeIps": {"type": "array", "items": {"type": "string"}},
                            "vlan": {"x-kubernetes-int-or-string": true},
                        }},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    }}}}]},
        })
    }

    fn subnet(spec: Value) -> Value {
        json!({"apiVersion": "rovn.io/v1", "kind": "Subnet", "metadata": {"name": "s1"},
            "spec": spec, "status": {"anything": {"goes": 1}}})
    }

    fn custom_errors(obj: &Value) -> Vec<String> {
        match validate(obj, &[crd()]) {
            Ok(errors) => errors.iter().map(ToString::to_string).collect(),
            Err(e) => vec![format!("not validated: {e}")],
        }
    }

    #[test]
    fn custom_resources_validate_against_their_crd() {
        let ok = subnet(json!({"cidrBlock": "10.1.0.0/16", "gateway": null,
            "protocol": "IPv4", "excludeIps": ["10.1.0.5"], "vlan": "10"}));
        assert_eq!(custom_errors(&ok), Vec::<String>::new());
        let bad = subnet(json!({"cidrBlok": "10.1.0.0/16", "protocol": "IPv5",
            "excludeIps": [5], "vlan": 1.5}));
        assert_eq!(
            custom_errors(&bad),
            vec![
                ".spec.cidrBlock: required field missing",
                ".spec.cidrBlok: unknown field",
                ".spec.excludeIps[0]: expected string, found integer",
                r#".spec.protocol: "IPv5" is not one of "IPv4", "IPv6""#,
                ".spec.vlan: expected int-or-string, found number",
            ]
        );
        let mut meta_typo = ok.clone();
        meta_typo["metadata"]["lables"] = json!({});
        meta_typo["spec"]["cidrBlock"] = Value::Null;
        assert_eq!(
            custom_errors(&meta_typo),
            vec![
                ".metadata.lables: unknown field",
                ".spec.cidrBlock: expected string, found null",
            ]
        );
        assert!(matches!(
            validate_custom(&crd(), "v2", &ok),
            Err(SchemaError::NoCrdSchema { .. })
        ));
    }
}
