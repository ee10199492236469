//! The pure half of the EndpointSlice controller: from a Service, the pods its selector
//! matches and the slices it already has, the slices that should exist, as a
//! create/update/delete plan. No store, no lock, no I/O, so each upstream rule
//! (`k8s.io/endpointslice` `reconciler.go` and `utils.go`) has a unit test here.
//!
//! Everything read comes from clients and is untrusted: malformed fields make a
//! Service `Err` (skipped by the caller) or a pod/slice simply not count, never a panic.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::{Map, Value, json};

use crate::selectors::{LabelRequirement, LabelSelector};

/// Upstream's `--max-endpoints-per-slice` default: consumers see the same slice count
/// for the same number of pods as on a real cluster.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The label consumers list a Service's slices by (`discovery.LabelServiceName`).
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The label that tells this controller's slices from user-written or mirrored ones
/// (`discovery.LabelManagedBy`); only slices carrying [`CONTROLLER_NAME`] are touched.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// The managed-by value of kube-controller-manager's EndpointSlice controller, so
/// consumers filtering on it treat the lab's slices as the real controller's.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Set (empty) on the slices of a headless Service (`v1.IsHeadlessService`), which
/// kube-proxy uses to skip them.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// The Node label an endpoint's `zone` is copied from (`v1.LabelTopologyZone`).
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// Only IPv4 pod addresses are published for now (kubesim Services are single-stack
/// IPv4), so every managed slice has this address type.
pub const ADDRESS_TYPE: &str = "IPv4";

/// Where a Service port sends traffic on a pod, as `spec.ports[].targetPort` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    /// Used as is for every pod.
    Number(i64),
    /// Looked up per pod in its containers' `ports[].name` (so pods may differ).
    Name(String),
}

/// One Service port, already checked, so building endpoints cannot fail on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// `name`, `""` when unnamed (upstream writes the empty name explicitly).
    pub name: String,
    /// `protocol`, `TCP` when absent (the API default).
    pub protocol: String,
    /// `targetPort`, defaulting to `port` as the API server does.
    pub target: TargetPort,
    /// `appProtocol`, copied to the slice port as upstream does.
    pub app_protocol: Option<String>,
}

/// What the controller needs of a Service with a selector, parsed once per reconcile
/// so the per-pod work reads typed fields instead of re-walking JSON.
#[derive(Debug, Clone)]
pub struct Service {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`, for the slices' ownerReference (and ownership checks).
    pub uid: String,
    /// `spec.selector` as an equality selector.
    pub selector: LabelSelector,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// `spec.publishNotReadyAddresses`: every endpoint is published ready.
    pub publish_not_ready: bool,
    /// `clusterIP` is `None` or unset: the slices get the headless label.
    pub headless: bool,
    /// The Service's labels with string values (slices copy them).
    pub labels: BTreeMap<String, String>,
    /// `deletionTimestamp` set: upstream creates no new slices then.
    pub deleting: bool,
}

/// What to write to make a Service's slices what they should be.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    /// New slices (with `generateName`).
    pub create: Vec<Value>,
    /// Whole replacement objects for existing slices (name and resourceVersion set).
    pub update: Vec<Value>,
    /// Names of slices to delete.
    pub delete: Vec<String>,
}

impl Plan {
    /// Whether nothing needs writing (the common case of an unrelated change).
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The selector the controller maintains slices for, or `None` when the Service gets
/// none from it (no or empty selector: user-managed endpoints; `ExternalName`: no
/// endpoints at all, upstream issue 105986). `Err` names what is malformed.
///
/// Shared by the index (which pods a Service covers) and [`parse_service`], so both
/// agree on which Services are managed.
pub fn selector_of(svc: &Value) -> Result<Option<LabelSelector>, String> {
    if text(svc, "/spec/type") == "ExternalName" {
        return Ok(None);
    }
    let map = match svc.pointer("/spec/selector") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(other) => return Err(format!("spec.selector is not a map: {other}")),
    };
    let mut reqs = Vec::with_capacity(map.len());
    for (key, value) in map {
        let Some(value) = value.as_str() else {
            return Err(format!("spec.selector[{key:?}] is not a string: {value}"));
        };
        reqs.push(LabelRequirement::Equals(key.clone(), value.to_string()));
    }
    // An empty selector reads back from a real apiserver as no selector (the empty
    // map is not stored), so it manages nothing rather than matching every pod.
    if reqs.is_empty() {
        return Ok(None);
    }
    reqs.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    Ok(Some(LabelSelector(reqs)))
}

fn parse_port(i: usize, p: &Value) -> Result<ServicePort, String> {
    let bad = |why: &str| format!("spec.ports[{i}]: {why}");
    let Value::Object(p) = p else {
        return Err(bad("not an object"));
    };
    let name = match p.get("name") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(bad(&format!("name is not a string: {other}"))),
    };
    let protocol = match p.get("protocol") {
        None | Some(Value::Null) => "TCP".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(bad(&format!("protocol is not a string: {other}"))),
    };
    let port = p
        .get("port")
        .and_then(Value::as_i64)
        .filter(|n| (1..=65535).contains(n))
        .ok_or_else(|| bad("port is not a number in 1-65535"))?;
    let target = match p.get("targetPort") {
        None | Some(Value::Null) => TargetPort::Number(port),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(0) => TargetPort::Number(port),
            Some(n) if (1..=65535).contains(&n) => TargetPort::Number(n),
            _ => return Err(bad(&format!("targetPort {n} is not in 1-65535"))),
        },
        Some(Value::String(s)) if !s.is_empty() => TargetPort::Name(s.clone()),
        Some(other) => return Err(bad(&format!("targetPort is malformed: {other}"))),
    };
    let app_protocol = p
        .get("appProtocol")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(ServicePort {
        name,
        protocol,
        target,
        app_protocol,
    })
}

/// Parses a Service the controller manages; `Ok(None)` when it manages no slices for
/// it (see [`selector_of`]), `Err` when a field it needs is malformed, so the caller
/// can skip that Service with a log line instead of guessing.
pub fn parse_service(svc: &Value) -> Result<Option<Service>, String> {
    let Some(selector) = selector_of(svc)? else {
        return Ok(None);
    };
    let namespace = text(svc, "/metadata/namespace").to_string();
    let name = text(svc, "/metadata/name").to_string();
    let uid = text(svc, "/metadata/uid").to_string();
    if namespace.is_empty() || name.is_empty() || uid.is_empty() {
        return Err("metadata.namespace, name or uid is missing".into());
    }
    let ports = match svc.pointer("/spec/ports") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, p)| parse_port(i, p))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("spec.ports is not a list: {other}")),
    };
    let cluster_ip = text(svc, "/spec/clusterIP");
    let labels = svc
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Service {
        namespace,
        name,
        uid,
        selector,
        ports,
        publish_not_ready: svc
            .pointer("/spec/publishNotReadyAddresses")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        headless: cluster_ip.is_empty() || cluster_ip == "None",
        labels,
        deleting: svc.pointer("/metadata/deletionTimestamp").is_some(),
    }))
}

/// The labels every slice of `svc` carries: the Service's own labels except the
/// reserved ones, the headless marker, then service-name and managed-by
/// (upstream `setEndpointSliceLabels`).
pub fn slice_labels(svc: &Service) -> Map<String, Value> {
    let mut labels: Map<String, Value> = svc
        .labels
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                LABEL_SERVICE_NAME | LABEL_MANAGED_BY | LABEL_HEADLESS
            )
        })
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    if svc.headless {
        labels.insert(LABEL_HEADLESS.into(), json!(""));
    }
    labels.insert(LABEL_SERVICE_NAME.into(), json!(svc.name));
    labels.insert(LABEL_MANAGED_BY.into(), json!(CONTROLLER_NAME));
    labels
}

/// Upstream `IsPodReady`: the pod's `Ready` condition is `True`.
fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
}

/// The pod's IPv4 addresses: `status.podIPs`, or `status.podIP` when the list is
/// absent (the real apiserver fills one from the other; kubesim keeps what the
/// client sent). Re-stringified as upstream does with its sloppy parse.
fn pod_ipv4s(pod: &Value) -> Vec<String> {
    let listed: Vec<&str> = pod
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|e| e.get("ip").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let raw = if listed.is_empty() {
        vec![text(pod, "/status/podIP")]
    } else {
        listed
    };
    let mut ips: Vec<String> = raw
        .into_iter()
        .filter_map(|s| s.parse::<Ipv4Addr>().ok())
        .map(|ip| ip.to_string())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// Upstream `FindPort`: a named targetPort is the containerPort of the first
/// container port with that name and the Service port's protocol, looking at
/// containers, then restartable (sidecar) init containers.
fn find_named_port(pod: &Value, name: &str, protocol: &str) -> Option<i64> {
    let in_list = |list: &str, sidecars_only: bool| {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(move |c| {
                !sidecars_only || c.get("restartPolicy").and_then(Value::as_str) == Some("Always")
            })
            .flat_map(|c| {
                c.get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .find(|p| {
                p.get("name").and_then(Value::as_str) == Some(name)
                    && p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == protocol
            })
            .and_then(|p| p.get("containerPort").and_then(Value::as_i64))
            .filter(|n| (1..=65535).contains(n))
    };
    in_list("containers", false).or_else(|| in_list("initContainers", true))
}

/// Upstream `getEndpointPorts`: one slice port per Service port whose target this pod
/// has; a port the pod lacks is left out (the pod then lands in a slice with fewer
/// ports), not the pod.
fn endpoint_ports(svc: &Service, pod: &Value) -> Vec<Value> {
    svc.ports
        .iter()
        .filter_map(|sp| {
            let port = match &sp.target {
                TargetPort::Number(n) => *n,
                TargetPort::Name(name) => find_named_port(pod, name, &sp.protocol)?,
            };
            let mut p = json!({"name": sp.name, "port": port, "protocol": sp.protocol});
            if let Some(ap) = &sp.app_protocol {
                p["appProtocol"] = json!(ap);
            }
            Some(p)
        })
        .collect()
}

/// Upstream `ShouldPodBeInEndpoints(pod, includeTerminating=true)` then
/// `podToEndpoint`: terminal pods and pods without an IP are left out; terminating
/// pods stay, with `ready` false (unless publishNotReadyAddresses) and `serving` as
/// the Ready condition says. Returns the pod's slice ports and its endpoint.
pub fn endpoint_for(
    svc: &Service,
    pod: &Value,
    zone_of: &dyn Fn(&str) -> Option<String>,
) -> Option<(Vec<Value>, Value)> {
    if matches!(text(pod, "/status/phase"), "Succeeded" | "Failed") {
        return None;
    }
    let addresses = pod_ipv4s(pod);
    if addresses.is_empty() {
        return None;
    }
    let serving = pod_ready(pod);
    let terminating = pod.pointer("/metadata/deletionTimestamp").is_some();
    let ready = svc.publish_not_ready || (serving && !terminating);
    let mut ep = Map::new();
    ep.insert("addresses".into(), json!(addresses));
    ep.insert(
        "conditions".into(),
        json!({"ready": ready, "serving": serving, "terminating": terminating}),
    );
    let hostname = text(pod, "/spec/hostname");
    if !hostname.is_empty() && text(pod, "/spec/subdomain") == svc.name {
        ep.insert("hostname".into(), json!(hostname));
    }
    let node = text(pod, "/spec/nodeName");
    if !node.is_empty() {
        ep.insert("nodeName".into(), json!(node));
        if let Some(zone) = zone_of(node).filter(|z| !z.is_empty()) {
            ep.insert("zone".into(), json!(zone));
        }
    }
    let mut target = Map::new();
    target.insert("kind".into(), json!("Pod"));
    for (field, pointer) in [
        ("namespace", "/metadata/namespace"),
        ("name", "/metadata/name"),
        ("uid", "/metadata/uid"),
    ] {
        let v = text(pod, pointer);
        if !v.is_empty() {
            target.insert(field.into(), json!(v));
        }
    }
    ep.insert("targetRef".into(), Value::Object(target));
    Some((endpoint_ports(svc, pod), Value::Object(ep)))
}

/// Identifies a group of slices by its port list, order-insensitive, with absent
/// fields read as their defaults (upstream `NewPortMapKey`).
type PortKey = Vec<String>;

fn port_key(ports: &[Value]) -> PortKey {
    let mut key: Vec<String> = ports
        .iter()
        .map(|p| {
            json!([
                p.get("name").and_then(Value::as_str).unwrap_or(""),
                p.get("protocol").and_then(Value::as_str).unwrap_or("TCP"),
                p.get("port"),
                p.get("appProtocol"),
            ])
            .to_string()
        })
        .collect();
    key.sort();
    key
}

/// Identifies an endpoint across updates: its addresses, hostname and target pod,
/// not its conditions, so a readiness flip updates it in place (upstream
/// `endpointHash`).
type EndpointKey = (Vec<String>, String, String, String);

fn endpoint_key(ep: &Value) -> EndpointKey {
    let mut addrs: Vec<String> = ep
        .get("addresses")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    addrs.sort();
    (
        addrs,
        text(ep, "/hostname").to_string(),
        text(ep, "/targetRef/namespace").to_string(),
        text(ep, "/targetRef/name").to_string(),
    )
}

fn list_of<'a>(slice: &'a Value, field: &str) -> &'a [Value] {
    slice
        .get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Upstream `ownedBy`: the slice's ownerReferences name this Service's uid, so a
/// slice left over from a deleted Service of the same name is replaced, not reused.
fn owned_by(slice: &Value, svc: &Service) -> bool {
    list_of(&slice["metadata"], "ownerReferences")
        .iter()
        .any(|o| {
            text(o, "/uid") == svc.uid
                && text(o, "/kind") == "Service"
                && text(o, "/apiVersion") == "v1"
        })
}

fn labels_of(slice: &Value) -> Map<String, Value> {
    slice
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Lists are written `null` when empty: that is how a real apiserver returns an
/// EndpointSlice whose list is empty (the field is not `omitempty` and protobuf
/// storage drops empty lists), e.g. upstream's placeholder slice.
fn list_or_null(items: Vec<Value>) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        Value::Array(items)
    }
}

/// Upstream `newEndpointSlice`.
fn new_slice(
    svc: &Service,
    labels: &Map<String, Value>,
    ports: &[Value],
    endpoints: Vec<Value>,
) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": format!("{}-", svc.name),
            "namespace": svc.namespace,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Service",
                "name": svc.name,
                "uid": svc.uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "addressType": ADDRESS_TYPE,
        "endpoints": list_or_null(endpoints),
        "ports": list_or_null(ports.to_vec()),
    })
}

/// An existing slice with new endpoints and labels, everything else kept.
fn updated_slice(slice: &Value, endpoints: Vec<Value>, labels: &Map<String, Value>) -> Value {
    let mut v = slice.clone();
    v["endpoints"] = list_or_null(endpoints);
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("labels".into(), Value::Object(labels.clone()));
    }
    v
}

/// Upstream `getSliceToFill`: the unchanged slice that ends up closest to full once
/// `n` endpoints are added, if any has room.
fn slice_to_fill(unchanged: &[(&Value, usize)], n: usize, max: usize) -> Option<usize> {
    unchanged
        .iter()
        .enumerate()
        .filter(|(_, (_, len))| len + n <= max)
        .min_by_key(|(_, (_, len))| max - (len + n))
        .map(|(i, _)| i)
}

/// The slices being worked out, before finalizing creates into reuses of deletes.
#[derive(Default)]
struct Draft<'a> {
    create: Vec<Value>,
    update: Vec<Value>,
    delete: Vec<&'a Value>,
}

/// Upstream `reconcileByPortMapping` for one port list: keep desired endpoints where
/// they are (updating changed ones in place), drop the rest, fill the slices being
/// updated anyway, then the unchanged slice closest to full, then new slices.
fn reconcile_group<'a>(
    svc: &Service,
    labels: &Map<String, Value>,
    existing: Vec<&'a Value>,
    ports: &[Value],
    mut want: BTreeMap<EndpointKey, Value>,
    max: usize,
    draft: &mut Draft<'a>,
) {
    let mut unchanged: Vec<(&Value, usize)> = Vec::new();
    let mut touched: Vec<(&Value, Vec<Value>)> = Vec::new();
    for slice in existing {
        let current = list_of(slice, "endpoints");
        let mut kept = Vec::with_capacity(current.len());
        let mut changed = false;
        for ep in current {
            if let Some(wanted) = want.remove(&endpoint_key(ep)) {
                changed |= wanted != *ep;
                kept.push(wanted);
            }
        }
        if changed || kept.len() != current.len() {
            if kept.is_empty() {
                draft.delete.push(slice);
            } else {
                touched.push((slice, kept));
            }
        } else if labels_of(slice) != *labels {
            touched.push((slice, kept));
        } else {
            unchanged.push((slice, kept.len()));
        }
    }
    // Fullest first, as upstream sorts them (stable: ties stay in name order).
    touched.sort_by_key(|(_, eps)| std::cmp::Reverse(eps.len()));
    for (_, eps) in touched.iter_mut() {
        while eps.len() < max {
            let Some((_, ep)) = want.pop_first() else {
                break;
            };
            eps.push(ep);
        }
    }
    let mut fresh: Vec<Vec<Value>> = Vec::new();
    while !want.is_empty() {
        let reuse = if want.len() < max {
            slice_to_fill(&unchanged, want.len(), max)
        } else {
            None
        };
        let (base, mut eps) = match reuse {
            Some(i) => {
                let (slice, _) = unchanged.remove(i);
                (Some(slice), list_of(slice, "endpoints").to_vec())
            }
            None => (None, Vec::new()),
        };
        while eps.len() < max {
            let Some((_, ep)) = want.pop_first() else {
                break;
            };
            eps.push(ep);
        }
        match base {
            Some(slice) => touched.push((slice, eps)),
            None => fresh.push(eps),
        }
    }
    draft.update.extend(
        touched
            .into_iter()
            .map(|(slice, eps)| updated_slice(slice, eps, labels)),
    );
    draft.create.extend(
        fresh
            .into_iter()
            .map(|eps| new_slice(svc, labels, ports, eps)),
    );
}

/// Upstream's placeholder test (`placeholderSliceCompare`): an owned, empty, portless
/// slice with the wanted labels needs no delete-and-recreate.
fn is_placeholder(slice: &Value, svc: &Service, labels: &Map<String, Value>) -> bool {
    list_of(slice, "endpoints").is_empty()
        && list_of(slice, "ports").is_empty()
        && text(slice, "/addressType") == ADDRESS_TYPE
        && owned_by(slice, svc)
        && labels_of(slice) == *labels
}

/// The plan that makes `svc`'s slices match its pods (upstream `Reconcile` for the
/// IPv4 address type). `pods` are the pods its selector matches (any order);
/// `existing` its slices carrying this controller's managed-by label; `zone_of` the
/// zone label of a Node, if it has one.
pub fn plan(
    svc: &Service,
    pods: &[&Value],
    existing: &[&Value],
    max: usize,
    zone_of: &dyn Fn(&str) -> Option<String>,
) -> Plan {
    let max = max.max(1);
    let labels = slice_labels(svc);
    let mut desired: BTreeMap<PortKey, (Vec<Value>, BTreeMap<EndpointKey, Value>)> =
        BTreeMap::new();
    for pod in pods {
        if let Some((ports, ep)) = endpoint_for(svc, pod, zone_of) {
            desired
                .entry(port_key(&ports))
                .or_insert_with(|| (ports, BTreeMap::new()))
                .1
                .insert(endpoint_key(&ep), ep);
        }
    }
    let mut existing: Vec<&Value> = existing
        .iter()
        .copied()
        // Upstream drops slices pending deletion so it cannot get stuck on them.
        .filter(|s| s.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|s| !text(s, "/metadata/name").is_empty())
        .collect();
    existing.sort_by(|a, b| text(a, "/metadata/name").cmp(text(b, "/metadata/name")));
    let mut draft = Draft::default();
    let mut by_ports: BTreeMap<PortKey, Vec<&Value>> = BTreeMap::new();
    for slice in &existing {
        if owned_by(slice, svc) && text(slice, "/addressType") == ADDRESS_TYPE {
            by_ports
                .entry(port_key(list_of(slice, "ports")))
                .or_default()
                .push(slice);
        } else {
            draft.delete.push(slice);
        }
    }
    for (key, (ports, want)) in desired {
        let slices = by_ports.remove(&key).unwrap_or_default();
        reconcile_group(svc, &labels, slices, &ports, want, max, &mut draft);
    }
    for slices in by_ports.into_values() {
        draft.delete.extend(slices);
    }
    // A Service without endpoints still gets one empty slice, as upstream does.
    if existing.len() == draft.delete.len() && draft.create.is_empty() {
        if draft.delete.len() == 1 && is_placeholder(draft.delete[0], svc, &labels) {
            draft.delete.clear();
        } else {
            draft.create.push(new_slice(svc, &labels, &[], Vec::new()));
        }
    }
    finalize(svc, draft)
}

/// Upstream `finalize`: a slice about to be deleted is reused (same name) for a slice
/// about to be created, so consumers see an update instead of a delete and a create;
/// a Service being deleted gets no new slices.
fn finalize(svc: &Service, mut draft: Draft<'_>) -> Plan {
    let mut i = 0;
    while i < draft.delete.len() && !draft.create.is_empty() {
        let old = draft.delete[i];
        if text(old, "/addressType") == ADDRESS_TYPE && owned_by(old, svc) {
            if let Some(mut reused) = draft.create.pop()
                && let Some(meta) = reused.get_mut("metadata").and_then(Value::as_object_mut)
            {
                meta.remove("generateName");
                meta.insert("name".into(), json!(text(old, "/metadata/name")));
                meta.insert(
                    "resourceVersion".into(),
                    json!(text(old, "/metadata/resourceVersion")),
                );
                draft.update.push(reused);
            }
            draft.delete.remove(i);
        } else {
            i += 1;
        }
    }
    if svc.deleting {
        draft.create.clear();
    }
    Plan {
        create: draft.create,
        update: draft.update,
        delete: draft
            .delete
            .iter()
            .map(|s| text(s, "/metadata/name").to_string())
            .collect(),
    }
}

/// The plan for a Service that no longer gets slices from this controller (deleted,
/// selector removed, turned ExternalName): delete every slice it manages. Upstream
/// leaves them to the garbage collector (deleted Service), or leaves them stale
/// (selector removed, kubernetes issue 118376); kubesim has no garbage collector and
/// rovn must not keep balancing to pods a Service no longer selects.
pub fn plan_removal(existing: &[&Value]) -> Plan {
    Plan {
        delete: existing
            .iter()
            .map(|s| text(s, "/metadata/name").to_string())
            .filter(|n| !n.is_empty())
            .collect(),
        ..Plan::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NO_ZONES: &dyn Fn(&str) -> Option<String> = &|_| None;

    fn service(spec: Value) -> Service {
        let mut v = json!({"metadata": {"namespace": "ns", "name": "web", "uid": "svc-uid",
                                        "labels": {"team": "a"}},
                           "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                                    "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}});
        if let (Some(base), Value::Object(extra)) = (v["spec"].as_object_mut(), spec) {
            base.extend(extra);
        }
        match parse_service(&v) {
            Ok(Some(s)) => s,
            other => panic!("test Service does not parse: {other:?}"),
        }
    }

    fn pod(name: &str, ip: &str, ready: bool) -> Value {
        json!({"metadata": {"namespace": "ns", "name": name, "uid": format!("uid-{name}"), "labels": {"app": "web"}},
               "spec": {"nodeName": "node1", "containers": [{"name": "c", "ports": [
                   {"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
               "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                          "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    fn terminating(mut p: Value) -> Value {
        p["metadata"]["deletionTimestamp"] = json!("2030-01-01T00:00:00Z");
        p
    }

    fn conditions(svc: &Service, p: &Value) -> (bool, bool, bool) {
        let (_, ep) =
            endpoint_for(svc, p, NO_ZONES).unwrap_or_else(|| panic!("no endpoint for {p}"));
        let c = &ep["conditions"];
        (
            c["ready"] == true,
            c["serving"] == true,
            c["terminating"] == true,
        )
    }

    /// A fake store of slices: plans are applied as the API server would apply them.
    #[derive(Default)]
    struct Slices {
        items: Vec<Value>,
        next: u64,
    }

    impl Slices {
        fn refs(&self) -> Vec<&Value> {
            self.items.iter().collect()
        }

        fn apply(&mut self, plan: &Plan) {
            self.items
                .retain(|s| !plan.delete.iter().any(|d| d == text(s, "/metadata/name")));
            for u in &plan.update {
                let name = text(u, "/metadata/name");
                let Some(slot) = self
                    .items
                    .iter_mut()
                    .find(|s| text(s, "/metadata/name") == name)
                else {
                    panic!("update of a slice that does not exist: {name}");
                };
                *slot = u.clone();
            }
            for c in &plan.create {
                self.next += 1;
                let mut c = c.clone();
                let name = format!("{}{}", text(&c, "/metadata/generateName"), self.next);
                c["metadata"]["name"] = json!(name);
                c["metadata"]["resourceVersion"] = json!(self.next.to_string());
                self.items.push(c);
            }
        }

        fn reconcile(&mut self, svc: &Service, pods: &[Value]) -> Plan {
            let refs: Vec<&Value> = pods.iter().collect();
            let plan = plan(svc, &refs, &self.refs(), MAX_ENDPOINTS_PER_SLICE, NO_ZONES);
            self.apply(&plan);
            plan
        }

        fn sizes(&self) -> Vec<usize> {
            let mut s: Vec<usize> = self
                .items
                .iter()
                .map(|s| list_of(s, "endpoints").len())
                .collect();
            s.sort_unstable();
            s
        }

        fn holding(&self, pod: &str) -> Vec<String> {
            self.items
                .iter()
                .filter(|s| {
                    list_of(s, "endpoints")
                        .iter()
                        .any(|e| text(e, "/targetRef/name") == pod)
                })
                .map(|s| text(s, "/metadata/name").to_string())
                .collect()
        }
    }

    fn pods(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| {
                pod(
                    &format!("p{i:04}"),
                    &format!("10.244.{}.{}", i / 250, i % 250 + 1),
                    true,
                )
            })
            .collect()
    }

    // Upstream podToEndpoint: serving = IsPodReady; terminating = deletionTimestamp != nil;
    // ready = publishNotReadyAddresses || (serving && !terminating).
    #[test]
    fn ready_serving_terminating_follow_pod_to_endpoint() {
        let svc = service(json!({}));
        assert_eq!(
            conditions(&svc, &pod("a", "10.0.0.1", true)),
            (true, true, false)
        );
        assert_eq!(
            conditions(&svc, &pod("a", "10.0.0.1", false)),
            (false, false, false)
        );
        assert_eq!(
            conditions(&svc, &terminating(pod("a", "10.0.0.1", true))),
            (false, true, true)
        );
        assert_eq!(
            conditions(&svc, &terminating(pod("a", "10.0.0.1", false))),
            (false, false, true)
        );
        let mut no_conditions = pod("a", "10.0.0.1", true);
        no_conditions["status"]["conditions"] = json!(null);
        assert_eq!(conditions(&svc, &no_conditions), (false, false, false));
    }

    // Upstream podToEndpoint: publishNotReadyAddresses makes every endpoint ready, even
    // a terminating one; serving and terminating still tell the truth.
    #[test]
    fn publish_not_ready_addresses_makes_every_endpoint_ready() {
        let svc = service(json!({"publishNotReadyAddresses": true}));
        assert_eq!(
            conditions(&svc, &pod("a", "10.0.0.1", false)),
            (true, false, false)
        );
        assert_eq!(
            conditions(&svc, &terminating(pod("a", "10.0.0.1", false))),
            (true, false, true)
        );
    }

    // Upstream ShouldPodBeInEndpoints(pod, includeTerminating=true): terminal phases and
    // pods without an IP are left out; getEndpointAddresses keeps only the slice's family.
    #[test]
    fn terminal_and_addressless_pods_are_left_out_host_network_pods_are_in() {
        let svc = service(json!({}));
        for phase in ["Succeeded", "Failed"] {
            let mut p = pod("a", "10.0.0.1", true);
            p["status"]["phase"] = json!(phase);
            assert!(endpoint_for(&svc, &p, NO_ZONES).is_none(), "{phase}");
        }
        let mut no_ip = pod("a", "", true);
        no_ip["status"]["podIPs"] = json!(null);
        assert!(endpoint_for(&svc, &no_ip, NO_ZONES).is_none());
        let mut v6 = pod("a", "fd00::1", true);
        v6["status"]["podIPs"] = json!([{"ip": "fd00::1"}]);
        assert!(
            endpoint_for(&svc, &v6, NO_ZONES).is_none(),
            "IPv6 only: no IPv4 address"
        );
        let mut host = pod("h", "172.30.0.5", true);
        host["spec"]["hostNetwork"] = json!(true);
        host["status"]["podIPs"] = json!(null);
        let (_, ep) = endpoint_for(&svc, &host, NO_ZONES)
            .unwrap_or_else(|| panic!("hostNetwork pod left out"));
        assert_eq!(ep["addresses"], json!(["172.30.0.5"]));
        assert_eq!(ep["nodeName"], "node1");
        assert_eq!(
            ep["targetRef"],
            json!({"kind": "Pod", "namespace": "ns", "name": "h", "uid": "uid-h"})
        );
    }

    // Upstream FindPort / getEndpointPorts: a named targetPort resolves per pod (name and
    // protocol must match); a pod without it keeps its other ports, and pods whose port
    // lists differ go to different slices (reconcileByAddressType groups by PortMapKey).
    #[test]
    fn named_target_ports_resolve_per_pod_and_split_slices() {
        let svc = service(json!({"ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
            {"port": 9000, "protocol": "TCP", "targetPort": 9000}]}));
        let a = pod("a", "10.0.0.1", true);
        let mut b = pod("b", "10.0.0.2", true);
        b["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8081);
        let mut c = pod("c", "10.0.0.3", true);
        c["spec"]["containers"][0]["ports"] =
            json!([{"name": "http", "containerPort": 8080, "protocol": "UDP"}]);
        let mut sidecar = pod("d", "10.0.0.4", true);
        sidecar["spec"]["containers"][0]["ports"] = json!([]);
        sidecar["spec"]["initContainers"] = json!([{"name": "s", "restartPolicy": "Always",
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]);
        let mut s = Slices::default();
        s.reconcile(&svc, &[a, b, c, sidecar]);
        let mut by_ports: Vec<(Value, Vec<String>)> = s
            .items
            .iter()
            .map(|sl| {
                let mut names: Vec<String> = list_of(sl, "endpoints")
                    .iter()
                    .map(|e| text(e, "/targetRef/name").to_string())
                    .collect();
                names.sort();
                (sl["ports"].clone(), names)
            })
            .collect();
        by_ports.sort_by_key(|(_, names)| names.clone());
        assert_eq!(
            by_ports,
            vec![
                (
                    json!([{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "", "port": 9000, "protocol": "TCP"}]),
                    vec!["a".to_string(), "d".to_string()]
                ),
                (
                    json!([{"name": "http", "port": 8081, "protocol": "TCP"}, {"name": "", "port": 9000, "protocol": "TCP"}]),
                    vec!["b".to_string()]
                ),
                (
                    json!([{"name": "", "port": 9000, "protocol": "TCP"}]),
                    vec!["c".to_string()]
                ),
            ],
            "UDP 'http' does not serve a TCP port; unnamed ports are written with name \"\""
        );
    }

    // Upstream --max-endpoints-per-slice (default 100): 250 pods take three slices, and
    // one more pod goes into the slice with room (getSliceToFill), touching no other.
    #[test]
    fn at_most_100_endpoints_per_slice_and_spill_over() {
        let svc = service(json!({}));
        let mut s = Slices::default();
        let mut all = pods(250);
        let first = s.reconcile(&svc, &all);
        assert_eq!(first.create.len(), 3);
        assert_eq!(s.sizes(), vec![50, 100, 100]);
        all.push(pod("extra", "10.250.0.1", true));
        let plan = s.reconcile(&svc, &all);
        assert_eq!(
            (plan.create.len(), plan.update.len(), plan.delete.len()),
            (0, 1, 0)
        );
        assert_eq!(s.sizes(), vec![51, 100, 100]);
        assert!(s.reconcile(&svc, &all).is_empty(), "converged");
    }

    // Upstream reconcileByPortMapping step 1: endpoints are matched by address and pod
    // (endpointHash), so a changed or removed endpoint updates only its own slice, in place.
    #[test]
    fn a_one_pod_change_touches_one_slice_and_keeps_the_rest_in_place() {
        let svc = service(json!({}));
        let mut s = Slices::default();
        let mut all = pods(250);
        s.reconcile(&svc, &all);
        let before = s.items.clone();
        let home = s.holding("p0123");
        all[123] = pod("p0123", "10.244.0.124", false);
        let plan = s.reconcile(&svc, &all);
        assert_eq!(plan.create.len() + plan.delete.len(), 0);
        assert_eq!(plan.update.len(), 1);
        assert_eq!(
            vec![text(&plan.update[0], "/metadata/name").to_string()],
            home
        );
        let pos = |items: &[Value], name: &str| {
            items.iter().find_map(|sl| {
                list_of(sl, "endpoints")
                    .iter()
                    .position(|e| text(e, "/targetRef/name") == name)
            })
        };
        assert_eq!(
            pos(&before, "p0123"),
            pos(&s.items, "p0123"),
            "updated in place"
        );
        for sl in &before {
            if text(sl, "/metadata/name") != home[0] {
                assert!(s.items.contains(sl), "untouched slices stay as they were");
            }
        }
        all.remove(7);
        let plan = s.reconcile(&svc, &all);
        assert_eq!(
            (plan.create.len(), plan.update.len(), plan.delete.len()),
            (0, 1, 0)
        );
        assert!(s.holding("p0007").is_empty());
    }

    // Upstream newEndpointSlice / setEndpointSliceLabels: generateName "<svc>-", the
    // Service's labels minus the reserved ones, the headless label when clusterIP is
    // None, service-name and managed-by; a controller ownerReference to the Service.
    #[test]
    fn labels_owner_references_and_name_follow_new_endpoint_slice() {
        let mut svc = service(json!({"clusterIP": "None"}));
        svc.labels.insert(LABEL_SERVICE_NAME.into(), "spoof".into());
        svc.labels.insert(LABEL_MANAGED_BY.into(), "someone".into());
        let mut s = Slices::default();
        s.reconcile(&svc, &[pod("a", "10.0.0.1", true)]);
        let slice = &s.items[0];
        assert_eq!(slice["metadata"]["generateName"], "web-");
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(
            slice["metadata"]["labels"],
            json!({"team": "a", LABEL_HEADLESS: "", LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: CONTROLLER_NAME})
        );
        assert_eq!(
            slice["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "svc-uid",
                    "controller": true, "blockOwnerDeletion": true}])
        );
        let headful = service(json!({}));
        let plan = s.reconcile(&headful, &[pod("a", "10.0.0.1", true)]);
        assert_eq!(plan.update.len(), 1, "a label change updates the slice");
        assert!(
            s.items[0]["metadata"]["labels"]
                .get(LABEL_HEADLESS)
                .is_none()
        );
    }

    // Upstream Reconcile: a Service with no endpoints gets one placeholder slice (no
    // endpoints, no ports), kept while still empty and reused by finalize when pods come.
    #[test]
    fn an_empty_service_gets_one_placeholder_which_is_reused() {
        let svc = service(json!({}));
        let mut s = Slices::default();
        let plan = s.reconcile(&svc, &[]);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(
            (&s.items[0]["endpoints"], &s.items[0]["ports"]),
            (&Value::Null, &Value::Null)
        );
        assert!(s.reconcile(&svc, &[]).is_empty(), "the placeholder stays");
        let name = text(&s.items[0], "/metadata/name").to_string();
        let plan = s.reconcile(&svc, &[pod("a", "10.0.0.1", true)]);
        assert_eq!(
            (plan.create.len(), plan.update.len(), plan.delete.len()),
            (0, 1, 0)
        );
        assert_eq!(text(&s.items[0], "/metadata/name"), name);
        assert_eq!(list_of(&s.items[0], "endpoints").len(), 1);
        let plan = s.reconcile(&svc, &[]);
        assert_eq!(
            (plan.create.len(), plan.update.len(), plan.delete.len()),
            (0, 1, 0),
            "back to a placeholder, same name"
        );
        assert_eq!(s.items.len(), 1);
    }

    // Upstream ownedBy: a slice owned by another uid (an older Service of the same name)
    // is deleted, not reused.
    #[test]
    fn slices_of_another_service_uid_are_replaced() {
        let svc = service(json!({}));
        let mut s = Slices::default();
        s.reconcile(&svc, &[pod("a", "10.0.0.1", true)]);
        let old = text(&s.items[0], "/metadata/name").to_string();
        let mut successor = svc.clone();
        successor.uid = "new-uid".into();
        let plan = s.reconcile(&successor, &[pod("a", "10.0.0.1", true)]);
        assert_eq!((plan.create.len(), plan.update.len()), (1, 0));
        assert_eq!(plan.delete, vec![old]);
    }

    // Upstream syncService: Services without a selector (nil/empty) and ExternalName
    // Services get nothing from the controller; their user-written slices are never
    // passed in, and plan_removal only names the managed slices it is given.
    #[test]
    fn selector_less_and_external_name_services_are_not_managed() {
        for spec in [
            json!({}),
            json!({"selector": {}}),
            json!({"selector": null}),
            json!({"type": "ExternalName", "selector": {"app": "x"}, "externalName": "a.example"}),
        ] {
            let v = json!({"metadata": {"namespace": "ns", "name": "s", "uid": "u"}, "spec": spec});
            assert!(matches!(parse_service(&v), Ok(None)), "{v}");
        }
        let managed = json!({"metadata": {"name": "s-abcde"}});
        assert_eq!(
            plan_removal(&[&managed]).delete,
            vec!["s-abcde".to_string()]
        );
    }

    // Upstream finalize: no new slices for a Service pending deletion.
    #[test]
    fn a_service_being_deleted_gets_no_new_slices() {
        let mut svc = service(json!({}));
        svc.deleting = true;
        assert!(
            Slices::default()
                .reconcile(&svc, &pods(3))
                .create
                .is_empty()
        );
    }

    // Upstream podToEndpoint: hostname when the pod's subdomain is the Service's name;
    // zone from the Node's topology.kubernetes.io/zone label.
    #[test]
    fn hostname_and_zone() {
        let svc = service(json!({}));
        let mut p = pod("a", "10.0.0.1", true);
        p["spec"]["hostname"] = json!("a-0");
        p["spec"]["subdomain"] = json!("web");
        let zones = |node: &str| (node == "node1").then(|| "z1".to_string());
        let (_, ep) = endpoint_for(&svc, &p, &zones).unwrap_or_else(|| panic!("no endpoint"));
        assert_eq!(
            (&ep["hostname"], &ep["zone"]),
            (&json!("a-0"), &json!("z1"))
        );
        p["spec"]["subdomain"] = json!("other");
        let (_, ep) = endpoint_for(&svc, &p, NO_ZONES).unwrap_or_else(|| panic!("no endpoint"));
        assert!(ep.get("hostname").is_none() && ep.get("zone").is_none());
    }

    #[test]
    fn malformed_services_are_errors_not_panics() {
        for spec in [
            json!({"selector": "app=web"}),
            json!({"selector": {"app": 1}}),
            json!({"selector": {"app": "web"}, "ports": "80"}),
            json!({"selector": {"app": "web"}, "ports": [7]}),
            json!({"selector": {"app": "web"}, "ports": [{"port": 0}]}),
            json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": true}]}),
            json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 70000}]}),
            json!({"selector": {"app": "web"}, "ports": [{"port": 80, "name": 3}]}),
        ] {
            let v = json!({"metadata": {"namespace": "ns", "name": "s", "uid": "u"}, "spec": spec});
            assert!(parse_service(&v).is_err(), "{v}");
        }
        let no_uid =
            json!({"metadata": {"namespace": "ns", "name": "s"}, "spec": {"selector": {"a": "b"}}});
        assert!(parse_service(&no_uid).is_err());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z0-9.:]{0,6}".prop_map(Value::String),
            Just(json!("Always")),
            Just(json!("True")),
            Just(json!("Ready")),
            Just(json!("10.0.0.1")),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        "[a-z]{1,3}".prop_map(String::from),
                        Just("ports".to_string()),
                        Just("name".to_string()),
                        Just("containerPort".to_string()),
                        Just("conditions".to_string()),
                        Just("endpoints".to_string()),
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        // Untrusted input: whatever a client stored in a Service, pod or slice, the
        // controller's pure half answers without panicking.
        #[test]
        fn arbitrary_objects_never_panic(spec in arb_json(), pod_spec in arb_json(), status in arb_json(), slice in arb_json()) {
            let v = json!({"metadata": {"namespace": "ns", "name": "s", "uid": "u"}, "spec": spec});
            let _ = parse_service(&v);
            let svc = service(json!({"ports": [{"port": 80, "targetPort": "http"}]}));
            let p = json!({"metadata": {"name": "p", "labels": {"app": "web"}}, "spec": pod_spec, "status": status});
            let mut slice = slice;
            if slice.is_object() {
                slice["metadata"] = json!({"name": "web-x", "ownerReferences": [{"uid": "svc-uid", "kind": "Service", "apiVersion": "v1"}]});
                slice["addressType"] = json!("IPv4");
            }
            let _ = plan(&svc, &[&p], &[&slice], 2, NO_ZONES);
        }
    }
}
