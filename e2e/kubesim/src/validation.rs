//! Name and shape checks the real server applies before storing an object. Failures are
//! field causes that become a 422 `Invalid` Status.

use serde_json::Value;

use crate::status::Cause;

/// Whether `name` is a DNS-1123 label (namespaces): lower-case alphanumerics and `-`, ≤63.
pub fn is_dns1123_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `name` is a DNS-1035 label (services): a DNS-1123 label starting with a letter.
pub fn is_dns1035_label(name: &str) -> bool {
    is_dns1123_label(name) && name.as_bytes()[0].is_ascii_lowercase()
}

/// Whether `name` is a DNS-1123 subdomain (most objects): dot-separated labels, ≤253.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns1123_label)
}

/// Checks the object name against the rule its kind uses.
pub fn check_name(group: &str, kind: &str, name: &str) -> Option<Cause> {
    let (ok, rule) = match (group, kind) {
        ("", "Namespace") => (
            is_dns1123_label(name),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        ),
        ("", "Service") => (
            is_dns1035_label(name),
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
        ),
        _ => (
            is_dns1123_subdomain(name),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ),
    };
    (!ok).then(|| Cause {
        field: "metadata.name".into(),
        message: format!("Invalid value: {name:?}: {rule}"),
    })
}

/// A qualified name as labels and annotations use for keys: `[prefix/]name`, name ≤63
/// characters of `[-_.A-Za-z0-9]` starting and ending alphanumeric, prefix a DNS subdomain.
pub fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    prefix.is_none_or(is_dns1123_subdomain) && !name.is_empty() && is_label_value(name)
}

/// A label value: empty, or ≤63 characters of `[-_.A-Za-z0-9]` starting and ending
/// alphanumeric.
pub fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

fn check_string_map(meta: &Value, field: &str, causes: &mut Vec<Cause>) {
    match meta.get(field) {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if !is_qualified_name(k) {
                    causes.push(Cause {
                        field: format!("metadata.{field}"),
                        message: format!("Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
                    });
                }
                match v.as_str() {
                    None => causes.push(Cause {
                        field: format!("metadata.{field}.{k}"),
                        message: "Invalid value: must be a string".into(),
                    }),
                    Some(text) if field == "labels" && !is_label_value(text) => causes.push(Cause {
                        field: "metadata.labels".to_string(),
                        message: format!("Invalid value: {text:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
                    }),
                    Some(_) => {}
                }
            }
        }
        Some(_) => causes.push(Cause {
            field: format!("metadata.{field}"),
            message: "Invalid value: must be a map of strings".into(),
        }),
    }
}

/// Shape checks per kind (the subset of upstream validation that catches malformed input
/// a client could send by mistake).
pub fn check_object(group: &str, kind: &str, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(meta) = obj.get("metadata") {
        check_string_map(meta, "labels", &mut causes);
        check_string_map(meta, "annotations", &mut causes);
        if let Some(f) = meta.get("finalizers")
            && !f.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        {
            causes.push(Cause {
                field: "metadata.finalizers".into(),
                message: "Invalid value: must be a list of strings".into(),
            });
        }
    }
    for field in ["spec", "status"] {
        if let Some(v) = obj.get(field)
            && !v.is_object()
            && !v.is_null()
        {
            causes.push(Cause {
                field: field.into(),
                message: "Invalid value: must be an object".into(),
            });
        }
    }
    match (group, kind) {
        ("", "Pod") => {
            let containers = obj.pointer("/spec/containers").and_then(Value::as_array);
            match containers {
                Some(list) if !list.is_empty() => {
                    for (i, c) in list.iter().enumerate() {
                        if !c
                            .get("name")
                            .and_then(Value::as_str)
                            .is_some_and(is_dns1123_label)
                        {
                            causes.push(Cause {
                                field: format!("spec.containers[{i}].name"),
                                message: "Required value: a DNS-1123 label".into(),
                            });
                        }
                    }
                }
                _ => causes.push(Cause {
                    field: "spec.containers".into(),
                    message: "Required value".into(),
                }),
            }
        }
        ("", "Service") => {
            if let Some(ports) = obj.pointer("/spec/ports") {
                let ok = ports.as_array().is_some_and(|l| {
                    l.iter().all(|p| {
                        p.get("port")
                            .and_then(Value::as_u64)
                            .is_some_and(|n| (1..=65535).contains(&n))
                    })
                });
                if !ok {
                    causes.push(Cause {
                        field: "spec.ports".into(),
                        message: "Invalid value: every port needs a port number in 1-65535".into(),
                    });
                }
            }
        }
        ("discovery.k8s.io", "EndpointSlice")
            if !obj.get("addressType").is_some_and(Value::is_string) =>
        {
            causes.push(Cause {
                field: "addressType".into(),
                message: "Required value".into(),
            });
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let plural = obj
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or("");
            let group = obj
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or("");
            if plural.is_empty() || group.is_empty() || name != format!("{plural}.{group}") {
                causes.push(Cause {
                    field: "metadata.name".into(),
                    message: "Invalid value: must be spec.names.plural+\".\"+spec.group".into(),
                });
            }
            if obj
                .pointer("/spec/names/kind")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(Cause {
                    field: "spec.names.kind".into(),
                    message: "Required value".into(),
                });
            }
            let versions = obj.pointer("/spec/versions").and_then(Value::as_array);
            if !versions.is_some_and(|v| {
                !v.is_empty()
                    && v.iter()
                        .all(|x| x.get("name").and_then(Value::as_str).is_some())
            }) {
                causes.push(Cause {
                    field: "spec.versions".into(),
                    message: "Required value: at least one named version".into(),
                });
            }
            if !matches!(
                obj.pointer("/spec/scope").and_then(Value::as_str),
                Some("Cluster" | "Namespaced")
            ) {
                causes.push(Cause {
                    field: "spec.scope".into(),
                    message: "Unsupported value: must be Cluster or Namespaced".into(),
                });
            }
        }
        _ => {}
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("A"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(!is_dns1123_subdomain(""));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1035_label("1abc"));
        assert!(check_name("", "Service", "9svc").is_some());
        assert!(check_name("", "Pod", "web-1.x").is_none());
    }

    #[test]
    fn label_keys_and_values() {
        assert!(is_qualified_name("app"));
        assert!(is_qualified_name("rovn.io/ip_address"));
        assert!(is_qualified_name("kubernetes.io/metadata.name"));
        assert!(!is_qualified_name("a/b/c"));
        assert!(!is_qualified_name("Bad.Prefix/x"));
        assert!(!is_qualified_name("-x"));
        assert!(is_label_value(""));
        assert!(is_label_value("10.16.0.5"));
        assert!(!is_label_value("10.16.0.0/16"));
        assert!(!is_label_value(&"a".repeat(64)));
        let bad = json!({"metadata": {"labels": {"cidr": "10.0.0.0/8"}}, "spec": {"containers": [{"name": "c"}]}});
        assert_eq!(check_object("", "Pod", &bad).len(), 1);
        let ok = json!({"metadata": {"annotations": {"rovn.io/cidr": "10.0.0.0/8"}}, "spec": {"containers": [{"name": "c"}]}});
        assert!(check_object("", "Pod", &ok).is_empty());
    }

    #[test]
    fn pod_needs_containers() {
        assert_eq!(check_object("", "Pod", &json!({"spec": {}})).len(), 1);
        assert!(
            check_object("", "Pod", &json!({"spec": {"containers": [{"name": "c"}]}})).is_empty()
        );
        assert_eq!(
            check_object(
                "",
                "Pod",
                &json!({"metadata": {"labels": {"a": 1}}, "spec": {"containers": [{"name": "c"}]}})
            )
            .len(),
            1
        );
    }
}
