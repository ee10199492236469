//! Kubernetes NetworkPolicies and pods → what policies are rendered from: pure.
//!
//! The API server validates NetworkPolicies, but not everything it accepts can be enforced
//! here (an IPv6 `ipBlock` in an IPv4 cluster), and an API server that validates less must not
//! make rovn guess. A rule part that cannot be enforced is left out and said
//! ([`PolicyView::ignored`]): a peer or port left out makes its rule allow less, never more. A
//! policy whose pod selector cannot be read selects nobody knows which pods, and is not
//! rendered at all ([`PolicyView::policy`] is `None`, [`PolicyView::unreadable`] says why).

use ipnet::{IpNet, Ipv4Net};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rovn_api::names::ACL_LOG_ANNOTATION;

use crate::desired::{
    AclLog, Labels, Peer, PodPort, Policy, PolicyPod, PolicyPort, PolicyRule, Protocol,
    Requirement, Selector,
};

/// A NetworkPolicy as OVN can enforce it, and what of it could not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyView {
    /// The policy; `None` when its pod selector cannot be read.
    pub policy: Option<Policy>,
    /// Why the policy is not rendered, when it is not.
    pub unreadable: Option<String>,
    /// The parts left out, each naming the field and why.
    pub ignored: Vec<String>,
}

/// `policy` as OVN enforces it.
pub fn policy_view(policy: &NetworkPolicy) -> PolicyView {
    let namespace = policy.metadata.namespace.clone().unwrap_or_default();
    let name = policy.metadata.name.clone().unwrap_or_default();
    let mut ignored = Vec::new();
    let spec = policy.spec.clone().unwrap_or_default();
    let subject = match spec.pod_selector.as_ref().map(selector) {
        None => Selector::everything(),
        Some(Ok(subject)) => subject,
        Some(Err(reason)) => {
            return PolicyView {
                policy: None,
                unreadable: Some(format!("spec.podSelector: {reason}")),
                ignored,
            };
        }
    };
    let types = spec.policy_types.clone().unwrap_or_else(|| {
        let mut types = vec!["Ingress".to_string()];
        if spec.egress.is_some() {
            types.push("Egress".to_string());
        }
        types
    });
    for (index, kind) in types.iter().enumerate() {
        if kind != "Ingress" && kind != "Egress" {
            ignored.push(format!(
                "spec.policyTypes[{index}] {kind:?} is neither Ingress nor Egress"
            ));
        }
    }
    let has = |kind: &str| types.iter().any(|t| t == kind);
    let ingress = has("Ingress").then(|| {
        let rules = spec.ingress.iter().flatten();
        let parts = rules.map(|r| (r.from.as_deref(), r.ports.as_deref()));
        convert_rules("spec.ingress", "from", parts, &mut ignored)
    });
    let egress = has("Egress").then(|| {
        let rules = spec.egress.iter().flatten();
        let parts = rules.map(|r| (r.to.as_deref(), r.ports.as_deref()));
        convert_rules("spec.egress", "to", parts, &mut ignored)
    });
    let log = acl_log(policy, &mut ignored);
    PolicyView {
        policy: Some(Policy {
            namespace,
            name,
            subject,
            ingress,
            egress,
            log,
        }),
        unreadable: None,
        ignored,
    }
}

/// The `rovn.io/acl-log` annotation: which verdicts to log.
fn acl_log(policy: &NetworkPolicy, ignored: &mut Vec<String>) -> AclLog {
    let mut log = AclLog::default();
    let Some(value) = policy
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ACL_LOG_ANNOTATION))
    else {
        return log;
    };
    for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match word {
            "allow" => log.allow = true,
            "deny" => log.deny = true,
            other => ignored.push(format!(
                "annotation {ACL_LOG_ANNOTATION}: {other:?} is neither allow nor deny"
            )),
        }
    }
    log
}

/// The rules of one direction, as (peers, ports) each; `field` is `spec.ingress` or
/// `spec.egress` and `peers_field` `from` or `to`.
fn convert_rules<'a>(
    field: &str,
    peers_field: &str,
    rules: impl Iterator<
        Item = (
            Option<&'a [NetworkPolicyPeer]>,
            Option<&'a [NetworkPolicyPort]>,
        ),
    >,
    ignored: &mut Vec<String>,
) -> Vec<PolicyRule> {
    rules
        .enumerate()
        .map(|(index, (peers, ports))| {
            convert_rule(
                &format!("{field}[{index}]"),
                peers_field,
                peers,
                ports,
                ignored,
            )
        })
        .collect()
}

/// One ingress or egress rule; `peers_field` is `from` or `to`.
fn convert_rule(
    field: &str,
    peers_field: &str,
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    ignored: &mut Vec<String>,
) -> PolicyRule {
    let peers = peers.filter(|p| !p.is_empty()).map(|peers| {
        peers
            .iter()
            .enumerate()
            .filter_map(|(index, peer)| {
                convert_peer(peer)
                    .map_err(|reason| {
                        ignored.push(format!("{field}.{peers_field}[{index}]: {reason}"))
                    })
                    .ok()
            })
            .collect()
    });
    let ports = ports.filter(|p| !p.is_empty()).map(|ports| {
        ports
            .iter()
            .enumerate()
            .filter_map(|(index, port)| {
                convert_port(port)
                    .map_err(|reason| ignored.push(format!("{field}.ports[{index}]: {reason}")))
                    .ok()
            })
            .collect()
    });
    PolicyRule { peers, ports }
}

fn convert_peer(peer: &NetworkPolicyPeer) -> Result<Peer, String> {
    if let Some(block) = &peer.ip_block {
        if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
            return Err("ipBlock may not be combined with selectors".into());
        }
        let cidr = ipv4_net(&block.cidr).map_err(|reason| format!("ipBlock.cidr: {reason}"))?;
        let mut except = Vec::new();
        for (index, text) in block.except.iter().flatten().enumerate() {
            let net =
                ipv4_net(text).map_err(|reason| format!("ipBlock.except[{index}]: {reason}"))?;
            if !cidr.contains(&net) {
                return Err(format!(
                    "ipBlock.except[{index}] {net} is not inside {cidr}"
                ));
            }
            except.push(net);
        }
        return Ok(Peer::Block { cidr, except });
    }
    let namespaces = match &peer.namespace_selector {
        Some(s) => Some(selector(s).map_err(|r| format!("namespaceSelector: {r}"))?),
        None => None,
    };
    let pods = match &peer.pod_selector {
        Some(s) => selector(s).map_err(|r| format!("podSelector: {r}"))?,
        None if namespaces.is_some() => Selector::everything(),
        None => return Err("a peer needs podSelector, namespaceSelector or ipBlock".into()),
    };
    Ok(Peer::Pods { namespaces, pods })
}

/// An IPv4 CIDR; the host bits are cleared as the API server's validation would require.
fn ipv4_net(text: &str) -> Result<Ipv4Net, String> {
    match text.parse::<IpNet>() {
        Ok(IpNet::V4(net)) => Ok(net.trunc()),
        Ok(IpNet::V6(_)) => Err(format!(
            "{text} is IPv6, which is not configured in this cluster"
        )),
        Err(_) => Err(format!("{text:?} is not a CIDR")),
    }
}

fn convert_port(port: &NetworkPolicyPort) -> Result<PolicyPort, String> {
    let text = port.protocol.as_deref().unwrap_or("TCP");
    let protocol =
        Protocol::from_kubernetes(text).ok_or_else(|| format!("protocol {text:?} is unknown"))?;
    let number = |value: i32, what: &str| {
        u16::try_from(value)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{what} {value} is not a port number"))
    };
    match &port.port {
        None if port.end_port.is_some() => Err("endPort needs a numeric port".into()),
        None => Ok(PolicyPort::Any(protocol)),
        Some(IntOrString::Int(value)) => {
            let start = number(*value, "port")?;
            let end = match port.end_port {
                Some(end) => number(end, "endPort")?,
                None => start,
            };
            if end < start {
                return Err(format!("endPort {end} is below port {start}"));
            }
            Ok(PolicyPort::Range {
                protocol,
                start,
                end,
            })
        }
        Some(IntOrString::String(name)) => {
            if port.end_port.is_some() {
                return Err(format!("endPort needs a numeric port, not {name:?}"));
            }
            if let Ok(value) = name.parse::<i32>() {
                return Err(format!(
                    "port {:?} is a number written as a name (use {value})",
                    name
                ));
            }
            if name.is_empty() || name.len() > 15 {
                return Err(format!("port name {name:?} is not a container port name"));
            }
            Ok(PolicyPort::Named {
                protocol,
                name: name.clone(),
            })
        }
    }
}

/// A Kubernetes label selector, validated.
pub fn selector(selector: &LabelSelector) -> Result<Selector, String> {
    let mut requirements = Vec::new();
    for (index, expression) in selector.match_expressions.iter().flatten().enumerate() {
        let key = expression.key.clone();
        let values = expression.values.clone().unwrap_or_default();
        let needs_values = |requirement: Requirement| {
            if values.is_empty() {
                Err(format!(
                    "matchExpressions[{index}]: {} needs values",
                    expression.operator
                ))
            } else {
                Ok(requirement)
            }
        };
        let no_values = |requirement: Requirement| {
            if values.is_empty() {
                Ok(requirement)
            } else {
                Err(format!(
                    "matchExpressions[{index}]: {} takes no values",
                    expression.operator
                ))
            }
        };
        requirements.push(match expression.operator.as_str() {
            "In" => needs_values(Requirement::In(key, values.clone()))?,
            "NotIn" => needs_values(Requirement::NotIn(key, values.clone()))?,
            "Exists" => no_values(Requirement::Exists(key))?,
            "DoesNotExist" => no_values(Requirement::DoesNotExist(key))?,
            other => {
                return Err(format!(
                    "matchExpressions[{index}]: operator {other:?} is unknown"
                ));
            }
        });
    }
    Ok(Selector {
        labels: selector.match_labels.clone().unwrap_or_default(),
        requirements,
    })
}

/// `pod` with the port `port` as policies see it: labels and named container ports. A
/// container port that is no port is left out, with the reason in `ignored`.
pub fn policy_pod(pod: &Pod, port: &PodPort, ignored: &mut Vec<String>) -> PolicyPod {
    let mut named_ports = Vec::new();
    for container in pod.spec.iter().flat_map(|s| &s.containers) {
        for declared in container.ports.iter().flatten() {
            let Some(name) = declared.name.clone().filter(|n| !n.is_empty()) else {
                continue;
            };
            let text = declared.protocol.as_deref().unwrap_or("TCP");
            match (
                Protocol::from_kubernetes(text),
                u16::try_from(declared.container_port)
                    .ok()
                    .filter(|p| *p != 0),
            ) {
                (Some(protocol), Some(number)) => named_ports.push((name, protocol, number)),
                _ => ignored.push(format!(
                    "container {} port {name:?} ({text} {}) is not a port a policy can name",
                    container.name, declared.container_port
                )),
            }
        }
    }
    named_ports.sort();
    named_ports.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    PolicyPod {
        namespace: port.namespace.clone(),
        name: port.name.clone(),
        uid: port.uid.clone(),
        node: port.node.clone(),
        ip: port.ip,
        labels: labels_of(pod.metadata.labels.as_ref()),
        named_ports,
    }
}

/// Labels, absent read as none.
pub fn labels_of(labels: Option<&std::collections::BTreeMap<String, String>>) -> Labels {
    labels.cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests;
