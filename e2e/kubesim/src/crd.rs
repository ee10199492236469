//! Turning a CustomResourceDefinition into the resources it serves: every served
//! version, its scope, names, `status` subresource and printer columns.

use serde_json::Value;

use crate::resources::{PrinterColumn, ResourceDef, storage_key};
use crate::status::Cause;

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The resource definitions a CRD object asks to serve (one per served version).
pub fn served_resources(crd: &Value) -> Result<Vec<ResourceDef>, Vec<Cause>> {
    let text = |p: &str| {
        crd.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let group = text("/spec/group");
    let plural = text("/spec/names/plural");
    let kind = text("/spec/names/kind");
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Err(vec![Cause {
            field: "spec".into(),
            message: "Required value: group, names.plural and names.kind".into(),
        }]);
    }
    let singular = match text("/spec/names/singular") {
        s if s.is_empty() => kind.to_ascii_lowercase(),
        s => s,
    };
    let namespaced = text("/spec/scope") == "Namespaced";
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for v in &versions {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let Some(version) = v.get("name").and_then(Value::as_str) else {
            return Err(vec![Cause {
                field: "spec.versions".into(),
                message: "Required value: name".into(),
            }]);
        };
        let printer_columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| {
                        Some(PrinterColumn {
                            name: c.get("name")?.as_str()?.to_string(),
                            type_: c
                                .get("type")
                                .and_then(Value::as_str)
                                .unwrap_or("string")
                                .to_string(),
                            json_path: c.get("jsonPath")?.as_str()?.to_string(),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(ResourceDef {
            group: group.clone(),
            version: version.to_string(),
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            namespaced,
            status_subresource: v.pointer("/subresources/status").is_some(),
            binding_subresource: false,
            short_names: strings(crd.pointer("/spec/names/shortNames")),
            categories: strings(crd.pointer("/spec/names/categories")),
            storage: storage_key(&group, &plural),
            custom: true,
            printer_columns,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subnet_crd_serves_v1_with_status() {
        let crd = json!({"spec": {"group": "rovn.io", "scope": "Cluster",
            "names": {"plural": "subnets", "kind": "Subnet", "shortNames": ["subnet"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                         {"name": "v1beta1", "served": false, "storage": false}]}});
        let served = served_resources(&crd).unwrap_or_default();
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].singular, "subnet");
        assert!(served[0].status_subresource && !served[0].namespaced && served[0].custom);
        assert_eq!(&*served[0].storage, "rovn.io/subnets");
        assert!(served_resources(&json!({"spec": {}})).is_err());
    }
}
