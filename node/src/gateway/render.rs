//! [`GatewayState`] → the `ip rovn` table as nftables JSON objects (pure).
//!
//! Per-packet cost must not grow with the number of Services, so every frontend is an element of
//! one of two maps keyed by `daddr . l4proto . dport`, looked up once per new connection (NAT
//! chains only see a connection's first packet; conntrack carries the rest):
//! - `dnat_addrs` (`… : ipv4_addr`) and `dnat_ports` (`… : inet_service`): frontends with
//!   exactly one destination (a ClusterIP, a hostPort pod, a Local Service with one endpoint on
//!   this node). Two maps rather than one with `ipv4_addr . inet_service` data: nft 1.0.6
//!   (Debian bookworm) crashes parsing a JSON `dnat` through a named map with concatenated data;
//! - `dnat_chains` (`… : verdict`): Local Services with several endpoints here (`goto` a chain
//!   that picks one with `numgen`) or none (`drop`).
//!
//! `postrouting` SNATs what this node DNATed into OVN when replies must come back through it
//! (Cluster policy, and clients inside the cluster), and masquerades `natOutgoing` pods leaving
//! the cluster. Every rule carries a comment ending in a fingerprint of the rule itself, which is
//! how a read-back tells whether the kernel holds this exact rule ([`super::observed`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddrV4;

use ipnet::Ipv4Net;
use nftables::expr::{
    CT, Expression, Meta, MetaKey, NamedExpression, NgMode, Numgen, Payload, PayloadField, Prefix,
    SetItem, Verdict,
};
use nftables::schema::{
    Chain, FlushObject, Map, NfCmd, NfListObject, NfObject, Nftables, Rule, Set, SetFlag, SetType,
    SetTypeValue, Table,
};
use nftables::stmt::{JumpTarget, Match, NAT, Operator, Statement, VerdictMap};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use super::state::{Frontend, GatewayState, Target};

/// The table's name (family `ip`): the agent owns it whole and never touches another.
pub const TABLE: &str = "rovn";
/// Pod Subnets, join and Service CIDRs: "inside the cluster".
pub const CLUSTER_RANGES: &str = "cluster_ranges";
/// The `natOutgoing` pod Subnets.
pub const NAT_OUTGOING: &str = "nat_outgoing";
/// Frontends with one destination: its address.
pub const DNAT_ADDRS: &str = "dnat_addrs";
/// Frontends with one destination: its port.
pub const DNAT_PORTS: &str = "dnat_ports";
/// Frontends balanced over several local endpoints, or dropped.
pub const DNAT_CHAINS: &str = "dnat_chains";
/// The regular chain both DNAT hooks jump to.
pub const SERVICES_CHAIN: &str = "services";

const FAMILY: NfFamily = NfFamily::IP;
/// `dstnat` and `srcnat`, as `nft` names the standard NAT priorities.
const DSTNAT: i32 = -100;
const SRCNAT: i32 = 100;

fn s(text: impl Into<String>) -> Cow<'static, str> {
    Cow::Owned(text.into())
}

fn string(text: impl Into<String>) -> Expression<'static> {
    Expression::String(s(text))
}

fn payload(protocol: &str, field: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: s(protocol),
            field: s(field),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn prefix(net: Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(string(net.network().to_string())),
        len: u32::from(net.prefix_len()),
    }))
}

fn matches(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

/// `ip daddr . meta l4proto . th dport`: the key of both frontend maps.
fn frontend_key() -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(vec![
        payload("ip", "daddr"),
        meta(MetaKey::L4proto),
        payload("th", "dport"),
    ]))
}

/// `meta l4proto { tcp, udp, sctp }`: nft refuses a port mapping without a transport match.
fn transport_match() -> Statement<'static> {
    matches(
        meta(MetaKey::L4proto),
        Operator::EQ,
        Expression::Named(NamedExpression::Set(vec![
            SetItem::Element(string("tcp")),
            SetItem::Element(string("udp")),
            SetItem::Element(string("sctp")),
        ])),
    )
}

fn frontend_element(frontend: &Frontend) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(vec![
        string(frontend.addr.to_string()),
        string(frontend.protocol.as_str()),
        Expression::Number(u32::from(frontend.port)),
    ]))
}

fn destination(addr: SocketAddrV4) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(vec![
        string(addr.ip().to_string()),
        Expression::Number(u32::from(addr.port())),
    ]))
}

fn snat_to(addr: std::net::Ipv4Addr) -> Statement<'static> {
    Statement::SNAT(Some(NAT {
        addr: Some(string(addr.to_string())),
        family: None,
        port: None,
        flags: None,
    }))
}

/// The name of the chain that balances a Local Service port over its endpoints on this node:
/// readable (`ep.Service_ns_name…`) and unique through a hash of the owner.
pub fn local_chain_name(owner: &str) -> String {
    rovn_api::names::ovn_set_name(&format!("ep.{owner}"), owner)
}

/// The comment a rule carries: what it is for, then a fingerprint of the rule's chain and
/// statements, so a read-back recognises exactly this rule without parsing nft's normal form.
pub fn rule_comment(purpose: &str, chain: &str, expr: &[Statement<'static>]) -> String {
    let body = serde_json::to_string(expr).unwrap_or_default();
    let print = rovn_api::names::fnv1a64(format!("{chain}\n{body}").as_bytes());
    format!("{purpose} #{print:016x}")
}

fn rule(chain: &str, purpose: &str, expr: Vec<Statement<'static>>) -> NfListObject<'static> {
    let comment = rule_comment(purpose, chain, &expr);
    NfListObject::Rule(Rule {
        family: FAMILY,
        table: s(TABLE),
        chain: s(chain),
        expr: Cow::Owned(expr),
        comment: Some(s(comment)),
        ..Rule::default()
    })
}

fn base_chain(name: &str, hook: NfHook, prio: i32) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: FAMILY,
        table: s(TABLE),
        name: s(name),
        _type: Some(NfChainType::NAT),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    })
}

fn table() -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: FAMILY,
        name: s(TABLE),
        ..Table::default()
    })
}

fn chain_named(name: &str) -> Chain<'static> {
    Chain {
        family: FAMILY,
        table: s(TABLE),
        name: s(name),
        ..Chain::default()
    }
}

fn regular_chain(name: &str) -> NfListObject<'static> {
    NfListObject::Chain(chain_named(name))
}

fn interval_set(name: &str, nets: &[Ipv4Net]) -> NfListObject<'static> {
    let elem: Vec<Expression<'static>> = nets.iter().map(|n| prefix(*n)).collect();
    NfListObject::Set(Box::new(Set {
        family: FAMILY,
        table: s(TABLE),
        name: s(name),
        set_type: SetTypeValue::Single(SetType::Ipv4Addr),
        flags: Some([SetFlag::Interval].into_iter().collect()),
        elem: (!elem.is_empty()).then_some(Cow::Owned(elem)),
        ..Set::default()
    }))
}

fn frontend_map(name: &str, data: SetTypeValue<'static>) -> NfListObject<'static> {
    NfListObject::Map(Box::new(Map {
        family: FAMILY,
        table: s(TABLE),
        name: s(name),
        set_type: SetTypeValue::Concatenated(Cow::Owned(vec![
            SetType::Ipv4Addr,
            SetType::InetProto,
            SetType::InetService,
        ])),
        map: data,
        ..Map::default()
    }))
}

/// The cluster's ranges, merged so the interval set has no overlapping elements (nft refuses
/// those), and the `natOutgoing` ones likewise.
pub fn ranges(state: &GatewayState) -> (Vec<Ipv4Net>, Vec<Ipv4Net>) {
    let mut cluster: Vec<Ipv4Net> = state.pod_ranges.iter().map(|r| r.cidr.trunc()).collect();
    cluster.push(state.join_cidr.trunc());
    cluster.push(state.service_cidr.trunc());
    let nat: Vec<Ipv4Net> = state
        .pod_ranges
        .iter()
        .filter(|r| r.nat_outgoing)
        .map(|r| r.cidr.trunc())
        .collect();
    (Ipv4Net::aggregate(&cluster), Ipv4Net::aggregate(&nat))
}

/// Where the maps send one frontend: the rendered form of a [`Target`], so that targets that
/// render alike (a ClusterIP and a hostPort to the same address) compare alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'s> {
    /// One destination: an element of [`DNAT_ADDRS`] and of [`DNAT_PORTS`].
    To(SocketAddrV4),
    /// A Local Service without an endpoint here: `drop` in [`DNAT_CHAINS`].
    Drop,
    /// A Local Service with several: `goto` its chain in [`DNAT_CHAINS`].
    Goto(&'s str),
}

fn route(target: &Target) -> Route<'_> {
    match target {
        Target::ClusterIp(to) | Target::HostPort(to) => Route::To(*to),
        Target::Local { endpoints, .. } if endpoints.len() == 1 => Route::To(endpoints[0]),
        Target::Local { endpoints, .. } if endpoints.is_empty() => Route::Drop,
        Target::Local { owner, .. } => Route::Goto(owner),
    }
}

/// Local Services with several endpoints, by owner (one chain each, shared by its frontends),
/// and the endpoints it balances over. Keyed by owner rather than chain name so that comparing
/// two states costs no hashing.
fn balancers(state: &GatewayState) -> BTreeMap<&str, &[SocketAddrV4]> {
    state
        .forwards
        .values()
        .filter_map(|target| match target {
            Target::Local { owner, endpoints } if endpoints.len() > 1 => {
                Some((owner.as_str(), endpoints.as_slice()))
            }
            _ => None,
        })
        .collect()
}

/// Map elements, per map: `[key, data]` pairs to add, or bare keys to delete.
#[derive(Default)]
struct MapElements {
    addrs: Vec<Expression<'static>>,
    ports: Vec<Expression<'static>>,
    verdicts: Vec<Expression<'static>>,
}

impl MapElements {
    /// Adds the elements that send `frontend` along `route`.
    fn add(&mut self, frontend: &Frontend, route: Route<'_>) {
        let key = frontend_element(frontend);
        match route {
            Route::To(to) => {
                self.addrs.push(Expression::List(vec![
                    key.clone(),
                    string(to.ip().to_string()),
                ]));
                self.ports.push(Expression::List(vec![
                    key,
                    Expression::Number(u32::from(to.port())),
                ]));
            }
            Route::Drop => self.verdicts.push(Expression::List(vec![
                key,
                Expression::Verdict(Verdict::Drop),
            ])),
            Route::Goto(owner) => self.verdicts.push(Expression::List(vec![
                key,
                Expression::Verdict(Verdict::Goto(JumpTarget {
                    target: s(local_chain_name(owner)),
                })),
            ])),
        }
    }

    /// Adds the keys that remove `frontend`'s elements of `route` (a map element is deleted by
    /// its key alone).
    fn remove(&mut self, frontend: &Frontend, route: Route<'_>) {
        let key = frontend_element(frontend);
        match route {
            Route::To(_) => {
                self.addrs.push(key.clone());
                self.ports.push(key);
            }
            Route::Drop | Route::Goto(_) => self.verdicts.push(key),
        }
    }

    /// One `element` object per map that has any.
    fn objects(self) -> Vec<NfListObject<'static>> {
        [
            (DNAT_ADDRS, self.addrs),
            (DNAT_PORTS, self.ports),
            (DNAT_CHAINS, self.verdicts),
        ]
        .into_iter()
        .filter(|(_, elem)| !elem.is_empty())
        .map(|(name, elem)| elements(name, elem))
        .collect()
    }
}

/// The rule of a Local Service's chain: DNAT to one of `endpoints`, picked at random.
fn balancer_rule(chain: &str, endpoints: &[SocketAddrV4]) -> NfListObject<'static> {
    let mapping: Vec<SetItem<'static>> = endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| SetItem::Mapping(Expression::Number(i as u32), destination(*e)))
        .collect();
    let pick = Expression::Named(NamedExpression::Map(Box::new(nftables::expr::Map {
        key: Expression::Named(NamedExpression::Numgen(Numgen {
            mode: NgMode::Random,
            ng_mod: endpoints.len() as u32,
            offset: None,
        })),
        data: Expression::Named(NamedExpression::Set(mapping)),
    })));
    rule(
        chain,
        "one of the Service's endpoints on this node",
        vec![transport_match(), dnat(pick)],
    )
}

/// The chains every table has, with their rules in order: `services` (the two map lookups),
/// the hooks that jump to it, and `postrouting`. Only `postrouting` depends on the state (the
/// join IP, `ovn0`, the Service CIDR).
fn fixed_rules(state: &GatewayState) -> Vec<(&'static str, Vec<NfListObject<'static>>)> {
    let services = vec![
        rule(
            SERVICES_CHAIN,
            "Local frontends: balance over this node's endpoints, or drop without one",
            vec![Statement::VerdictMap(VerdictMap {
                key: frontend_key(),
                data: string(format!("@{DNAT_CHAINS}")),
            })],
        ),
        rule(
            SERVICES_CHAIN,
            "frontends with one destination: ClusterIP, hostPort pod, single local endpoint",
            vec![
                transport_match(),
                Statement::DNAT(Some(NAT {
                    addr: Some(lookup(DNAT_ADDRS)),
                    family: Some(nftables::stmt::NATFamily::IP),
                    port: Some(lookup(DNAT_PORTS)),
                    flags: None,
                })),
            ],
        ),
    ];
    let jump = || {
        vec![Statement::Jump(JumpTarget {
            target: s(SERVICES_CHAIN),
        })]
    };
    let prerouting = vec![rule(
        "prerouting",
        "arriving connections to a frontend",
        jump(),
    )];
    let output = vec![rule(
        "output",
        "the node's own connections to a frontend",
        jump(),
    )];

    let dnat_into_ovn = || {
        vec![
            matches(
                meta(MetaKey::Oifname),
                Operator::EQ,
                string(state.ovn_device.clone()),
            ),
            matches(
                Expression::Named(NamedExpression::CT(CT {
                    key: s("status"),
                    family: None,
                    dir: None,
                })),
                Operator::IN,
                string("dnat"),
            ),
        ]
    };
    let mut cluster_policy = dnat_into_ovn();
    cluster_policy.push(matches(
        payload("ip", "daddr"),
        Operator::EQ,
        prefix(state.service_cidr.trunc()),
    ));
    cluster_policy.push(snat_to(state.join_ip));
    let mut hairpin = dnat_into_ovn();
    hairpin.push(matches(
        payload("ip", "saddr"),
        Operator::EQ,
        string(format!("@{CLUSTER_RANGES}")),
    ));
    hairpin.push(snat_to(state.join_ip));
    let postrouting = vec![
        rule(
            "postrouting",
            "Cluster policy: to the ClusterIP from the join IP, so replies return through this node",
            cluster_policy,
        ),
        rule(
            "postrouting",
            "clients inside the cluster sent back into it: replies return through this node",
            hairpin,
        ),
        rule(
            "postrouting",
            "natOutgoing pods leaving the cluster take the node's address",
            vec![
                matches(
                    payload("ip", "saddr"),
                    Operator::EQ,
                    string(format!("@{NAT_OUTGOING}")),
                ),
                matches(
                    payload("ip", "daddr"),
                    Operator::NEQ,
                    string(format!("@{CLUSTER_RANGES}")),
                ),
                Statement::Masquerade(None),
            ],
        ),
    ];
    vec![
        (SERVICES_CHAIN, services),
        ("prerouting", prerouting),
        ("output", output),
        ("postrouting", postrouting),
    ]
}

/// Everything the table holds, in the order `nft` must create it (sets and chains before the
/// rules and map elements that name them). Deterministic: equal states give equal objects.
pub fn contents(state: &GatewayState) -> Vec<NfListObject<'static>> {
    let (cluster, nat) = ranges(state);
    let mut maps = MapElements::default();
    for (frontend, target) in &state.forwards {
        maps.add(frontend, route(target));
    }
    let balancers = balancers(state);

    let mut objects = vec![
        table(),
        interval_set(CLUSTER_RANGES, &cluster),
        interval_set(NAT_OUTGOING, &nat),
        frontend_map(DNAT_ADDRS, SetTypeValue::Single(SetType::Ipv4Addr)),
        frontend_map(DNAT_PORTS, SetTypeValue::Single(SetType::InetService)),
        frontend_map(DNAT_CHAINS, verdict_type()),
        regular_chain(SERVICES_CHAIN),
    ];
    for owner in balancers.keys() {
        objects.push(regular_chain(&local_chain_name(owner)));
    }
    objects.push(base_chain("prerouting", NfHook::Prerouting, DSTNAT));
    objects.push(base_chain("output", NfHook::Output, DSTNAT));
    objects.push(base_chain("postrouting", NfHook::Postrouting, SRCNAT));
    for (owner, endpoints) in &balancers {
        objects.push(balancer_rule(&local_chain_name(owner), endpoints));
    }
    for (_, rules) in fixed_rules(state) {
        objects.extend(rules);
    }
    // Elements last: the goto targets exist by then.
    objects.extend(maps.objects());
    objects
}

/// The one transaction that turns the table `old` rendered into the table `new` renders
/// (pure), without touching what did not change: new Local chains are added and changed ones
/// flushed and refilled, a fixed chain whose rules changed is flushed and refilled, map and
/// interval-set elements are deleted and added one by one (an interval by exactly the prefix
/// that was added, which is what nft can delete), and chains no frontend leads to any more are
/// deleted last, once the elements that named them are gone. A frontend whose data changes is
/// deleted and added again in the same transaction. Empty when the two render alike.
///
/// Sound only when the kernel holds exactly `old`'s table; the agent falls back to
/// [`batch`] (a full rebuild) when it does not know that.
pub fn delta(old: &GatewayState, new: &GatewayState) -> Nftables<'static> {
    let mut commands: Vec<NfObject<'static>> = Vec::new();
    let add = |o| NfObject::CmdObject(NfCmd::Add(o));

    let (old_balancers, new_balancers) = (balancers(old), balancers(new));
    for (owner, endpoints) in &new_balancers {
        let before = old_balancers.get(owner);
        if before == Some(endpoints) {
            continue;
        }
        let chain = local_chain_name(owner);
        commands.push(match before {
            Some(_) => flush_chain(&chain),
            None => add(regular_chain(&chain)),
        });
        commands.push(add(balancer_rule(&chain, endpoints)));
    }
    for ((chain, before), (_, after)) in fixed_rules(old).into_iter().zip(fixed_rules(new)) {
        if before != after {
            commands.push(flush_chain(chain));
            commands.extend(after.into_iter().map(add));
        }
    }

    let mut removed = Vec::new();
    let mut added = Vec::new();
    let (old_cluster, old_nat) = ranges(old);
    let (new_cluster, new_nat) = ranges(new);
    for (name, before, after) in [
        (CLUSTER_RANGES, old_cluster, new_cluster),
        (NAT_OUTGOING, old_nat, new_nat),
    ] {
        let gone: Vec<Expression<'static>> = before
            .iter()
            .filter(|net| !after.contains(net))
            .map(|net| prefix(*net))
            .collect();
        let new_ones: Vec<Expression<'static>> = after
            .iter()
            .filter(|net| !before.contains(net))
            .map(|net| prefix(*net))
            .collect();
        if !gone.is_empty() {
            removed.push(elements(name, gone));
        }
        if !new_ones.is_empty() {
            added.push(elements(name, new_ones));
        }
    }

    let mut gone = MapElements::default();
    let mut new_ones = MapElements::default();
    for (frontend, target) in &old.forwards {
        let before = route(target);
        match new.forwards.get(frontend).map(route) {
            Some(after) if after == before => {}
            _ => gone.remove(frontend, before),
        }
    }
    for (frontend, target) in &new.forwards {
        let after = route(target);
        match old.forwards.get(frontend).map(route) {
            Some(before) if before == after => {}
            _ => new_ones.add(frontend, after),
        }
    }
    removed.extend(gone.objects());
    added.extend(new_ones.objects());
    commands.extend(
        removed
            .into_iter()
            .map(|o| NfObject::CmdObject(NfCmd::Delete(o))),
    );
    commands.extend(added.into_iter().map(add));

    for owner in old_balancers.keys() {
        if !new_balancers.contains_key(owner) {
            commands.push(NfObject::CmdObject(NfCmd::Delete(regular_chain(
                &local_chain_name(owner),
            ))));
        }
    }
    Nftables {
        objects: Cow::Owned(commands),
    }
}

fn flush_chain(chain: &str) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(chain_named(chain))))
}

/// How many elements `state`'s table holds in its sets and maps (an interval set counts its
/// prefixes): what the agent logs and the benchmark reports.
pub fn element_count(state: &GatewayState) -> usize {
    let (cluster, nat) = ranges(state);
    let map_elements: usize = state
        .forwards
        .values()
        .map(|target| match route(target) {
            Route::To(_) => 2,
            Route::Drop | Route::Goto(_) => 1,
        })
        .sum();
    cluster.len() + nat.len() + map_elements
}

/// `ip daddr . meta l4proto . th dport map @name`.
fn lookup(map: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Map(Box::new(nftables::expr::Map {
        key: frontend_key(),
        data: string(format!("@{map}")),
    })))
}

/// A placeholder for the verdict map's data type: the crate's `SetTypeValue` cannot spell
/// `verdict`, so [`to_json`] writes the word in its place.
fn verdict_type() -> SetTypeValue<'static> {
    SetTypeValue::Single(SetType::Mark)
}

/// Serializes a document as `nft -j` reads it. Two things the crate (0.6) spells in a way nft
/// refuses are rewritten: [`DNAT_CHAINS`]' data type becomes `verdict` (see [`verdict_type`]),
/// and its `drop` elements `{"drop": null}` (the crate writes the bare string, which nft takes
/// for a symbolic expression it cannot parse).
pub fn to_json(document: &Nftables<'static>) -> serde_json::Value {
    use serde_json::Value;
    let mut value = serde_json::to_value(document).unwrap_or_default();
    let objects = value
        .get_mut("nftables")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten();
    for object in objects {
        let Some(added) = object.get_mut("add") else {
            continue;
        };
        if let Some(map) = added.get_mut("map")
            && map.get("name").and_then(Value::as_str) == Some(DNAT_CHAINS)
            && let Some(data) = map.get_mut("map")
        {
            *data = Value::String("verdict".into());
        }
        if let Some(element) = added.get_mut("element")
            && element.get("name").and_then(Value::as_str) == Some(DNAT_CHAINS)
        {
            let pairs = element
                .get_mut("elem")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten();
            for pair in pairs {
                if let Some(data) = pair.get_mut(1)
                    && let Some(verdict) = data.as_str().map(str::to_string)
                {
                    *data = serde_json::json!({ verdict: null });
                }
            }
        }
    }
    value
}

fn dnat(addr: Expression<'static>) -> Statement<'static> {
    Statement::DNAT(Some(NAT {
        addr: Some(addr),
        family: Some(nftables::stmt::NATFamily::IP),
        port: None,
        flags: None,
    }))
}

fn elements(name: &str, elem: Vec<Expression<'static>>) -> NfListObject<'static> {
    NfListObject::Element(nftables::schema::Element {
        family: FAMILY,
        table: s(TABLE),
        name: s(name),
        elem: Cow::Owned(elem),
    })
}

/// The one transaction that makes the kernel's `ip rovn` equal to `state`: add the table (so
/// the delete cannot fail when it is absent), delete it, and create it again with everything in
/// it. `nft -f` runs it as one netlink batch: packets see the old table or the new one, and no
/// other table is named.
pub fn batch(state: &GatewayState) -> Nftables<'static> {
    let mut objects = removal().objects.into_owned();
    objects.extend(
        contents(state)
            .into_iter()
            .map(|o| NfObject::CmdObject(NfCmd::Add(o))),
    );
    Nftables {
        objects: Cow::Owned(objects),
    }
}

/// The transaction that removes the table, for an agent told to stop owning it.
pub fn removal() -> Nftables<'static> {
    Nftables {
        objects: Cow::Owned(vec![
            NfObject::CmdObject(NfCmd::Add(table())),
            NfObject::CmdObject(NfCmd::Delete(table())),
        ]),
    }
}
