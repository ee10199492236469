//! Are the tunnels between nodes there? In SB every chassis must offer an `Encap` (else no other
//! node can reach its pods), and on every node whose OVS the plugin can read, `br-int` must
//! hold a tunnel port to every other chassis's encap IP, without an `error`. Pure: the I/O
//! (`node_ovs`) reads each node's tunnel ports into [`NodeTunnels`].

use std::collections::BTreeSet;

use crate::diagnose::{Check, Finding};
use crate::liveness::{is_local, node_of};
use crate::snapshot::{KubeSnapshot, SbSnapshot};

/// One tunnel interface on a node's `br-int`, as OVS reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelPort {
    /// The interface name (`ovn-<chassis>-0`).
    pub name: String,
    /// `geneve`, `vxlan` or `stt`.
    pub type_: String,
    /// `options:remote_ip`: the other end.
    pub remote_ip: Option<String>,
    /// The interface's `error`, set when OVS could not make it.
    pub error: Option<String>,
}

/// What one node's OVS says about its tunnels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeTunnels {
    /// The Node's name.
    pub node: String,
    /// Its chassis name (`Open_vSwitch` `external_ids:system-id`), when set.
    pub chassis: Option<String>,
    /// The tunnel interfaces on `br-int`.
    pub ports: Vec<TunnelPort>,
}

/// Whether an OVS interface type is one of OVN's tunnel encapsulations.
pub fn is_tunnel_type(type_: &str) -> bool {
    matches!(type_, "geneve" | "vxlan" | "stt")
}

/// Chassis without an `Encap`: unreachable by tunnel from every other node.
fn encap_findings(kube: &KubeSnapshot, sb: &SbSnapshot) -> Vec<Finding> {
    let mut found = Vec::new();
    for chassis in sb.chassis.iter().filter(|c| is_local(c)) {
        if sb.encaps.iter().any(|e| e.chassis_name == chassis.name) {
            continue;
        }
        let (object, node) = node_of(kube, chassis);
        found.push(Finding {
            check: Check::Tunnel,
            object,
            problem: format!(
                "chassis {} has no Encap in SB, so no other node can build a tunnel to it",
                chassis.name
            ),
            fix: format!(
                "set external_ids:ovn-encap-type and ovn-encap-ip in the Open_vSwitch row on {node} (rovn-node does at start-up: check its log); ovn-controller then registers the Encap"
            ),
        });
    }
    found
}

/// Tunnel ports missing or in error on one node.
fn node_findings(kube: &KubeSnapshot, sb: &SbSnapshot, node: &NodeTunnels) -> Vec<Finding> {
    let own = node.chassis.as_deref().or_else(|| {
        kube.nodes
            .iter()
            .find(|n| n.name == node.node)
            .and_then(|n| n.chassis.as_deref())
    });
    let object = rovn_api::Owner::node(&node.node).to_string();
    let mut found = Vec::new();
    // Other zones' chassis (OVN interconnect) are reached through gateways, not from every node.
    let others = sb
        .chassis
        .iter()
        .filter(|c| is_local(c) && Some(c.name.as_str()) != own);
    for chassis in others {
        let ips: BTreeSet<&str> = sb
            .encaps
            .iter()
            .filter(|e| e.chassis_name == chassis.name)
            .map(|e| e.ip.as_str())
            .collect();
        if ips.is_empty() {
            continue; // encap_findings names it once
        }
        let (_, other) = node_of(kube, chassis);
        let to_it: Vec<&TunnelPort> = node
            .ports
            .iter()
            .filter(|p| p.remote_ip.as_deref().is_some_and(|ip| ips.contains(ip)))
            .collect();
        let ip_words = ips.iter().copied().collect::<Vec<_>>().join(", ");
        if to_it.is_empty() {
            found.push(Finding {
                check: Check::Tunnel,
                object: object.clone(),
                problem: format!(
                    "br-int on {} has no tunnel port to chassis {} (node {other}, encap IP {ip_words})",
                    node.node, chassis.name
                ),
                fix: format!(
                    "ovn-controller on {} makes it: check that it runs and processes, and that {} and {other} share an ovn-encap-type",
                    node.node, node.node
                ),
            });
        }
        for port in to_it {
            if let Some(error) = port.error.as_deref().filter(|e| !e.is_empty()) {
                found.push(Finding {
                    check: Check::Tunnel,
                    object: object.clone(),
                    problem: format!(
                        "tunnel port {} ({}) to chassis {} (node {other}) has error: {error}",
                        port.name, port.type_, chassis.name
                    ),
                    fix: format!(
                        "check ovs-vswitchd's log on {}; its ovn-encap-ip must be an address of {} that reaches {ip_words}",
                        node.node, node.node
                    ),
                });
            }
        }
    }
    found
}

/// Every tunnel finding: SB's encaps, then each node whose OVS was read.
pub fn findings(kube: &KubeSnapshot, sb: &SbSnapshot, nodes: &[NodeTunnels]) -> Vec<Finding> {
    let mut found = encap_findings(kube, sb);
    for node in nodes {
        found.extend(node_findings(kube, sb, node));
    }
    found
}

#[cfg(test)]
mod tests {
    use rovn_ovsdb::Uuid;
    use rovn_ovsdb_schemas::sb::{Chassis, Encap};

    use super::*;
    use crate::snapshot::NodeView;

    fn lab() -> (KubeSnapshot, SbSnapshot, Vec<NodeTunnels>) {
        let names = ["node1", "node2", "node3"];
        let kube = KubeSnapshot {
            nodes: names
                .iter()
                .map(|n| NodeView {
                    name: n.to_string(),
                    chassis: Some(n.to_string()),
                    join: None,
                })
                .collect(),
            ..Default::default()
        };
        let ip = |i: usize| format!("172.30.0.{}", 11 + i);
        let sb = SbSnapshot {
            chassis: names
                .iter()
                .map(|n| Chassis {
                    uuid: Uuid::new_v4(),
                    name: n.to_string(),
                    hostname: n.to_string(),
                    ..Default::default()
                })
                .collect(),
            encaps: names
                .iter()
                .enumerate()
                .map(|(i, n)| Encap {
                    chassis_name: n.to_string(),
                    ip: ip(i),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let ovs = names
            .iter()
            .enumerate()
            .map(|(i, n)| NodeTunnels {
                node: n.to_string(),
                chassis: Some(n.to_string()),
                ports: (0..names.len())
                    .filter(|j| *j != i)
                    .map(|j| TunnelPort {
                        name: format!("ovn-{}-0", names[j]),
                        type_: "geneve".into(),
                        remote_ip: Some(ip(j)),
                        error: None,
                    })
                    .collect(),
            })
            .collect();
        (kube, sb, ovs)
    }

    #[test]
    fn a_full_mesh_is_no_finding() {
        let (kube, sb, ovs) = lab();
        assert_eq!(findings(&kube, &sb, &ovs), vec![]);
        // Nodes whose OVS could not be read are only checked in SB.
        assert_eq!(findings(&kube, &sb, &[]), vec![]);
    }

    #[test]
    fn a_missing_or_broken_tunnel_is_found_on_its_node() {
        let (kube, sb, mut ovs) = lab();
        ovs[0].ports.retain(|p| p.name != "ovn-node3-0");
        ovs[1].ports[0].error = Some("could not add network device".into());
        let f = findings(&kube, &sb, &ovs);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].object, "Node/node1");
        assert!(
            f[0].problem
                .contains("no tunnel port to chassis node3 (node node3, encap IP 172.30.0.13)"),
            "{}",
            f[0]
        );
        assert_eq!(f[1].object, "Node/node2");
        assert!(
            f[1].problem
                .contains("has error: could not add network device"),
            "{}",
            f[1]
        );
    }

    #[test]
    fn other_zones_need_no_tunnel_from_every_node() {
        let (kube, mut sb, ovs) = lab();
        sb.chassis.push(Chassis {
            name: "zone-b-gw".into(),
            other_config: [("is-remote".to_string(), "true".to_string())].into(),
            ..Default::default()
        });
        sb.encaps.push(Encap {
            chassis_name: "zone-b-gw".into(),
            ip: "192.0.2.1".into(),
            ..Default::default()
        });
        assert_eq!(findings(&kube, &sb, &ovs), vec![]);
    }

    #[test]
    fn a_chassis_without_encap_is_found_once() {
        let (kube, mut sb, ovs) = lab();
        sb.encaps.retain(|e| e.chassis_name != "node2");
        let f = findings(&kube, &sb, &ovs);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].object, "Node/node2");
        assert!(f[0].problem.contains("has no Encap"), "{}", f[0]);
    }
}
