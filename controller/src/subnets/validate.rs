//! Validation of all Subnet objects together: each alone, then against the older accepted ones.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::jiff::Timestamp;
use rovn_api::names::{DEFAULT_SUBNET, JOIN_SWITCH};
use rovn_api::subnet;

use super::choice::SubnetChoiceError;
use super::config::SubnetConfig;
use super::lifecycle::{Facts, is_terminating, spec_in_effect};
use super::reject::{RejectReason, SubnetRejection};
use crate::ipam::{IpamError, parse_exclude_ips};

/// The shortest prefix a Subnet may have: IPAM keeps one bit per address, and a larger subnet
/// is far more than a cluster can use.
const MIN_PREFIX: u8 = 8;
/// The longest prefix: a /31 or /32 has no host address besides the gateway.
const MAX_PREFIX: u8 = 30;

/// Ranges no Subnet may overlap: they are routed elsewhere (from controller flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// The `join` switch's CIDR.
    pub join: Ipv4Net,
    /// The Service ClusterIP CIDR.
    pub service: Ipv4Net,
}

/// The outcome of validating every Subnet object: which are accepted and which rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubnetSet {
    accepted: BTreeMap<String, SubnetConfig>,
    rejected: Vec<SubnetRejection>,
    /// Which accepted Subnet lists each namespace (at most one, by validation).
    by_namespace: BTreeMap<String, String>,
    /// Namespaces listed by objects that are not accepted (rejected, or deleted and unused),
    /// oldest object first: their pods wait rather than land on `ovn-default`.
    claims: BTreeMap<String, String>,
    /// Deleted objects no pod uses any more: their rows go, then their finalizer.
    released: Vec<String>,
}

/// Deterministic: objects ordered by creationTimestamp then name; an object that overlaps an
/// already accepted one, or the join/service CIDR, or claims a namespace an accepted one
/// claims, is rejected WHOLE (never half-applied); so an older, working Subnet is never
/// displaced by a newer one.
///
/// Age is the object's, not its spec's: editing an older Subnet's CIDR onto a newer one's range
/// rejects the newer one (as Kube-OVN, rovn expects a CIDR in use not to be edited).
pub fn validate_subnets(objects: &[subnet::Subnet], reserved: &Reserved) -> SubnetSet {
    validate_subnets_with(objects, reserved, &Facts::default())
}

/// [`validate_subnets`] knowing which pods hold addresses where and what was accepted before
/// (`facts`): a Subnet pods use is validated with the spec in effect
/// ([`spec_in_effect`]: an edit that would move them is refused, the last accepted addressing
/// stays); a deleted Subnet stays accepted (terminating) while pods use it, and is *released*
/// once none does.
pub fn validate_subnets_with(
    objects: &[subnet::Subnet],
    reserved: &Reserved,
    facts: &Facts,
) -> SubnetSet {
    let mut ordered: Vec<&subnet::Subnet> = objects.iter().collect();
    ordered.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    let mut set = SubnetSet::default();
    for object in ordered {
        let name = object.metadata.name.clone().unwrap_or_default();
        let generation = object.metadata.generation;
        let holders = facts.holders(&name);
        let terminating = is_terminating(object);
        if terminating && holders.is_empty() {
            set.claim(&name, &object.spec.namespaces);
            set.released.push(name);
            continue;
        }
        let (spec, refused) = spec_in_effect(object, facts.accepted.get(&name), holders);
        let checked = check_alone(&name, object, &spec, reserved)
            .and_then(
                |config| match holders.iter().find(|(ip, _)| *ip == config.gateway) {
                    Some((ip, pod)) => Err((
                        RejectReason::InvalidGateway,
                        format!("gateway {ip} is the address of {pod}"),
                    )),
                    None => Ok(config),
                },
            )
            .and_then(|config| set.check_against(config));
        match checked {
            Ok(mut config) => {
                config.terminating = terminating;
                config.refused = refused;
                config.pods = holders.len();
                set.accept(config)
            }
            Err((reason, message)) => {
                set.claim(&name, &object.spec.namespaces);
                set.rejected.push(SubnetRejection {
                    name,
                    reason,
                    message,
                    generation,
                })
            }
        }
    }
    set
}

/// Oldest first, then by name. The uid and the spec only break ties the API server never
/// produces (two objects with one name), so that even such input cannot make the outcome
/// depend on its order.
fn order_key(object: &subnet::Subnet) -> (Option<Timestamp>, &str, &str, &subnet::SubnetSpec) {
    let meta = &object.metadata;
    (
        meta.creation_timestamp.as_ref().map(|t| t.0),
        meta.name.as_deref().unwrap_or_default(),
        meta.uid.as_deref().unwrap_or_default(),
        &object.spec,
    )
}

type Rejection = (RejectReason, String);

/// Everything that can be checked on one object without looking at the others.
fn check_alone(
    name: &str,
    object: &subnet::Subnet,
    spec: &subnet::SubnetSpec,
    reserved: &Reserved,
) -> Result<SubnetConfig, Rejection> {
    if name.is_empty() {
        return Err((RejectReason::InvalidName, "the object has no name".into()));
    }
    if name == JOIN_SWITCH {
        return Err((
            RejectReason::InvalidName,
            format!("the name {JOIN_SWITCH:?} belongs to the switch joining nodes to pods"),
        ));
    }
    let cidr = parse_cidr(&spec.cidr_block)?;
    let gateway = parse_gateway(spec.gateway.as_deref(), cidr)?;
    parse_exclude_ips(&spec.exclude_ips, cidr).map_err(|e| {
        let message = match e {
            IpamError::BadExclude { entry, reason } => {
                format!("excludeIps entry {entry:?}: {reason}")
            }
            other => other.to_string(),
        };
        (RejectReason::InvalidExcludeIps, message)
    })?;
    let mut namespaces = spec.namespaces.clone();
    if let Some(bad) = namespaces.iter().find(|n| !is_namespace_name(n)) {
        return Err((
            RejectReason::InvalidNamespaces,
            format!("namespaces entry {bad:?} is not a namespace name (a DNS-1123 label)"),
        ));
    }
    namespaces.sort();
    namespaces.dedup();
    let allow_subnets = parse_allow_subnets(&spec.allow_subnets)?;
    for (what, range) in [("join", reserved.join), ("service", reserved.service)] {
        if overlaps(cidr, range) {
            return Err((
                RejectReason::ReservedRange,
                format!("cidrBlock {cidr} overlaps the {what} CIDR {range}"),
            ));
        }
    }
    Ok(SubnetConfig {
        name: name.to_string(),
        cidr,
        gateway,
        exclude_ips: spec.exclude_ips.clone(),
        namespaces,
        nat_outgoing: spec.nat_outgoing,
        private: spec.private,
        allow_subnets,
        generation: object.metadata.generation,
        terminating: false,
        refused: Vec::new(),
        pods: 0,
    })
}

fn parse_cidr(text: &str) -> Result<Ipv4Net, Rejection> {
    let bad = |why: String| {
        Err((
            RejectReason::InvalidCidr,
            format!("cidrBlock {text:?} {why}"),
        ))
    };
    let Ok(cidr) = text.parse::<Ipv4Net>() else {
        return bad("is not an IPv4 CIDR such as 10.16.0.0/16".into());
    };
    if cidr.trunc() != cidr {
        return bad(format!(
            "has host bits set (the network is {})",
            cidr.trunc()
        ));
    }
    if cidr.prefix_len() > MAX_PREFIX {
        return bad(format!(
            "leaves no room for pods (the prefix must be /{MAX_PREFIX} or shorter)"
        ));
    }
    if cidr.prefix_len() < MIN_PREFIX {
        return bad(format!(
            "is too large (the prefix must be /{MIN_PREFIX} or longer)"
        ));
    }
    Ok(cidr)
}

/// `allowSubnets`: each entry an IPv4 CIDR (host bits are dropped: `10.17.0.5/16` is
/// 10.17.0.0/16, as OVN would read it), sorted and without duplicates.
fn parse_allow_subnets(entries: &[String]) -> Result<Vec<Ipv4Net>, Rejection> {
    let mut cidrs = Vec::with_capacity(entries.len());
    for entry in entries {
        let Ok(cidr) = entry.trim().parse::<Ipv4Net>() else {
            return Err((
                RejectReason::InvalidAllowSubnets,
                format!("allowSubnets entry {entry:?} is not an IPv4 CIDR such as 10.17.0.0/16"),
            ));
        };
        cidrs.push(cidr.trunc());
    }
    cidrs.sort();
    cidrs.dedup();
    Ok(cidrs)
}

fn parse_gateway(text: Option<&str>, cidr: Ipv4Net) -> Result<Ipv4Addr, Rejection> {
    let Some(text) = text else {
        return Ok(Ipv4Addr::from(u32::from(cidr.network()) + 1));
    };
    let bad = |why: String| {
        Err((
            RejectReason::InvalidGateway,
            format!("gateway {text:?} {why}"),
        ))
    };
    let Ok(gateway) = text.parse::<Ipv4Addr>() else {
        return bad("is not an IPv4 address".into());
    };
    if !cidr.contains(&gateway) {
        return bad(format!("is outside cidrBlock {cidr}"));
    }
    if gateway == cidr.network() || gateway == cidr.broadcast() {
        return bad(format!("is not a host address of {cidr}"));
    }
    Ok(gateway)
}

/// A DNS-1123 label, which is what a namespace name is.
fn is_namespace_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-')
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

impl SubnetSet {
    /// The checks against the Subnets accepted so far (all older than `config`).
    fn check_against(&self, config: SubnetConfig) -> Result<SubnetConfig, Rejection> {
        if self.accepted.contains_key(&config.name) {
            return Err((
                RejectReason::InvalidName,
                format!("another Subnet object is named {:?}", config.name),
            ));
        }
        if let Some(other) = self
            .accepted
            .values()
            .find(|o| overlaps(o.cidr, config.cidr))
        {
            return Err((
                RejectReason::Overlap,
                format!(
                    "cidrBlock {} overlaps {} of the older Subnet {}",
                    config.cidr, other.cidr, other.name
                ),
            ));
        }
        if let Some((namespace, other)) = config
            .namespaces
            .iter()
            .find_map(|n| self.by_namespace.get(n).map(|o| (n, o)))
        {
            return Err((
                RejectReason::NamespaceConflict,
                format!("namespace {namespace} is already listed by the older Subnet {other}"),
            ));
        }
        Ok(config)
    }

    /// Records that `name`, not accepted, lists `namespaces` (unless an older one does).
    fn claim(&mut self, name: &str, namespaces: &[String]) {
        for namespace in namespaces {
            self.claims
                .entry(namespace.clone())
                .or_insert_with(|| name.to_string());
        }
    }

    fn accept(&mut self, config: SubnetConfig) {
        for namespace in &config.namespaces {
            self.by_namespace
                .insert(namespace.clone(), config.name.clone());
        }
        self.accepted.insert(config.name.clone(), config);
    }

    /// The accepted Subnets, by name.
    pub fn accepted(&self) -> impl Iterator<Item = &SubnetConfig> {
        self.accepted.values()
    }

    /// The rejected objects, oldest first.
    pub fn rejected(&self) -> &[SubnetRejection] {
        &self.rejected
    }

    /// The accepted Subnet `name`.
    pub fn get(&self, name: &str) -> Option<&SubnetConfig> {
        self.accepted.get(name)
    }

    /// Why the object `name` was rejected, if it was.
    pub fn rejection(&self, name: &str) -> Option<&SubnetRejection> {
        self.rejected.iter().find(|r| r.name == name)
    }

    /// Deleted objects no pod uses any more: their rows go, then the controller's finalizer.
    pub fn released(&self) -> &[String] {
        &self.released
    }

    /// Whether `name` waits for its pods: deleted, or with an edit refused. Its outcome
    /// changes when they go, so their going must run validation again.
    pub fn waits_for_pods(&self, name: &str) -> bool {
        self.accepted
            .get(name)
            .is_some_and(|c| c.terminating || !c.refused.is_empty())
    }

    /// The Subnet a pod of `namespace` gets without asking: the accepted one listing it, else
    /// `ovn-default`. Never `ovn-default` when a Subnet that is not ready (rejected,
    /// invalid, deleted) lists the namespace: its pods wait for that Subnet, since a pod never
    /// moves once it has an address.
    pub fn for_namespace(&self, namespace: &str) -> Result<&SubnetConfig, SubnetChoiceError> {
        if let Some(config) = self
            .by_namespace
            .get(namespace)
            .and_then(|n| self.accepted.get(n))
        {
            return self.serving(config);
        }
        if let Some(name) = self.claims.get(namespace) {
            return Err(match self.rejection(name) {
                Some(rejection) => SubnetChoiceError::NamespaceSubnetNotReady {
                    name: name.clone(),
                    namespace: namespace.to_string(),
                    reason: rejection.reason,
                    message: rejection.message.clone(),
                },
                None => SubnetChoiceError::Terminating {
                    name: name.clone(),
                    pods: 0,
                },
            });
        }
        match self.accepted.get(DEFAULT_SUBNET) {
            Some(config) if !config.terminating => Ok(config),
            _ => Err(SubnetChoiceError::NoDefault {
                namespace: namespace.to_string(),
            }),
        }
    }

    /// `config`, unless it is terminating.
    fn serving<'a>(&self, config: &'a SubnetConfig) -> Result<&'a SubnetConfig, SubnetChoiceError> {
        if config.terminating {
            return Err(SubnetChoiceError::Terminating {
                name: config.name.clone(),
                pods: config.pods,
            });
        }
        Ok(config)
    }

    /// The Subnet for a pod: its `logical_switch` request (must be accepted and, if the Subnet
    /// lists namespaces, list the pod's namespace — else an error saying so), else
    /// [`SubnetSet::for_namespace`].
    pub fn for_pod(
        &self,
        namespace: &str,
        requested: Option<&str>,
    ) -> Result<&SubnetConfig, SubnetChoiceError> {
        let Some(name) = requested else {
            return self.for_namespace(namespace);
        };
        let Some(config) = self.accepted.get(name) else {
            return Err(match self.rejection(name) {
                Some(rejection) => SubnetChoiceError::Rejected {
                    name: name.to_string(),
                    reason: rejection.reason,
                    message: rejection.message.clone(),
                },
                None if self.released.iter().any(|r| r == name) => SubnetChoiceError::Terminating {
                    name: name.to_string(),
                    pods: 0,
                },
                None => SubnetChoiceError::Unknown {
                    name: name.to_string(),
                },
            });
        };
        let config = self.serving(config)?;
        if !config.namespaces.is_empty() && !config.lists_namespace(namespace) {
            return Err(SubnetChoiceError::NamespaceNotListed {
                subnet: name.to_string(),
                namespace: namespace.to_string(),
            });
        }
        Ok(config)
    }
}
