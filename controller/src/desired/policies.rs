//! NetworkPolicies → port groups, address sets and ACLs.
//!
//! - A policy owns a Port_Group of the pods it selects, holding one `allow-related` ACL per rule,
//!   and an Address_Set per rule of its selector peers' addresses (plus one per named port
//!   number, below). Peers and ports are matched in one expression per rule, so a rule is one
//!   ACL however many peers it names.
//! - A namespace owns, per direction some policy of it isolates, a Port_Group of the isolated
//!   pods with one `drop` ACL below every allow.
//! - A node owns a Port_Group of its pods with ACLs allowing traffic between them and the node
//!   (kubelet probes), above the drop.
//!
//! A named port is resolved on each destination pod: the pods that give the name the same
//! number share an address set, and the rule matches `ip4.dst == $set && tcp.dst == number`
//! per number, so one name may mean 80 on one pod and 8080 on another.
//!
//! Egress ACLs are applied after load balancing (`apply-after-lb`): a policy sees a Service's
//! backend, not its VIP. Priorities leave room above for AdminNetworkPolicy and below for
//! BaselineAdminNetworkPolicy ([`ALLOW_PRIORITY`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use rovn_api::names::{self, DIRECTION_KEY, IDENTITY_KEY};
use rovn_api::{Owner, OwnerKind};
use rovn_ovsdb_schemas::nb::{
    Acl, AclAction, AclDirection, AclSeverity, AddressSet, LogicalSwitchPort, Meter, MeterBand,
    MeterBandAction, MeterUnit, PortGroup,
};

use super::cluster::{Direction, Node, Peer, Policy, PolicyPod, PolicyPort, PolicyRule};
use super::selector::Labels;
use super::state::{DesiredState, RowKey};
use rovn_ovsdb::Model;

/// The priority of every NetworkPolicy rule's `allow-related` ACL. OVN 23.03 has no ACL tiers,
/// so the bands are by priority: AdminNetworkPolicy above 30000, NetworkPolicy from 2000 to
/// 2999, BaselineAdminNetworkPolicy from 1000 to 1999 — a baseline rule only sees pods no
/// NetworkPolicy isolates, as the API defines.
pub const ALLOW_PRIORITY: i64 = 2100;

/// Traffic between a pod and its own node, allowed whatever the policies say.
pub const NODE_PRIORITY: i64 = 2050;

/// The namespace's default deny of isolated pods: below every allow of the band.
pub const DENY_PRIORITY: i64 = 2000;

const _: () = assert!(DENY_PRIORITY < NODE_PRIORITY && NODE_PRIORITY < ALLOW_PRIORITY);

/// How many log lines per second all logging ACLs together may cause on a chassis.
const LOG_RATE: i64 = 20;

/// The pods and namespaces policies select from, indexed for the three ways rendering reads
/// them: by namespace (selectors), by node (node groups) and one by one (changes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyPods {
    namespaces: BTreeMap<String, Labels>,
    pods: BTreeMap<String, BTreeMap<String, PolicyPod>>,
    by_node: BTreeMap<String, BTreeSet<(String, String)>>,
}

impl PolicyPods {
    /// Sets `namespace`'s labels (`None`: the namespace is gone).
    pub fn set_namespace(&mut self, namespace: &str, labels: Option<Labels>) {
        match labels {
            Some(labels) => self.namespaces.insert(namespace.to_string(), labels),
            None => self.namespaces.remove(namespace),
        };
    }

    /// A namespace's labels.
    pub fn namespace(&self, namespace: &str) -> Option<&Labels> {
        self.namespaces.get(namespace)
    }

    /// Every namespace with its labels.
    pub fn namespaces(&self) -> impl Iterator<Item = (&String, &Labels)> {
        self.namespaces.iter()
    }

    /// The pod `namespace/name`.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PolicyPod> {
        self.pods.get(namespace)?.get(name)
    }

    /// Sets the pod `namespace/name` (`None`: it has no port any more), returning what it was.
    pub fn set_pod(
        &mut self,
        namespace: &str,
        name: &str,
        pod: Option<PolicyPod>,
    ) -> Option<PolicyPod> {
        let old = self
            .pods
            .get_mut(namespace)
            .and_then(|pods| pods.remove(name));
        if let Some(old) = &old
            && let Some(on_node) = self.by_node.get_mut(&old.node)
        {
            on_node.remove(&(old.namespace.clone(), old.name.clone()));
            if on_node.is_empty() {
                self.by_node.remove(&old.node);
            }
        }
        if self.pods.get(namespace).is_some_and(BTreeMap::is_empty) {
            self.pods.remove(namespace);
        }
        if let Some(pod) = pod {
            self.by_node
                .entry(pod.node.clone())
                .or_default()
                .insert((namespace.to_string(), name.to_string()));
            self.pods
                .entry(namespace.to_string())
                .or_default()
                .insert(name.to_string(), pod);
        }
        old
    }

    /// The pods of `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> impl Iterator<Item = &PolicyPod> {
        self.pods
            .get(namespace)
            .into_iter()
            .flat_map(BTreeMap::values)
    }

    /// Every pod.
    pub fn all(&self) -> impl Iterator<Item = &PolicyPod> {
        self.pods.values().flat_map(BTreeMap::values)
    }

    /// The pods on `node`.
    pub fn on_node<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a PolicyPod> + 'a {
        self.by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|(namespace, name)| self.pod(namespace, name))
    }

    /// The pods `peer` of a policy in `namespace` stands for (the pods of an `ipBlock` are
    /// those whose address it covers).
    pub fn of_peer<'a>(
        &'a self,
        namespace: &'a str,
        peer: &'a Peer,
    ) -> Box<dyn Iterator<Item = &'a PolicyPod> + 'a> {
        match peer {
            Peer::Pods {
                namespaces: None,
                pods,
            } => Box::new(
                self.in_namespace(namespace)
                    .filter(move |p| pods.matches(&p.labels)),
            ),
            Peer::Pods {
                namespaces: Some(selector),
                pods,
            } => Box::new(
                self.namespaces
                    .iter()
                    .filter(move |(_, labels)| selector.matches(labels))
                    .flat_map(move |(ns, _)| self.in_namespace(ns))
                    .filter(move |p| pods.matches(&p.labels)),
            ),
            Peer::Block { .. } => Box::new(self.all().filter(move |p| covers(peer, p.ip))),
        }
    }

    /// Whether `peer` of a policy in `namespace` stands for `pod`: [`PolicyPods::of_peer`]
    /// for one pod.
    pub fn peer_holds(&self, namespace: &str, peer: &Peer, pod: &PolicyPod) -> bool {
        match peer {
            Peer::Pods {
                namespaces: None,
                pods,
            } => pod.namespace == namespace && pods.matches(&pod.labels),
            Peer::Pods {
                namespaces: Some(selector),
                pods,
            } => {
                self.namespace(&pod.namespace)
                    .is_some_and(|labels| selector.matches(labels))
                    && pods.matches(&pod.labels)
            }
            Peer::Block { .. } => covers(peer, pod.ip),
        }
    }

    /// Where `pod`'s address stands in `policy`'s address sets: per rule, whether one of its
    /// selector peers holds it and, when the rule names ports and the pod is one of its
    /// destinations, the number it gives each named port; `None` when it is in none. Two
    /// states of a pod with the same address and the same places leave every set of the
    /// policy as it is, so a change between them needs no render of the policy's sets.
    pub fn places(&self, policy: &Policy, pod: &PolicyPod) -> Option<Vec<RulePlace>> {
        let selected = pod.namespace == policy.namespace && policy.subject.matches(&pod.labels);
        let mut affected = false;
        let places = policy
            .all_rules()
            .map(|(direction, rule)| {
                let named: Vec<(&str, super::cluster::Protocol)> = rule
                    .ports
                    .iter()
                    .flatten()
                    .filter_map(|p| match p {
                        PolicyPort::Named { protocol, name } => Some((name.as_str(), *protocol)),
                        _ => None,
                    })
                    .collect();
                let peer = |p: &Peer| self.peer_holds(&policy.namespace, p, pod);
                let in_peers = match &rule.peers {
                    None => false,
                    Some(peers) => peers
                        .iter()
                        .filter(|p| matches!(p, Peer::Pods { .. }))
                        .any(peer),
                };
                let destination = match (direction, &rule.peers) {
                    (Direction::Ingress, _) => selected,
                    (Direction::Egress, None) => true,
                    (Direction::Egress, Some(peers)) => peers.iter().any(peer),
                };
                let numbers = (!named.is_empty() && destination).then(|| {
                    named
                        .iter()
                        .map(|(name, protocol)| {
                            pod.named_ports
                                .iter()
                                .find(|(n, p, _)| n == name && p == protocol)
                                .map(|(_, _, number)| *number)
                        })
                        .collect()
                });
                affected |= in_peers || numbers.is_some();
                RulePlace { in_peers, numbers }
            })
            .collect();
        affected.then_some(places)
    }

    /// The pods `policy` selects.
    pub fn selected_by<'a>(&'a self, policy: &'a Policy) -> impl Iterator<Item = &'a PolicyPod> {
        self.in_namespace(&policy.namespace)
            .filter(|p| policy.subject.matches(&p.labels))
    }
}

/// Where a pod's address stands in one rule's address sets ([`PolicyPods::places`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePlace {
    /// A selector peer of the rule holds the pod.
    pub in_peers: bool,
    /// When the rule names ports and the pod is a destination of it: the number the pod
    /// gives each named port (`None`: it does not declare the name).
    pub numbers: Option<Vec<Option<u16>>>,
}

/// Whether the `ipBlock` `peer` covers `ip`.
fn covers(peer: &Peer, ip: Ipv4Addr) -> bool {
    match peer {
        Peer::Block { cidr, except } => {
            cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
        }
        Peer::Pods { .. } => false,
    }
}

fn pod_port_key(pod: &PolicyPod) -> RowKey {
    RowKey::name(names::pod_port(&pod.namespace, &pod.name))
}

/// A port group of `owner` holding `members`' ports, with its identity in `external_ids`.
pub(super) fn add_port_group<'a>(
    state: &mut DesiredState,
    owner: &Owner,
    name: &str,
    members: impl Iterator<Item = &'a PolicyPod>,
) {
    let group = PortGroup {
        name: name.to_string(),
        external_ids: BTreeMap::from([(IDENTITY_KEY.to_string(), owner.to_string())]),
        ..Default::default()
    };
    if let Some(row) = state.add(owner, &group, "", None) {
        row.refer(
            PortGroup::PORTS,
            LogicalSwitchPort::TABLE,
            members.map(pod_port_key),
        );
    }
}

/// An ACL of some owner in the port group `group`: what [`add_acl`] needs.
pub(super) struct AclSpec<'a> {
    /// Its `rovn.io/id` among the owner's rows.
    pub id: String,
    /// Its `name` (cut to OVN's 63 bytes).
    pub name: String,
    /// Relative to the group's pods.
    pub direction: Direction,
    /// Its priority.
    pub priority: i64,
    /// Its verdict.
    pub action: AclAction,
    /// Its match.
    pub match_: String,
    /// Whether OVN logs it (through the log meter).
    pub log: bool,
    /// The port group holding it.
    pub group: &'a str,
}

/// Adds an ACL of `owner` to the port group `spec.group`.
pub(super) fn add_acl(state: &mut DesiredState, owner: &Owner, spec: AclSpec<'_>) {
    let mut name = spec.name;
    truncate_bytes(&mut name, 63);
    let (direction, options) = match spec.direction {
        Direction::Ingress => (AclDirection::ToLport, BTreeMap::new()),
        Direction::Egress => (
            AclDirection::FromLport,
            BTreeMap::from([("apply-after-lb".to_string(), "true".to_string())]),
        ),
    };
    let acl = Acl {
        name: Some(name),
        direction,
        priority: spec.priority,
        action: spec.action,
        match_: spec.match_,
        log: spec.log,
        severity: spec.log.then_some(if spec.action == AclAction::Drop {
            AclSeverity::Warning
        } else {
            AclSeverity::Info
        }),
        meter: spec.log.then(|| names::ACL_LOG_METER.to_string()),
        options,
        external_ids: BTreeMap::from([(
            DIRECTION_KEY.to_string(),
            spec.direction.as_str().to_string(),
        )]),
        ..Default::default()
    };
    state.add(owner, &acl, &spec.id, Some(RowKey::name(spec.group)));
}

fn truncate_bytes(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// For `direction`, the field naming the selected pod's port and the one holding the peer's
/// address.
fn fields(direction: Direction) -> (&'static str, &'static str) {
    match direction {
        Direction::Ingress => ("outport", "ip4.src"),
        Direction::Egress => ("inport", "ip4.dst"),
    }
}

/// `alternatives` as one parenthesised disjunction.
fn any_of(alternatives: &[String]) -> String {
    match alternatives {
        [one] => one.clone(),
        many => format!("({})", many.join(" || ")),
    }
}

/// Adds the rows of `policy`: its port group of selected pods, an ACL and address sets per rule.
pub fn render_policy(state: &mut DesiredState, policy: &Policy, pods: &PolicyPods) {
    let owner = Owner::namespaced(OwnerKind::NetworkPolicy, &policy.namespace, &policy.name);
    let group = names::policy_port_group(&policy.namespace, &policy.name);
    add_port_group(state, &owner, &group, pods.selected_by(policy));
    for direction in Direction::BOTH {
        for (index, rule) in policy.rules(direction).into_iter().flatten().enumerate() {
            render_rule(state, &owner, policy, &group, pods, direction, index, rule);
        }
    }
}

/// One rule: its address sets and, unless it can match nothing, its ACL.
#[allow(clippy::too_many_arguments)]
fn render_rule(
    state: &mut DesiredState,
    owner: &Owner,
    policy: &Policy,
    group: &str,
    pods: &PolicyPods,
    direction: Direction,
    index: usize,
    rule: &PolicyRule,
) {
    let (port_field, peer_field) = fields(direction);
    let id = format!("{}.{index}", direction.as_str());
    let address_set = |state: &mut DesiredState, set: &str, ips: BTreeSet<Ipv4Addr>| {
        let name = names::policy_address_set(&policy.namespace, &policy.name, set);
        let row = AddressSet {
            name: name.clone(),
            addresses: ips.iter().map(ToString::to_string).collect(),
            external_ids: BTreeMap::from([(IDENTITY_KEY.to_string(), format!("{owner}/{set}"))]),
            ..Default::default()
        };
        state.add(owner, &row, "", None);
        name
    };

    let mut conditions = vec![format!("{port_field} == @{group}"), "ip4".to_string()];
    if let Some(peers) = &rule.peers {
        let mut alternatives = Vec::new();
        let selected: BTreeSet<Ipv4Addr> = peers
            .iter()
            .filter(|p| matches!(p, Peer::Pods { .. }))
            .flat_map(|p| pods.of_peer(&policy.namespace, p).map(|pod| pod.ip))
            .collect();
        if peers.iter().any(|p| matches!(p, Peer::Pods { .. })) {
            let set = address_set(state, &id, selected);
            alternatives.push(format!("{peer_field} == ${set}"));
        }
        for peer in peers {
            if let Peer::Block { cidr, except } = peer {
                alternatives.push(match except.as_slice() {
                    [] => format!("{peer_field} == {cidr}"),
                    except => format!(
                        "({peer_field} == {cidr} && {peer_field} != {{{}}})",
                        except
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        if alternatives.is_empty() {
            return;
        }
        conditions.push(any_of(&alternatives));
    }
    if let Some(ports) = &rule.ports {
        let mut alternatives = Vec::new();
        for port in ports {
            match port {
                PolicyPort::Any(protocol) => alternatives.push(protocol.as_str().to_string()),
                PolicyPort::Range {
                    protocol,
                    start,
                    end,
                } if start == end => {
                    alternatives.push(format!("{}.dst == {start}", protocol.as_str()))
                }
                PolicyPort::Range {
                    protocol,
                    start,
                    end,
                } => alternatives.push(format!(
                    "({p}.dst >= {start} && {p}.dst <= {end})",
                    p = protocol.as_str()
                )),
                PolicyPort::Named { protocol, name } => {
                    for (number, ips) in
                        named_port_numbers(pods, policy, direction, rule, name, *protocol)
                    {
                        let set_id = format!("{id}.{name}.{}.{number}", protocol.as_str());
                        let set = address_set(state, &set_id, ips);
                        alternatives.push(format!(
                            "(ip4.dst == ${set} && {}.dst == {number})",
                            protocol.as_str()
                        ));
                    }
                }
            }
        }
        if alternatives.is_empty() {
            return;
        }
        conditions.push(any_of(&alternatives));
    }
    add_acl(
        state,
        owner,
        AclSpec {
            name: format!("{}/{}:{id}", policy.namespace, policy.name),
            id,
            direction,
            priority: ALLOW_PRIORITY,
            action: AclAction::AllowRelated,
            match_: conditions.join(" && "),
            log: policy.log.allow,
            group,
        },
    );
}

/// For a named port of `rule`, the numbers the destination pods give it, each with the
/// addresses of the pods that give it that number. The destinations are the selected pods for
/// ingress, and for egress the rule's peers (every pod when it names none).
fn named_port_numbers(
    pods: &PolicyPods,
    policy: &Policy,
    direction: Direction,
    rule: &PolicyRule,
    name: &str,
    protocol: super::cluster::Protocol,
) -> BTreeMap<u16, BTreeSet<Ipv4Addr>> {
    let destinations: Vec<&PolicyPod> = match (direction, &rule.peers) {
        (Direction::Ingress, _) => pods.selected_by(policy).collect(),
        (Direction::Egress, None) => pods.all().collect(),
        (Direction::Egress, Some(peers)) => peers
            .iter()
            .flat_map(|p| pods.of_peer(&policy.namespace, p))
            .collect(),
    };
    let mut numbers: BTreeMap<u16, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for pod in destinations {
        if let Some((_, _, number)) = pod
            .named_ports
            .iter()
            .find(|(n, p, _)| n == name && *p == protocol)
        {
            numbers.entry(*number).or_default().insert(pod.ip);
        }
    }
    numbers
}

/// Adds `namespace`'s default deny: per direction some of `policies` (the namespace's) isolate,
/// a port group of the pods they select and a `drop` ACL below every allow.
pub fn render_namespace(
    state: &mut DesiredState,
    namespace: &str,
    policies: &[&Policy],
    pods: &PolicyPods,
) {
    let owner = Owner::cluster_scoped(OwnerKind::Namespace, namespace);
    for direction in Direction::BOTH {
        let isolating: Vec<&&Policy> = policies
            .iter()
            .filter(|p| p.rules(direction).is_some())
            .collect();
        if isolating.is_empty() {
            continue;
        }
        let group = names::default_deny_port_group(namespace, direction.as_str());
        let members: BTreeMap<&str, &PolicyPod> = isolating
            .iter()
            .flat_map(|p| pods.selected_by(p))
            .map(|pod| (pod.name.as_str(), pod))
            .collect();
        add_port_group(state, &owner, &group, members.into_values());
        let (port_field, _) = fields(direction);
        add_acl(
            state,
            &owner,
            AclSpec {
                id: format!("deny-{}", direction.as_str()),
                name: format!("{namespace}:deny-{}", direction.as_str()),
                direction,
                priority: DENY_PRIORITY,
                action: AclAction::Drop,
                match_: format!("{port_field} == @{group} && ip"),
                log: isolating.iter().any(|p| p.log.deny),
                group: &group,
            },
        );
    }
}

/// Adds `node`'s port group of its pods, with the ACLs that let the node and its pods talk
/// whatever the policies say (kubelet probes come from the node's `ovn0`).
pub fn render_node_group(state: &mut DesiredState, node: &Node, pods: &PolicyPods) {
    let owner = Owner::node(&node.name);
    let group = names::node_port_group(&node.name);
    add_port_group(state, &owner, &group, pods.on_node(&node.name));
    for direction in Direction::BOTH {
        let (port_field, peer_field) = fields(direction);
        let id = match direction {
            Direction::Ingress => "from-node",
            Direction::Egress => "to-node",
        };
        add_acl(
            state,
            &owner,
            AclSpec {
                id: id.to_string(),
                name: format!("node/{}:{id}", node.name),
                direction,
                priority: NODE_PRIORITY,
                action: AclAction::AllowRelated,
                match_: format!(
                    "{port_field} == @{group} && {peer_field} == {}",
                    node.join_ip
                ),
                log: false,
                group: &group,
            },
        );
    }
}

/// Adds the meter every logging ACL names, so a flood of logged packets cannot flood
/// ovn-controller's log: one band dropping log lines beyond [`LOG_RATE`] per second.
pub fn render_log_meter(state: &mut DesiredState, owner: &Owner) {
    let meter = Meter {
        name: names::ACL_LOG_METER.to_string(),
        unit: MeterUnit::Pktps,
        ..Default::default()
    };
    state.add(owner, &meter, "", None);
    let band = MeterBand {
        action: MeterBandAction::Drop,
        rate: LOG_RATE,
        burst_size: LOG_RATE,
        ..Default::default()
    };
    state.add(
        owner,
        &band,
        "acl-log",
        Some(RowKey::name(names::ACL_LOG_METER)),
    );
}

#[cfg(test)]
mod tests;
