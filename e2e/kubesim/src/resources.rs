//! The table of served kinds. Built-in kinds are fixed; CRDs add and remove entries at
//! run time. Discovery, routing, Table columns and storage all consult this one table,
//! so a kind is either fully served or not at all.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Where objects of a kind are stored: group plus plural resource. All served versions
/// of a CRD share one storage key, as they share one etcd prefix in the real server.
pub type StorageKey = Arc<str>;

/// One served (group, version, resource).
#[derive(Debug, Clone)]
pub struct ResourceDef {
    /// API group, `""` for core.
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Plural resource name used in URLs.
    pub plural: String,
    /// Lower-case singular name (discovery, kubectl).
    pub singular: String,
    /// The object kind.
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Has a `status` subresource (status changes are ignored on the main resource).
    pub status_subresource: bool,
    /// Pods only: the `binding` subresource.
    pub binding_subresource: bool,
    /// kubectl short names (`po`, `svc`, ...).
    pub short_names: Vec<String>,
    /// Discovery categories (`all`).
    pub categories: Vec<String>,
    /// Storage this version reads and writes.
    pub storage: StorageKey,
    /// Whether this is a custom resource (no strategic merge patch, CRD printer columns).
    pub custom: bool,
    /// CRD `additionalPrinterColumns` for this version: (name, type, jsonPath, priority).
    pub printer_columns: Vec<PrinterColumn>,
}

/// A CRD-declared column for `kubectl get`.
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type (`string`, `integer`, `date`, ...).
    pub type_: String,
    /// Simple `.a.b` path into the object.
    pub json_path: String,
    /// 0 = shown by default, >0 = only with `-o wide`.
    pub priority: i64,
}

impl ResourceDef {
    /// `group/version`, or `version` for core, as in `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kind of list objects (`PodList`).
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// Storage key for a group and plural resource.
pub fn storage_key(group: &str, plural: &str) -> StorageKey {
    Arc::from(format!("{group}/{plural}"))
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    status: bool,
    short: &[&str],
    all: bool,
) -> ResourceDef {
    ResourceDef {
        group: group.to_string(),
        version: version.to_string(),
        plural: plural.to_string(),
        singular: kind.to_ascii_lowercase(),
        kind: kind.to_string(),
        namespaced,
        status_subresource: status,
        binding_subresource: plural == "pods" && group.is_empty(),
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: if all {
            vec!["all".to_string()]
        } else {
            Vec::new()
        },
        storage: storage_key(group, plural),
        custom: false,
        printer_columns: Vec::new(),
    }
}

/// The built-in kinds this server serves.
pub fn builtin_resources() -> Vec<ResourceDef> {
    let rbac = [
        ("clusterroles", "ClusterRole", false),
        ("clusterrolebindings", "ClusterRoleBinding", false),
        ("roles", "Role", true),
        ("rolebindings", "RoleBinding", true),
    ]
    .map(|(plural, kind, namespaced)| {
        let group = "rbac.authorization.k8s.io";
        builtin(group, "v1", plural, kind, namespaced, false, &[], false)
    });
    let mut all = vec![
        builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            true,
            &["ns"],
            false,
        ),
        builtin("", "v1", "nodes", "Node", false, true, &["no"], false),
        builtin("", "v1", "pods", "Pod", true, true, &["po"], true),
        builtin("", "v1", "services", "Service", true, true, &["svc"], true),
        builtin(
            "",
            "v1",
            "endpoints",
            "Endpoints",
            true,
            false,
            &["ep"],
            false,
        ),
        builtin("", "v1", "events", "Event", true, false, &["ev"], false),
        builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            true,
            false,
            &["cm"],
            false,
        ),
        builtin(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            true,
            false,
            &[],
            false,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            true,
            false,
            &["netpol"],
            false,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            false,
            &[],
            false,
        ),
        // One storage with core/v1 Events, converted by `event_versions`.
        ResourceDef {
            storage: storage_key("", "events"),
            ..builtin(
                "events.k8s.io",
                "v1",
                "events",
                "Event",
                true,
                false,
                &["ev"],
                false,
            )
        },
        // Storage only, for the kinds a rovn install applies (`kubectl apply
        // --dry-run=server` of deploy/): no Deployment, DaemonSet or StatefulSet
        // controller, no RBAC or admission enforcement, no disruption controller.
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            false,
            &["sa"],
            false,
        ),
        builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            true,
            &["deploy"],
            true,
        ),
        builtin(
            "apps",
            "v1",
            "daemonsets",
            "DaemonSet",
            true,
            true,
            &["ds"],
            true,
        ),
        builtin(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            true,
            true,
            &["sts"],
            true,
        ),
        builtin(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
            true,
            &["pdb"],
            false,
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicies",
            "ValidatingAdmissionPolicy",
            false,
            true,
            &[],
            false,
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicybindings",
            "ValidatingAdmissionPolicyBinding",
            false,
            false,
            &[],
            false,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            true,
            &["crd", "crds"],
            false,
        ),
    ];
    all.extend(rbac);
    all
}

/// All served resources, looked up by (group, version, plural).
#[derive(Debug, Clone)]
pub struct Registry {
    by_gvr: BTreeMap<(String, String, String), Arc<ResourceDef>>,
    /// Group order for discovery: built-ins first, then CRD groups as they appear.
    group_order: Vec<String>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry serving the built-in kinds.
    pub fn new() -> Self {
        let mut r = Registry {
            by_gvr: BTreeMap::new(),
            group_order: Vec::new(),
        };
        for def in builtin_resources() {
            r.add(def);
        }
        r
    }

    /// Serves a resource (replacing an earlier definition of the same GVR).
    pub fn add(&mut self, def: ResourceDef) {
        if !self.group_order.contains(&def.group) {
            self.group_order.push(def.group.clone());
        }
        self.by_gvr.insert(
            (def.group.clone(), def.version.clone(), def.plural.clone()),
            Arc::new(def),
        );
    }

    /// Stops serving every version stored under `storage`; returns whether any was served.
    pub fn remove_storage(&mut self, storage: &str) -> bool {
        let before = self.by_gvr.len();
        self.by_gvr.retain(|_, d| &*d.storage != storage);
        let groups: Vec<String> = self.by_gvr.values().map(|d| d.group.clone()).collect();
        self.group_order.retain(|g| groups.contains(g));
        before != self.by_gvr.len()
    }

    /// The resource served at group/version/plural.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.by_gvr
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Every resource of one group/version, for `/api/v1` and `/apis/G/V`.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceDef>> {
        self.by_gvr
            .values()
            .filter(|d| d.group == group && d.version == version)
            .cloned()
            .collect()
    }

    /// Groups with their served versions (preferred first), in discovery order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        self.group_order
            .iter()
            .map(|g| {
                let mut versions: Vec<String> = self
                    .by_gvr
                    .values()
                    .filter(|d| &d.group == g)
                    .map(|d| d.version.clone())
                    .collect();
                versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
                versions.dedup();
                (g.clone(), versions)
            })
            .collect()
    }

    /// Every served resource (storage keys may repeat across versions).
    pub fn all(&self) -> Vec<Arc<ResourceDef>> {
        self.by_gvr.values().cloned().collect()
    }

    /// Storage keys of namespaced resources (for namespace deletion).
    pub fn namespaced_storage(&self) -> Vec<Arc<ResourceDef>> {
        let mut seen = std::collections::HashSet::new();
        self.by_gvr
            .values()
            .filter(|d| d.namespaced && seen.insert(d.storage.clone()))
            .cloned()
            .collect()
    }
}

/// Kubernetes version ordering: GA > beta > alpha, then by number.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let minor_of = |t: &str| t.parse().unwrap_or(0);
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(b) = tail.strip_prefix("beta") {
        (2, major, minor_of(b))
    } else if let Some(a) = tail.strip_prefix("alpha") {
        (1, major, minor_of(a))
    } else {
        (0, major, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_ga_versions() {
        assert!(version_priority("v1") > version_priority("v2beta1"));
        assert!(version_priority("v1beta2") > version_priority("v1beta1"));
        assert!(version_priority("v1alpha1") < version_priority("v1beta1"));
    }

    #[test]
    fn crd_storage_can_be_removed() {
        let mut r = Registry::new();
        let mut d = r
            .get("", "v1", "pods")
            .map(|d| (*d).clone())
            .unwrap_or_else(|| unreachable!());
        d.group = "rovn.io".into();
        d.plural = "subnets".into();
        d.storage = storage_key("rovn.io", "subnets");
        r.add(d);
        assert!(r.get("rovn.io", "v1", "subnets").is_some());
        assert!(r.groups().iter().any(|(g, _)| g == "rovn.io"));
        assert!(r.remove_storage("rovn.io/subnets"));
        assert!(r.get("rovn.io", "v1", "subnets").is_none());
        assert!(!r.groups().iter().any(|(g, _)| g == "rovn.io"));
    }
}
