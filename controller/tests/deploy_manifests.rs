//! Every document in `deploy/*.yaml` parses as the Kubernetes type its `kind` names, with no
//! field dropped on the way (k8s-openapi ignores unknown fields, so a typo would otherwise pass),
//! and the manifests grant and configure what rovn's components actually use.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Container, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// All YAML files under `deploy/`, recursively, sorted.
fn manifests() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
                .path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&deploy_dir(), &mut out);
    out.sort();
    out
}

/// The YAML documents of `path` as JSON values.
fn documents(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// Parses `doc` as `T` and checks that writing it back gives the same document.
fn typed<T: DeserializeOwned + Serialize>(doc: &Value, what: &str) -> T {
    let object: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let back = serde_json::to_value(&object).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        strip_nulls(back),
        strip_nulls(doc.clone()),
        "{what}: a field was dropped or changed while parsing (typo or wrong type?)"
    );
    object
}

fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// Every document parsed, by kind.
#[derive(Default)]
struct Parsed {
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    deployments: Vec<Deployment>,
    daemon_sets: Vec<DaemonSet>,
    crds: Vec<CustomResourceDefinition>,
    policies: Vec<ValidatingAdmissionPolicy>,
    policy_bindings: Vec<ValidatingAdmissionPolicyBinding>,
    config_maps: Vec<ConfigMap>,
}

fn parse_all() -> Parsed {
    let mut parsed = Parsed::default();
    let files = manifests();
    assert!(
        files.len() >= 4,
        "deploy/ should hold the CRD, rbac, controller and node manifests: {files:?}"
    );
    for file in files {
        for (i, doc) in documents(&file).iter().enumerate() {
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
            let what = format!("{} document {i} ({kind})", file.display());
            match kind {
                "ServiceAccount" => parsed.service_accounts.push(typed(doc, &what)),
                "ClusterRole" => parsed.cluster_roles.push(typed(doc, &what)),
                "ClusterRoleBinding" => parsed.cluster_role_bindings.push(typed(doc, &what)),
                "Role" => parsed.roles.push(typed(doc, &what)),
                "RoleBinding" => parsed.role_bindings.push(typed(doc, &what)),
                "Deployment" => parsed.deployments.push(typed(doc, &what)),
                "DaemonSet" => parsed.daemon_sets.push(typed(doc, &what)),
                "CustomResourceDefinition" => parsed.crds.push(typed(doc, &what)),
                "ValidatingAdmissionPolicy" => parsed.policies.push(typed(doc, &what)),
                "ValidatingAdmissionPolicyBinding" => {
                    parsed.policy_bindings.push(typed(doc, &what))
                }
                "ConfigMap" => parsed.config_maps.push(typed(doc, &what)),
                other => panic!("{what}: unexpected kind {other:?}"),
            }
        }
    }
    parsed
}

fn cluster_role<'a>(parsed: &'a Parsed, name: &str) -> &'a [PolicyRule] {
    parsed
        .cluster_roles
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(name))
        .and_then(|r| r.rules.as_deref())
        .unwrap_or_else(|| panic!("ClusterRole {name} with rules"))
}

/// One permission: (API group, resource, verb, resource name or "" for any).
type Grant = (String, String, String, String);

/// Every permission `rules` give, one per group × resource × verb × name.
fn grants(rules: &[PolicyRule]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules {
        let names = rule
            .resource_names
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| vec![String::new()]);
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    for name in &names {
                        out.insert((group.clone(), resource.clone(), verb.clone(), name.clone()));
                    }
                }
            }
        }
    }
    out
}

/// `rules` grant exactly `wanted` (group, resource, verbs, resource name or ""): everything
/// the component's code calls, and nothing else.
fn assert_grants_exactly(rules: &[PolicyRule], who: &str, wanted: &[(&str, &str, &[&str], &str)]) {
    let wanted: BTreeSet<Grant> = wanted
        .iter()
        .flat_map(|(group, resource, verbs, name)| {
            verbs.iter().map(move |verb| {
                (
                    group.to_string(),
                    resource.to_string(),
                    verb.to_string(),
                    name.to_string(),
                )
            })
        })
        .collect();
    let granted = grants(rules);
    let missing: Vec<_> = wanted.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&wanted).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{who}: missing {missing:?}; granted but unused {extra:?}"
    );
}

fn bound(parsed: &Parsed, role: &str, service_account: &str) -> bool {
    let subject_ok = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.as_ref().is_some_and(|s| {
            s.iter().any(|s| {
                s.kind == "ServiceAccount"
                    && s.name == service_account
                    && s.namespace.as_deref() == Some("kube-system")
            })
        })
    };
    parsed
        .cluster_role_bindings
        .iter()
        .any(|b| b.role_ref.name == role && subject_ok(&b.subjects))
        || parsed
            .role_bindings
            .iter()
            .any(|b| b.role_ref.name == role && subject_ok(&b.subjects))
}

#[test]
fn every_manifest_parses_into_its_kubernetes_type() {
    let parsed = parse_all();
    assert_eq!(parsed.crds.len(), 1);
    assert_eq!(parsed.deployments.len(), 1);
    assert_eq!(parsed.daemon_sets.len(), 1);
    let accounts: BTreeSet<_> = parsed
        .service_accounts
        .iter()
        .filter_map(|s| s.metadata.name.as_deref())
        .collect();
    assert_eq!(accounts, BTreeSet::from(["rovn-controller", "rovn-node"]));
}

#[test]
fn rbac_grants_exactly_what_the_components_use() {
    let parsed = parse_all();
    let controller = cluster_role(&parsed, "rovn-controller");
    assert_grants_exactly(
        controller,
        "rovn-controller",
        &[
            ("", "pods", &["list", "watch", "patch"], ""),
            ("", "nodes", &["list", "watch", "patch"], ""),
            (
                "rovn.io",
                "subnets",
                &["list", "watch", "create", "patch"],
                "",
            ),
            ("rovn.io", "subnets/status", &["patch"], ""),
            ("", "services", &["list", "watch"], ""),
            ("discovery.k8s.io", "endpointslices", &["list", "watch"], ""),
            (
                "networking.k8s.io",
                "networkpolicies",
                &["list", "watch"],
                "",
            ),
            ("", "namespaces", &["list", "watch"], ""),
            ("", "events", &["create", "patch"], ""),
        ],
    );
    let lease_role = parsed
        .roles
        .iter()
        .find(|r| r.metadata.namespace.as_deref() == Some("kube-system"))
        .expect("a Role in kube-system for the Lease");
    assert_grants_exactly(
        lease_role.rules.as_deref().unwrap_or_default(),
        "rovn-controller (kube-system)",
        &[
            (
                "coordination.k8s.io",
                "leases",
                &["get", "update"],
                "rovn-controller",
            ),
            ("coordination.k8s.io", "leases", &["create"], ""),
        ],
    );
    let lease_role_name = lease_role.metadata.name.as_deref().unwrap_or_default();
    assert!(bound(&parsed, "rovn-controller", "rovn-controller"));
    assert!(bound(&parsed, lease_role_name, "rovn-controller"));

    let node = cluster_role(&parsed, "rovn-node");
    assert_grants_exactly(
        node,
        "rovn-node",
        &[
            ("", "pods", &["get", "list", "watch"], ""),
            ("", "nodes", &["get", "list", "watch", "patch"], ""),
            ("rovn.io", "subnets", &["list", "watch"], ""),
            ("", "services", &["list", "watch"], ""),
            ("discovery.k8s.io", "endpointslices", &["list", "watch"], ""),
            ("", "events", &["create", "patch", "list"], ""),
        ],
    );
    assert!(bound(&parsed, "rovn-node", "rovn-node"));
}

/// RBAC lets rovn-node patch every Node; the admission policy narrows that to its own Node's
/// chassis annotation, for requests of its service account, and is enforced (Deny).
#[test]
fn rovn_node_may_change_only_its_own_node() {
    let parsed = parse_all();
    let policy = parsed
        .policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("rovn-node-own-node"))
        .expect("the ValidatingAdmissionPolicy rovn-node-own-node");
    let spec = policy.spec.as_ref().expect("policy spec");
    assert_eq!(spec.failure_policy.as_deref(), Some("Fail"));
    let rules = spec
        .match_constraints
        .as_ref()
        .and_then(|m| m.resource_rules.as_deref())
        .unwrap_or_default();
    assert!(
        rules.iter().any(|r| {
            r.resources.iter().flatten().any(|x| x == "nodes")
                && r.operations.iter().flatten().any(|o| o == "UPDATE")
        }),
        "the policy matches Node updates: {rules:?}"
    );
    let conditions = spec.match_conditions.as_deref().unwrap_or_default();
    assert!(
        conditions.iter().any(|c| c
            .expression
            .contains("system:serviceaccount:kube-system:rovn-node")),
        "the policy applies to rovn-node's service account"
    );
    let text = serde_json::to_string(spec).unwrap_or_default();
    for needed in [
        "authentication.kubernetes.io/node-name",
        "object.metadata.name",
        "rovn.io/chassis",
        "labels",
    ] {
        assert!(text.contains(needed), "the policy does not check {needed}");
    }
    let binding = parsed
        .policy_bindings
        .iter()
        .find(|b| {
            b.spec.as_ref().and_then(|s| s.policy_name.as_deref()) == Some("rovn-node-own-node")
        })
        .expect("a binding of rovn-node-own-node");
    assert_eq!(
        binding
            .spec
            .as_ref()
            .and_then(|s| s.validation_actions.clone()),
        Some(vec!["Deny".to_string()])
    );
}

fn env_names(container: &Container) -> BTreeSet<&str> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect()
}

#[test]
fn controller_deployment_matches_the_contract() {
    let parsed = parse_all();
    let deployment = &parsed.deployments[0];
    let spec = deployment.spec.as_ref().expect("Deployment spec");
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.as_ref().expect("pod template spec");
    assert_eq!(pod.service_account_name.as_deref(), Some("rovn-controller"));
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some("rovn:dev"));
    let readiness = container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .and_then(|h| h.path.as_deref());
    assert_eq!(
        readiness,
        Some("/readyz"),
        "ready when leading with NB reconciled, or standing by"
    );
    let env = env_names(container);
    for name in [
        "ROVN_NB_REMOTE",
        "ROVN_DEFAULT_CIDR",
        "ROVN_DEFAULT_NAT_OUTGOING",
        "ROVN_JOIN_CIDR",
        "ROVN_SERVICE_CIDR",
        "ROVN_LISTEN",
        "ROVN_LEADER_ELECT",
        "POD_NAME",
    ] {
        assert!(env.contains(name), "controller env lacks {name}");
    }
    // The lab runs the controller with its defaults: ovn-default masquerades there too.
    assert_eq!(
        env_value(container, "ROVN_DEFAULT_NAT_OUTGOING"),
        Some("true")
    );
}

fn env_value<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

/// `kubectl rovn` finds NB and SB through the ConfigMap `kube-system/rovn-config`; as shipped
/// it names the same databases the controller and the agents are configured with.
#[test]
fn rovn_config_names_the_components_databases() {
    let parsed = parse_all();
    let [config] = parsed.config_maps.as_slice() else {
        panic!("deploy/ should hold exactly one ConfigMap, rovn-config");
    };
    assert_eq!(config.metadata.name.as_deref(), Some("rovn-config"));
    assert_eq!(config.metadata.namespace.as_deref(), Some("kube-system"));
    let data = config.data.clone().unwrap_or_default();
    let controller = &parsed.deployments[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("controller pod spec")
        .containers[0];
    let node = &parsed.daemon_sets[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("node pod spec")
        .containers[0];
    assert_eq!(
        data.get("nb-remote").map(String::as_str),
        env_value(controller, "ROVN_NB_REMOTE")
    );
    assert_eq!(
        data.get("sb-remote").map(String::as_str),
        env_value(node, "ROVN_OVN_REMOTE")
    );
}

#[test]
fn node_daemonset_has_host_access() {
    let parsed = parse_all();
    let daemon_set = &parsed.daemon_sets[0];
    let pod = daemon_set
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod template spec");
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.service_account_name.as_deref(), Some("rovn-node"));
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some("rovn:dev"));
    assert_eq!(
        container
            .security_context
            .as_ref()
            .and_then(|s| s.privileged),
        Some(true)
    );
    let readiness = container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .and_then(|h| h.path.as_deref());
    assert_eq!(
        readiness,
        Some("/readyz"),
        "the agent is ready when it serves CNI"
    );
    let env = env_names(container);
    for name in ["NODE_NAME", "ROVN_OVN_REMOTE"] {
        assert!(env.contains(name), "agent env lacks {name}");
    }
    let volumes = pod.volumes.as_deref().unwrap_or_default();
    let host_path_of = |volume: &str| {
        volumes
            .iter()
            .find(|v| v.name == volume)
            .and_then(|v| v.host_path.as_ref())
            .map(|h| h.path.as_str())
    };
    let mounted: BTreeSet<(&str, Option<&str>)> = container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.mount_path.as_str(), host_path_of(&m.name)))
        .collect();
    for path in [
        "/run/openvswitch",
        "/etc/cni/net.d",
        "/opt/cni/bin",
        "/run/rovn",
        "/var/run/netns",
    ] {
        assert!(
            mounted.contains(&(path, Some(path))),
            "host {path} is not mounted at {path}: {mounted:?}"
        );
    }
}

#[test]
#[should_panic(expected = "a field was dropped")]
fn a_misspelt_field_is_caught() {
    let doc: Value = serde_saphyr::from_str(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\nautomountServiceAcountToken: false\n",
    )
    .expect("valid YAML");
    let _: ServiceAccount = typed(&doc, "misspelt ServiceAccount");
}

#[test]
#[should_panic(expected = "invalid type")]
fn an_unquoted_boolean_env_value_is_caught() {
    let doc: Value =
        serde_saphyr::from_str("name: ROVN_LEADER_ELECT\nvalue: true\n").expect("valid YAML");
    let _: k8s_openapi::api::core::v1::EnvVar = typed(&doc, "env var");
}
