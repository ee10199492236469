//! The "one ACL per peer × port" layout, for comparison with rovn's one ACL per rule: a second
//! NB + SB + ovn-northd starts from a copy of the converged NB file (same switches, ports and
//! port groups), each policy's port group gets, instead of rovn's ACLs, one ACL per (peer,
//! port) pair of each rule — a selector peer through an Address_Set of its own, an `ipBlock`
//! inline, a named port per number through rovn's per-number set — and northd's flows are
//! counted once it settles.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use rovn_api::names;
use rovn_ovsdb::{Atom, Client, Condition, Datum, Operation, Row, TableMonitor};
use rovn_ovsdb_schemas::nb::{self, PortGroup};

use super::central;
use super::error::BenchError;
use super::nb_rows::{row_count, settled_flow_count};
use super::netpol_model::{Direction, Model, Peer, Policy, Port, Rule, namespace_name};
use super::ovsdb_util::start_client;

/// Policies per transaction.
const POLICIES_PER_TXN: usize = 50;
/// rovn's priority of a NetworkPolicy rule's ACL, which the naive ACLs keep.
const ALLOW_PRIORITY: i64 = 2100;

/// The naive layout's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NaiveCounts {
    /// The policies' ACLs.
    pub acls: usize,
    /// Every ACL in NB (policies, namespaces' denies, nodes').
    pub all_acls: usize,
    /// Every Address_Set in NB.
    pub address_sets: usize,
    /// SB logical flows once ovn-northd settles.
    pub sb_flows: usize,
}

/// One naive ACL: its direction and match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaiveAcl {
    /// Ingress or egress.
    pub direction: Direction,
    /// The OVN match.
    pub match_: String,
}

/// A naive selector peer's address set: its name and addresses.
pub type NaiveSet = (String, BTreeSet<String>);

/// `policy` laid out naively over `model`: its ACLs and the per-peer address sets they match.
/// Pure.
pub fn naive_policy(model: &Model, policy: &Policy) -> (Vec<NaiveAcl>, Vec<NaiveSet>) {
    let namespace = namespace_name(policy.namespace);
    let group = names::policy_port_group(&namespace, &policy.name);
    let mut acls = Vec::new();
    let mut sets = Vec::new();
    for (direction, id, rule) in policy.all_rules() {
        if !model.rule_has_acl(policy, direction, rule) {
            continue;
        }
        let (port_field, peer_field) = match direction {
            Direction::Ingress => ("outport", "ip4.src"),
            Direction::Egress => ("inport", "ip4.dst"),
        };
        let peers: Vec<Option<String>> = match &rule.peers {
            None => vec![None],
            Some(peers) => peers
                .iter()
                .enumerate()
                .map(|(p, peer)| {
                    Some(match peer {
                        Peer::Pods { .. } => {
                            let name = names::policy_address_set(
                                &namespace,
                                &policy.name,
                                &format!("{id}.peer{p}"),
                            );
                            let ips = model
                                .peer_pods(policy, peer)
                                .filter_map(|pod| pod.ip)
                                .map(|ip| ip.to_string())
                                .collect();
                            sets.push((name.clone(), ips));
                            format!("{peer_field} == ${name}")
                        }
                        Peer::Block { cidr, except } if except.is_empty() => {
                            format!("{peer_field} == {cidr}")
                        }
                        Peer::Block { cidr, except } => format!(
                            "{peer_field} == {cidr} && {peer_field} != {{{}}}",
                            except
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    })
                })
                .collect(),
        };
        let ports = port_terms(model, policy, direction, &id, rule, &namespace);
        for peer in &peers {
            for port in &ports {
                let mut terms = vec![format!("{port_field} == @{group}"), "ip4".to_string()];
                terms.extend(peer.iter().cloned());
                terms.extend(port.iter().cloned());
                acls.push(NaiveAcl {
                    direction,
                    match_: terms.join(" && "),
                });
            }
        }
    }
    (acls, sets)
}

/// One term per port of `rule` (a named port: one per number, through rovn's set of the pods
/// giving it that number); `[None]` for a rule without ports.
fn port_terms(
    model: &Model,
    policy: &Policy,
    direction: Direction,
    id: &str,
    rule: &Rule,
    namespace: &str,
) -> Vec<Option<String>> {
    let Some(ports) = &rule.ports else {
        return vec![None];
    };
    let mut terms = Vec::new();
    for port in ports {
        match port {
            Port::Number(proto, n) => terms.push(Some(format!("{}.dst == {n}", proto.ovn()))),
            Port::Range(proto, start, end) => terms.push(Some(format!(
                "{p}.dst >= {start} && {p}.dst <= {end}",
                p = proto.ovn()
            ))),
            Port::Named(proto, name) => {
                for number in model
                    .named_numbers(policy, direction, rule, name, *proto)
                    .into_keys()
                {
                    let set = names::policy_address_set(
                        namespace,
                        &policy.name,
                        &format!("{id}.{name}.{}.{number}", proto.ovn()),
                    );
                    terms.push(Some(format!(
                        "ip4.dst == ${set} && {}.dst == {number}",
                        proto.ovn()
                    )));
                }
            }
        }
    }
    terms
}

/// The transaction operations replacing `policy`'s ACLs with the naive ones.
fn naive_ops(policy: &Policy, acls: &[NaiveAcl], sets: &[NaiveSet], tag: usize) -> Vec<Operation> {
    let namespace = namespace_name(policy.namespace);
    let mut ops = Vec::new();
    for (name, addresses) in sets {
        let row: Row = [
            ("name".to_string(), Datum::atom(name.as_str())),
            (
                "addresses".to_string(),
                Datum::set(addresses.iter().map(String::as_str)),
            ),
        ]
        .into_iter()
        .collect();
        ops.push(Operation::insert("Address_Set", row));
    }
    let mut uuids = BTreeSet::new();
    for (i, acl) in acls.iter().enumerate() {
        let uuid_name = format!("naive{tag}_{i}");
        let (direction, options) = match acl.direction {
            Direction::Ingress => ("to-lport", Datum::map::<&str, &str>([])),
            Direction::Egress => ("from-lport", Datum::map([("apply-after-lb", "true")])),
        };
        let row: Row = [
            (
                "name".to_string(),
                Datum::atom(
                    format!("{namespace}/{}:naive{i}", policy.name)
                        .chars()
                        .take(63)
                        .collect::<String>(),
                ),
            ),
            ("direction".to_string(), Datum::atom(direction)),
            ("priority".to_string(), Datum::atom(ALLOW_PRIORITY)),
            ("action".to_string(), Datum::atom("allow-related")),
            ("match".to_string(), Datum::atom(acl.match_.as_str())),
            ("options".to_string(), options),
        ]
        .into_iter()
        .collect();
        ops.push(Operation::insert("ACL", row).with_uuid_name(&uuid_name));
        uuids.insert(Atom::NamedUuid(uuid_name));
    }
    let group = names::policy_port_group(&namespace, &policy.name);
    let row: Row = [(PortGroup::ACLS.to_string(), Datum::Set(uuids))]
        .into_iter()
        .collect();
    ops.push(Operation::update(
        "Port_Group",
        vec![Condition::eq(PortGroup::NAME, Datum::atom(group))],
        row,
    ));
    ops
}

/// Starts a second OVN in `dir` on a copy of `nb_db`, lays `policies` out naively over
/// `model`, and counts what results once ovn-northd settles.
pub async fn measure(
    dir: &Path,
    nb_db: &Path,
    model: &Model,
    policies: &[Policy],
    timeout: Duration,
) -> Result<NaiveCounts, BenchError> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::io("create", dir, e))?;
    let deadline = std::time::Instant::now() + timeout;
    let ovn = tokio::task::block_in_place(|| central::start_seeded(dir, Some(nb_db), deadline))?;
    let monitored = vec![TableMonitor::all("Port_Group").with_columns([PortGroup::NAME])];
    let (client, _events): (Client, _) =
        start_client(nb::DATABASE, &ovn.nb_remote(), monitored, timeout).await?;
    let mut acl_count = 0;
    for (chunk_index, chunk) in policies.chunks(POLICIES_PER_TXN).enumerate() {
        let mut ops = Vec::new();
        for (i, policy) in chunk.iter().enumerate() {
            let (acls, sets) = naive_policy(model, policy);
            acl_count += acls.len();
            ops.extend(naive_ops(
                policy,
                &acls,
                &sets,
                chunk_index * POLICIES_PER_TXN + i,
            ));
        }
        client.transact(&ops).await.map_err(|e| {
            BenchError::transact(
                format!("write the naive ACLs of {} policies", chunk.len()),
                e,
            )
        })?;
    }
    let sb_flows = settled_flow_count(&ovn, timeout).await?;
    ovn.ensure_alive()?;
    let counts = NaiveCounts {
        acls: acl_count,
        all_acls: row_count(&ovn.nb_sock, "OVN_Northbound", Some("ACL"))?,
        address_sets: row_count(&ovn.nb_sock, "OVN_Northbound", Some("Address_Set"))?,
        sb_flows,
    };
    drop(client);
    drop(ovn);
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::bench::netpol_model::NetpolCluster;

    #[test]
    fn one_acl_per_peer_and_port() {
        let cluster = NetpolCluster {
            namespaces: 2,
            policies: 8,
        };
        let mut model = Model::new(&cluster, 12);
        for (i, pod) in model.pods.iter_mut().enumerate() {
            pod.ip = Some(Ipv4Addr::new(10, 16, 0, 10 + i as u8));
        }
        // Kind 3: three peers × two ports.
        let (acls, sets) = naive_policy(&model, &cluster.policy(3));
        assert_eq!(acls.len(), 6);
        assert_eq!(sets.len(), 3);
        assert!(acls[0].match_.contains("tcp.dst == 443"), "{acls:?}");
        // Kind 0 (deny-all) has no rule; kind 4: two blocks × one range.
        assert!(naive_policy(&model, &cluster.policy(0)).0.is_empty());
        let (blocks, no_sets) = naive_policy(&model, &cluster.policy(4));
        assert_eq!(blocks.len(), 2);
        assert!(no_sets.is_empty());
        assert!(
            blocks[0]
                .match_
                .contains("ip4.src != {10.16.1.0/24, 10.16.2.0/24}")
        );
    }
}
