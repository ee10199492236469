//! What an NB ACL means for a packet, in NetworkPolicy words. Pure: the ACL row in, the
//! sentence out.
//!
//! The contract with the controller's NetworkPolicy rows (`external_ids`, besides
//! `rovn.io/vendor=rovn`): `rovn.io/owner=NetworkPolicy/<ns>/<name>` for a policy's allow
//! ACLs, `Namespace/<ns>` for the namespace's default-deny ACLs (a pod selected by some policy
//! and allowed by none), `Node/<node>` for "traffic from/to the pod's own node is allowed";
//! `rovn.io/id` names the rule (`ingress.0`, `egress.1`, `deny-ingress`) and
//! `rovn.io/direction` is `ingress` or `egress`. Rows that do not follow it (foreign ACLs,
//! missing keys) are described by their columns instead, never refused.

use rovn_api::names::{DIRECTION_KEY, ID_KEY, VENDOR, VENDOR_KEY};
use rovn_api::{Owner, OwnerKind};
use rovn_ovsdb_schemas::nb::{Acl, AclAction, AclDirection};

use crate::snapshot::owner_of;
use crate::trace::owner_words;

/// The NetworkPolicy direction an ACL enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Traffic to the selected pods.
    Ingress,
    /// Traffic from the selected pods.
    Egress,
}

impl Direction {
    /// `ingress` or `egress`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// The direction of `acl`: its `rovn.io/direction`, else its OVN direction (to-lport ACLs
/// guard the destination, so they enforce ingress).
pub fn direction(acl: &Acl) -> Direction {
    match acl.external_ids.get(DIRECTION_KEY).map(String::as_str) {
        Some("ingress") => Direction::Ingress,
        Some("egress") => Direction::Egress,
        _ => match acl.direction {
            AclDirection::ToLport => Direction::Ingress,
            _ => Direction::Egress,
        },
    }
}

/// What an ACL is for, by its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A rule of a NetworkPolicy.
    PolicyRule {
        /// The policy's namespace.
        namespace: String,
        /// The policy's name.
        name: String,
        /// `rovn.io/id`, when present.
        rule: Option<String>,
    },
    /// A namespace's default deny: pods selected by a policy and allowed by none.
    NamespaceDeny {
        /// The namespace.
        namespace: String,
    },
    /// Traffic between a pod and its own node.
    OwnNode {
        /// The node.
        node: String,
    },
    /// Anything else: another owner, or not rovn's.
    Other,
}

/// The role of `acl` under the contract; [`Role::Other`] for rows outside it.
pub fn role(acl: &Acl) -> Role {
    if acl.external_ids.get(VENDOR_KEY).map(String::as_str) != Some(VENDOR) {
        return Role::Other;
    }
    let Some(Ok(owner)) = owner_of(&acl.external_ids).map(str::parse::<Owner>) else {
        return Role::Other;
    };
    match (owner.kind(), owner.namespace()) {
        (OwnerKind::NetworkPolicy, Some(ns)) => Role::PolicyRule {
            namespace: ns.to_string(),
            name: owner.name().to_string(),
            rule: acl.external_ids.get(ID_KEY).cloned(),
        },
        (OwnerKind::Namespace, _) => Role::NamespaceDeny {
            namespace: owner.name().to_string(),
        },
        (OwnerKind::Node, _) => Role::OwnNode {
            node: owner.name().to_string(),
        },
        _ => Role::Other,
    }
}

/// Whether the ACL lets the packet on (allow, allow-related, allow-stateless).
pub fn allows(acl: &Acl) -> bool {
    !matches!(acl.action, AclAction::Drop | AclAction::Reject)
}

/// The ACL's own columns, for an operator who wants the row: `ACL NAME (OWNER; to-lport
/// priority P match "M")`.
pub fn acl_words(acl: &Acl) -> String {
    format!(
        "ACL {} ({}; {} priority {} match {:?})",
        acl.name.as_deref().unwrap_or("<unnamed>"),
        owner_words(&acl.external_ids),
        acl.direction.as_str(),
        acl.priority,
        acl.match_
    )
}

fn rule_words(namespace: &str, name: &str, rule: Option<&str>) -> String {
    match rule {
        Some(rule) => format!("NetworkPolicy {namespace}/{name} rule {rule}"),
        None => format!("NetworkPolicy {namespace}/{name}"),
    }
}

/// Why `acl` dropped (or rejected, `verb`) the packet. `guarded` is the pod the ACL guards
/// (the destination for ingress, the source for egress) as the operator names it, when known.
pub fn drop_words(acl: &Acl, verb: &str, guarded: Option<&str>) -> String {
    let row = format!("ACL {}", acl.name.as_deref().unwrap_or("<unnamed>"));
    match role(acl) {
        Role::NamespaceDeny { namespace } => format!(
            "{verb}: {} is isolated for {} by NetworkPolicies in namespace {namespace} and none allows this ({row})",
            guarded.unwrap_or("the pod"),
            direction(acl).as_str()
        ),
        Role::PolicyRule {
            namespace,
            name,
            rule,
        } => format!(
            "{verb} by {} ({row})",
            rule_words(&namespace, &name, rule.as_deref())
        ),
        Role::OwnNode { .. } | Role::Other => format!("{verb} by {}", acl_words(acl)),
    }
}

/// What let the packet through `acl`, when it is an allowing ACL: `allowed by NetworkPolicy
/// ns/name rule ingress.0`, `allowed by Node n1's own-node rule`, or the row of another ACL.
pub fn allow_words(acl: &Acl) -> Option<String> {
    if !allows(acl) {
        return None;
    }
    Some(match role(acl) {
        Role::PolicyRule {
            namespace,
            name,
            rule,
        } => format!(
            "allowed by {}",
            rule_words(&namespace, &name, rule.as_deref())
        ),
        Role::OwnNode { node } => {
            format!("allowed by Node {node}'s own-node rule (a pod's own node may always reach it)")
        }
        Role::NamespaceDeny { .. } | Role::Other => format!("allowed by {}", acl_words(acl)),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// An ACL as the controller writes it for `owner`, with `id` and `direction`.
    pub(crate) fn rovn_acl(owner: &str, id: &str, direction: &str, action: AclAction) -> Acl {
        Acl {
            name: Some(format!("{owner}/{id}")),
            direction: if direction == "ingress" {
                AclDirection::ToLport
            } else {
                AclDirection::FromLport
            },
            action,
            priority: 2000,
            match_: "outport == @pg && ip4".into(),
            external_ids: BTreeMap::from([
                ("rovn.io/vendor".to_string(), "rovn".to_string()),
                ("rovn.io/owner".to_string(), owner.to_string()),
                ("rovn.io/id".to_string(), id.to_string()),
                ("rovn.io/direction".to_string(), direction.to_string()),
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn roles_follow_the_owner() {
        let allow = rovn_acl(
            "NetworkPolicy/kr/web",
            "ingress.0",
            "ingress",
            AclAction::AllowRelated,
        );
        assert_eq!(
            role(&allow),
            Role::PolicyRule {
                namespace: "kr".into(),
                name: "web".into(),
                rule: Some("ingress.0".into())
            }
        );
        assert_eq!(
            allow_words(&allow).as_deref(),
            Some("allowed by NetworkPolicy kr/web rule ingress.0")
        );
        let deny = rovn_acl("Namespace/kr", "deny-ingress", "ingress", AclAction::Drop);
        assert_eq!(
            role(&deny),
            Role::NamespaceDeny {
                namespace: "kr".into()
            }
        );
        assert_eq!(allow_words(&deny), None);
        assert_eq!(
            drop_words(&deny, "dropped", Some("pod kr/server")),
            "dropped: pod kr/server is isolated for ingress by NetworkPolicies in namespace kr and none allows this (ACL Namespace/kr/deny-ingress)"
        );
        let node = rovn_acl("Node/n1", "node", "ingress", AclAction::AllowRelated);
        assert!(
            allow_words(&node)
                .unwrap()
                .starts_with("allowed by Node n1's own-node rule")
        );
    }

    #[test]
    fn rows_outside_the_contract_are_described_not_refused() {
        // No vendor: someone else's ACL, even if it names a policy.
        let mut foreign = rovn_acl("NetworkPolicy/kr/web", "x", "egress", AclAction::Drop);
        foreign.external_ids.remove("rovn.io/vendor");
        assert_eq!(role(&foreign), Role::Other);
        assert!(
            drop_words(&foreign, "dropped", None).starts_with(
                "dropped by ACL NetworkPolicy/kr/web/x (NetworkPolicy kr/web; from-lport"
            ),
            "{}",
            drop_words(&foreign, "dropped", None)
        );
        // No keys at all, no name: the OVN direction decides, the words still come.
        let bare = Acl {
            direction: AclDirection::FromLport,
            action: AclAction::Drop,
            ..Default::default()
        };
        assert_eq!(direction(&bare), Direction::Egress);
        assert!(
            drop_words(&bare, "rejected", None)
                .starts_with("rejected by ACL <unnamed> (not rovn's")
        );
        // A malformed owner is Other too.
        let mut odd = rovn_acl("Namespace", "x", "sideways", AclAction::Drop);
        odd.external_ids
            .insert("rovn.io/owner".into(), "???".into());
        assert_eq!(role(&odd), Role::Other);
        assert_eq!(direction(&odd), Direction::Egress);
        // A deny with no pod known still reads.
        let deny = rovn_acl("Namespace/kr", "deny-egress", "egress", AclAction::Drop);
        assert!(
            drop_words(&deny, "dropped", None)
                .starts_with("dropped: the pod is isolated for egress")
        );
    }
}
