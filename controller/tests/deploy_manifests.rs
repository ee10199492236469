//! The manifests as an operator applies them: every overlay under `deploy/overlays/` rendered
//! with `kubectl kustomize`, each document parsed as the Kubernetes type its `kind` names with
//! no field dropped on the way (k8s-openapi ignores unknown fields, so a typo would otherwise
//! pass), and checked to grant and configure what rovn's components actually use: RBAC exactly
//! as the code calls, the ranges and OVN central's members set once in `rovn-config` and
//! referenced by every component, one image, DaemonSets that run on every node, and a
//! three-member OVN central whose clients name every member.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The overlays under `deploy/overlays/`, by directory name, sorted.
fn overlays() -> Vec<(String, PathBuf)> {
    let dir = deploy_dir().join("overlays");
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut out: Vec<(String, PathBuf)> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
                .path()
        })
        .filter(|path| path.join("kustomization.yaml").is_file())
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, path)
        })
        .collect();
    out.sort();
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"kind") && names.contains(&"production"),
        "deploy/overlays should hold kind and production: {names:?}"
    );
    out
}

/// `kubectl kustomize dir`: the manifests exactly as `kubectl apply -k dir` sends them.
fn render(dir: &Path) -> String {
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("running kubectl kustomize (scripts/setup.sh installs kubectl): {e}")
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("kustomize output: {e}"))
}

/// The YAML documents of `text` as JSON values.
fn documents(text: &str, what: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("{what} is not valid YAML: {e}"))
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

/// `value` without null fields, and with whole floats as integers (kustomize writes a
/// `minimum: 0.0` back as `0`; k8s-openapi holds it as a float).
fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
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

/// Every document of one rendered overlay, parsed, by kind.
#[derive(Default)]
struct Parsed {
    overlay: String,
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    deployments: Vec<Deployment>,
    daemon_sets: Vec<DaemonSet>,
    stateful_sets: Vec<StatefulSet>,
    services: Vec<Service>,
    disruption_budgets: Vec<PodDisruptionBudget>,
    crds: Vec<CustomResourceDefinition>,
    policies: Vec<ValidatingAdmissionPolicy>,
    policy_bindings: Vec<ValidatingAdmissionPolicyBinding>,
    config_maps: Vec<ConfigMap>,
}

fn parse(overlay: &str, text: &str) -> Parsed {
    let mut parsed = Parsed {
        overlay: overlay.to_string(),
        ..Parsed::default()
    };
    for (i, doc) in documents(text, overlay).iter().enumerate() {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        let what = format!("overlay {overlay} document {i} ({kind})");
        match kind {
            "ServiceAccount" => parsed.service_accounts.push(typed(doc, &what)),
            "ClusterRole" => parsed.cluster_roles.push(typed(doc, &what)),
            "ClusterRoleBinding" => parsed.cluster_role_bindings.push(typed(doc, &what)),
            "Role" => parsed.roles.push(typed(doc, &what)),
            "RoleBinding" => parsed.role_bindings.push(typed(doc, &what)),
            "Deployment" => parsed.deployments.push(typed(doc, &what)),
            "DaemonSet" => parsed.daemon_sets.push(typed(doc, &what)),
            "StatefulSet" => parsed.stateful_sets.push(typed(doc, &what)),
            "Service" => parsed.services.push(typed(doc, &what)),
            "PodDisruptionBudget" => parsed.disruption_budgets.push(typed(doc, &what)),
            "CustomResourceDefinition" => parsed.crds.push(typed(doc, &what)),
            "ValidatingAdmissionPolicy" => parsed.policies.push(typed(doc, &what)),
            "ValidatingAdmissionPolicyBinding" => parsed.policy_bindings.push(typed(doc, &what)),
            "ConfigMap" => parsed.config_maps.push(typed(doc, &what)),
            other => panic!("{what}: unexpected kind {other:?}"),
        }
    }
    parsed
}

/// Every overlay's name and rendering, rendered once per test process.
fn rendered() -> &'static [(String, String)] {
    static RENDERED: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    RENDERED.get_or_init(|| {
        overlays()
            .into_iter()
            .map(|(name, dir)| {
                let text = render(&dir);
                (name, text)
            })
            .collect()
    })
}

/// Every overlay, rendered and parsed.
fn parse_all() -> Vec<Parsed> {
    rendered()
        .iter()
        .map(|(name, text)| parse(name, text))
        .collect()
}

/// The overlay named `name`, rendered and parsed.
fn parse_overlay(name: &str) -> Parsed {
    parse_all()
        .into_iter()
        .find(|p| p.overlay == name)
        .unwrap_or_else(|| panic!("no overlay {name}"))
}

/// The object called `name` among `items`.
fn named<'a, T>(items: &'a [T], name: &str, overlay: &str) -> &'a T
where
    T: k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
        + k8s_openapi::Resource,
{
    items
        .iter()
        .find(|item| item.metadata().name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("{overlay}: no {} {name}", T::KIND))
}

impl Parsed {
    fn deployment(&self, name: &str) -> &Deployment {
        named(&self.deployments, name, &self.overlay)
    }

    fn daemon_set(&self, name: &str) -> &DaemonSet {
        named(&self.daemon_sets, name, &self.overlay)
    }

    fn stateful_set(&self, name: &str) -> &StatefulSet {
        named(&self.stateful_sets, name, &self.overlay)
    }

    /// The pod template of DaemonSet `name`.
    fn daemon_set_pod(&self, name: &str) -> &PodSpec {
        pod_spec(
            self.daemon_set(name).spec.as_ref().map(|s| &s.template),
            name,
        )
    }

    /// The pod template of Deployment `name`.
    fn deployment_pod(&self, name: &str) -> &PodSpec {
        pod_spec(
            self.deployment(name).spec.as_ref().map(|s| &s.template),
            name,
        )
    }

    /// The pod template of StatefulSet `name`.
    fn stateful_set_pod(&self, name: &str) -> &PodSpec {
        pod_spec(
            self.stateful_set(name).spec.as_ref().map(|s| &s.template),
            name,
        )
    }

    /// `rovn-config`'s data.
    fn config(&self) -> BTreeMap<String, String> {
        let [config] = self.config_maps.as_slice() else {
            panic!(
                "{}: expected exactly one ConfigMap, rovn-config",
                self.overlay
            );
        };
        assert_eq!(config.metadata.name.as_deref(), Some("rovn-config"));
        assert_eq!(config.metadata.namespace.as_deref(), Some("kube-system"));
        config.data.clone().unwrap_or_default()
    }

    /// Every workload's pod template, named "Kind/name".
    fn pod_specs(&self) -> Vec<(String, &PodSpec)> {
        let mut out = Vec::new();
        for d in &self.deployments {
            let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
            out.push((format!("Deployment/{}", name_of(&d.metadata)), spec));
        }
        for d in &self.daemon_sets {
            let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
            out.push((format!("DaemonSet/{}", name_of(&d.metadata)), spec));
        }
        for d in &self.stateful_sets {
            let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
            out.push((format!("StatefulSet/{}", name_of(&d.metadata)), spec));
        }
        out.into_iter()
            .map(|(name, spec)| {
                let spec = spec.unwrap_or_else(|| panic!("{name} has no pod template spec"));
                (name, spec)
            })
            .collect()
    }
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

fn pod_spec<'a>(
    template: Option<&'a k8s_openapi::api::core::v1::PodTemplateSpec>,
    what: &str,
) -> &'a PodSpec {
    template
        .and_then(|t| t.spec.as_ref())
        .unwrap_or_else(|| panic!("{what}: no pod template spec"))
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
fn every_overlay_parses_into_kubernetes_types() {
    for parsed in parse_all() {
        let o = &parsed.overlay;
        assert_eq!(parsed.crds.len(), 1, "{o}");
        assert_eq!(parsed.deployments.len(), 1, "{o}");
        let daemon_sets: BTreeSet<&str> = parsed
            .daemon_sets
            .iter()
            .map(|d| name_of(&d.metadata))
            .collect();
        assert_eq!(daemon_sets, BTreeSet::from(["ovs-ovn", "rovn-node"]), "{o}");
        assert_eq!(parsed.stateful_sets.len(), 1, "{o}");
        let accounts: BTreeSet<_> = parsed
            .service_accounts
            .iter()
            .filter_map(|s| s.metadata.name.as_deref())
            .collect();
        assert_eq!(
            accounts,
            BTreeSet::from(["rovn-controller", "rovn-node"]),
            "{o}"
        );
    }
}

/// The CRD an overlay installs is the generated one (`deploy/crds/`, which `rovn-crdgen`
/// writes), whatever labels kustomize adds.
#[test]
fn every_overlay_installs_the_generated_crd() {
    let generated: Value =
        serde_saphyr::from_str(&rovn_controller::crd::crd_yaml().expect("the CRD renders"))
            .expect("the generated CRD is YAML");
    for parsed in parse_all() {
        let installed = serde_json::to_value(&parsed.crds[0]).expect("CRD serializes");
        assert_eq!(
            strip_nulls(installed["spec"].clone()),
            strip_nulls(generated["spec"].clone()),
            "{}: the CRD differs from rovn-crdgen's",
            parsed.overlay
        );
    }
}

#[test]
fn rbac_grants_exactly_what_the_components_use() {
    for parsed in parse_all() {
        rbac_grants_exactly_what_the_components_use_in(&parsed);
    }
}

fn rbac_grants_exactly_what_the_components_use_in(parsed: &Parsed) {
    let controller = cluster_role(parsed, "rovn-controller");
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
            ("", "services", &["list", "watch", "patch"], ""),
            ("", "services/status", &["patch"], ""),
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
    assert!(bound(parsed, "rovn-controller", "rovn-controller"));
    assert!(bound(parsed, lease_role_name, "rovn-controller"));

    let node = cluster_role(parsed, "rovn-node");
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
    assert!(bound(parsed, "rovn-node", "rovn-node"));
    // OVN's own pods never call the API server: no token is mounted into them.
    let ovs = parsed.daemon_set_pod("ovs-ovn");
    assert_eq!(ovs.automount_service_account_token, Some(false));
    let central = parsed.stateful_set_pod("ovn-central");
    assert_eq!(central.automount_service_account_token, Some(false));
}

/// RBAC lets rovn-node patch every Node; the admission policy narrows that to its own Node's
/// chassis annotation, for requests of its service account, and is enforced (Deny).
#[test]
fn rovn_node_may_change_only_its_own_node() {
    for parsed in parse_all() {
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
}

fn env_names(container: &Container) -> BTreeSet<&str> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect()
}

fn env_value<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

/// The `rovn-config` key env `name` of `container` is taken from, if it is taken from one.
fn env_config_key<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.config_map_key_ref.as_ref())
        .filter(|r| r.name == "rovn-config")
        .map(|r| r.key.as_str())
}

/// The HTTP path of `container`'s readiness probe.
fn readiness_path(container: &Container) -> Option<&str> {
    container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .and_then(|h| h.path.as_deref())
}

/// The only container of `name`'s pod template.
fn only_container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    let [container] = pod.containers.as_slice() else {
        panic!("{name}: expected one container");
    };
    container
}

#[test]
fn controller_deployment_matches_the_contract() {
    for parsed in parse_all() {
        let deployment = parsed.deployment("rovn-controller");
        let spec = deployment.spec.as_ref().expect("Deployment spec");
        assert_eq!(spec.replicas, Some(2));
        let pod = pod_spec(Some(&spec.template), "rovn-controller");
        assert_eq!(pod.service_account_name.as_deref(), Some("rovn-controller"));
        let container = only_container(pod, "rovn-controller");
        assert_eq!(
            readiness_path(container),
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
}

/// The ranges and OVN central's addresses are set once, in `rovn-config`: the controller,
/// the agent and OVN central take them from its keys (which exist, unless optional), and the
/// ranges are CIDRs that do not overlap.
#[test]
fn components_take_ranges_and_remotes_from_rovn_config() {
    for parsed in parse_all() {
        let o = parsed.overlay.clone();
        let data = parsed.config();
        for (workload, pod) in parsed.pod_specs() {
            for container in pod
                .containers
                .iter()
                .chain(pod.init_containers.iter().flatten())
            {
                for env in container.env.iter().flatten() {
                    let Some(r) = env
                        .value_from
                        .as_ref()
                        .and_then(|v| v.config_map_key_ref.as_ref())
                    else {
                        continue;
                    };
                    assert_eq!(r.name, "rovn-config", "{o}: {workload} {}", env.name);
                    assert!(
                        data.contains_key(&r.key) || r.optional == Some(true),
                        "{o}: {workload} env {} takes rovn-config key {}, which it lacks",
                        env.name,
                        r.key
                    );
                }
            }
        }
        let controller =
            only_container(parsed.deployment_pod("rovn-controller"), "rovn-controller");
        let node = only_container(parsed.daemon_set_pod("rovn-node"), "rovn-node");
        let central = only_container(parsed.stateful_set_pod("ovn-central"), "ovn-central");
        for (container, env, key) in [
            (controller, "ROVN_NB_REMOTE", "nb-remote"),
            (controller, "ROVN_DEFAULT_CIDR", "default-cidr"),
            (controller, "ROVN_JOIN_CIDR", "join-cidr"),
            (controller, "ROVN_SERVICE_CIDR", "service-cidr"),
            (controller, "ROVN_LB_CIDR", "lb-cidr"),
            (node, "ROVN_OVN_REMOTE", "sb-remote"),
            (node, "ROVN_SERVICE_CIDR", "service-cidr"),
            (node, "ROVN_LB_CIDR", "lb-cidr"),
            (central, "OVN_CENTRAL_IPS", "ovn-central-ips"),
        ] {
            assert_eq!(
                env_config_key(container, env),
                Some(key),
                "{o}: {} env {env} should come from rovn-config key {key}",
                container.name
            );
        }
        let ranges: Vec<(&str, Ipv4Net)> = ["default-cidr", "join-cidr", "service-cidr"]
            .into_iter()
            .chain(data.contains_key("lb-cidr").then_some("lb-cidr"))
            .map(|key| {
                let value = data
                    .get(key)
                    .unwrap_or_else(|| panic!("{o}: rovn-config lacks {key}"));
                let net = value
                    .parse()
                    .unwrap_or_else(|e| panic!("{o}: rovn-config {key} {value:?}: {e}"));
                (key, net)
            })
            .collect();
        for (i, (a, net_a)) in ranges.iter().enumerate() {
            for (b, net_b) in &ranges[i + 1..] {
                assert!(
                    !net_a.contains(net_b) && !net_b.contains(net_a),
                    "{o}: rovn-config {a} {net_a} and {b} {net_b} overlap"
                );
            }
        }
    }
}

/// OVN central is a three-member raft cluster whose every client names all three members:
/// `nb-remote` and `sb-remote` list exactly the members of `ovn-central-ips`.
#[test]
fn ovn_central_has_three_members_and_clients_name_them_all() {
    for parsed in parse_all() {
        let o = &parsed.overlay;
        let central = parsed.stateful_set("ovn-central");
        let spec = central.spec.as_ref().expect("StatefulSet spec");
        assert_eq!(spec.replicas, Some(3), "{o}");
        assert_eq!(
            spec.pod_management_policy.as_deref(),
            Some("Parallel"),
            "{o}"
        );
        let pod = pod_spec(Some(&spec.template), "ovn-central");
        assert_eq!(
            pod.host_network,
            Some(true),
            "{o}: OVN central is needed before pod networks"
        );
        let anti = pod
            .affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or_default();
        assert!(
            anti.iter()
                .any(|t| t.topology_key == "kubernetes.io/hostname"),
            "{o}: one member per node"
        );
        let container = only_container(pod, "ovn-central");
        for (probe, what) in [
            (&container.readiness_probe, "readiness"),
            (&container.liveness_probe, "liveness"),
        ] {
            assert!(
                probe.as_ref().and_then(|p| p.exec.as_ref()).is_some(),
                "{o}: ovn-central has no {what} probe"
            );
        }
        let [budget] = parsed.disruption_budgets.as_slice() else {
            panic!("{o}: expected one PodDisruptionBudget");
        };
        let budget_spec = budget.spec.as_ref().expect("PDB spec");
        assert_eq!(
            budget_spec.max_unavailable,
            Some(IntOrString::Int(1)),
            "{o}"
        );
        assert_eq!(
            budget_spec
                .selector
                .as_ref()
                .and_then(|s| s.match_labels.clone()),
            spec.selector.match_labels.clone(),
            "{o}: the budget covers ovn-central's pods"
        );
        let services: BTreeSet<&str> = parsed
            .services
            .iter()
            .map(|s| name_of(&s.metadata))
            .collect();
        assert_eq!(
            services,
            BTreeSet::from(["ovn-central", "ovn-nb", "ovn-sb"]),
            "{o}"
        );
        assert_eq!(spec.service_name.as_deref(), Some("ovn-central"), "{o}");

        let data = parsed.config();
        let members: Vec<Ipv4Addr> = data
            .get("ovn-central-ips")
            .map(String::as_str)
            .unwrap_or_default()
            .split(',')
            .map(|ip| {
                ip.parse()
                    .unwrap_or_else(|e| panic!("{o}: ovn-central-ips member {ip:?}: {e}"))
            })
            .collect();
        let distinct: BTreeSet<&Ipv4Addr> = members.iter().collect();
        assert_eq!(
            distinct.len(),
            3,
            "{o}: ovn-central-ips names three members: {members:?}"
        );
        for (key, port) in [("nb-remote", 6641), ("sb-remote", 6642)] {
            let want: Vec<String> = members
                .iter()
                .map(|ip| format!("tcp:{ip}:{port}"))
                .collect();
            assert_eq!(
                data.get(key).map(String::as_str),
                Some(want.join(",").as_str()),
                "{o}: rovn-config {key} should name every ovn-central member"
            );
        }
    }
}

/// Every workload runs the one image (its programs and OVN's come together), and kind's are
/// never pulled: they exist only where `kind load` put them.
#[test]
fn every_workload_runs_the_one_rovn_image() {
    for parsed in parse_all() {
        let o = &parsed.overlay;
        let mut images = BTreeSet::new();
        for (workload, pod) in parsed.pod_specs() {
            for container in pod
                .containers
                .iter()
                .chain(pod.init_containers.iter().flatten())
            {
                let image = container
                    .image
                    .as_deref()
                    .unwrap_or_else(|| panic!("{o}: {workload} has no image"));
                images.insert(image.to_string());
                if o == "kind" {
                    assert_eq!(
                        container.image_pull_policy.as_deref(),
                        Some("Never"),
                        "{o}: {workload}"
                    );
                }
            }
        }
        assert_eq!(images.len(), 1, "{o}: more than one image: {images:?}");
        if o == "kind" {
            assert_eq!(images.first().map(String::as_str), Some("rovn:dev"));
        }
    }
}

/// kind's overlay gives kind's ranges (e2e/kind/kind-config.yaml's serviceSubnet).
#[test]
fn kind_overlay_has_kinds_ranges() {
    let parsed = parse_overlay("kind");
    let data = parsed.config();
    assert_eq!(
        data.get("service-cidr").map(String::as_str),
        Some("10.96.0.0/16")
    );
    assert_eq!(
        data.get("default-cidr").map(String::as_str),
        Some("10.16.0.0/16")
    );
    let kind_config = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/kind/kind-config.yaml"),
    )
    .expect("e2e/kind/kind-config.yaml is readable");
    let kind_config: Value = serde_saphyr::from_str(&kind_config).expect("kind-config is YAML");
    assert_eq!(
        kind_config["networking"]["serviceSubnet"].as_str(),
        data.get("service-cidr").map(String::as_str)
    );
    assert_eq!(
        kind_config["networking"]["podSubnet"].as_str(),
        data.get("default-cidr").map(String::as_str)
    );
}

/// The node DaemonSets run on every node, whatever its taints: a node without them has no pod
/// network (and stays NotReady).
#[test]
fn node_daemonsets_tolerate_every_taint() {
    for parsed in parse_all() {
        for name in ["rovn-node", "ovs-ovn"] {
            let pod = parsed.daemon_set_pod(name);
            assert!(
                pod.tolerations
                    .iter()
                    .flatten()
                    .any(|t| t.operator.as_deref() == Some("Exists")
                        && t.key.is_none()
                        && t.effect.is_none()),
                "{}: {name} does not tolerate every taint",
                parsed.overlay
            );
            assert_eq!(pod.host_network, Some(true), "{name}");
        }
    }
}

/// An agent is taken off a node by labelling the node (maintenance, and how the scenarios stop
/// an agent on a real cluster), and only rovn-node's pods leave: ovs-ovn keeps the switch.
#[test]
fn a_labelled_node_runs_no_agent() {
    for parsed in parse_all() {
        let excluded = |name: &str| {
            parsed
                .daemon_set_pod(name)
                .affinity
                .as_ref()
                .and_then(|a| a.node_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .is_some_and(|required| {
                    required.node_selector_terms.iter().all(|term| {
                        term.match_expressions.iter().flatten().any(|e| {
                            e.key == rovn_api::names::AGENT_STOPPED_LABEL
                                && e.operator == "DoesNotExist"
                        })
                    })
                })
        };
        assert!(
            excluded("rovn-node"),
            "{}: rovn-node must stay off nodes labelled {}",
            parsed.overlay,
            rovn_api::names::AGENT_STOPPED_LABEL
        );
        assert!(!excluded("ovs-ovn"), "{}: ovs-ovn must not", parsed.overlay);
    }
}

/// ovs-ovn runs the switch on the host's OVS state, and keeps it across its own restarts.
#[test]
fn ovs_ovn_daemonset_uses_the_hosts_switch_state() {
    for parsed in parse_all() {
        let pod = parsed.daemon_set_pod("ovs-ovn");
        let container = only_container(pod, "ovs-ovn");
        assert_privileged_with_host_paths(
            pod,
            container,
            &[
                "/run/openvswitch",
                "/var/run/ovn",
                "/etc/openvswitch",
                "/lib/modules",
            ],
        );
        let stop = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| h.exec.as_ref())
            .and_then(|e| e.command.clone());
        assert_eq!(
            stop,
            Some(vec!["start-ovs-ovn.sh".to_string(), "stop".to_string()]),
            "the preStop keeps br-int"
        );
        assert!(container.readiness_probe.is_some() && container.liveness_probe.is_some());
    }
}

/// `container` is privileged and has each host path of `paths` mounted at the same path.
fn assert_privileged_with_host_paths(pod: &PodSpec, container: &Container, paths: &[&str]) {
    assert_eq!(
        container
            .security_context
            .as_ref()
            .and_then(|s| s.privileged),
        Some(true),
        "{} is not privileged",
        container.name
    );
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
    for path in paths {
        assert!(
            mounted.contains(&(*path, Some(*path))),
            "{}: host {path} is not mounted at {path}: {mounted:?}",
            container.name
        );
    }
}

#[test]
fn node_daemonset_has_host_access() {
    for parsed in parse_all() {
        let pod = parsed.daemon_set_pod("rovn-node");
        assert_eq!(pod.service_account_name.as_deref(), Some("rovn-node"));
        let container = only_container(pod, "rovn-node");
        assert_eq!(
            readiness_path(container),
            Some("/readyz"),
            "the agent is ready when it serves CNI"
        );
        let env = env_names(container);
        for name in ["NODE_NAME", "ROVN_OVN_REMOTE"] {
            assert!(env.contains(name), "agent env lacks {name}");
        }
        assert_privileged_with_host_paths(
            pod,
            container,
            &[
                "/run/openvswitch",
                "/etc/cni/net.d",
                "/opt/cni/bin",
                "/run/rovn",
                "/var/run/netns",
            ],
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
