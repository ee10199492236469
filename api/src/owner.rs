//! The Kubernetes object an OVN row exists for, typed from the renderer to the Event.

use std::fmt;
use std::str::FromStr;

/// The kinds of object rovn writes NB rows for. A closed set: an owner value in NB that names
/// another kind was not written by this version of rovn, and is reported rather than guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnerKind {
    /// The cluster itself: the cluster router, `join`, the cluster LB group.
    Cluster,
    /// A Node: its `join` port, its egress reroute.
    Node,
    /// A Subnet: its switch and router port.
    Subnet,
    /// A Namespace: its default-deny port groups.
    Namespace,
    /// A Pod: its switch port.
    Pod,
    /// A Service: its load balancers.
    Service,
    /// A NetworkPolicy: its port group, address sets and ACLs.
    NetworkPolicy,
}

impl OwnerKind {
    /// Every kind, for tools that take a kind by name.
    pub const ALL: [OwnerKind; 7] = [
        OwnerKind::Cluster,
        OwnerKind::Node,
        OwnerKind::Subnet,
        OwnerKind::Namespace,
        OwnerKind::Pod,
        OwnerKind::Service,
        OwnerKind::NetworkPolicy,
    ];

    /// The Kubernetes kind, as written in `rovn.io/owner`.
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::Cluster => "Cluster",
            OwnerKind::Node => "Node",
            OwnerKind::Subnet => "Subnet",
            OwnerKind::Namespace => "Namespace",
            OwnerKind::Pod => "Pod",
            OwnerKind::Service => "Service",
            OwnerKind::NetworkPolicy => "NetworkPolicy",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        matches!(
            self,
            OwnerKind::Pod | OwnerKind::Service | OwnerKind::NetworkPolicy
        )
    }

    /// The `apiVersion` an Event's `involvedObject` needs, or `None` for [`OwnerKind::Cluster`],
    /// which is no Kubernetes object and gets log lines instead of Events.
    pub fn api_version(self) -> Option<&'static str> {
        match self {
            OwnerKind::Cluster => None,
            OwnerKind::Node | OwnerKind::Namespace | OwnerKind::Pod | OwnerKind::Service => {
                Some("v1")
            }
            OwnerKind::Subnet => Some("rovn.io/v1"),
            OwnerKind::NetworkPolicy => Some("networking.k8s.io/v1"),
        }
    }
}

impl fmt::Display for OwnerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The object a row belongs to. Rendered once, as `<Kind>/<namespace>/<name>` or `<Kind>/<name>`,
/// into `external_ids:rovn.io/owner`, transaction comments, log lines and Event messages, so an
/// operator greps one spelling everywhere; parsed back from NB when rovn reads its own rows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    kind: OwnerKind,
    namespace: Option<String>,
    name: String,
}

impl Owner {
    /// A namespaced object's owner.
    pub fn namespaced(kind: OwnerKind, namespace: &str, name: &str) -> Owner {
        Owner {
            kind,
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }

    /// A cluster-scoped object's owner.
    pub fn cluster_scoped(kind: OwnerKind, name: &str) -> Owner {
        Owner {
            kind,
            namespace: None,
            name: name.to_string(),
        }
    }

    /// A pod's owner.
    pub fn pod(namespace: &str, name: &str) -> Owner {
        Owner::namespaced(OwnerKind::Pod, namespace, name)
    }

    /// A Service's owner.
    pub fn service(namespace: &str, name: &str) -> Owner {
        Owner::namespaced(OwnerKind::Service, namespace, name)
    }

    /// A node's owner.
    pub fn node(name: &str) -> Owner {
        Owner::cluster_scoped(OwnerKind::Node, name)
    }

    /// A Subnet's owner.
    pub fn subnet(name: &str) -> Owner {
        Owner::cluster_scoped(OwnerKind::Subnet, name)
    }

    /// The owner of cluster-wide rows, named after the cluster router.
    pub fn cluster(name: &str) -> Owner {
        Owner::cluster_scoped(OwnerKind::Cluster, name)
    }

    /// The object's kind.
    pub fn kind(&self) -> OwnerKind {
        self.kind
    }

    /// The object's namespace, for namespaced kinds.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{}/{namespace}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// An `rovn.io/owner` value this version of rovn would not have written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("owner {value:?}: {reason}")]
pub struct OwnerError {
    /// The value read.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for Owner {
    type Err = OwnerError;

    fn from_str(value: &str) -> Result<Owner, OwnerError> {
        let bad = |reason| OwnerError {
            value: value.to_string(),
            reason,
        };
        let mut parts = value.split('/');
        let kind = parts.next().unwrap_or_default();
        let kind = OwnerKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| bad("unknown kind"))?;
        let parts: Vec<&str> = parts.collect();
        let owner = match (kind.is_namespaced(), parts.as_slice()) {
            (true, [namespace, name]) => Owner::namespaced(kind, namespace, name),
            (false, [name]) => Owner::cluster_scoped(kind, name),
            (true, _) => return Err(bad("a namespaced kind needs <Kind>/<namespace>/<name>")),
            (false, _) => return Err(bad("a cluster-scoped kind needs <Kind>/<name>")),
        };
        if owner.name.is_empty() || owner.namespace.as_deref() == Some("") {
            return Err(bad("empty name or namespace"));
        }
        Ok(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_render_and_parse_back() {
        for owner in [
            Owner::pod("ns", "web-0"),
            Owner::node("node1"),
            Owner::subnet("ovn-default"),
            Owner::cluster("ovn-cluster"),
            Owner::namespaced(OwnerKind::NetworkPolicy, "x", "deny-all"),
        ] {
            let text = owner.to_string();
            assert_eq!(text.parse::<Owner>(), Ok(owner), "{text}");
        }
        assert_eq!(Owner::pod("ns", "p").to_string(), "Pod/ns/p");
        assert_eq!(Owner::node("n1").to_string(), "Node/n1");
    }

    #[test]
    fn foreign_owner_values_are_refused() {
        for bad in [
            "",
            "garbage",
            "Pod/only-name",
            "Node/ns/name",
            "Pod//p",
            "Deployment/ns/d",
            "Cluster/ovn-cluster/x",
        ] {
            assert!(bad.parse::<Owner>().is_err(), "{bad}");
        }
    }
}
