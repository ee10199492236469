//! `networking.k8s.io/v1` NetworkPolicy as a pure function of the cluster's objects: given the
//! namespaces (labels), the pods (labels, IP, container ports) and the policies, is a
//! connection from one pod to another on a port and protocol allowed? Written from the API
//! reference, independent of rovn's controller, so a table of its answers is the truth the
//! controller is held to.
//!
//! A pod reaching itself is always allowed: that traffic never leaves the pod's network
//! namespace, as upstream's conformance model assumes too.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::selector::{Labels, Selector, SelectorError};
use crate::scenario::cluster::PodRef;

/// Why the model cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A policy's selector is malformed.
    #[error("NetworkPolicy {policy}: {source}")]
    Selector {
        /// `namespace/name` of the policy.
        policy: String,
        /// What is wrong.
        #[source]
        source: SelectorError,
    },
    /// A policy field the API would have rejected (or defaulted) is not usable.
    #[error("NetworkPolicy {policy}: {problem}")]
    Policy {
        /// `namespace/name` of the policy.
        policy: String,
        /// What is wrong.
        problem: String,
    },
    /// A pod lacks something the model needs.
    #[error("pod {pod}: {problem}")]
    Pod {
        /// The pod.
        pod: PodRef,
        /// What is missing.
        problem: String,
    },
    /// A pod the question names is not in the model.
    #[error("pod {0} is not in the model")]
    UnknownPod(PodRef),
    /// A pod's namespace is not in the model (its labels are needed for namespace selectors).
    #[error("namespace {0} is not in the model")]
    UnknownNamespace(String),
    /// The backends of a Service disagree, so what a connection to it meets depends on the
    /// backend the load balancer picks: a test would be a coin toss.
    #[error(
        "{from} → {port}/{protocol}: the backends disagree ({allowed:?} allowed, {denied:?} denied)"
    )]
    BackendsDisagree {
        /// The client.
        from: PodRef,
        /// The target port.
        port: u16,
        /// The protocol.
        protocol: Protocol,
        /// Backends the connection may reach.
        allowed: Vec<PodRef>,
        /// Backends it may not.
        denied: Vec<PodRef>,
    },
}

/// A transport NetworkPolicy ports name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP, the API's default.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses the API's spelling; `None` (unset) is TCP, as the API defaults it.
    pub fn from_api(text: Option<&str>) -> Option<Protocol> {
        match text.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// A container port: what named policy ports resolve against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPort {
    /// Its name, if it has one.
    pub name: Option<String>,
    /// The number.
    pub number: u16,
    /// The protocol.
    pub protocol: Protocol,
}

/// What the model knows of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPod {
    /// Namespace and name.
    pub pod: PodRef,
    /// Its labels.
    pub labels: Labels,
    /// Its IP (what `ipBlock` peers match).
    pub ip: Ipv4Addr,
    /// The container ports of all its containers.
    pub ports: Vec<ContainerPort>,
}

impl ModelPod {
    /// Reads a pod from the API; it must have an IPv4 `status.podIP`.
    pub fn from_pod(pod: &Pod) -> Result<ModelPod, ModelError> {
        let key = crate::scenario::pods::pod_ref(pod);
        let problem = |problem: String| ModelError::Pod {
            pod: key.clone(),
            problem,
        };
        let ip = crate::scenario::pods::pod_ip(pod)
            .ok_or_else(|| problem("no IPv4 podIP yet".into()))?;
        let mut ports = Vec::new();
        for container in pod.spec.iter().flat_map(|s| &s.containers) {
            for p in container.ports.iter().flatten() {
                let number = u16::try_from(p.container_port)
                    .map_err(|_| problem(format!("container port {}", p.container_port)))?;
                let protocol = Protocol::from_api(p.protocol.as_deref())
                    .ok_or_else(|| problem(format!("container port protocol {:?}", p.protocol)))?;
                ports.push(ContainerPort {
                    name: p.name.clone(),
                    number,
                    protocol,
                });
            }
        }
        Ok(ModelPod {
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            pod: key,
            ip,
            ports,
        })
    }

    /// The number of its container port `name` for `protocol`, if it has one.
    fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name) && p.protocol == protocol)
            .map(|p| p.number)
    }
}

#[derive(Debug, Clone)]
enum PortMatch {
    /// Every port of the protocol (`port` unset).
    All,
    /// `port` (to `endPort` when set).
    Range(u16, u16),
    /// A container port name, resolved on the destination pod.
    Named(String),
}

#[derive(Debug, Clone)]
struct PortRule {
    protocol: Protocol,
    port: PortMatch,
}

impl PortRule {
    fn matches(&self, destination: &ModelPod, port: u16, protocol: Protocol) -> bool {
        if protocol != self.protocol {
            return false;
        }
        match &self.port {
            PortMatch::All => true,
            PortMatch::Range(first, last) => (*first..=*last).contains(&port),
            PortMatch::Named(name) => destination.named_port(name, protocol) == Some(port),
        }
    }
}

#[derive(Debug, Clone)]
enum Namespaces {
    /// The policy's own namespace (a peer with only `podSelector`).
    Own,
    /// Namespaces whose labels match.
    Matching(Selector),
}

#[derive(Debug, Clone)]
enum Peer {
    Pods {
        namespaces: Namespaces,
        pods: Selector,
    },
    Block {
        cidr: IpNet,
        except: Vec<IpNet>,
    },
}

#[derive(Debug, Clone)]
struct Rule {
    /// `None`: from/to missing or empty, any peer.
    peers: Option<Vec<Peer>>,
    /// `None`: ports missing or empty, every port and protocol.
    ports: Option<Vec<PortRule>>,
}

#[derive(Debug, Clone)]
struct Policy {
    namespace: String,
    selects: Selector,
    /// `Some` when the policy isolates for ingress (its rules, possibly none).
    ingress: Option<Vec<Rule>>,
    /// `Some` when the policy isolates for egress.
    egress: Option<Vec<Rule>>,
}

/// The whole question: namespaces, pods and policies. Built once per cluster state.
#[derive(Debug, Clone)]
pub struct Model {
    namespaces: BTreeMap<String, Labels>,
    pods: BTreeMap<PodRef, ModelPod>,
    policies: Vec<Policy>,
}

impl Model {
    /// Builds the model; every policy is validated here, so answering cannot fail on it.
    pub fn new(
        namespaces: BTreeMap<String, Labels>,
        pods: Vec<ModelPod>,
        policies: &[NetworkPolicy],
    ) -> Result<Model, ModelError> {
        let policies = policies
            .iter()
            .map(compile_policy)
            .collect::<Result<_, _>>()?;
        Ok(Model {
            namespaces,
            pods: pods.into_iter().map(|p| (p.pod.clone(), p)).collect(),
            policies,
        })
    }

    /// The pods the model knows.
    pub fn pods(&self) -> impl Iterator<Item = &ModelPod> {
        self.pods.values()
    }

    /// One pod.
    pub fn pod(&self, pod: &PodRef) -> Result<&ModelPod, ModelError> {
        self.pods
            .get(pod)
            .ok_or_else(|| ModelError::UnknownPod(pod.clone()))
    }

    /// Whether `from` may open a connection to `to` on `port`/`protocol`: `from`'s egress
    /// allows it (or no policy isolates `from` for egress) and `to`'s ingress allows it (or no
    /// policy isolates `to` for ingress). A pod reaching itself is always allowed.
    pub fn allows(
        &self,
        from: &PodRef,
        to: &PodRef,
        port: u16,
        protocol: Protocol,
    ) -> Result<bool, ModelError> {
        let (source, destination) = (self.pod(from)?, self.pod(to)?);
        if from == to {
            return Ok(true);
        }
        Ok(self.direction_allows(
            source,
            destination,
            destination,
            port,
            protocol,
            Dir::Egress,
        )? && self.direction_allows(
            destination,
            source,
            destination,
            port,
            protocol,
            Dir::Ingress,
        )?)
    }

    /// Whether `from` may reach a Service whose endpoints are `backends`, on target port
    /// `port`: policies apply after load balancing, so the answer is the one for every
    /// backend, and an error when backends disagree.
    pub fn allows_through(
        &self,
        from: &PodRef,
        backends: &[PodRef],
        port: u16,
        protocol: Protocol,
    ) -> Result<bool, ModelError> {
        let (mut allowed, mut denied) = (Vec::new(), Vec::new());
        for backend in backends {
            if self.allows(from, backend, port, protocol)? {
                allowed.push(backend.clone());
            } else {
                denied.push(backend.clone());
            }
        }
        match (allowed.is_empty(), denied.is_empty()) {
            (false, true) => Ok(true),
            (true, _) => Ok(false),
            (false, false) => Err(ModelError::BackendsDisagree {
                from: from.clone(),
                port,
                protocol,
                allowed,
                denied,
            }),
        }
    }

    /// Whether the policies selecting `subject` in direction `dir` let `peer` through (or none
    /// isolates it); ports resolve on `destination`.
    fn direction_allows(
        &self,
        subject: &ModelPod,
        peer: &ModelPod,
        destination: &ModelPod,
        port: u16,
        protocol: Protocol,
        dir: Dir,
    ) -> Result<bool, ModelError> {
        let mut isolated = false;
        for policy in &self.policies {
            if policy.namespace != subject.pod.namespace || !policy.selects.matches(&subject.labels)
            {
                continue;
            }
            let rules = match dir {
                Dir::Ingress => &policy.ingress,
                Dir::Egress => &policy.egress,
            };
            let Some(rules) = rules else { continue };
            isolated = true;
            for rule in rules {
                if self.rule_matches(policy, rule, peer, destination, port, protocol)? {
                    return Ok(true);
                }
            }
        }
        Ok(!isolated)
    }

    fn rule_matches(
        &self,
        policy: &Policy,
        rule: &Rule,
        peer: &ModelPod,
        destination: &ModelPod,
        port: u16,
        protocol: Protocol,
    ) -> Result<bool, ModelError> {
        let ports_ok = rule
            .ports
            .as_ref()
            .is_none_or(|ports| ports.iter().any(|p| p.matches(destination, port, protocol)));
        if !ports_ok {
            return Ok(false);
        }
        let Some(peers) = &rule.peers else {
            return Ok(true);
        };
        for p in peers {
            if self.peer_matches(policy, p, peer)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn peer_matches(
        &self,
        policy: &Policy,
        peer: &Peer,
        pod: &ModelPod,
    ) -> Result<bool, ModelError> {
        match peer {
            Peer::Pods { namespaces, pods } => {
                let namespace_ok = match namespaces {
                    Namespaces::Own => pod.pod.namespace == policy.namespace,
                    Namespaces::Matching(selector) => {
                        let labels = self.namespaces.get(&pod.pod.namespace).ok_or_else(|| {
                            ModelError::UnknownNamespace(pod.pod.namespace.clone())
                        })?;
                        selector.matches(labels)
                    }
                };
                Ok(namespace_ok && pods.matches(&pod.labels))
            }
            Peer::Block { cidr, except } => {
                let ip = IpAddr::V4(pod.ip);
                Ok(cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip)))
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Dir {
    Ingress,
    Egress,
}

fn compile_policy(np: &NetworkPolicy) -> Result<Policy, ModelError> {
    let namespace = np.metadata.namespace.clone().unwrap_or_default();
    let id = format!(
        "{namespace}/{}",
        np.metadata.name.as_deref().unwrap_or_default()
    );
    let empty = NetworkPolicySpec::default();
    let spec = np.spec.as_ref().unwrap_or(&empty);
    let selects = match &spec.pod_selector {
        Some(s) => compile_selector(&id, s)?,
        None => Selector::everything(),
    };
    let types = policy_types(spec).map_err(|problem| invalid(&id, problem))?;
    let ingress = if types.ingress {
        let rules = spec.ingress.iter().flatten();
        Some(
            rules
                .map(|r| compile_rule(&id, r.from.as_deref(), r.ports.as_deref()))
                .collect::<Result<_, _>>()?,
        )
    } else {
        None
    };
    let egress = if types.egress {
        let rules = spec.egress.iter().flatten();
        Some(
            rules
                .map(|r| compile_rule(&id, r.to.as_deref(), r.ports.as_deref()))
                .collect::<Result<_, _>>()?,
        )
    } else {
        None
    };
    Ok(Policy {
        namespace,
        selects,
        ingress,
        egress,
    })
}

fn invalid(policy: &str, problem: String) -> ModelError {
    ModelError::Policy {
        policy: policy.to_string(),
        problem,
    }
}

fn compile_selector(policy: &str, selector: &LabelSelector) -> Result<Selector, ModelError> {
    Selector::new(selector).map_err(|source| ModelError::Selector {
        policy: policy.to_string(),
        source,
    })
}

struct Types {
    ingress: bool,
    egress: bool,
}

/// `policyTypes`, or when unset the API's default: Ingress always, Egress when the policy has
/// egress rules (`len(spec.egress) != 0`).
fn policy_types(spec: &NetworkPolicySpec) -> Result<Types, String> {
    match spec.policy_types.as_ref().filter(|t| !t.is_empty()) {
        None => Ok(Types {
            ingress: true,
            egress: spec.egress.as_ref().is_some_and(|e| !e.is_empty()),
        }),
        Some(types) => {
            let mut out = Types {
                ingress: false,
                egress: false,
            };
            for t in types {
                match t.as_str() {
                    "Ingress" => out.ingress = true,
                    "Egress" => out.egress = true,
                    other => return Err(format!("unknown policy type {other:?}")),
                }
            }
            Ok(out)
        }
    }
}

fn compile_rule(
    policy: &str,
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
) -> Result<Rule, ModelError> {
    let peers = match peers.filter(|p| !p.is_empty()) {
        None => None,
        Some(peers) => Some(
            peers
                .iter()
                .map(|p| compile_peer(policy, p))
                .collect::<Result<_, _>>()?,
        ),
    };
    let ports = match ports.filter(|p| !p.is_empty()) {
        None => None,
        Some(ports) => Some(
            ports
                .iter()
                .map(|p| compile_port(p).map_err(|problem| invalid(policy, problem)))
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(Rule { peers, ports })
}

fn compile_peer(policy: &str, peer: &NetworkPolicyPeer) -> Result<Peer, ModelError> {
    match (&peer.ip_block, &peer.namespace_selector, &peer.pod_selector) {
        (Some(block), None, None) => {
            let parse = |cidr: &str| {
                cidr.parse::<IpNet>()
                    .map(|n| n.trunc())
                    .map_err(|e| invalid(policy, format!("ipBlock {cidr:?}: {e}")))
            };
            Ok(Peer::Block {
                cidr: parse(&block.cidr)?,
                except: block
                    .except
                    .iter()
                    .flatten()
                    .map(|e| parse(e))
                    .collect::<Result<_, _>>()?,
            })
        }
        (Some(_), _, _) => Err(invalid(
            policy,
            "a peer with ipBlock may have no other field".into(),
        )),
        (None, None, None) => Err(invalid(
            policy,
            "a peer needs podSelector, namespaceSelector or ipBlock".into(),
        )),
        (None, namespaces, pods) => Ok(Peer::Pods {
            namespaces: match namespaces {
                None => Namespaces::Own,
                Some(s) => Namespaces::Matching(compile_selector(policy, s)?),
            },
            pods: match pods {
                None => Selector::everything(),
                Some(s) => compile_selector(policy, s)?,
            },
        }),
    }
}

fn compile_port(port: &NetworkPolicyPort) -> Result<PortRule, String> {
    let protocol = Protocol::from_api(port.protocol.as_deref())
        .ok_or_else(|| format!("unknown protocol {:?}", port.protocol))?;
    let number = |n: i32| u16::try_from(n).map_err(|_| format!("port {n} out of range"));
    let port = match (&port.port, port.end_port) {
        (None, None) => PortMatch::All,
        (None, Some(_)) => return Err("endPort without port".into()),
        (Some(IntOrString::Int(n)), None) => PortMatch::Range(number(*n)?, number(*n)?),
        (Some(IntOrString::Int(n)), Some(end)) if end >= *n => {
            PortMatch::Range(number(*n)?, number(end)?)
        }
        (Some(IntOrString::Int(n)), Some(end)) => {
            return Err(format!("endPort {end} below port {n}"));
        }
        (Some(IntOrString::String(name)), None) => PortMatch::Named(name.clone()),
        (Some(IntOrString::String(name)), Some(_)) => {
            return Err(format!("endPort with the named port {name:?}"));
        }
    };
    Ok(PortRule { protocol, port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const NAMESPACES: [&str; 3] = ["x", "y", "z"];
    const PODS: [&str; 3] = ["a", "b", "c"];

    fn pod(ns: &str, name: &str) -> PodRef {
        PodRef::new(ns, name)
    }

    /// Upstream's layout: x, y, z labelled `ns=<name>`, pods a, b, c labelled `pod=<name>`,
    /// each with TCP and UDP 80 and 81 named `serve-<port>-<proto>`; IP 10.0.<ns>.<pod>.
    fn pods() -> Vec<ModelPod> {
        let mut out = Vec::new();
        for (i, ns) in NAMESPACES.iter().enumerate() {
            for (j, name) in PODS.iter().enumerate() {
                let mut ports = Vec::new();
                for number in [80, 81] {
                    for protocol in [Protocol::Tcp, Protocol::Udp] {
                        ports.push(ContainerPort {
                            name: Some(format!(
                                "serve-{number}-{}",
                                protocol.to_string().to_lowercase()
                            )),
                            number,
                            protocol,
                        });
                    }
                }
                out.push(ModelPod {
                    pod: pod(ns, name),
                    labels: Labels::from([("pod".to_string(), name.to_string())]),
                    ip: Ipv4Addr::new(10, 0, i as u8 + 1, j as u8 + 1),
                    ports,
                });
            }
        }
        out
    }

    fn namespaces() -> BTreeMap<String, Labels> {
        NAMESPACES
            .iter()
            .map(|ns| {
                (
                    ns.to_string(),
                    Labels::from([("ns".to_string(), ns.to_string())]),
                )
            })
            .collect()
    }

    fn policy(ns: &str, name: &str, spec: Value) -> NetworkPolicy {
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"namespace": ns, "name": name},
            "spec": spec,
        }))
        .unwrap()
    }

    fn model_with(pods: Vec<ModelPod>, policies: &[NetworkPolicy]) -> Model {
        Model::new(namespaces(), pods, policies).unwrap()
    }

    fn model(policies: &[NetworkPolicy]) -> Model {
        model_with(pods(), policies)
    }

    fn tcp(m: &Model, from: (&str, &str), to: (&str, &str), port: u16) -> bool {
        m.allows(&pod(from.0, from.1), &pod(to.0, to.1), port, Protocol::Tcp)
            .unwrap()
    }

    fn udp(m: &Model, from: (&str, &str), to: (&str, &str), port: u16) -> bool {
        m.allows(&pod(from.0, from.1), &pod(to.0, to.1), port, Protocol::Udp)
            .unwrap()
    }

    /// "Traffic is allowed to a pod if there are no NetworkPolicies selecting the pod."
    #[test]
    fn without_policies_everything_is_allowed() {
        let m = model(&[]);
        for from in m.pods() {
            for to in m.pods() {
                for protocol in [Protocol::Tcp, Protocol::Udp] {
                    assert!(m.allows(&from.pod, &to.pod, 80, protocol).unwrap());
                }
            }
        }
    }

    /// "An empty podSelector selects all pods in this namespace"; a policy with Ingress and no
    /// ingress rules allows no ingress: x is isolated, y and z are not.
    #[test]
    fn deny_all_ingress_isolates_its_namespace_only() {
        let m = model(&[policy(
            "x",
            "deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        )]);
        assert!(!tcp(&m, ("y", "a"), ("x", "b"), 80));
        assert!(!tcp(&m, ("x", "a"), ("x", "b"), 80));
        assert!(tcp(&m, ("x", "a"), ("y", "b"), 80));
        assert!(tcp(&m, ("z", "a"), ("y", "b"), 81));
    }

    /// A pod reaching itself is allowed whatever the policies (the traffic stays in the pod).
    #[test]
    fn a_pod_always_reaches_itself() {
        let m = model(&[policy(
            "x",
            "deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        )]);
        assert!(tcp(&m, ("x", "a"), ("x", "a"), 80));
        assert!(!tcp(&m, ("x", "a"), ("x", "b"), 80));
    }

    /// "policyTypes ... If this field is not specified, it will default based on the existence
    /// of ingress or egress rules; policies that contain an egress section are assumed to
    /// affect egress, and all policies are assumed to affect ingress."
    #[test]
    fn policy_types_are_implied_when_unset() {
        // Egress rules present, no policyTypes: Ingress (no rules → deny) and Egress.
        let m = model(&[policy(
            "x",
            "implied",
            json!({"podSelector": {"matchLabels": {"pod": "a"}},
                   "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}),
        )]);
        assert!(!tcp(&m, ("y", "a"), ("x", "a"), 80), "ingress implied");
        assert!(tcp(&m, ("x", "a"), ("y", "b"), 80));
        assert!(!tcp(&m, ("x", "a"), ("z", "b"), 80), "egress implied");
        // Without egress rules only Ingress is implied: egress stays open.
        let m = model(&[policy(
            "x",
            "ingress-only",
            json!({"podSelector": {"matchLabels": {"pod": "a"}}}),
        )]);
        assert!(tcp(&m, ("x", "a"), ("z", "b"), 80));
        assert!(!tcp(&m, ("z", "b"), ("x", "a"), 80));
        // An empty egress list implies nothing (the API's `len(egress) != 0`).
        let m = model(&[policy(
            "x",
            "empty-egress",
            json!({"podSelector": {"matchLabels": {"pod": "a"}}, "egress": []}),
        )]);
        assert!(tcp(&m, ("x", "a"), ("z", "b"), 80));
    }

    /// Ingress and egress isolation are independent: an Egress-only policy leaves ingress open,
    /// and allowed = source egress allows AND destination ingress allows.
    #[test]
    fn directions_are_independent_and_both_must_allow() {
        let deny_egress = policy(
            "x",
            "deny-egress",
            json!({"podSelector": {}, "policyTypes": ["Egress"]}),
        );
        let m = model(std::slice::from_ref(&deny_egress));
        assert!(!tcp(&m, ("x", "a"), ("y", "a"), 80));
        assert!(tcp(&m, ("y", "a"), ("x", "a"), 80), "ingress untouched");
        // y/a's egress allows x/b, but x/b's ingress only allows z: denied.
        let m = model(&[
            policy(
                "y",
                "out",
                json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                       "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "x"}}}]}]}),
            ),
            policy(
                "x",
                "in",
                json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "z"}}}]}]}),
            ),
        ]);
        assert!(!tcp(&m, ("y", "a"), ("x", "b"), 80));
        assert!(tcp(&m, ("z", "a"), ("x", "b"), 80));
        assert!(!tcp(&m, ("y", "a"), ("z", "b"), 80), "y/a egress isolated");
    }

    /// "If this field [from/to] is empty or missing, this rule matches all sources"; a rule
    /// `{}` allows everything, while no rule at all allows nothing.
    #[test]
    fn missing_or_empty_peers_match_everyone() {
        for rule in [json!({}), json!({"from": []})] {
            let m = model(&[policy(
                "x",
                "all",
                json!({"podSelector": {}, "ingress": [rule]}),
            )]);
            assert!(tcp(&m, ("z", "c"), ("x", "a"), 81));
            assert!(udp(&m, ("y", "c"), ("x", "b"), 80));
        }
    }

    /// A peer with only podSelector selects pods of the policy's namespace; only
    /// namespaceSelector selects all pods of matching namespaces; both together AND.
    #[test]
    fn peer_selectors_scope_and_combine() {
        let m = model(&[policy(
            "x",
            "peers",
            json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
                {"podSelector": {"matchLabels": {"pod": "b"}}},
            ]}]}),
        )]);
        assert!(tcp(&m, ("x", "b"), ("x", "a"), 80));
        assert!(
            !tcp(&m, ("y", "b"), ("x", "a"), 80),
            "podSelector alone: own namespace"
        );
        let m = model(&[policy(
            "x",
            "ns",
            json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"ns": "y"}}},
            ]}]}),
        )]);
        for p in PODS {
            assert!(tcp(&m, ("y", p), ("x", "a"), 80));
            assert!(!tcp(&m, ("z", p), ("x", "a"), 80));
        }
        assert!(!tcp(&m, ("x", "b"), ("x", "a"), 80));
        let m = model(&[policy(
            "x",
            "and",
            json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
                {"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "In", "values": ["y", "z"]}]},
                 "podSelector": {"matchLabels": {"pod": "b"}}},
            ]}]}),
        )]);
        assert!(tcp(&m, ("y", "b"), ("x", "a"), 80));
        assert!(tcp(&m, ("z", "b"), ("x", "a"), 80));
        assert!(!tcp(&m, ("y", "c"), ("x", "a"), 80));
        assert!(!tcp(&m, ("x", "b"), ("x", "a"), 80));
    }

    /// "Items in this list are combined using a logical OR operation."
    #[test]
    fn peers_are_ored() {
        let m = model(&[policy(
            "x",
            "or",
            json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
                {"podSelector": {"matchLabels": {"pod": "b"}}},
                {"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x", "y"]}]}},
            ]}]}),
        )]);
        assert!(tcp(&m, ("x", "b"), ("x", "a"), 80));
        assert!(tcp(&m, ("z", "c"), ("x", "a"), 80));
        assert!(!tcp(&m, ("x", "c"), ("x", "a"), 80));
        assert!(!tcp(&m, ("y", "b"), ("x", "a"), 80));
    }

    /// ipBlock: "a particular CIDR that is allowed ... except ... CIDRs that should not be
    /// included", matched against the pod's IP.
    #[test]
    fn ip_blocks_with_except() {
        let m = model(&[policy(
            "x",
            "block",
            json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
                {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.2.2/32", "10.0.3.0/24"]}},
            ]}]}),
        )]);
        assert!(tcp(&m, ("y", "a"), ("x", "a"), 80));
        assert!(!tcp(&m, ("y", "b"), ("x", "a"), 80), "excepted /32");
        assert!(!tcp(&m, ("z", "a"), ("x", "a"), 80), "excepted /24");
        assert!(tcp(&m, ("x", "c"), ("x", "a"), 80));
    }

    /// "If this field [ports] is empty or missing, this rule matches all ports"; protocol
    /// defaults to TCP; a port entry without port matches every port of its protocol.
    #[test]
    fn ports_default_and_protocols() {
        let m = model(&[policy(
            "x",
            "ports",
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": 80}, {"protocol": "UDP"}]}]}),
        )]);
        assert!(tcp(&m, ("y", "a"), ("x", "a"), 80));
        assert!(!tcp(&m, ("y", "a"), ("x", "a"), 81));
        assert!(udp(&m, ("y", "a"), ("x", "a"), 80));
        assert!(udp(&m, ("y", "a"), ("x", "a"), 81));
        let m = model(&[policy(
            "x",
            "no-ports",
            json!({"podSelector": {}, "ingress": [{"ports": [], "from": [{"podSelector": {}}]}]}),
        )]);
        assert!(udp(&m, ("x", "b"), ("x", "a"), 81));
        assert!(!udp(&m, ("y", "b"), ("x", "a"), 81));
    }

    /// "endPort indicates that the range of ports from port to endPort ... is allowed."
    #[test]
    fn end_port_ranges() {
        let m = model(&[policy(
            "x",
            "range",
            json!({"podSelector": {}, "ingress": [{"ports": [
                {"port": 80, "endPort": 81, "protocol": "TCP"},
                {"port": 81, "endPort": 82, "protocol": "UDP"},
            ]}]}),
        )]);
        assert!(tcp(&m, ("y", "a"), ("x", "a"), 80));
        assert!(tcp(&m, ("y", "a"), ("x", "a"), 81));
        assert!(!tcp(&m, ("y", "a"), ("x", "a"), 82));
        assert!(!udp(&m, ("y", "a"), ("x", "a"), 80));
        assert!(udp(&m, ("y", "a"), ("x", "a"), 81));
    }

    /// A named port resolves per destination pod (ingress: the selected pod) from its container
    /// ports: one name may be 80 on one pod and 81 on another; a pod without it never matches;
    /// the protocol must match too.
    #[test]
    fn named_ports_resolve_per_destination_pod() {
        let mut pods = pods();
        for p in pods.iter_mut().filter(|p| p.pod.namespace == "x") {
            let number = match p.pod.name.as_str() {
                "a" => 80,
                "b" => 81,
                _ => continue,
            };
            p.ports.push(ContainerPort {
                name: Some("web".into()),
                number,
                protocol: Protocol::Tcp,
            });
        }
        let m = model_with(
            pods.clone(),
            &[policy(
                "x",
                "web",
                json!({"podSelector": {}, "ingress": [{"ports": [{"port": "web"}]}]}),
            )],
        );
        assert!(tcp(&m, ("y", "a"), ("x", "a"), 80));
        assert!(!tcp(&m, ("y", "a"), ("x", "a"), 81));
        assert!(!tcp(&m, ("y", "a"), ("x", "b"), 80));
        assert!(tcp(&m, ("y", "a"), ("x", "b"), 81));
        assert!(!tcp(&m, ("y", "a"), ("x", "c"), 80));
        assert!(!tcp(&m, ("y", "a"), ("x", "c"), 81));
        assert!(!udp(&m, ("y", "a"), ("x", "a"), 80), "web is TCP");
        let m = model_with(
            pods.clone(),
            &[policy(
                "x",
                "udp-name",
                json!({"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-udp", "protocol": "UDP"}]}]}),
            )],
        );
        assert!(udp(&m, ("z", "a"), ("x", "c"), 81));
        assert!(!udp(&m, ("z", "a"), ("x", "c"), 80));
        assert!(!tcp(&m, ("z", "a"), ("x", "c"), 81));
        // The name with the wrong protocol resolves to nothing.
        let m = model_with(
            pods,
            &[policy(
                "x",
                "mismatch",
                json!({"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-udp"}]}]}),
            )],
        );
        assert!(!tcp(&m, ("z", "a"), ("x", "c"), 81));
        assert!(!udp(&m, ("z", "a"), ("x", "c"), 81));
    }

    /// Egress named ports resolve on the peer (the destination), not on the selected pod.
    #[test]
    fn egress_named_ports_resolve_on_the_peer() {
        let mut pods = pods();
        for p in pods.iter_mut() {
            let number = match (p.pod.namespace.as_str(), p.pod.name.as_str()) {
                ("x", "a") => 80,
                ("x", "b") => 81,
                // The selected pod's own meaning of the name must not matter.
                ("y", "a") => 81,
                _ => continue,
            };
            p.ports.push(ContainerPort {
                name: Some("web".into()),
                number,
                protocol: Protocol::Tcp,
            });
        }
        let m = model_with(
            pods,
            &[policy(
                "y",
                "out",
                json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                       "egress": [{"ports": [{"port": "web"}]}]}),
            )],
        );
        assert!(tcp(&m, ("y", "a"), ("x", "a"), 80));
        assert!(!tcp(&m, ("y", "a"), ("x", "a"), 81));
        assert!(tcp(&m, ("y", "a"), ("x", "b"), 81));
        assert!(!tcp(&m, ("y", "a"), ("x", "b"), 80));
        assert!(!tcp(&m, ("y", "a"), ("z", "a"), 81));
        assert!(tcp(&m, ("y", "b"), ("z", "a"), 81), "y/b not selected");
    }

    /// "Traffic is allowed if it matches at least one rule across all of the NetworkPolicy
    /// objects whose podSelector matches the pod": policies add up.
    #[test]
    fn several_policies_add_up() {
        let m = model(&[
            policy(
                "x",
                "from-y",
                json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
                    {"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}),
            ),
            policy(
                "x",
                "from-c",
                json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
                    {"namespaceSelector": {}, "podSelector": {"matchLabels": {"pod": "c"}}}]}]}),
            ),
        ]);
        assert!(tcp(&m, ("y", "a"), ("x", "a"), 80));
        assert!(tcp(&m, ("z", "c"), ("x", "a"), 80));
        assert!(tcp(&m, ("x", "c"), ("x", "a"), 80));
        assert!(!tcp(&m, ("z", "a"), ("x", "a"), 80));
        assert!(tcp(&m, ("z", "a"), ("x", "b"), 80), "x/b not selected");
    }

    /// A policy only selects pods of its own namespace.
    #[test]
    fn policies_select_only_their_namespace() {
        let m = model(&[policy(
            "y",
            "deny",
            json!({"podSelector": {"matchLabels": {"pod": "a"}}}),
        )]);
        assert!(!tcp(&m, ("x", "b"), ("y", "a"), 80));
        assert!(tcp(&m, ("y", "b"), ("x", "a"), 80));
    }

    /// Connections to a Service are judged against its backends; backends that disagree make
    /// the expectation undefined, which is an error, not a guess.
    #[test]
    fn services_take_their_backends_answer() {
        let m = model(&[policy(
            "z",
            "from-y",
            json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}),
        )]);
        let a = [pod("z", "a")];
        assert!(
            m.allows_through(&pod("y", "c"), &a, 80, Protocol::Tcp)
                .unwrap()
        );
        assert!(
            !m.allows_through(&pod("x", "c"), &a, 80, Protocol::Tcp)
                .unwrap()
        );
        let mixed = [pod("z", "a"), pod("z", "b")];
        assert!(matches!(
            m.allows_through(&pod("x", "c"), &mixed, 80, Protocol::Tcp),
            Err(ModelError::BackendsDisagree { .. })
        ));
    }

    /// What the API would reject is an error, never a silent answer.
    #[test]
    fn invalid_policies_are_errors() {
        for spec in [
            json!({"podSelector": {}, "policyTypes": ["Sideways"]}),
            json!({"podSelector": {}, "ingress": [{"from": [{}]}]}),
            json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "nope"}}]}]}),
            json!({"podSelector": {}, "ingress": [{"from": [
                {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]}),
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": "web", "endPort": 90}]}]}),
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": 90, "endPort": 80}]}]}),
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": 80, "protocol": "ICMP"}]}]}),
            json!({"podSelector": {"matchExpressions": [{"key": "k", "operator": "In"}]}}),
        ] {
            assert!(
                Model::new(namespaces(), pods(), &[policy("x", "bad", spec.clone())]).is_err(),
                "{spec}"
            );
        }
    }

    /// Questions about pods the model does not know are errors.
    #[test]
    fn unknown_pods_are_errors() {
        let m = model(&[]);
        assert_eq!(
            m.allows(&pod("x", "a"), &pod("q", "a"), 80, Protocol::Tcp),
            Err(ModelError::UnknownPod(pod("q", "a")))
        );
    }
}
