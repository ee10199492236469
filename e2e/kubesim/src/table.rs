//! `meta.k8s.io/v1 Table` rendering for `kubectl get` (which asks with `as=Table`):
//! NAME, AGE and a few per-kind columns, like the real server's printers.

use serde_json::{Value, json};

use crate::clock;
use crate::resources::ResourceDef;

/// What each Table row carries in `object` (the `includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// Parses the query value; unknown values mean the default.
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

struct Column {
    name: &'static str,
    type_: &'static str,
    priority: i64,
    description: &'static str,
}

const fn col(
    name: &'static str,
    type_: &'static str,
    priority: i64,
    description: &'static str,
) -> Column {
    Column {
        name,
        type_,
        priority,
        description,
    }
}

const NAME: Column = col(
    "Name",
    "string",
    0,
    "Name must be unique within a namespace.",
);
const AGE: Column = col(
    "Age",
    "string",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

fn builtin_columns(def: &ResourceDef) -> Option<Vec<Column>> {
    let cols = match (def.group.as_str(), def.kind.as_str()) {
        ("", "Pod") => vec![
            NAME,
            col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted.",
            ),
            AGE,
            col("IP", "string", 1, "IP address allocated to the pod."),
            col(
                "Node",
                "string",
                1,
                "Name of the Node this pod is assigned to.",
            ),
        ],
        ("", "Node") => vec![
            NAME,
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            AGE,
            col(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            col("Internal-IP", "string", 1, "List of internal IPs."),
        ],
        ("", "Service") => vec![
            NAME,
            col("Type", "string", 0, "The type of the service."),
            col("Cluster-IP", "string", 0, "The cluster IP of the service."),
            col(
                "External-IP",
                "string",
                0,
                "The external IPs of the service.",
            ),
            col("Port(s)", "string", 0, "The ports of the service."),
            AGE,
            col("Selector", "string", 1, "The selector of the service."),
        ],
        ("", "Namespace") => vec![
            NAME,
            col("Status", "string", 0, "The status of the namespace"),
            AGE,
        ],
        ("", "Endpoints") => vec![
            NAME,
            col("Endpoints", "string", 0, "Endpoints of the service"),
            AGE,
        ],
        ("", "ConfigMap") => vec![
            NAME,
            col("Data", "string", 0, "Number of data entries"),
            AGE,
        ],
        ("discovery.k8s.io", "EndpointSlice") => vec![
            NAME,
            col(
                "AddressType",
                "string",
                0,
                "The type of addresses in this slice.",
            ),
            col("Ports", "string", 0, "The ports of the slice."),
            col("Endpoints", "string", 0, "The addresses of the slice."),
            AGE,
        ],
        ("coordination.k8s.io", "Lease") => vec![
            NAME,
            col("Holder", "string", 0, "The holder of the lease."),
            AGE,
        ],
        ("networking.k8s.io", "NetworkPolicy") => {
            vec![
                NAME,
                col("Pod-Selector", "string", 0, "The pods the policy selects."),
                AGE,
            ]
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            vec![NAME, col("Created At", "date", 0, "Creation time.")]
        }
        (_, "Event") => vec![
            col("Last Seen", "string", 0, "Time of the last occurrence."),
            col("Type", "string", 0, "Type of the event."),
            col("Reason", "string", 0, "Reason of the event."),
            col("Object", "string", 0, "The object the event is about."),
            col("Message", "string", 0, "The event message."),
            NAME,
        ],
        _ => return None,
    };
    Some(cols)
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    }
}

fn selector_text(sel: Option<&Value>) -> String {
    let labels = sel
        .and_then(|s| s.get("matchLabels").or(Some(s)))
        .and_then(Value::as_object);
    let parts: Vec<String> = labels
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                .collect()
        })
        .unwrap_or_default();
    parts.join(",")
}

fn builtin_cells(def: &ResourceDef, obj: &Value) -> Vec<Value> {
    let name = json!(text(obj, "/metadata/name"));
    let age = json!(clock::age_since(
        obj.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
    ));
    let deleting = obj.pointer("/metadata/deletionTimestamp").is_some();
    match (def.group.as_str(), def.kind.as_str()) {
        ("", "Pod") => {
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let statuses = obj
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ready = statuses
                .iter()
                .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: i64 = statuses
                .iter()
                .filter_map(|s| s.get("restartCount").and_then(Value::as_i64))
                .sum();
            let waiting = statuses
                .iter()
                .find_map(|s| s.pointer("/state/waiting/reason").and_then(Value::as_str))
                .map(str::to_string);
            let status = if deleting {
                "Terminating".to_string()
            } else {
                let reason = text(obj, "/status/reason");
                if !reason.is_empty() {
                    reason
                } else {
                    waiting.unwrap_or_else(|| text(obj, "/status/phase"))
                }
            };
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                age,
                json!(or_none(text(obj, "/status/podIP"))),
                json!(or_none(text(obj, "/spec/nodeName"))),
            ]
        }
        ("", "Node") => {
            let ready = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| {
                    c.iter()
                        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                })
                .and_then(|c| c.get("status").and_then(Value::as_str))
                .map_or(
                    "Unknown",
                    |s| if s == "True" { "Ready" } else { "NotReady" },
                )
                .to_string();
            let status =
                if obj.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                    format!("{ready},SchedulingDisabled")
                } else {
                    ready
                };
            let roles: Vec<String> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let internal = obj
                .pointer("/status/addresses")
                .and_then(Value::as_array)
                .and_then(|a| {
                    a.iter()
                        .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
                })
                .and_then(|a| a.get("address").and_then(Value::as_str))
                .unwrap_or("")
                .to_string();
            vec![
                name,
                json!(status),
                json!(or_none(roles.join(","))),
                age,
                json!(text(obj, "/status/nodeInfo/kubeletVersion")),
                json!(or_none(internal)),
            ]
        }
        ("", "Service") => {
            let svc_type = text(obj, "/spec/type");
            let mut external: Vec<String> = obj
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|i| i.get("ip").or(i.get("hostname")).and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if let Some(ips) = obj.pointer("/spec/externalIPs").and_then(Value::as_array) {
                external.extend(ips.iter().filter_map(Value::as_str).map(str::to_string));
            }
            let external = match (external.is_empty(), svc_type.as_str()) {
                (true, "LoadBalancer") => "<pending>".to_string(),
                (true, "ExternalName") => text(obj, "/spec/externalName"),
                (true, _) => "<none>".to_string(),
                (false, _) => external.join(","),
            };
            let ports: Vec<String> = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .map(|p| {
                            let port = p.get("port").map(Value::to_string).unwrap_or_default();
                            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                            match p.get("nodePort").and_then(Value::as_u64) {
                                Some(n) => format!("{port}:{n}/{proto}"),
                                None => format!("{port}/{proto}"),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            vec![
                name,
                json!(svc_type),
                json!(or_none(text(obj, "/spec/clusterIP"))),
                json!(external),
                json!(or_none(ports.join(","))),
                age,
                json!(or_none(selector_text(obj.pointer("/spec/selector")))),
            ]
        }
        ("", "Namespace") => vec![name, json!(text(obj, "/status/phase")), age],
        ("", "Endpoints") => {
            let mut eps = Vec::new();
            for s in obj
                .get("subsets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let ports: Vec<String> = s
                    .get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.get("port").map(Value::to_string))
                    .collect();
                for a in s
                    .get("addresses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let ip = a.get("ip").and_then(Value::as_str).unwrap_or("");
                    if ports.is_empty() {
                        eps.push(ip.to_string());
                    }
                    eps.extend(ports.iter().map(|p| format!("{ip}:{p}")));
                }
            }
            vec![name, json!(or_none(eps.join(","))), age]
        }
        ("", "ConfigMap") => {
            let n = obj
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + obj
                    .get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            vec![name, json!(n), age]
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            let ports: Vec<String> = obj
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("port").map(Value::to_string))
                .collect();
            let addrs: Vec<String> = obj
                .get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|e| {
                    e.get("addresses")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect();
            vec![
                name,
                json!(text(obj, "/addressType")),
                json!(or_none(ports.join(","))),
                json!(or_none(addrs.join(","))),
                age,
            ]
        }
        ("coordination.k8s.io", "Lease") => {
            vec![name, json!(text(obj, "/spec/holderIdentity")), age]
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            let sel = selector_text(obj.pointer("/spec/podSelector"));
            vec![
                name,
                json!(if sel.is_empty() {
                    "<none>".to_string()
                } else {
                    sel
                }),
                age,
            ]
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            vec![name, json!(text(obj, "/metadata/creationTimestamp"))]
        }
        (group, _) => {
            let (kind_p, name_p, last_p) = if group.is_empty() {
                (
                    "/involvedObject/kind",
                    "/involvedObject/name",
                    "/lastTimestamp",
                )
            } else {
                ("/regarding/kind", "/regarding/name", "/eventTime")
            };
            let last = obj.pointer(last_p).and_then(Value::as_str).or_else(|| {
                obj.pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
            });
            vec![
                json!(clock::age_since(last)),
                json!(text(obj, "/type")),
                json!(text(obj, "/reason")),
                json!(format!(
                    "{}/{}",
                    text(obj, kind_p).to_ascii_lowercase(),
                    text(obj, name_p)
                )),
                json!(text(
                    obj,
                    if group.is_empty() {
                        "/message"
                    } else {
                        "/note"
                    }
                )),
                name,
            ]
        }
    }
}

/// Evaluates the simple JSONPath forms CRD printer columns use (`.a.b`, `.a[0].b`).
fn simple_json_path(obj: &Value, path: &str) -> Value {
    let mut node = obj;
    for part in path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
    {
        let (field, index) = match part.split_once('[') {
            Some((f, rest)) => (f, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        node = match node.get(field) {
            Some(n) => n,
            None => return Value::Null,
        };
        if let Some(i) = index {
            node = match node.get(i) {
                Some(n) => n,
                None => return Value::Null,
            };
        }
    }
    node.clone()
}

fn column_json(name: &str, type_: &str, priority: i64, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

/// Column definitions for a kind.
pub fn column_definitions(def: &ResourceDef) -> Vec<Value> {
    if let Some(cols) = builtin_columns(def) {
        return cols
            .iter()
            .map(|c| column_json(c.name, c.type_, c.priority, c.description))
            .collect();
    }
    let mut out = vec![column_json(NAME.name, NAME.type_, 0, NAME.description)];
    if def.printer_columns.is_empty() {
        out.push(column_json(AGE.name, AGE.type_, 0, AGE.description));
    }
    for c in &def.printer_columns {
        let t = if c.type_ == "date" {
            "string"
        } else {
            c.type_.as_str()
        };
        out.push(column_json(&c.name, t, c.priority, ""));
    }
    out
}

/// The `meta.k8s.io/v1 PartialObjectMetadata` form of an object (metadata only), for
/// Table rows and for clients that ask `as=PartialObjectMetadata` (kube-rs metadata
/// watchers).
pub fn partial_object_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// One Table row for an object.
pub fn row(def: &ResourceDef, obj: &Value, include: IncludeObject) -> Value {
    let cells = if builtin_columns(def).is_some() {
        builtin_cells(def, obj)
    } else {
        let mut cells = vec![json!(text(obj, "/metadata/name"))];
        if def.printer_columns.is_empty() {
            cells.push(json!(clock::age_since(
                obj.pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
            )));
        }
        for c in &def.printer_columns {
            let v = simple_json_path(obj, &c.json_path);
            cells.push(if c.type_ == "date" {
                json!(clock::age_since(v.as_str()))
            } else {
                v
            });
        }
        cells
    };
    let mut r = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => r["object"] = obj.clone(),
        IncludeObject::Metadata => r["object"] = partial_object_metadata(obj),
    }
    r
}

/// A whole Table. `headers` is false for watch events after the first, as upstream.
pub fn table<'a>(
    def: &ResourceDef,
    objects: impl Iterator<Item = &'a Value>,
    resource_version: u64,
    continue_token: Option<&str>,
    include: IncludeObject,
    headers: bool,
) -> Value {
    let rows: Vec<Value> = objects.map(|o| row(def, o, include)).collect();
    let mut meta = json!({"resourceVersion": resource_version.to_string()});
    if let Some(c) = continue_token {
        meta["continue"] = json!(c);
    }
    let mut t =
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "rows": rows});
    if headers {
        t["columnDefinitions"] = Value::Array(column_definitions(def));
    } else {
        t["columnDefinitions"] = json!([]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    #[test]
    fn pod_row_has_status_and_node() {
        let reg = Registry::new();
        let Some(pods) = reg.get("", "v1", "pods") else {
            panic!("pods not served")
        };
        let pod = json!({"metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c"}], "nodeName": "node1"},
            "status": {"phase": "Running", "podIP": "10.16.0.5", "containerStatuses": [{"name": "c", "ready": true, "restartCount": 2}]}});
        let r = row(&pods, &pod, IncludeObject::Metadata);
        assert_eq!(r["cells"][0], "p");
        assert_eq!(r["cells"][1], "1/1");
        assert_eq!(r["cells"][2], "Running");
        assert_eq!(r["cells"][3], "2");
        assert_eq!(r["cells"][6], "node1");
        assert_eq!(r["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(column_definitions(&pods).len(), 7);
    }

    #[test]
    fn json_paths() {
        let v = json!({"spec": {"cidrBlock": "10.0.0.0/24", "l": [{"a": 1}]}});
        assert_eq!(
            simple_json_path(&v, ".spec.cidrBlock"),
            json!("10.0.0.0/24")
        );
        assert_eq!(simple_json_path(&v, ".spec.l[0].a"), json!(1));
        assert_eq!(simple_json_path(&v, ".spec.none"), Value::Null);
    }
}
