//! The NetworkPolicy benchmark's cluster as a small model of its own: labelled namespaces,
//! pods with labels and named container ports (one name, two numbers), and a mix of policies
//! (deny-all, namespace selectors, pod AND namespace selectors, several peers, ipBlock with
//! except, named ports, endPort, egress). It renders the Kubernetes manifests and evaluates
//! the spec (which pods a peer stands for, which numbers a named port resolves to) without the
//! controller's code, so the benchmark knows what NB must hold. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};

use super::error::BenchError;
use super::objects::{self, POD_LABEL_KEY, POD_LABEL_VALUE};
use super::stage::PodLayout;

/// Labels of a pod or a namespace.
pub type Labels = BTreeMap<String, String>;

/// The numbers pods give the container port named `http`: even pods 80, odd ones 8080.
pub const HTTP_NUMBERS: [u16; 2] = [80, 8080];
/// `app` label values: `a0` … `a19`.
const APPS: usize = 20;
/// `team` label values of namespaces: `t0` … `t9`.
const TEAMS: usize = 10;
/// `tier` label values.
const TIERS: [&str; 3] = ["web", "api", "db"];
/// Policy kinds, cycled through by policy index ([`NetpolCluster::policy`]).
pub const KINDS: usize = 8;

/// The cluster's shape: how many namespaces, pods and policies.
#[derive(Debug, Clone, Copy)]
pub struct NetpolCluster {
    /// Namespaces `np-000` …, pods spread round robin over them.
    pub namespaces: usize,
    /// NetworkPolicies, spread round robin over the namespaces.
    pub policies: usize,
}

/// A label selector of the kinds the benchmark writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `{}`: everything.
    All,
    /// `matchLabels: {key: value}`.
    Is(&'static str, String),
}

impl Selector {
    /// Whether `labels` satisfy it.
    pub fn matches(&self, labels: &Labels) -> bool {
        match self {
            Selector::All => true,
            Selector::Is(key, value) => labels.get(*key) == Some(value),
        }
    }

    fn manifest(&self) -> Value {
        match self {
            Selector::All => json!({}),
            Selector::Is(key, value) => json!({"matchLabels": {*key: value}}),
        }
    }
}

/// An IPv4 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net(pub Ipv4Addr, pub u8);

impl Net {
    /// Whether it holds `ip`.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.1)).unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.0) & mask
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.0, self.1)
    }
}

/// One `from` / `to` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// `podSelector` and/or `namespaceSelector` (both: AND).
    Pods {
        /// `namespaceSelector`; `None` for the policy's own namespace.
        namespaces: Option<Selector>,
        /// `podSelector`; `None` for every pod of the namespaces.
        pods: Option<Selector>,
    },
    /// `ipBlock`.
    Block {
        /// `cidr`.
        cidr: Net,
        /// `except`.
        except: Vec<Net>,
    },
}

/// A port's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// As Kubernetes writes it.
    pub fn kubernetes(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        }
    }

    /// As OVN matches name it.
    pub fn ovn(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One `ports` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Port {
    /// `port: N`.
    Number(Proto, u16),
    /// `port: N, endPort: M`.
    Range(Proto, u16, u16),
    /// `port: name`.
    Named(Proto, &'static str),
}

/// One ingress or egress rule; `None` lists are absent (all peers, all ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `from` / `to`.
    pub peers: Option<Vec<Peer>>,
    /// `ports`.
    pub ports: Option<Vec<Port>>,
}

/// Ingress or egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Traffic to the selected pods.
    Ingress,
    /// Traffic from them.
    Egress,
}

impl Direction {
    /// As rovn's ACL ids and `policyTypes` (lower case) name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// A NetworkPolicy of the benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its namespace's index.
    pub namespace: usize,
    /// Its name.
    pub name: String,
    /// `podSelector`.
    pub subject: Selector,
    /// Ingress rules when the policy isolates ingress.
    pub ingress: Option<Vec<Rule>>,
    /// Egress rules when it isolates egress.
    pub egress: Option<Vec<Rule>>,
}

impl Policy {
    /// Its rules of `direction`, with rovn's id of each (`ingress.0`, …).
    pub fn rules(&self, direction: Direction) -> impl Iterator<Item = (String, &Rule)> {
        let rules = match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        };
        rules
            .into_iter()
            .flatten()
            .enumerate()
            .map(move |(i, rule)| (format!("{}.{i}", direction.as_str()), rule))
    }

    /// Every rule with its direction and id.
    pub fn all_rules(&self) -> impl Iterator<Item = (Direction, String, &Rule)> {
        [Direction::Ingress, Direction::Egress]
            .into_iter()
            .flat_map(move |d| self.rules(d).map(move |(id, rule)| (d, id, rule)))
    }
}

/// A pod as policies see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPod {
    /// Its namespace's index.
    pub namespace: usize,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: Labels,
    /// Its named container ports.
    pub named_ports: Vec<(&'static str, Proto, u16)>,
    /// Its address, once the controller has given it one.
    pub ip: Option<Ipv4Addr>,
}

/// The name of namespace `n`.
pub fn namespace_name(n: usize) -> String {
    format!("np-{n:03}")
}

fn team(n: usize) -> String {
    format!("t{}", n % TEAMS)
}

fn app(n: usize) -> String {
    format!("a{}", n % APPS)
}

fn is(key: &'static str, value: impl Into<String>) -> Selector {
    Selector::Is(key, value.into())
}

impl NetpolCluster {
    /// The labels of namespace `n` (the API server adds `kubernetes.io/metadata.name`).
    pub fn namespace_labels(&self, n: usize) -> Labels {
        Labels::from([
            ("team".to_string(), team(n)),
            (
                "env".to_string(),
                if n.is_multiple_of(2) { "prod" } else { "dev" }.to_string(),
            ),
        ])
    }

    /// Pod `index` before it has an address: in namespace `index % namespaces`; the `j`th
    /// pod of its namespace is `app=a<j%20>`, `tier` web/api/db by `j%3`, names `http` 80
    /// (even `j`) or 8080 (odd `j`) and `metrics` 9090, and `db` 5432 on the db tier.
    pub fn model_pod(&self, index: usize) -> ModelPod {
        let namespaces = self.namespaces.max(1);
        let j = index / namespaces;
        let tier = TIERS[j % TIERS.len()];
        let mut named_ports = vec![
            ("http", Proto::Tcp, HTTP_NUMBERS[j % 2]),
            ("metrics", Proto::Tcp, 9090),
        ];
        if tier == "db" {
            named_ports.push(("db", Proto::Tcp, 5432));
        }
        ModelPod {
            namespace: index % namespaces,
            name: objects::pod_name(index),
            labels: Labels::from([
                (POD_LABEL_KEY.to_string(), POD_LABEL_VALUE.to_string()),
                ("app".to_string(), app(j)),
                ("tier".to_string(), tier.to_string()),
            ]),
            named_ports,
            ip: None,
        }
    }

    /// Policy `k`: in namespace `k % namespaces`, of kind `k % 8`.
    pub fn policy(&self, k: usize) -> Policy {
        let n = k % self.namespaces.max(1);
        let tcp = |port| Port::Number(Proto::Tcp, port);
        let rule = |peers: Vec<Peer>, ports: Vec<Port>| Rule {
            peers: Some(peers),
            ports: Some(ports),
        };
        let in_namespaces = |s: Selector| Peer::Pods {
            namespaces: Some(s),
            pods: None,
        };
        let here = |s: Selector| Peer::Pods {
            namespaces: None,
            pods: Some(s),
        };
        let (kind, subject, ingress, egress) = match k % KINDS {
            0 => ("deny-all", Selector::All, Some(vec![]), None),
            1 => (
                "from-team",
                is("app", app(k)),
                Some(vec![rule(
                    vec![in_namespaces(is("team", team(k + 1)))],
                    vec![tcp(80)],
                )]),
                None,
            ),
            2 => (
                "api-of-team",
                is("tier", "db"),
                Some(vec![rule(
                    vec![Peer::Pods {
                        namespaces: Some(is("team", team(k + 2))),
                        pods: Some(is("tier", "api")),
                    }],
                    vec![Port::Named(Proto::Tcp, "http")],
                )]),
                None,
            ),
            3 => (
                "several-peers",
                is("app", app(k)),
                Some(vec![rule(
                    vec![
                        here(is("app", app(k + 1))),
                        here(is("app", app(k + 2))),
                        in_namespaces(is("team", team(k + 3))),
                    ],
                    vec![tcp(443), tcp(8443)],
                )]),
                None,
            ),
            4 => (
                "ip-blocks",
                is("tier", "web"),
                Some(vec![rule(
                    vec![
                        Peer::Block {
                            cidr: Net(Ipv4Addr::new(10, 16, 0, 0), 16),
                            except: vec![
                                Net(Ipv4Addr::new(10, 16, 1, 0), 24),
                                Net(Ipv4Addr::new(10, 16, 2, 0), 24),
                            ],
                        },
                        Peer::Block {
                            cidr: Net(Ipv4Addr::new(192, 168, 0, 0), 16),
                            except: vec![],
                        },
                    ],
                    vec![Port::Range(Proto::Tcp, 8000, 8100)],
                )]),
                None,
            ),
            5 => (
                "named-ports",
                is("tier", "api"),
                Some(vec![rule(
                    vec![here(is("tier", "web"))],
                    vec![
                        Port::Named(Proto::Tcp, "http"),
                        Port::Named(Proto::Tcp, "metrics"),
                    ],
                )]),
                None,
            ),
            6 => (
                "egress",
                is("app", app(k)),
                None,
                Some(vec![
                    rule(
                        vec![in_namespaces(is("env", "prod"))],
                        vec![Port::Number(Proto::Udp, 53), tcp(53)],
                    ),
                    rule(
                        vec![here(is("tier", "db"))],
                        vec![Port::Named(Proto::Tcp, "db")],
                    ),
                    rule(
                        vec![Peer::Block {
                            cidr: Net(Ipv4Addr::new(0, 0, 0, 0), 0),
                            except: vec![Net(Ipv4Addr::new(10, 0, 0, 0), 8)],
                        }],
                        vec![tcp(443)],
                    ),
                ]),
            ),
            _ => (
                "both-ways",
                is("tier", "api"),
                Some(vec![Rule {
                    peers: Some(vec![in_namespaces(Selector::All)]),
                    ports: Some(vec![Port::Range(Proto::Tcp, 9000, 9100)]),
                }]),
                Some(vec![Rule {
                    peers: Some(vec![Peer::Pods {
                        namespaces: Some(is("team", team(k))),
                        pods: Some(is("app", app(k + 5))),
                    }]),
                    ports: None,
                }]),
            ),
        };
        Policy {
            namespace: n,
            name: format!("np-{k:04}-{kind}"),
            subject,
            ingress,
            egress,
        }
    }

    /// Every policy.
    pub fn policies(&self) -> Vec<Policy> {
        (0..self.policies).map(|k| self.policy(k)).collect()
    }
}

impl PodLayout for NetpolCluster {
    fn namespaces(&self) -> Result<Vec<Namespace>, BenchError> {
        (0..self.namespaces)
            .map(|n| {
                let manifest = json!({
                    "metadata": {"name": namespace_name(n), "labels": self.namespace_labels(n)}
                });
                serde_json::from_value(manifest).map_err(|e| {
                    BenchError::protocol(format!("namespace {}", namespace_name(n)), e.to_string())
                })
            })
            .collect()
    }

    fn pod(&self, index: usize, node: &str) -> Result<Pod, BenchError> {
        let model = self.model_pod(index);
        let namespace = namespace_name(model.namespace);
        let mut pod = objects::bound_pod(&model.name, &namespace, node)?;
        pod.metadata.labels = Some(model.labels);
        let ports: Value = model
            .named_ports
            .iter()
            .map(|(name, proto, number)| {
                json!({"name": name, "protocol": proto.kubernetes(), "containerPort": number})
            })
            .collect();
        let ports = serde_json::from_value(ports).map_err(|e| {
            BenchError::protocol(
                format!("ports of pod {namespace}/{}", model.name),
                e.to_string(),
            )
        })?;
        if let Some(container) = pod.spec.as_mut().and_then(|s| s.containers.first_mut()) {
            container.ports = Some(ports);
        }
        Ok(pod)
    }
}

fn peer_manifest(peer: &Peer) -> Value {
    match peer {
        Peer::Pods { namespaces, pods } => {
            let mut entry = serde_json::Map::new();
            if let Some(s) = namespaces {
                entry.insert("namespaceSelector".into(), s.manifest());
            }
            if let Some(s) = pods {
                entry.insert("podSelector".into(), s.manifest());
            }
            Value::Object(entry)
        }
        Peer::Block { cidr, except } => {
            let except: Vec<String> = except.iter().map(ToString::to_string).collect();
            json!({"ipBlock": {"cidr": cidr.to_string(), "except": except}})
        }
    }
}

fn port_manifest(port: &Port) -> Value {
    match port {
        Port::Number(proto, n) => json!({"protocol": proto.kubernetes(), "port": n}),
        Port::Range(proto, start, end) => {
            json!({"protocol": proto.kubernetes(), "port": start, "endPort": end})
        }
        Port::Named(proto, name) => json!({"protocol": proto.kubernetes(), "port": name}),
    }
}

fn rules_manifest(rules: &[Rule], peers_field: &str) -> Value {
    rules
        .iter()
        .map(|rule| {
            let mut entry = serde_json::Map::new();
            if let Some(peers) = &rule.peers {
                entry.insert(
                    peers_field.into(),
                    peers.iter().map(peer_manifest).collect(),
                );
            }
            if let Some(ports) = &rule.ports {
                entry.insert("ports".into(), ports.iter().map(port_manifest).collect());
            }
            Value::Object(entry)
        })
        .collect()
}

/// The `spec` of `policy`'s manifest.
pub fn policy_spec(policy: &Policy) -> Value {
    let mut types = Vec::new();
    let mut spec = serde_json::Map::new();
    spec.insert("podSelector".into(), policy.subject.manifest());
    if let Some(rules) = &policy.ingress {
        types.push("Ingress");
        spec.insert("ingress".into(), rules_manifest(rules, "from"));
    }
    if let Some(rules) = &policy.egress {
        types.push("Egress");
        spec.insert("egress".into(), rules_manifest(rules, "to"));
    }
    spec.insert("policyTypes".into(), json!(types));
    Value::Object(spec)
}

/// `policy` as a NetworkPolicy object.
pub fn policy_manifest(policy: &Policy) -> Result<NetworkPolicy, BenchError> {
    let manifest = json!({
        "metadata": {"name": policy.name, "namespace": namespace_name(policy.namespace)},
        "spec": policy_spec(policy),
    });
    serde_json::from_value(manifest)
        .map_err(|e| BenchError::protocol(format!("policy {}", policy.name), e.to_string()))
}

/// The pods and namespaces policies are evaluated over.
#[derive(Debug, Clone)]
pub struct Model {
    /// Every namespace's labels, by index, `kubernetes.io/metadata.name` included.
    pub namespaces: Vec<Labels>,
    /// Every pod.
    pub pods: Vec<ModelPod>,
}

impl Model {
    /// The cluster's namespaces and `pods` pods, without addresses yet.
    pub fn new(cluster: &NetpolCluster, pods: usize) -> Model {
        let namespaces = (0..cluster.namespaces)
            .map(|n| {
                let mut labels = cluster.namespace_labels(n);
                labels.insert("kubernetes.io/metadata.name".into(), namespace_name(n));
                labels
            })
            .collect();
        Model {
            namespaces,
            pods: (0..pods).map(|i| cluster.model_pod(i)).collect(),
        }
    }

    /// The pods `peer` of `policy` stands for (an `ipBlock`: those whose address it covers).
    pub fn peer_pods<'a>(
        &'a self,
        policy: &'a Policy,
        peer: &'a Peer,
    ) -> impl Iterator<Item = &'a ModelPod> + 'a {
        self.pods.iter().filter(move |pod| match peer {
            Peer::Pods { namespaces, pods } => {
                let namespace_ok = match namespaces {
                    None => pod.namespace == policy.namespace,
                    Some(s) => self
                        .namespaces
                        .get(pod.namespace)
                        .is_some_and(|labels| s.matches(labels)),
                };
                namespace_ok && pods.as_ref().is_none_or(|s| s.matches(&pod.labels))
            }
            Peer::Block { cidr, except } => pod
                .ip
                .is_some_and(|ip| cidr.contains(ip) && !except.iter().any(|e| e.contains(ip))),
        })
    }

    /// The addresses of the pods `rule`'s selector peers stand for (rovn's one set per rule).
    pub fn selector_addresses(&self, policy: &Policy, rule: &Rule) -> BTreeSet<Ipv4Addr> {
        rule.peers
            .iter()
            .flatten()
            .filter(|p| matches!(p, Peer::Pods { .. }))
            .flat_map(|p| self.peer_pods(policy, p))
            .filter_map(|pod| pod.ip)
            .collect()
    }

    /// For the named port `name` of `rule`, each number its destination pods give it with
    /// their addresses: for ingress the selected pods, for egress the rule's peers (every pod
    /// without peers).
    pub fn named_numbers(
        &self,
        policy: &Policy,
        direction: Direction,
        rule: &Rule,
        name: &str,
        proto: Proto,
    ) -> BTreeMap<u16, BTreeSet<Ipv4Addr>> {
        let destinations: Vec<&ModelPod> = match (direction, &rule.peers) {
            (Direction::Ingress, _) => self.selected(policy).collect(),
            (Direction::Egress, None) => self.pods.iter().collect(),
            (Direction::Egress, Some(peers)) => peers
                .iter()
                .flat_map(|p| self.peer_pods(policy, p))
                .collect(),
        };
        let mut numbers: BTreeMap<u16, BTreeSet<Ipv4Addr>> = BTreeMap::new();
        for pod in destinations {
            if let Some((_, _, number)) = pod
                .named_ports
                .iter()
                .find(|(n, p, _)| *n == name && *p == proto)
            {
                let set = numbers.entry(*number).or_default();
                set.extend(pod.ip);
            }
        }
        numbers
    }

    /// The pods `policy` selects.
    pub fn selected<'a>(&'a self, policy: &'a Policy) -> impl Iterator<Item = &'a ModelPod> + 'a {
        self.pods
            .iter()
            .filter(|p| p.namespace == policy.namespace && policy.subject.matches(&p.labels))
    }

    /// Whether `rule` gets an ACL: it can match something (a selector peer always makes an
    /// address set to match, even an empty one; a named port needs a destination giving it a
    /// number). Needs no addresses for the benchmark's policies, whose named-port rules have no
    /// `ipBlock`.
    pub fn rule_has_acl(&self, policy: &Policy, direction: Direction, rule: &Rule) -> bool {
        let peers_ok = rule.peers.as_ref().is_none_or(|peers| !peers.is_empty());
        let ports_ok = rule.ports.as_ref().is_none_or(|ports| {
            ports.iter().any(|port| match port {
                Port::Named(proto, name) => !self
                    .named_numbers(policy, direction, rule, name, *proto)
                    .is_empty(),
                _ => true,
            })
        });
        peers_ok && ports_ok
    }

    /// The address sets rovn must hold for `policy`, by their id among the policy's sets
    /// (`ingress.0`, `ingress.0.http.tcp.80`, …), with their addresses.
    pub fn address_sets(&self, policy: &Policy) -> BTreeMap<String, BTreeSet<Ipv4Addr>> {
        let mut sets = BTreeMap::new();
        for (direction, id, rule) in policy.all_rules() {
            let peers = rule.peers.iter().flatten();
            if peers.clone().any(|p| matches!(p, Peer::Pods { .. })) {
                sets.insert(id.clone(), self.selector_addresses(policy, rule));
            }
            if !self.rule_has_acl(policy, direction, rule) {
                continue;
            }
            for port in rule.ports.iter().flatten() {
                if let Port::Named(proto, name) = port {
                    for (number, ips) in self.named_numbers(policy, direction, rule, name, *proto) {
                        sets.insert(format!("{id}.{name}.{}.{number}", proto.ovn()), ips);
                    }
                }
            }
        }
        sets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> NetpolCluster {
        NetpolCluster {
            namespaces: 4,
            policies: 16,
        }
    }

    #[test]
    fn pods_of_a_namespace_disagree_on_the_number_of_http() {
        let c = cluster();
        let (first, second) = (c.model_pod(0), c.model_pod(4));
        assert_eq!(first.namespace, second.namespace);
        assert_eq!(first.named_ports[0], ("http", Proto::Tcp, 80));
        assert_eq!(second.named_ports[0], ("http", Proto::Tcp, 8080));
        assert_ne!(first.labels["app"], second.labels["app"]);
    }

    #[test]
    fn manifests_parse_as_kubernetes_objects() {
        let c = cluster();
        for policy in c.policies() {
            let object = policy_manifest(&policy).unwrap();
            assert_eq!(object.metadata.name.as_deref(), Some(policy.name.as_str()));
        }
        let pod = PodLayout::pod(&c, 6, "bench-node-0").unwrap();
        let ports = &pod.spec.unwrap().containers[0].ports.clone().unwrap();
        assert_eq!(ports[0].name.as_deref(), Some("http"));
        assert_eq!(PodLayout::namespaces(&c).unwrap().len(), 4);
    }

    #[test]
    fn peers_follow_the_spec() {
        let c = cluster();
        let mut model = Model::new(&c, 40);
        for (i, pod) in model.pods.iter_mut().enumerate() {
            pod.ip = Some(Ipv4Addr::new(10, 16, 0, 10 + i as u8));
        }
        // Policy 1 (namespace 1) admits namespaces of team t2: namespace 2 only.
        let policy = c.policy(1);
        let (_, rule) = policy.rules(Direction::Ingress).next().unwrap();
        let ips = model.selector_addresses(&policy, rule);
        let expected: BTreeSet<Ipv4Addr> = model
            .pods
            .iter()
            .filter(|p| p.namespace == 2)
            .filter_map(|p| p.ip)
            .collect();
        assert_eq!(ips, expected);
        // A named port resolved per destination pod: two numbers for `http`.
        let named = c.policy(5);
        let (_, rule) = named.rules(Direction::Ingress).next().unwrap();
        let numbers = model.named_numbers(&named, Direction::Ingress, rule, "http", Proto::Tcp);
        assert_eq!(numbers.keys().copied().collect::<Vec<_>>(), vec![80, 8080]);
        let sets = model.address_sets(&named);
        assert!(sets.contains_key("ingress.0"));
        assert!(sets.contains_key("ingress.0.http.tcp.8080"));
        assert!(sets.contains_key("ingress.0.metrics.tcp.9090"));
        // The except of an ipBlock is left out.
        assert!(Net(Ipv4Addr::new(10, 16, 0, 0), 16).contains(Ipv4Addr::new(10, 16, 2, 3)));
        assert!(!Net(Ipv4Addr::new(10, 16, 1, 0), 24).contains(Ipv4Addr::new(10, 16, 2, 3)));
        assert!(Net(Ipv4Addr::new(0, 0, 0, 0), 0).contains(Ipv4Addr::new(1, 2, 3, 4)));
        // A deny-all policy has no rule, hence no ACL of its own.
        assert_eq!(c.policy(0).all_rules().count(), 0);
    }
}
