//! `kubectl rovn diagnose`: checks over snapshots of the API server, NB and SB, each finding
//! naming the object and the fix. Pure: the I/O gathers the snapshots, this decides.
//!
//! The controller's own diff, run dry, is not recomputed here (the plugin must not depend on
//! `rovn-controller`, and a second renderer would drift from the real one): [`crate::plan`]
//! reads it from the leading controller.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use rovn_api::names::{NODE_KEY, POD_UID_KEY};
use rovn_api::{Owner, OwnerKind};

use crate::addresses::parse_all;
use crate::snapshot::{KubeSnapshot, NbSnapshot, SbSnapshot, is_rovn, owner_of};

/// Which check found something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    /// Two holders of one IP or MAC.
    Duplicate,
    /// A port rovn did not write holds a pod's address.
    Foreign,
    /// A pod with an allocation has no NB port.
    Missing,
    /// An NB pod port whose pod is gone or is another incarnation.
    Stale,
    /// A Node's chassis is missing or not registered in SB.
    Chassis,
    /// A pod port rovn wrote is not bound and up in SB.
    Binding,
    /// ovn-northd or a chassis's ovn-controller does not process NB (`nb_cfg` round trip).
    Processing,
    /// A chassis has no encap, or a node's `br-int` lacks a tunnel or has a broken one.
    Tunnel,
    /// The controller's dry run keeps wanting to change an object's rows.
    Drift,
    /// A row rovn did not write holds a name the controller wants.
    Conflict,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Check::Duplicate => "duplicate",
            Check::Foreign => "foreign",
            Check::Missing => "missing",
            Check::Stale => "stale",
            Check::Chassis => "chassis",
            Check::Binding => "binding",
            Check::Processing => "processing",
            Check::Tunnel => "tunnel",
            Check::Drift => "drift",
            Check::Conflict => "conflict",
        })
    }
}

/// One problem, with the object it is about and what to do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The check.
    pub check: Check,
    /// The object (`Pod/ns/name`, `Node/n`, `Logical_Switch_Port x`).
    pub object: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}: {}\n    fix: {}",
            self.check, self.object, self.problem, self.fix
        )
    }
}

/// Who holds an address: an entity (a pod and its own port are one) and how it reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Holder {
    /// A Kubernetes object (a pod by annotation or through its rovn port, a node's join port).
    Object(String),
    /// An NB port rovn did not write.
    Foreign(String),
}

impl Holder {
    fn words(&self) -> String {
        match self {
            Holder::Object(o) => o.clone(),
            Holder::Foreign(p) => format!("foreign port {p}"),
        }
    }
}

/// Every address claim: (IP or MAC as text) → holders.
fn claims(kube: &KubeSnapshot, nb: &NbSnapshot) -> BTreeMap<String, BTreeSet<Holder>> {
    let mut claims: BTreeMap<String, BTreeSet<Holder>> = BTreeMap::new();
    for pod in &kube.pods {
        if let Some(a) = pod.live_allocation() {
            let holder = Holder::Object(Owner::pod(&pod.namespace, &pod.name).to_string());
            claims
                .entry(a.ip.to_string())
                .or_default()
                .insert(holder.clone());
            claims.entry(a.mac.to_string()).or_default().insert(holder);
        }
    }
    for port in nb.ports.values() {
        if port.type_ == "router" {
            continue;
        }
        let holder = match owner_of(&port.external_ids) {
            Some(owner) if is_rovn(&port.external_ids) => Holder::Object(owner.to_string()),
            _ => Holder::Foreign(port.name.clone()),
        };
        for address in parse_all(&port.addresses) {
            claims
                .entry(address.mac.to_string())
                .or_default()
                .insert(holder.clone());
            for ip in address.ips {
                claims
                    .entry(ip.to_string())
                    .or_default()
                    .insert(holder.clone());
            }
        }
    }
    claims
}

fn address_findings(kube: &KubeSnapshot, nb: &NbSnapshot) -> Vec<Finding> {
    let mut findings = BTreeSet::new();
    for (address, holders) in claims(kube, nb) {
        if holders.len() < 2 {
            continue;
        }
        let is_ip = address.parse::<IpAddr>().is_ok();
        let what = if is_ip { "IP" } else { "MAC" };
        let objects: Vec<&Holder> = holders
            .iter()
            .filter(|h| matches!(h, Holder::Object(_)))
            .collect();
        for foreign in holders.iter().filter(|h| matches!(h, Holder::Foreign(_))) {
            let Holder::Foreign(port) = foreign else {
                continue;
            };
            let others: Vec<String> = holders
                .iter()
                .filter(|h| *h != foreign)
                .map(Holder::words)
                .collect();
            findings.insert(Finding {
                check: Check::Foreign,
                object: format!("Logical_Switch_Port {port}"),
                problem: format!(
                    "a port rovn did not write (no rovn.io/vendor=rovn) holds {what} {address}, also held by {}",
                    others.join(", ")
                ),
                fix: format!(
                    "remove the foreign port (kubectl rovn nbctl lsp-del {port}) or give it an address outside rovn's Subnets"
                ),
            });
        }
        if objects.len() > 1 {
            let names: Vec<String> = objects.iter().map(|h| h.words()).collect();
            findings.insert(Finding {
                check: Check::Duplicate,
                object: names.join(" and "),
                problem: format!("{what} {address} is held by {}", names.join(", ")),
                fix: "delete one of the pods (its controller re-creates it) so rovn allocates it a fresh address; for a static address, change its rovn.io/ip_address or rovn.io/mac_address"
                    .into(),
            });
        }
    }
    findings.into_iter().collect()
}

fn port_findings(kube: &KubeSnapshot, nb: &NbSnapshot) -> Vec<Finding> {
    let mut findings = Vec::new();
    for pod in &kube.pods {
        if pod.live_allocation().is_some() && nb.port(&pod.port_name()).is_none() {
            findings.push(Finding {
                check: Check::Missing,
                object: Owner::pod(&pod.namespace, &pod.name).to_string(),
                problem: format!(
                    "the pod is allocated (rovn.io/allocated=true) but NB has no port {}",
                    pod.port_name()
                ),
                fix: "make sure rovn-controller runs and leads (it re-creates the port on its next reconcile); its log names the pod if it holds it back".into(),
            });
        }
    }
    for port in nb.ports.values() {
        if !is_rovn(&port.external_ids) {
            continue;
        }
        let Some(Ok(owner)) = owner_of(&port.external_ids).map(str::parse::<Owner>) else {
            continue;
        };
        if owner.kind() != OwnerKind::Pod {
            continue;
        }
        let ns = owner.namespace().unwrap_or_default();
        let pod = kube.pod(ns, owner.name());
        let uid = port.external_ids.get(POD_UID_KEY).map(String::as_str);
        let problem = match pod {
            None => Some(format!("its pod {ns}/{} no longer exists", owner.name())),
            Some(p) if p.live_allocation().is_none() => Some(format!(
                "its pod {ns}/{} has no live allocation (finished, hostNetwork or not allocated)",
                owner.name()
            )),
            Some(p) if uid.is_some_and(|u| u != p.uid) => Some(format!(
                "it was written for pod uid {}, the pod is now uid {} (re-created)",
                uid.unwrap_or_default(),
                p.uid
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            findings.push(Finding {
                check: Check::Stale,
                object: format!("Logical_Switch_Port {} ({owner})", port.name),
                problem,
                fix: format!(
                    "rovn-controller removes or replaces it when it runs; if it does not, check its log, or delete it by hand (kubectl rovn nbctl lsp-del {})",
                    port.name
                ),
            });
        }
    }
    findings
}

fn chassis_findings(kube: &KubeSnapshot, sb: &SbSnapshot) -> Vec<Finding> {
    let registered: BTreeSet<&str> = sb.chassis.iter().map(|c| c.name.as_str()).collect();
    let mut findings = Vec::new();
    for node in &kube.nodes {
        let object = Owner::node(&node.name).to_string();
        match &node.chassis {
            None => findings.push(Finding {
                check: Check::Chassis,
                object,
                problem: "the Node has no rovn.io/chassis annotation".into(),
                fix: format!(
                    "rovn-node writes it at start-up: check that rovn-node runs on {} and its log",
                    node.name
                ),
            }),
            Some(chassis) if !registered.contains(chassis.as_str()) => {
                findings.push(Finding {
                    check: Check::Chassis,
                    object,
                    problem: format!(
                        "its chassis {chassis} (rovn.io/chassis) is not registered in SB's Chassis table"
                    ),
                    fix: format!(
                        "check ovn-controller on {} (its ovn-remote must reach SB) and that its OVS system-id is {chassis}",
                        node.name
                    ),
                })
            }
            Some(_) => {}
        }
    }
    findings
}

fn binding_findings(nb: &NbSnapshot, sb: &SbSnapshot) -> Vec<Finding> {
    let bindings: BTreeMap<&str, &rovn_ovsdb_schemas::sb::PortBinding> = sb
        .bindings
        .iter()
        .map(|b| (b.logical_port.as_str(), b))
        .collect();
    let mut findings = Vec::new();
    for port in nb.ports.values() {
        let Some(Ok(owner)) = owner_of(&port.external_ids).map(str::parse::<Owner>) else {
            continue;
        };
        if !is_rovn(&port.external_ids) || owner.kind() != OwnerKind::Pod {
            continue;
        }
        let node = port
            .external_ids
            .get(NODE_KEY)
            .map(String::as_str)
            .unwrap_or("its node");
        let problem = match bindings.get(port.name.as_str()) {
            None => Some("SB has no Port_Binding for it (is ovn-northd running?)".to_string()),
            Some(b) if b.chassis.is_none() => Some(format!(
                "no chassis has claimed it (Port_Binding.chassis is empty); ovn-controller on {node} has no OVS interface with iface-id={}",
                port.name
            )),
            Some(b) if b.up != Some(true) => Some(
                "it is bound to a chassis but not up (Port_Binding.up is not true)".to_string(),
            ),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            findings.push(Finding {
                check: Check::Binding,
                object: format!("Logical_Switch_Port {} ({owner})", port.name),
                problem,
                fix: format!(
                    "on {node}: check rovn-node's log for the pod's CNI ADD, `ovs-vsctl find Interface external_ids:iface-id={}` and ovn-controller's log",
                    port.name
                ),
            });
        }
    }
    findings
}

/// Every finding over the snapshots, sorted by check then object.
pub fn diagnose(kube: &KubeSnapshot, nb: &NbSnapshot, sb: &SbSnapshot) -> Vec<Finding> {
    let mut findings = address_findings(kube, nb);
    findings.extend(port_findings(kube, nb));
    findings.extend(chassis_findings(kube, sb));
    findings.extend(binding_findings(nb, sb));
    findings.sort();
    findings
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use rovn_ovsdb::Uuid;
    use rovn_ovsdb_schemas::nb::LogicalSwitchPort;
    use rovn_ovsdb_schemas::sb::{Chassis, PortBinding};

    use super::*;
    use crate::flow::tests::{nb, pod};
    use crate::snapshot::NodeView;

    fn pod_port(name: &str, owner: &str, uid: &str, address: &str) -> LogicalSwitchPort {
        LogicalSwitchPort {
            uuid: Uuid::new_v4(),
            name: name.into(),
            addresses: BTreeSet::from([address.to_string()]),
            external_ids: BTreeMap::from([
                ("rovn.io/vendor".to_string(), "rovn".to_string()),
                ("rovn.io/owner".to_string(), owner.to_string()),
                ("pod-uid".to_string(), uid.to_string()),
                ("node".to_string(), "node1".to_string()),
            ]),
            ..Default::default()
        }
    }

    /// A healthy cluster: two pods with their ports, bound and up; two registered nodes.
    fn healthy() -> (KubeSnapshot, NbSnapshot, SbSnapshot) {
        let kube = KubeSnapshot {
            pods: vec![
                pod("demo", "a", "10.16.0.7", "ovn-default", "node1"),
                pod("demo", "b", "10.16.0.8", "ovn-default", "node1"),
            ],
            nodes: ["node1", "node2"]
                .iter()
                .map(|n| NodeView {
                    name: n.to_string(),
                    chassis: Some(format!("chassis-{n}")),
                    join: None,
                })
                .collect(),
            services: vec![],
        };
        let mut nb = nb();
        let mut sb = SbSnapshot::default();
        let chassis = Uuid::new_v4();
        for (name, owner, uid, address) in [
            (
                "a.demo",
                "Pod/demo/a",
                "uid-a",
                "0a:58:0a:10:00:07 10.16.0.7",
            ),
            (
                "b.demo",
                "Pod/demo/b",
                "uid-b",
                "0a:58:0a:10:00:08 10.16.0.8",
            ),
        ] {
            let port = pod_port(name, owner, uid, address);
            nb.ports.insert(port.uuid, port);
            sb.bindings.push(PortBinding {
                logical_port: name.into(),
                chassis: Some(chassis),
                up: Some(true),
                ..Default::default()
            });
        }
        for n in ["node1", "node2"] {
            sb.chassis.push(Chassis {
                name: format!("chassis-{n}"),
                ..Default::default()
            });
        }
        (kube, nb, sb)
    }

    #[test]
    fn a_healthy_cluster_has_no_finding() {
        let (kube, nb, sb) = healthy();
        assert_eq!(diagnose(&kube, &nb, &sb), vec![]);
    }

    #[test]
    fn a_deleted_port_is_missing_and_a_leftover_is_stale() {
        let (kube, mut nb, sb) = healthy();
        nb.ports.retain(|_, p| p.name != "b.demo");
        let leftover = pod_port(
            "gone.demo",
            "Pod/demo/gone",
            "uid-gone",
            "0a:58:0a:10:00:09 10.16.0.9",
        );
        nb.ports.insert(leftover.uuid, leftover);
        let findings = diagnose(&kube, &nb, &sb);
        let checks: Vec<(Check, &str)> = findings
            .iter()
            .map(|f| (f.check, f.object.as_str()))
            .collect();
        assert!(
            checks.contains(&(Check::Missing, "Pod/demo/b")),
            "{findings:?}"
        );
        assert!(
            checks.contains(&(
                Check::Stale,
                "Logical_Switch_Port gone.demo (Pod/demo/gone)"
            )),
            "{findings:?}"
        );
        // The leftover is not bound either.
        assert!(
            checks
                .iter()
                .any(|(c, o)| *c == Check::Binding && o.contains("gone.demo"))
        );
        // A re-created pod (new uid) makes its old port stale.
        let (mut kube, nb, sb) = healthy();
        kube.pods[0].uid = "uid-a2".into();
        let findings = diagnose(&kube, &nb, &sb);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].problem.contains("uid-a2"), "{}", findings[0]);
    }

    #[test]
    fn foreign_and_duplicate_addresses_are_found() {
        let (mut kube, mut nb, sb) = healthy();
        let foreign = LogicalSwitchPort {
            uuid: Uuid::new_v4(),
            name: "intruder".into(),
            addresses: BTreeSet::from(["0a:00:00:00:00:01 10.16.0.7".to_string()]),
            ..Default::default()
        };
        nb.ports.insert(foreign.uuid, foreign);
        let findings = diagnose(&kube, &nb, &sb);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].check, Check::Foreign);
        assert!(
            findings[0]
                .problem
                .contains("IP 10.16.0.7, also held by Pod/demo/a"),
            "{}",
            findings[0]
        );
        assert!(findings[0].fix.contains("lsp-del intruder"));

        // A second pod annotated with a's address.
        nb.ports.retain(|_, p| p.name != "intruder");
        kube.pods
            .push(pod("demo", "c", "10.16.0.7", "ovn-default", "node2"));
        let dup: Vec<Finding> = diagnose(&kube, &nb, &sb)
            .into_iter()
            .filter(|f| f.check == Check::Duplicate)
            .collect();
        assert_eq!(dup.len(), 2, "IP and MAC: {dup:?}");
        assert!(
            dup.iter()
                .any(|f| f.problem == "IP 10.16.0.7 is held by Pod/demo/a, Pod/demo/c")
        );
    }

    #[test]
    fn chassis_and_bindings_are_checked() {
        let (mut kube, nb, mut sb) = healthy();
        kube.nodes[0].chassis = None;
        sb.chassis.retain(|c| c.name != "chassis-node2");
        sb.bindings[0].chassis = None;
        sb.bindings[1].up = Some(false);
        let findings = diagnose(&kube, &nb, &sb);
        let chassis: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.check == Check::Chassis)
            .collect();
        assert_eq!(chassis.len(), 2, "{findings:?}");
        assert!(chassis[0].problem.contains("no rovn.io/chassis"));
        assert!(chassis[1].problem.contains("chassis-node2"));
        let bindings: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.check == Check::Binding)
            .collect();
        assert_eq!(bindings.len(), 2, "{findings:?}");
        assert!(findings.iter().all(|f| !f.fix.is_empty()));
        assert!(findings[0].to_string().contains("fix: "));
    }
}
