//! Which spec of a Subnet is in effect while pods use it (pure): an edit that would move
//! running pods (`cidrBlock`, `gateway`, `excludeIps` covering a pod's address) is refused and
//! the last accepted addressing stays in effect until the pods are gone or the edit reverted;
//! a deleted Subnet stays while pods use it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rovn_api::subnet::{Subnet, SubnetSpec};

use crate::ipam::parse_exclude_ips;

/// What the controller knows beyond the objects: who holds addresses where, and which
/// addressing it last accepted for each Subnet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The pods holding an address on each Subnet: (address, pod owner as text).
    pub holders: BTreeMap<String, Vec<(Ipv4Addr, String)>>,
    /// The addressing last accepted per Subnet (the controller's memory, else the status).
    pub accepted: BTreeMap<String, Addressing>,
}

impl Facts {
    /// The pods holding an address on `subnet`.
    pub fn holders(&self, subnet: &str) -> &[(Ipv4Addr, String)] {
        self.holders.get(subnet).map_or(&[], Vec::as_slice)
    }

    /// How many pods hold an address on `subnet`.
    pub fn pods(&self, subnet: &str) -> usize {
        self.holders(subnet).len()
    }
}

/// The part of a Subnet's spec running pods depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressing {
    /// The CIDR.
    pub cidr: Ipv4Net,
    /// The gateway.
    pub gateway: Ipv4Addr,
    /// `excludeIps` as written.
    pub exclude_ips: Vec<String>,
}

impl Addressing {
    /// The addressing the object's status says is in effect (what an earlier controller
    /// accepted), when the status carries it.
    pub fn from_status(object: &Subnet) -> Option<Addressing> {
        let status = object.status.as_ref()?;
        Some(Addressing {
            cidr: status.cidr_block.as_deref()?.parse().ok()?,
            gateway: status.gateway.as_deref()?.parse().ok()?,
            exclude_ips: status.exclude_ips.clone(),
        })
    }
}

/// A spec field whose edit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    /// `spec.cidrBlock`.
    CidrBlock,
    /// `spec.gateway`.
    Gateway,
    /// `spec.excludeIps`.
    ExcludeIps,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::CidrBlock => "cidrBlock",
            Field::Gateway => "gateway",
            Field::ExcludeIps => "excludeIps",
        })
    }
}

/// One refused edit: the field, and why in words (what was asked, what stays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedEdit {
    /// The field.
    pub field: Field,
    /// What is wrong with the edit.
    pub why: String,
}

/// The spec to validate and render for `object`: its own, or with the fields pods depend on
/// taken from `previous` where the edit would move them; and the refused edits.
///
/// An edit is refused only while `holders` is not empty: a Subnet nobody uses takes any edit.
/// A `gateway` (written or implied) equal to an address a pod holds is refused always.
pub fn spec_in_effect(
    object: &Subnet,
    previous: Option<&Addressing>,
    holders: &[(Ipv4Addr, String)],
) -> (SubnetSpec, Vec<RefusedEdit>) {
    let mut spec = object.spec.clone();
    let mut refused = Vec::new();
    let (Some(previous), false) = (previous, holders.is_empty()) else {
        return (spec, refused);
    };
    let pods = holders.len();
    let using = |n: usize| {
        if n == 1 {
            "1 pod uses".to_string()
        } else {
            format!("{n} pods use")
        }
    };
    let asked_cidr = spec.cidr_block.parse::<Ipv4Net>().ok();
    if asked_cidr != Some(previous.cidr) {
        refused.push(RefusedEdit {
            field: Field::CidrBlock,
            why: format!(
                "cidrBlock {:?} refused: {} {}; it keeps {}",
                spec.cidr_block,
                using(pods),
                previous.cidr,
                previous.cidr
            ),
        });
        spec.cidr_block = previous.cidr.to_string();
    }
    let cidr = previous.cidr;
    let asked_gateway = match spec.gateway.as_deref() {
        Some(text) => text.parse::<Ipv4Addr>().ok(),
        None => Some(Ipv4Addr::from(u32::from(cidr.network()).saturating_add(1))),
    };
    if asked_gateway != Some(previous.gateway) {
        let shown = spec
            .gateway
            .clone()
            .unwrap_or_else(|| format!("(absent: {})", display_opt(asked_gateway)));
        let holder = asked_gateway.and_then(|g| holders.iter().find(|(ip, _)| *ip == g));
        let why = match holder {
            Some((ip, pod)) => format!(
                "gateway {shown} refused: {ip} is the address of {pod}; it keeps {}",
                previous.gateway
            ),
            None => format!(
                "gateway {shown} refused: {} {} as their gateway; it keeps {}",
                using(pods),
                previous.gateway,
                previous.gateway
            ),
        };
        refused.push(RefusedEdit {
            field: Field::Gateway,
            why,
        });
        spec.gateway = Some(previous.gateway.to_string());
    }
    if spec.exclude_ips != previous.exclude_ips {
        let covered = match parse_exclude_ips(&spec.exclude_ips, cidr) {
            Ok(ranges) => holders
                .iter()
                .find(|(ip, _)| ranges.iter().any(|r| r.contains(u32::from(*ip))))
                .map(|(ip, pod)| format!("it covers {ip}, the address of {pod}")),
            Err(e) => Some(format!("{e}")),
        };
        if let Some(problem) = covered {
            refused.push(RefusedEdit {
                field: Field::ExcludeIps,
                why: format!(
                    "excludeIps {:?} refused: {problem}; it keeps {:?}",
                    spec.exclude_ips, previous.exclude_ips
                ),
            });
            spec.exclude_ips = previous.exclude_ips.clone();
        }
    }
    (spec, refused)
}

fn display_opt(ip: Option<Ipv4Addr>) -> String {
    ip.map_or_else(|| "none".to_string(), |ip| ip.to_string())
}

/// Whether the object was deleted (its `deletionTimestamp` is set).
pub fn is_terminating(object: &Subnet) -> bool {
    object.metadata.deletion_timestamp.is_some()
}

/// Whether the object carries the controller's finalizer.
pub fn has_finalizer(object: &Subnet) -> bool {
    object
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == rovn_api::subnet::FINALIZER))
}

/// The object's finalizers with the controller's added (`add`) or taken out.
pub fn finalizers_with(object: &Subnet, add: bool) -> Vec<String> {
    let mut list: Vec<String> = object
        .metadata
        .finalizers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != rovn_api::subnet::FINALIZER)
        .collect();
    if add {
        list.push(rovn_api::subnet::FINALIZER.to_string());
    }
    list
}
