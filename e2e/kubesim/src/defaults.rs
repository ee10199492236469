//! What the real control plane fills in on create/update and rovn relies on: pod phase
//! and container defaults, namespace finalizers and the `kubernetes.io/metadata.name`
//! label, Service ClusterIP / nodePort allocation and port defaults, NetworkPolicy
//! policyTypes, CRD status. Pure functions plus the allocator state they use.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{Map, Value, json};

use crate::status::Cause;

/// The NodePort range of a default kube-apiserver.
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    match v.get_mut(key) {
        Some(Value::Object(m)) => m,
        _ => unreachable!("just made an object"),
    }
}

fn set_default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

/// Pod defaults: phase Pending, scheduler/restart/DNS policy, grace period, container
/// and port defaults.
pub fn default_pod(pod: &mut Value) {
    let spec = obj_mut(pod, "spec");
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "enableServiceLinks", json!(true));
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    set_default(spec, "priority", json!(0));
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                let tag = image
                    .rsplit('/')
                    .next()
                    .and_then(|last| last.split_once(':'))
                    .map(|(_, t)| t);
                let policy = if image.contains('@') || tag.is_some_and(|t| t != "latest") {
                    "IfNotPresent"
                } else {
                    "Always"
                };
                set_default(c, "imagePullPolicy", json!(policy));
                set_default(c, "resources", json!({}));
                if let Some(Value::Array(ports)) = c.get_mut("ports") {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        set_default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
    let status = obj_mut(pod, "status");
    set_default(status, "phase", json!("Pending"));
    set_default(status, "qosClass", json!("BestEffort"));
}

/// Namespace defaults: the `kubernetes` finalizer, phase Active, and the immutable
/// `kubernetes.io/metadata.name` label NetworkPolicy namespace selectors rely on.
pub fn default_namespace(ns: &mut Value) {
    let name = ns
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let meta = obj_mut(ns, "metadata");
    if !meta.get("labels").is_some_and(Value::is_object) {
        meta.insert("labels".into(), json!({}));
    }
    if let Some(Value::Object(labels)) = meta.get_mut("labels") {
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    let spec = obj_mut(ns, "spec");
    set_default(spec, "finalizers", json!(["kubernetes"]));
    let status = obj_mut(ns, "status");
    set_default(status, "phase", json!("Active"));
}

/// NetworkPolicy defaults: `policyTypes` from the rules present, ports default to TCP.
pub fn default_network_policy(np: &mut Value) {
    let spec = obj_mut(np, "spec");
    set_default(spec, "podSelector", json!({}));
    if spec.get("policyTypes").is_none_or(Value::is_null) {
        let mut types = vec![json!("Ingress")];
        if spec.get("egress").is_some_and(|e| !e.is_null()) {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
    for dir in ["ingress", "egress"] {
        if let Some(Value::Array(rules)) = spec.get_mut(dir) {
            for rule in rules.iter_mut() {
                if let Some(Value::Array(ports)) = rule.get_mut("ports") {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        set_default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

/// EndpointSlice / Endpoints port protocol defaults.
pub fn default_endpoint_ports(obj: &mut Value) {
    let fix = |ports: &mut Value| {
        if let Value::Array(list) = ports {
            for p in list.iter_mut().filter_map(Value::as_object_mut) {
                set_default(p, "protocol", json!("TCP"));
            }
        }
    };
    if let Some(ports) = obj.get_mut("ports") {
        fix(ports);
    }
    if let Some(Value::Array(subsets)) = obj.get_mut("subsets") {
        for s in subsets.iter_mut() {
            if let Some(ports) = s.get_mut("ports") {
                fix(ports);
            }
        }
    }
}

/// CRD status as the apiextensions server sets it once it serves the CRD.
pub fn default_crd_status(crd: &mut Value, now: &str) {
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg});
    crd["status"] = json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
    });
}

/// Allocations of Service ClusterIPs and NodePorts, as the real server's allocators.
#[derive(Debug, Clone)]
pub struct ServiceAllocator {
    cidr: Ipv4Net,
    used_ips: HashSet<Ipv4Addr>,
    used_ports: HashSet<u16>,
    next_ip: u32,
    next_port: u16,
}

fn cause(field: &str, message: String) -> Cause {
    Cause {
        field: field.to_string(),
        message,
    }
}

/// ClusterIPs a Service holds (ignoring `None` and empty).
pub fn service_cluster_ips(svc: &Value) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = svc
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .filter_map(|s| s.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if let Some(ip) = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    ips
}

/// NodePorts a Service holds: its ports' `nodePort`s and its `healthCheckNodePort`, which
/// come from the same range.
pub fn service_node_ports(svc: &Value) -> Vec<u16> {
    let mut ports: Vec<u16> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .filter(|n| *n > 0)
                .filter_map(|n| u16::try_from(n).ok())
                .collect()
        })
        .unwrap_or_default();
    ports.extend(health_check_node_port(svc));
    ports
}

/// The Service's `healthCheckNodePort`, if it holds one.
fn health_check_node_port(svc: &Value) -> Option<u16> {
    svc.pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .and_then(|n| u16::try_from(n).ok())
}

impl ServiceAllocator {
    /// An allocator over a service CIDR.
    pub fn new(cidr: Ipv4Net) -> Self {
        ServiceAllocator {
            cidr,
            used_ips: HashSet::new(),
            used_ports: HashSet::new(),
            next_ip: 1,
            next_port: *NODE_PORT_RANGE.start(),
        }
    }

    /// The first usable address of the CIDR (the `kubernetes` Service's ClusterIP).
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()).wrapping_add(1))
    }

    fn host_count(&self) -> u32 {
        let size = 1u64 << (32 - u32::from(self.cidr.prefix_len()));
        size.saturating_sub(2).clamp(0, u64::from(u32::MAX)) as u32
    }

    fn allocate_ip(&mut self) -> Option<Ipv4Addr> {
        let hosts = self.host_count();
        let base = u32::from(self.cidr.network());
        for _ in 0..hosts {
            let offset = self.next_ip;
            self.next_ip = if self.next_ip >= hosts {
                1
            } else {
                self.next_ip + 1
            };
            let ip = Ipv4Addr::from(base.wrapping_add(offset));
            if self.used_ips.insert(ip) {
                return Some(ip);
            }
        }
        None
    }

    fn allocate_port(&mut self) -> Option<u16> {
        for _ in NODE_PORT_RANGE {
            let port = self.next_port;
            self.next_port = if port >= *NODE_PORT_RANGE.end() {
                *NODE_PORT_RANGE.start()
            } else {
                port + 1
            };
            if self.used_ports.insert(port) {
                return Some(port);
            }
        }
        None
    }

    /// Frees what a deleted Service held.
    pub fn release(&mut self, svc: &Value) {
        for ip in service_cluster_ips(svc) {
            self.used_ips.remove(&ip);
        }
        for p in service_node_ports(svc) {
            self.used_ports.remove(&p);
        }
    }

    /// Defaults and allocates a Service being created (`old` = None) or updated.
    /// On error nothing stays allocated.
    pub fn prepare(&mut self, svc: &mut Value, old: Option<&Value>) -> Result<(), Vec<Cause>> {
        let old_spec = old
            .and_then(|o| o.get("spec"))
            .cloned()
            .unwrap_or_else(|| json!({}));
        let spec = obj_mut(svc, "spec");
        set_default(spec, "type", json!("ClusterIP"));
        let svc_type = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if !matches!(
            svc_type.as_str(),
            "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
        ) {
            return Err(vec![cause(
                "spec.type",
                format!("Unsupported value: {svc_type:?}"),
            )]);
        }
        set_default(spec, "sessionAffinity", json!("None"));
        let mut causes = Vec::new();
        let mut new_ips: Vec<Ipv4Addr> = Vec::new();
        let mut new_ports: Vec<u16> = Vec::new();
        let old_ips = old.map(service_cluster_ips).unwrap_or_default();
        let old_ports = old.map(service_node_ports).unwrap_or_default();

        if svc_type != "ExternalName" {
            set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            set_default(spec, "ipFamilies", json!(["IPv4"]));
            set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
            // An update that omits the ClusterIP keeps the allocated one, as upstream does.
            for field in ["clusterIP", "clusterIPs"] {
                if spec.get(field).is_none_or(|v| v.is_null() || v == "")
                    && old_spec.get(field).is_some()
                {
                    spec.insert(field.to_string(), old_spec[field].clone());
                }
            }
            let requested = spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .or_else(|| {
                    spec.get("clusterIPs")
                        .and_then(|l| l.get(0))
                        .and_then(Value::as_str)
                })
                .unwrap_or("")
                .to_string();
            if old.is_some()
                && old_spec
                    .get("clusterIP")
                    .and_then(Value::as_str)
                    .is_some_and(|o| !o.is_empty() && o != requested)
            {
                causes.push(cause(
                    "spec.clusterIPs[0]",
                    "Invalid value: field is immutable".into(),
                ));
            } else if requested == "None" {
                spec.insert("clusterIP".into(), json!("None"));
                spec.insert("clusterIPs".into(), json!(["None"]));
            } else if requested.is_empty() {
                match self.allocate_ip() {
                    Some(ip) => {
                        new_ips.push(ip);
                        spec.insert("clusterIP".into(), json!(ip.to_string()));
                        spec.insert("clusterIPs".into(), json!([ip.to_string()]));
                    }
                    None => causes.push(cause(
                        "spec.clusterIPs",
                        "Internal error: range is full".into(),
                    )),
                }
            } else {
                match requested.parse::<Ipv4Addr>() {
                    Err(_) => causes.push(cause("spec.clusterIPs[0]", format!("Invalid value: {requested:?}: must be a valid IP address"))),
                    Ok(ip) if old_ips.contains(&ip) => {}
                    Ok(ip) if !self.cidr.contains(&ip) || ip == self.cidr.network() || ip == self.cidr.broadcast() => causes.push(cause(
                        "spec.clusterIPs",
                        format!("Invalid value: {requested:?}: failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. The range of valid IPs is {}", self.cidr),
                    )),
                    Ok(ip) => {
                        if self.used_ips.insert(ip) {
                            new_ips.push(ip);
                            spec.insert("clusterIP".into(), json!(requested));
                            spec.insert("clusterIPs".into(), json!([requested]));
                        } else {
                            causes.push(cause(
                                "spec.clusterIPs",
                                format!("Invalid value: {requested:?}: failed to allocate IP {requested}: provided IP is already allocated"),
                            ));
                        }
                    }
                }
            }
        }
        let wants_node_ports = matches!(svc_type.as_str(), "NodePort" | "LoadBalancer");
        if wants_node_ports {
            set_default(spec, "externalTrafficPolicy", json!("Cluster"));
        }
        if svc_type == "LoadBalancer" {
            set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
        }
        let old_port_list = old_spec
            .get("ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for (i, p) in ports.iter_mut().enumerate() {
                let Some(p) = p.as_object_mut() else {
                    causes.push(cause(
                        &format!("spec.ports[{i}]"),
                        "Invalid value: must be an object".into(),
                    ));
                    continue;
                };
                set_default(p, "protocol", json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    set_default(p, "targetPort", port);
                }
                if !wants_node_ports {
                    p.remove("nodePort");
                    continue;
                }
                let requested = p.get("nodePort").and_then(Value::as_u64).unwrap_or(0);
                if requested == 0 {
                    let reuse = old_port_list
                        .iter()
                        .find(|o| {
                            o.get("port") == p.get("port")
                                && o.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                                    == p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                        })
                        .and_then(|o| o.get("nodePort").and_then(Value::as_u64))
                        .filter(|n| *n > 0);
                    if let Some(n) = reuse {
                        p.insert("nodePort".into(), json!(n));
                        continue;
                    }
                    match self.allocate_port() {
                        Some(n) => {
                            new_ports.push(n);
                            p.insert("nodePort".into(), json!(n));
                        }
                        None => causes.push(cause(
                            &format!("spec.ports[{i}].nodePort"),
                            "Internal error: range is full".into(),
                        )),
                    }
                } else {
                    let n = u16::try_from(requested).unwrap_or(0);
                    if !NODE_PORT_RANGE.contains(&n) {
                        causes.push(cause(&format!("spec.ports[{i}].nodePort"), format!("Invalid value: {requested}: provided port is not in the valid range. The range of valid ports is 30000-32767")));
                    } else if old_ports.contains(&n) || new_ports.contains(&n) {
                    } else if self.used_ports.insert(n) {
                        new_ports.push(n);
                    } else {
                        causes.push(cause(
                            &format!("spec.ports[{i}].nodePort"),
                            format!(
                                "Invalid value: {requested}: provided port is already allocated"
                            ),
                        ));
                    }
                }
            }
        }
        // A LoadBalancer Service with Local policy gets a healthCheckNodePort, as upstream
        // allocates it: the one asked for, else the one it had, else a free one.
        let wants_health = svc_type == "LoadBalancer"
            && spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local");
        if !wants_health {
            spec.remove("healthCheckNodePort");
        } else {
            let requested = spec
                .get("healthCheckNodePort")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let old_health = old.and_then(health_check_node_port);
            if requested == 0 {
                match old_health.or_else(|| {
                    let n = self.allocate_port()?;
                    new_ports.push(n);
                    Some(n)
                }) {
                    Some(n) => {
                        spec.insert("healthCheckNodePort".into(), json!(n));
                    }
                    None => causes.push(cause(
                        "spec.healthCheckNodePort",
                        "Internal error: range is full".into(),
                    )),
                }
            } else {
                let n = u16::try_from(requested).unwrap_or(0);
                if !NODE_PORT_RANGE.contains(&n) {
                    causes.push(cause("spec.healthCheckNodePort", format!("Invalid value: {requested}: provided port is not in the valid range. The range of valid ports is 30000-32767")));
                } else if old_health == Some(n) {
                } else if !new_ports.contains(&n) && self.used_ports.insert(n) {
                    new_ports.push(n);
                } else {
                    causes.push(cause(
                        "spec.healthCheckNodePort",
                        format!("Invalid value: {requested}: provided port is already allocated"),
                    ));
                }
            }
        }
        if !causes.is_empty() {
            for ip in new_ips {
                self.used_ips.remove(&ip);
            }
            for p in new_ports {
                self.used_ports.remove(&p);
            }
            return Err(causes);
        }
        if svc_type == "ExternalName" {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        // What the update dropped goes back to the pools.
        let kept_ips = service_cluster_ips(svc);
        let kept_ports = service_node_ports(svc);
        for ip in old_ips.iter().filter(|ip| !kept_ips.contains(ip)) {
            self.used_ips.remove(ip);
        }
        for p in old_ports.iter().filter(|p| !kept_ports.contains(p)) {
            self.used_ports.remove(p);
        }
        let status = obj_mut(svc, "status");
        set_default(status, "loadBalancer", json!({}));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc() -> ServiceAllocator {
        ServiceAllocator::new("10.96.0.0/28".parse().unwrap_or_else(|_| unreachable!()))
    }

    #[test]
    fn allocates_distinct_cluster_ips_and_honours_requests() {
        let mut a = alloc();
        let mut s1 = json!({"spec": {"ports": [{"port": 80}]}});
        let mut s2 = json!({"spec": {"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}});
        let mut s3 = json!({"spec": {"clusterIP": "10.96.0.5"}});
        let mut s4 = json!({"spec": {"clusterIP": "10.1.0.5"}});
        assert!(a.prepare(&mut s1, None).is_ok());
        assert!(a.prepare(&mut s2, None).is_ok());
        assert!(a.prepare(&mut s3, None).is_err());
        assert!(a.prepare(&mut s4, None).is_err());
        assert_eq!(s1["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(s1["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s1["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(s1["spec"]["type"], "ClusterIP");
        a.release(&s2);
        let mut s5 = json!({"spec": {"clusterIP": "10.96.0.5"}});
        assert!(a.prepare(&mut s5, None).is_ok());
    }

    #[test]
    fn headless_and_node_ports() {
        let mut a = alloc();
        let mut h = json!({"spec": {"clusterIP": "None"}});
        assert!(a.prepare(&mut h, None).is_ok());
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
        let mut np = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "nodePort": 30080}]}});
        assert!(a.prepare(&mut np, None).is_ok());
        assert_eq!(np["spec"]["ports"][0]["nodePort"], 30000);
        assert_eq!(np["spec"]["ports"][1]["nodePort"], 30080);
        let mut clash =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 1, "nodePort": 30080}]}});
        assert!(a.prepare(&mut clash, None).is_err());
        let mut update = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        assert!(a.prepare(&mut update, Some(&np)).is_ok());
        assert_eq!(update["spec"]["ports"][0]["nodePort"], 30000);
        assert_eq!(update["spec"]["clusterIP"], np["spec"]["clusterIP"]);
        let mut reuse =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 1, "nodePort": 30080}]}});
        assert!(
            a.prepare(&mut reuse, None).is_ok(),
            "30080 was released by the update"
        );
    }

    #[test]
    fn local_load_balancers_get_a_health_check_node_port() {
        let mut a = alloc();
        let local = |extra: Value| {
            let mut spec = json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                                  "ports": [{"port": 80}]});
            if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
                s.extend(e.clone());
            }
            json!({ "spec": spec })
        };
        let mut lb = local(json!({}));
        assert!(a.prepare(&mut lb, None).is_ok());
        assert_eq!(lb["spec"]["ports"][0]["nodePort"], 30000);
        assert_eq!(lb["spec"]["healthCheckNodePort"], 30001);
        // An update that omits it keeps it; switching to Cluster releases it.
        let mut same = local(json!({}));
        assert!(a.prepare(&mut same, Some(&lb)).is_ok());
        assert_eq!(same["spec"]["healthCheckNodePort"], 30001);
        let mut cluster = local(json!({"externalTrafficPolicy": "Cluster"}));
        assert!(a.prepare(&mut cluster, Some(&same)).is_ok());
        assert!(cluster["spec"].get("healthCheckNodePort").is_none());
        let mut asked = local(json!({"healthCheckNodePort": 30001}));
        assert!(a.prepare(&mut asked, None).is_ok(), "30001 was released");
        let mut clash = local(json!({"healthCheckNodePort": 30001}));
        assert!(a.prepare(&mut clash, None).is_err());
        let mut out_of_range = local(json!({"healthCheckNodePort": 80}));
        assert!(a.prepare(&mut out_of_range, None).is_err());
        a.release(&asked);
        let mut again = local(json!({"healthCheckNodePort": 30001}));
        assert!(
            a.prepare(&mut again, None).is_ok(),
            "released with its Service"
        );
        let mut plain = json!({"spec": {"type": "NodePort", "healthCheckNodePort": 30500,
                                        "ports": [{"port": 80}]}});
        assert!(a.prepare(&mut plain, None).is_ok());
        assert!(plain["spec"].get("healthCheckNodePort").is_none());
    }

    #[test]
    fn namespace_gets_name_label() {
        let mut ns = json!({"metadata": {"name": "x"}});
        default_namespace(&mut ns);
        assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "x");
        assert_eq!(ns["status"]["phase"], "Active");
    }
}
