//! `rovn-bench netpol`: NetworkPolicy at scale. Labelled namespaces, labelled pods with named
//! ports and a mix of policies ([`super::netpol_model`]) exist before the controller starts;
//! the benchmark measures the time until NB holds every policy's port group and ACLs and holds
//! still, checks every policy address set against the model, counts NB and SB beside a naive
//! "one ACL per peer × port" layout ([`super::netpol_naive`]), then times policy edits and pod
//! label changes one at a time (the edit → its ACL or address set in NB), and restarts the
//! controller on the converged cluster.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use rovn_api::names::{self, annotations};
use rovn_api::{Owner, OwnerKind};
use serde_json::json;
use tokio::time::Instant;

use super::controller_proc::ControllerRun;
use super::error::BenchError;
use super::figures::Figures;
use super::load;
use super::nb_log::RecordCounter;
use super::nb_rows::{row_count, settled_flow_count};
use super::netpol_model::{
    Direction, KINDS, Model, NetpolCluster, Peer, Policy, Port, Proto, Selector, namespace_name,
    policy_manifest, policy_spec,
};
use super::netpol_naive;
use super::objects;
use super::policy_watch::{PolicyRows, PolicyWatch};
use super::stage::{Stage, StageSpec, restart, wait_for_quiet_nb, while_alive};

/// How long rovn's policy rows must not change to count as converged.
const STILL_FOR: Duration = Duration::from_secs(2);
/// The policy kind whose port and namespace selector the edits change (`from-team`).
const EDITED_KIND: usize = 1;
/// The policy kind whose first peer (a pod selector) the label changes move pods into
/// (`several-peers`).
const LABEL_KIND: usize = 3;
/// The first port the edits set.
const EDIT_PORT_BASE: u16 = 1000;

/// What to run.
#[derive(Debug, Clone)]
pub struct NetpolBench {
    /// The cluster: nodes and pods.
    pub stage: StageSpec,
    /// Namespaces the pods and policies are spread over.
    pub namespaces: usize,
    /// NetworkPolicies.
    pub policies: usize,
    /// Policy edits measured one at a time after convergence.
    pub policy_edits: usize,
    /// Pod label changes measured one at a time after them.
    pub label_changes: usize,
    /// The time between two changes.
    pub change_gap: Duration,
    /// Bound on each wait.
    pub timeout: Duration,
}

fn owner_of(policy: &Policy) -> String {
    Owner::namespaced(
        OwnerKind::NetworkPolicy,
        &namespace_name(policy.namespace),
        &policy.name,
    )
    .to_string()
}

fn set_name(policy: &Policy, id: &str) -> String {
    names::policy_address_set(&namespace_name(policy.namespace), &policy.name, id)
}

fn address_strings(ips: &BTreeSet<Ipv4Addr>) -> BTreeSet<String> {
    ips.iter().map(ToString::to_string).collect()
}

/// The ACLs (owner, id) and port groups NB must hold for `policies`, by the model.
fn expected_rows(
    model: &Model,
    policies: &[Policy],
) -> (BTreeSet<(String, String)>, BTreeSet<String>) {
    let mut acls = BTreeSet::new();
    let mut groups = BTreeSet::new();
    for policy in policies {
        groups.insert(names::policy_port_group(
            &namespace_name(policy.namespace),
            &policy.name,
        ));
        for (direction, id, rule) in policy.all_rules() {
            if model.rule_has_acl(policy, direction, rule) {
                acls.insert((owner_of(policy), id));
            }
        }
    }
    (acls, groups)
}

/// How many of `policies`' address sets NB holds with exactly the model's addresses, and
/// which differ (at most a few named, for the error output).
fn check_sets(model: &Model, policies: &[Policy], rows: &PolicyRows) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for policy in policies {
        for (id, ips) in model.address_sets(policy) {
            checked += 1;
            let name = set_name(policy, &id);
            if rows.sets.get(&name) != Some(&address_strings(&ips)) {
                wrong.push(format!("{}/{}", policy.name, id));
            }
        }
    }
    (checked, wrong)
}

/// Gives the model's pods the addresses the controller wrote in their annotations.
async fn read_addresses(client: &kube::Client, model: &mut Model) -> Result<(), BenchError> {
    let listed = Api::<Pod>::all(client.clone())
        .list(&ListParams::default().labels(&objects::pod_selector()))
        .await
        .map_err(|e| BenchError::kube("list the benchmark's pods", e))?;
    let by_name: HashMap<(String, String), Ipv4Addr> = listed
        .items
        .iter()
        .filter_map(|pod| {
            let ip = pod.annotations().get(annotations::IP_ADDRESS)?;
            let ip = ip.split('/').next()?.parse().ok()?;
            Some(((pod.namespace()?, pod.name_any()), ip))
        })
        .collect();
    for pod in &mut model.pods {
        pod.ip = by_name
            .get(&(namespace_name(pod.namespace), pod.name.clone()))
            .copied();
    }
    let missing = model.pods.iter().filter(|p| p.ip.is_none()).count();
    if missing > 0 {
        return Err(BenchError::protocol(
            "the pods' addresses",
            format!(
                "{missing} pods have no {} annotation",
                annotations::IP_ADDRESS
            ),
        ));
    }
    Ok(())
}

/// One timed change: what to send and what NB must show for it.
enum Expect {
    /// The ACL `(owner, id)` matches on this destination port.
    AclPort(String, String, u16),
    /// The address set holds exactly these addresses.
    Set(String, BTreeSet<String>),
}

impl Expect {
    fn holds(&self, rows: &PolicyRows) -> bool {
        match self {
            Expect::AclPort(owner, id, port) => rows
                .acls
                .get(&(owner.clone(), id.clone()))
                .is_some_and(|m| m.ends_with(&format!("tcp.dst == {port}"))),
            Expect::Set(name, addresses) => rows.sets.get(name) == Some(addresses),
        }
    }

    fn describe(&self) -> String {
        match self {
            Expect::AclPort(owner, id, port) => format!("ACL {owner} {id} on port {port}"),
            Expect::Set(name, addresses) => {
                format!("address set {name} with {} addresses", addresses.len())
            }
        }
    }
}

/// Edit `e` of a `from-team` policy: even edits change its port, odd ones its namespace
/// selector to a team whose pods differ (else its port). Returns the edited policy and what NB
/// must show.
fn policy_edit(model: &Model, policy: &Policy, e: usize) -> (Policy, Expect) {
    let mut edited = policy.clone();
    let port = EDIT_PORT_BASE + (e % 1000) as u16;
    let by_port = |mut edited: Policy| {
        if let Some(rule) = edited.ingress.as_mut().and_then(|r| r.first_mut()) {
            rule.ports = Some(vec![Port::Number(Proto::Tcp, port)]);
        }
        let expect = Expect::AclPort(owner_of(&edited), "ingress.0".into(), port);
        (edited, expect)
    };
    if e.is_multiple_of(2) {
        return by_port(edited);
    }
    let before = rule_set(model, policy);
    for step in 1..10 {
        let Some(rule) = edited.ingress.as_mut().and_then(|r| r.first_mut()) else {
            break;
        };
        let team = match rule.peers.as_deref() {
            Some(
                [
                    Peer::Pods {
                        namespaces: Some(Selector::Is(_, team)),
                        ..
                    },
                ],
            ) => team.trim_start_matches('t').parse::<usize>().unwrap_or(0),
            _ => break,
        };
        rule.peers = Some(vec![Peer::Pods {
            namespaces: Some(Selector::Is("team", format!("t{}", (team + step) % 10))),
            pods: None,
        }]);
        let after = rule_set(model, &edited);
        if after != before {
            let expect = Expect::Set(set_name(&edited, "ingress.0"), address_strings(&after));
            return (edited, expect);
        }
        edited = policy.clone();
    }
    by_port(policy.clone())
}

fn rule_set(model: &Model, policy: &Policy) -> BTreeSet<Ipv4Addr> {
    policy
        .rules(Direction::Ingress)
        .next()
        .map(|(_, rule)| model.selector_addresses(policy, rule))
        .unwrap_or_default()
}

/// The pods of `policy`'s namespace its first peer (`app=<value>`) does not hold and no other
/// of its selector peers of the namespace does: moving one of them to `app=<value>` moves it
/// into the rule's set and nothing else of the rule.
fn label_candidates(model: &Model, policy: &Policy) -> Vec<(usize, String)> {
    let Some((_, rule)) = policy.rules(Direction::Ingress).next() else {
        return Vec::new();
    };
    let apps: Vec<&String> = rule
        .peers
        .iter()
        .flatten()
        .filter_map(|p| match p {
            Peer::Pods {
                namespaces: None,
                pods: Some(Selector::Is("app", value)),
            } => Some(value),
            _ => None,
        })
        .collect();
    let Some(first) = apps.first() else {
        return Vec::new();
    };
    model
        .pods
        .iter()
        .enumerate()
        .filter(|(_, pod)| pod.namespace == policy.namespace)
        .filter(|(_, pod)| pod.labels.get("app").is_none_or(|a| !apps.contains(&a)))
        .map(|(i, _)| (i, first.to_string()))
        .collect()
}

/// Merge-patches the object `name` through `api`: one timed change.
async fn merge_patch<K>(
    api: &Api<K>,
    name: &str,
    patch: serde_json::Value,
) -> Result<(), BenchError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| BenchError::kube(format!("patch {name}"), e))
}

/// Sends `patch` and waits until `expect` holds in NB; returns how long that took. A change
/// whose outcome NB already shows would time nothing, so it is an error.
async fn timed(
    watch: &mut PolicyWatch,
    expect: &Expect,
    patch: impl std::future::Future<Output = Result<(), BenchError>>,
    timeout: Duration,
) -> Result<Duration, BenchError> {
    if expect.holds(watch.rows()) {
        return Err(BenchError::InvalidArgs(format!(
            "a change the benchmark times would not change NB: {} already",
            expect.describe()
        )));
    }
    let sent = Instant::now();
    patch.await?;
    let seen = watch
        .wait_until(
            &expect.describe(),
            |rows| expect.holds(rows),
            |_| "not in NB yet".into(),
            timeout,
        )
        .await?;
    tracing::debug!(
        took_ms = (seen - sent).as_millis() as u64,
        "{}",
        expect.describe()
    );
    Ok(seen - sent)
}

/// Runs the benchmark and returns its figures.
pub async fn run(bench: &NetpolBench) -> Result<Figures, BenchError> {
    if bench.namespaces == 0 || bench.policies == 0 {
        return Err(BenchError::InvalidArgs(
            "--namespaces and --policies must be at least 1".into(),
        ));
    }
    let cluster = NetpolCluster {
        namespaces: bench.namespaces,
        policies: bench.policies,
    };
    let stage = Stage::start_with(&bench.stage, &cluster).await?;
    let Stage {
        ovn,
        api,
        client,
        launch,
        ..
    } = &stage;
    let mut policies = cluster.policies();
    let manifests = policies
        .iter()
        .map(policy_manifest)
        .collect::<Result<Vec<NetworkPolicy>, _>>()?;
    let created = Instant::now();
    load::create_all_namespaced(client, manifests, bench.stage.in_flight).await?;
    let create_policies = created.elapsed();
    let mut model = Model::new(&cluster, bench.stage.pods);
    let (want_acls, want_groups) = expected_rows(&model, &policies);

    let mut watch = PolicyWatch::start(&ovn.nb_remote(), bench.timeout).await?;
    let mut nb_records = RecordCounter::new(&ovn.nb_db);
    wait_for_quiet_nb(ovn, &mut nb_records, bench.timeout).await?;
    let first = ControllerRun::start(launch)?;
    let alive = || {
        first.ensure_alive()?;
        api.ensure_alive()?;
        ovn.ensure_alive()
    };
    let complete = |rows: &PolicyRows| {
        want_acls.iter().all(|k| rows.acls.contains_key(k))
            && want_groups.iter().all(|g| rows.groups.contains(g))
    };
    let left = |rows: &PolicyRows| {
        format!(
            "{} of {} ACLs and {} of {} port groups missing",
            want_acls
                .iter()
                .filter(|k| !rows.acls.contains_key(*k))
                .count(),
            want_acls.len(),
            want_groups
                .iter()
                .filter(|g| !rows.groups.contains(*g))
                .count(),
            want_groups.len()
        )
    };
    let wait = watch.wait_until("every policy's ACLs", complete, left, bench.timeout);
    while_alive(wait, alive).await?;
    let last_change = while_alive(watch.wait_still(STILL_FOR, bench.timeout), alive).await?;
    let converge = last_change - first.started;
    let converge_rounds = first
        .metric("rovn_controller_reconcile_duration_seconds_count")
        .await?;
    let converge_round_s = first
        .metric("rovn_controller_reconcile_duration_seconds_sum")
        .await?;
    wait_for_quiet_nb(ovn, &mut nb_records, bench.timeout).await?;

    read_addresses(client, &mut model).await?;
    let (sets_checked, sets_wrong) = check_sets(&model, &policies, watch.rows());
    if !sets_wrong.is_empty() {
        eprintln!(
            "rovn-bench netpol: {} address sets differ from the model, e.g. {:?}",
            sets_wrong.len(),
            &sets_wrong[..sets_wrong.len().min(5)]
        );
    }
    let rows = watch.rows().clone();
    let policy_acls = rows
        .acls
        .keys()
        .filter(|(owner, _)| owner.starts_with("NetworkPolicy/"))
        .count();
    let nb_rows = row_count(&ovn.nb_sock, "OVN_Northbound", None)?;
    let sb_flows = settled_flow_count(ovn, bench.timeout).await?;
    let naive = netpol_naive::measure(
        &stage.dir.join("naive"),
        &ovn.nb_db,
        &model,
        &policies,
        bench.timeout,
    )
    .await?;

    // Policy edits, one at a time.
    let edited: Vec<usize> = (0..policies.len())
        .filter(|k| k % KINDS == EDITED_KIND)
        .collect();
    let mut edit_latencies = Vec::new();
    for e in 0..bench.policy_edits {
        let Some(&k) = edited.get(e % edited.len().max(1)) else {
            break;
        };
        let (policy, expect) = policy_edit(&model, &policies[k], e);
        let api: Api<NetworkPolicy> =
            Api::namespaced(client.clone(), &namespace_name(policy.namespace));
        let send = merge_patch(&api, &policy.name, json!({ "spec": policy_spec(&policy) }));
        let took = while_alive(timed(&mut watch, &expect, send, bench.timeout), alive).await?;
        edit_latencies.push(took);
        policies[k] = policy;
        tokio::time::sleep(bench.change_gap).await;
    }

    // Label changes: a pod moves into a `several-peers` policy's first peer, then back out.
    let labelled: Vec<usize> = (0..policies.len())
        .filter(|k| k % KINDS == LABEL_KIND)
        .collect();
    let mut label_latencies = Vec::new();
    // The pod moved in, which the next change moves back out.
    let mut moved_in: Option<(usize, usize)> = None;
    for c in 0..bench.label_changes {
        let (k, index, target) = match moved_in.take() {
            Some((k, index)) => {
                let original = cluster.model_pod(index).labels.get("app").cloned();
                (k, index, original.unwrap_or_default())
            }
            None => {
                let Some(&k) = labelled.get((c / 2) % labelled.len().max(1)) else {
                    break;
                };
                let candidates = label_candidates(&model, &policies[k]);
                let pair = c / 2 / labelled.len().max(1);
                let Some((index, value)) = candidates.get(pair % candidates.len().max(1)).cloned()
                else {
                    continue;
                };
                moved_in = Some((k, index));
                (k, index, value)
            }
        };
        let policy = policies[k].clone();
        model.pods[index]
            .labels
            .insert("app".into(), target.clone());
        let expect = Expect::Set(
            set_name(&policy, "ingress.0"),
            address_strings(&rule_set(&model, &policy)),
        );
        let pod = &model.pods[index];
        let api: Api<Pod> = Api::namespaced(client.clone(), &namespace_name(pod.namespace));
        let send = merge_patch(
            &api,
            &pod.name,
            json!({ "metadata": { "labels": { "app": target } } }),
        );
        let took = while_alive(timed(&mut watch, &expect, send, bench.timeout), alive).await?;
        label_latencies.push(took);
        tokio::time::sleep(bench.change_gap).await;
    }
    wait_for_quiet_nb(ovn, &mut nb_records, bench.timeout).await?;

    let restarted = restart(first, launch, ovn, &mut nb_records, bench.timeout).await?;

    let mut f = Figures::new();
    f.put("nodes", bench.stage.nodes);
    f.put("pods", bench.stage.pods);
    f.put("namespaces", bench.namespaces);
    f.put("policies", bench.policies);
    f.seconds("create_policies_s", create_policies);
    f.seconds("converge_s", converge);
    if let (Some(rounds), Some(seconds)) = (converge_rounds, converge_round_s) {
        f.real("converge_rounds", rounds);
        f.real("converge_round_s", seconds);
    }
    f.put("address_sets_checked", sets_checked);
    f.put("address_sets_wrong", sets_wrong.len());
    f.put("acls", rows.acls.len());
    f.put("policy_acls", policy_acls);
    f.put("port_groups", rows.groups.len());
    f.put("address_sets", rows.sets.len());
    f.put("nb_rows", nb_rows);
    f.put("sb_logical_flows", sb_flows);
    f.put("naive_policy_acls", naive.acls);
    f.put("naive_acls", naive.all_acls);
    f.put("naive_address_sets", naive.address_sets);
    f.put("naive_sb_logical_flows", naive.sb_flows);
    f.put("policy_edits", edit_latencies.len());
    f.p50_p99("policy_change", &edit_latencies);
    f.put("label_changes", label_latencies.len());
    f.p50_p99("label_change", &label_latencies);
    restarted.put_into(&mut f);
    if stage.keep {
        f.put("dir", stage.dir.display());
    }
    drop(watch);
    drop(stage);
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_with_addresses(cluster: &NetpolCluster, pods: usize) -> Model {
        let mut model = Model::new(cluster, pods);
        for (i, pod) in model.pods.iter_mut().enumerate() {
            pod.ip = Some(Ipv4Addr::from(
                u32::from(Ipv4Addr::new(10, 16, 0, 10)) + i as u32,
            ));
        }
        model
    }

    #[test]
    fn edits_change_the_port_or_the_set() {
        let cluster = NetpolCluster {
            namespaces: 10,
            policies: 20,
        };
        let model = model_with_addresses(&cluster, 100);
        let policy = cluster.policy(EDITED_KIND);
        let (by_port, expect) = policy_edit(&model, &policy, 0);
        assert_ne!(by_port, policy);
        assert!(matches!(expect, Expect::AclPort(_, _, 1000)));
        let (by_peer, expect) = policy_edit(&model, &policy, 1);
        assert_ne!(by_peer.ingress, policy.ingress);
        match expect {
            Expect::Set(_, addresses) => assert!(!addresses.is_empty()),
            Expect::AclPort(..) => panic!("the namespace selector should have changed"),
        }
    }

    #[test]
    fn a_label_candidate_moves_into_the_first_peer_only() {
        let cluster = NetpolCluster {
            namespaces: 2,
            policies: 8,
        };
        let mut model = model_with_addresses(&cluster, 60);
        let policy = cluster.policy(LABEL_KIND);
        let before = rule_set(&model, &policy);
        let candidates = label_candidates(&model, &policy);
        let (index, value) = candidates[0].clone();
        let ip = model.pods[index].ip;
        assert!(!before.contains(&ip.unwrap_or(Ipv4Addr::UNSPECIFIED)));
        model.pods[index].labels.insert("app".into(), value);
        let after = rule_set(&model, &policy);
        assert_eq!(after.len(), before.len() + 1);
    }
}
