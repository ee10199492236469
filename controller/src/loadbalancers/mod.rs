//! LoadBalancer Services (pure): which address of the `--lb-cidr` pool each of rovn's
//! LoadBalancer Services holds, and which node announces it on the underlay.
//!
//! The Services' `status.loadBalancer.ingress` is the record: every decision is computed again
//! from the Services as they are, so a restarted controller keeps every address where it was
//! (nothing is reshuffled), and there is no state of its own to lose. The oldest claim wins:
//! Services are taken oldest first (creation time, then namespace and name), so of two Services
//! whose status names one address (anyone allowed to write a status can write one), the older
//! keeps it and the other gets another address. Creation times have a resolution of a second;
//! between Services created in the same second, the one whose status this controller wrote
//! itself (`recorded`) is taken as the older.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use rovn_api::names;

#[cfg(test)]
mod tests;

pub use rovn_api::names::lb_events::{IP_CONFLICT, IP_UNAVAILABLE, POOL_EXHAUSTED};

/// Every reason a decision may carry, so each one's problems are reported (and forgotten) on
/// their own.
pub const REASONS: [&str; 3] = [POOL_EXHAUSTED, IP_UNAVAILABLE, IP_CONFLICT];

/// The pool of LoadBalancer addresses: the usable hosts of one IPv4 range (its network and
/// broadcast addresses are left out, as a router on that range would treat them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    net: Ipv4Net,
}

impl Pool {
    /// The pool of `net`'s hosts.
    pub fn new(net: Ipv4Net) -> Pool {
        Pool { net: net.trunc() }
    }

    /// Whether `ip` is one of the pool's addresses.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let edge =
            self.net.prefix_len() < 31 && (ip == self.net.network() || ip == self.net.broadcast());
        self.net.contains(&ip) && !edge
    }

    /// The pool's addresses, lowest first.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.net.hosts()
    }
}

/// Whose a Service's load balancer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `type: LoadBalancer` with no class, or rovn's class: rovn gives it an address.
    Ours,
    /// `type: LoadBalancer` with another class: left alone entirely.
    Foreign,
    /// Not a LoadBalancer (any more): an address of the pool in its status is taken back.
    NotLoadBalancer,
}

/// A Service as the allocation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbService {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.creationTimestamp`: the older claim wins.
    pub created: Option<Timestamp>,
    /// Whose it is.
    pub class: Class,
    /// `spec.loadBalancerIP`, as written.
    pub requested: Option<String>,
    /// `status.loadBalancer.ingress[].ip`, as written.
    pub status_ips: Vec<String>,
    /// `externalTrafficPolicy: Local`: only a node with a ready endpoint may announce it.
    pub local: bool,
    /// The nodes with a ready endpoint of the Service.
    pub endpoint_nodes: BTreeSet<String>,
    /// The announcing node its annotation names now.
    pub announcer: Option<String>,
    /// This controller process wrote the pool address its status names (breaks a tie between
    /// Services created in the same second).
    pub recorded: bool,
}

impl LbService {
    /// `namespace/name`, for messages.
    pub fn key(&self) -> (String, String) {
        (self.namespace.clone(), self.name.clone())
    }
}

/// What a Service should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The address its status should carry (`None`: none).
    pub ip: Option<Ipv4Addr>,
    /// The node that should announce it (`None`: no annotation).
    pub announcer: Option<String>,
    /// `(reason, message)` of what could not be done, for a Warning Event each.
    pub problems: Vec<(&'static str, String)>,
}

impl Decision {
    /// Whether the Service's status must be written: it differs from the decided address. The
    /// status of a Service that is no LoadBalancer is cleared only when it holds a pool
    /// address (what else it says is not rovn's).
    pub fn status_differs(&self, service: &LbService, pool: &Pool) -> bool {
        if service.class == Class::NotLoadBalancer {
            return pool_address(service, pool).is_some();
        }
        let wanted: Vec<String> = self.ip.iter().map(ToString::to_string).collect();
        service.status_ips != wanted
    }

    /// Whether the Service's announcer annotation must be written.
    pub fn announcer_differs(&self, service: &LbService) -> bool {
        service.announcer != self.announcer
    }
}

/// A Service as the allocation sees it (pure): its class under `rovn.io/lb`, requests, status,
/// policy and the nodes of its ready endpoints (from `slices`, the Service's own).
pub fn lb_service<'a>(
    service: &Service,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> LbService {
    let spec = service.spec.clone().unwrap_or_default();
    let is_lb = spec.type_.as_deref() == Some("LoadBalancer");
    let class = match spec.load_balancer_class.as_deref() {
        _ if !is_lb => Class::NotLoadBalancer,
        None | Some(names::LB_CLASS) => Class::Ours,
        Some(_) => Class::Foreign,
    };
    let status_ips = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ingress| ingress.ip.clone())
        .collect();
    let endpoint_nodes = slices
        .into_iter()
        .flat_map(|slice| slice.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .filter_map(|e| e.node_name.clone())
        .collect();
    LbService {
        namespace: service.metadata.namespace.clone().unwrap_or_default(),
        name: service.metadata.name.clone().unwrap_or_default(),
        created: service.metadata.creation_timestamp.as_ref().map(|t| t.0),
        class,
        requested: spec.load_balancer_ip.filter(|ip| !ip.trim().is_empty()),
        status_ips,
        local: spec.external_traffic_policy.as_deref() == Some("Local"),
        endpoint_nodes,
        announcer: service
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(names::LB_NODE_ANNOTATION).cloned()),
        recorded: false,
    }
}

/// Whether a node may announce addresses: `Ready=True`, not being deleted, and not labelled
/// [`names::EXCLUDE_FROM_LB_LABEL`].
pub fn node_may_announce(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let excluded = node
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(names::EXCLUDE_FROM_LB_LABEL));
    ready && !excluded && node.metadata.deletion_timestamp.is_none()
}

/// The node that announces `ip` among `candidates` (pure, rendezvous hashing): each node scores
/// a hash of the address and its name and the highest wins, so every address is spread on its
/// own, and a node coming or going moves only the addresses it wins or held.
pub fn announcer<'a>(
    ip: Ipv4Addr,
    candidates: impl IntoIterator<Item = &'a String>,
) -> Option<String> {
    candidates
        .into_iter()
        .max_by_key(|node| (names::fnv1a64(format!("{ip}/{node}").as_bytes()), *node))
        .cloned()
}

/// Decides every Service (pure). `services` may come in any order; `nodes` are the nodes that
/// may announce ([`node_may_announce`]). Foreign-class Services get no decision (left alone);
/// Services that are not LoadBalancers get one only when their status holds a pool address
/// or they carry the announcer annotation (both taken back).
pub fn decide(pool: &Pool, services: &[LbService], nodes: &BTreeSet<String>) -> Vec<Decision> {
    let mut ours: Vec<&LbService> = services.iter().filter(|s| s.class == Class::Ours).collect();
    ours.sort_by(|a, b| {
        (a.created, !a.recorded, &a.namespace, &a.name).cmp(&(
            b.created,
            !b.recorded,
            &b.namespace,
            &b.name,
        ))
    });
    let mut held: BTreeMap<Ipv4Addr, (String, String)> = BTreeMap::new();
    let mut ip_of: BTreeMap<(String, String), Ipv4Addr> = BTreeMap::new();
    let mut problems: BTreeMap<(String, String), Vec<(&'static str, String)>> = BTreeMap::new();
    let requested = |s: &LbService| -> Option<Result<Ipv4Addr, String>> {
        let raw = s.requested.as_deref()?;
        Some(match raw.trim().parse::<Ipv4Addr>() {
            Ok(ip) if pool.contains(ip) => Ok(ip),
            Ok(ip) => Err(format!(
                "spec.loadBalancerIP {ip} is not in the pool {}",
                pool.net
            )),
            Err(_) => Err(format!(
                "spec.loadBalancerIP {raw:?} is not an IPv4 address"
            )),
        })
    };
    // 1. What the statuses record, oldest first: an address stays where it is, unless an older
    //    Service holds it, it left the pool, or the Service now asks for another one.
    for service in &ours {
        let Some(ip) = pool_address(service, pool) else {
            continue;
        };
        if let Some(Ok(wanted)) = requested(service)
            && wanted != ip
        {
            continue;
        }
        if let Some(Err(_)) = requested(service) {
            continue;
        }
        match held.get(&ip) {
            Some((ns, name)) => problems.entry(service.key()).or_default().push((
                IP_CONFLICT,
                format!(
                    "status.loadBalancer.ingress names {ip}, which Service {ns}/{name} (older) \
                     holds; another address is given"
                ),
            )),
            None => {
                held.insert(ip, service.key());
                ip_of.insert(service.key(), ip);
            }
        }
    }
    // 2. Requests, oldest first: given when in the pool and free, else refused with a reason.
    for service in &ours {
        if ip_of.contains_key(&service.key()) {
            continue;
        }
        match requested(service) {
            None => {}
            Some(Ok(ip)) => match held.get(&ip) {
                Some((ns, name)) => problems.entry(service.key()).or_default().push((
                    IP_UNAVAILABLE,
                    format!("spec.loadBalancerIP {ip} is held by Service {ns}/{name}"),
                )),
                None => {
                    held.insert(ip, service.key());
                    ip_of.insert(service.key(), ip);
                }
            },
            Some(Err(why)) => problems
                .entry(service.key())
                .or_default()
                .push((IP_UNAVAILABLE, why)),
        }
    }
    // 3. Everyone else without an address, oldest first: the lowest free address.
    // Lazily, so a large pool costs only the addresses handed out.
    let taken: BTreeSet<Ipv4Addr> = held.keys().copied().collect();
    let mut free = pool.addresses().filter(move |ip| !taken.contains(ip));
    for service in &ours {
        if ip_of.contains_key(&service.key()) || requested(service).is_some() {
            continue;
        }
        match free.next() {
            Some(ip) => {
                held.insert(ip, service.key());
                ip_of.insert(service.key(), ip);
            }
            None => problems.entry(service.key()).or_default().push((
                POOL_EXHAUSTED,
                format!(
                    "no free address in the pool {} (all held); one is given when an \
                     address frees",
                    pool.net
                ),
            )),
        }
    }
    let mut decisions: Vec<Decision> = ours
        .iter()
        .map(|service| {
            let ip = ip_of.get(&service.key()).copied();
            let announcer = ip.and_then(|ip| {
                if service.local {
                    announcer(ip, nodes.intersection(&service.endpoint_nodes))
                } else {
                    announcer(ip, nodes)
                }
            });
            Decision {
                namespace: service.namespace.clone(),
                name: service.name.clone(),
                ip,
                announcer,
                problems: problems.remove(&service.key()).unwrap_or_default(),
            }
        })
        .collect();
    // Not (or no longer) a LoadBalancer: what rovn gave it is taken back.
    decisions.extend(
        services
            .iter()
            .filter(|s| s.class == Class::NotLoadBalancer)
            .filter(|s| s.announcer.is_some() || pool_address(s, pool).is_some())
            .map(|s| Decision {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                ip: None,
                announcer: None,
                problems: Vec::new(),
            }),
    );
    decisions
}

/// The first pool address the Service's status names.
pub fn pool_address(service: &LbService, pool: &Pool) -> Option<Ipv4Addr> {
    service
        .status_ips
        .iter()
        .filter_map(|raw| raw.parse::<Ipv4Addr>().ok())
        .find(|ip| pool.contains(*ip))
}
