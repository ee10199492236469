//! Is every ovn-controller (and ovn-northd) still processing? A killed ovn-controller leaves its
//! SB `Chassis` row behind, so registration alone says nothing; what operators do instead is
//! `ovn-nbctl --wait=hv sync`: bump `NB_Global.nb_cfg` and watch it come back through
//! `SB_Global.nb_cfg` (ovn-northd) and each `Chassis_Private.nb_cfg` (each ovn-controller).
//! The bump and the wait are `ovn_io`'s; this judges what came back. Pure.

use std::time::Duration;

use rovn_api::Owner;
use rovn_ovsdb_schemas::sb::Chassis;

use crate::diagnose::{Check, Finding};
use crate::snapshot::{KubeSnapshot, SbSnapshot};

/// Whether a chassis runs an ovn-controller of this cluster: OVN interconnect registers the
/// chassis of other zones with `other_config:is-remote=true`; nothing here reports for them.
pub fn is_local(chassis: &Chassis) -> bool {
    chassis.other_config.get("is-remote").map(String::as_str) != Some("true")
}

/// Whether ovn-northd and every (local) chassis have processed NB up to `target`.
pub fn caught_up(sb: &SbSnapshot, target: i64) -> bool {
    sb.nb_cfg.is_some_and(|n| n >= target)
        && sb
            .chassis
            .iter()
            .filter(|c| is_local(c))
            .all(|c| chassis_nb_cfg(sb, &c.name).is_some_and(|n| n >= target))
}

/// The `nb_cfg` a chassis's ovn-controller reported last, from its `Chassis_Private` row.
fn chassis_nb_cfg(sb: &SbSnapshot, chassis: &str) -> Option<i64> {
    sb.chassis_private
        .iter()
        .filter(|p| p.name == chassis)
        .map(|p| p.nb_cfg)
        .max()
}

/// The node a chassis serves, as an operator names it: the Node whose `rovn.io/chassis` is the
/// chassis, else the Node named like the chassis's hostname, else the chassis itself.
pub fn node_of(kube: &KubeSnapshot, chassis: &Chassis) -> (String, String) {
    let node = kube
        .nodes
        .iter()
        .find(|n| n.chassis.as_deref() == Some(chassis.name.as_str()))
        .or_else(|| kube.nodes.iter().find(|n| n.name == chassis.hostname));
    match node {
        Some(n) => (Owner::node(&n.name).to_string(), n.name.clone()),
        None if !chassis.hostname.is_empty() => (
            format!(
                "Chassis {} (hostname {}, no Node has it)",
                chassis.name, chassis.hostname
            ),
            chassis.hostname.clone(),
        ),
        None => (format!("Chassis {}", chassis.name), chassis.name.clone()),
    }
}

/// The findings of one `nb_cfg` round trip: `target` is the value diagnose wrote, `waited` how
/// long it gave the chassis, `sb` what SB said at the end.
pub fn findings(
    kube: &KubeSnapshot,
    sb: &SbSnapshot,
    target: i64,
    waited: Duration,
) -> Vec<Finding> {
    if sb.nb_cfg.is_none_or(|n| n < target) {
        // Nothing reached SB, so no chassis could have answered: blame northd alone.
        return vec![Finding {
            check: Check::Processing,
            object: "ovn-northd".into(),
            problem: format!(
                "NB_Global.nb_cfg {target} did not reach SB_Global.nb_cfg within {}s (SB has {}); ovn-northd is not processing NB",
                waited.as_secs(),
                sb.nb_cfg.map_or("no SB_Global row".to_string(), |n| n.to_string())
            ),
            fix: "check ovn-northd (the ovn-central pod's log, or `systemctl status ovn-northd`) and that it reaches NB and SB".into(),
        }];
    }
    let mut found = Vec::new();
    for chassis in sb.chassis.iter().filter(|c| is_local(c)) {
        let reported = chassis_nb_cfg(sb, &chassis.name);
        if reported.is_some_and(|n| n >= target) {
            continue;
        }
        let (object, node) = node_of(kube, chassis);
        let reported = match reported {
            Some(n) => format!("its Chassis_Private.nb_cfg is still {n}"),
            None => "it has no Chassis_Private row".into(),
        };
        found.push(Finding {
            check: Check::Processing,
            object,
            problem: format!(
                "ovn-controller on node {node} (chassis {}) is not processing: NB is at nb_cfg {target}, {reported} after {}s",
                chassis.name,
                waited.as_secs()
            ),
            fix: format!(
                "ovn-controller on node {node} is not processing; check the ovs-ovn pod / `systemctl status ovn-controller` on {node} (a stopped ovn-controller keeps its Chassis row; if the node is gone for good, `kubectl rovn sbctl chassis-del {}`)",
                chassis.name
            ),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use rovn_ovsdb_schemas::sb::ChassisPrivate;

    use super::*;
    use crate::snapshot::NodeView;

    fn cluster() -> (KubeSnapshot, SbSnapshot) {
        let kube = KubeSnapshot {
            nodes: vec![
                NodeView {
                    name: "node1".into(),
                    chassis: Some("c1".into()),
                    join: None,
                },
                NodeView {
                    name: "node2".into(),
                    chassis: None,
                    join: None,
                },
            ],
            ..Default::default()
        };
        let sb = SbSnapshot {
            chassis: vec![
                Chassis {
                    name: "c1".into(),
                    hostname: "host-a".into(),
                    ..Default::default()
                },
                Chassis {
                    name: "c2".into(),
                    hostname: "node2".into(),
                    ..Default::default()
                },
            ],
            chassis_private: ["c1", "c2"]
                .iter()
                .map(|n| ChassisPrivate {
                    name: n.to_string(),
                    nb_cfg: 7,
                    ..Default::default()
                })
                .collect(),
            nb_cfg: Some(7),
            ..Default::default()
        };
        (kube, sb)
    }

    #[test]
    fn all_caught_up_is_no_finding() {
        let (kube, sb) = cluster();
        assert!(caught_up(&sb, 7));
        assert_eq!(findings(&kube, &sb, 7, Duration::from_secs(5)), vec![]);
    }

    #[test]
    fn a_chassis_behind_names_its_node() {
        let (kube, mut sb) = cluster();
        sb.chassis_private[0].nb_cfg = 6;
        assert!(!caught_up(&sb, 7));
        let f = findings(&kube, &sb, 7, Duration::from_secs(5));
        assert_eq!(f.len(), 1, "{f:?}");
        // Found by the Node's rovn.io/chassis, not by the hostname.
        assert_eq!(f[0].object, "Node/node1");
        assert!(f[0].problem.contains("nb_cfg is still 6"), "{}", f[0]);
        assert!(
            f[0].fix.starts_with("ovn-controller on node node1 is not processing; check the ovs-ovn pod / `systemctl status ovn-controller`"),
            "{}",
            f[0]
        );
        // Without Chassis_Private, and found by hostname.
        let (kube, mut sb) = cluster();
        sb.chassis_private.retain(|p| p.name != "c2");
        let f = findings(&kube, &sb, 7, Duration::from_secs(5));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].object, "Node/node2");
        assert!(f[0].problem.contains("no Chassis_Private row"), "{}", f[0]);
        // A chassis no Node claims is named by itself.
        let (mut kube, mut sb) = cluster();
        kube.nodes.clear();
        sb.chassis_private[1].nb_cfg = 1;
        let f = findings(&kube, &sb, 7, Duration::from_secs(5));
        assert_eq!(f[0].object, "Chassis c2 (hostname node2, no Node has it)");
    }

    #[test]
    fn remote_chassis_are_not_expected_to_answer() {
        let (kube, mut sb) = cluster();
        sb.chassis.push(Chassis {
            name: "other-zone".into(),
            other_config: [("is-remote".to_string(), "true".to_string())].into(),
            ..Default::default()
        });
        assert!(caught_up(&sb, 7));
        assert_eq!(findings(&kube, &sb, 7, Duration::from_secs(5)), vec![]);
    }

    #[test]
    fn a_stuck_northd_is_one_finding_not_one_per_chassis() {
        let (kube, mut sb) = cluster();
        sb.nb_cfg = Some(6);
        for p in &mut sb.chassis_private {
            p.nb_cfg = 6;
        }
        let f = findings(&kube, &sb, 7, Duration::from_secs(5));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].object, "ovn-northd");
        sb.nb_cfg = None;
        assert!(!caught_up(&sb, 7));
        assert!(
            findings(&kube, &sb, 7, Duration::from_secs(5))[0]
                .problem
                .contains("no SB_Global row")
        );
    }
}
