//! Random sequences of cluster states against a real NB: after every round NB holds exactly
//! the desired rows and the next diff is empty, whatever changed in between.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, ensure};
use common::{Ovn, cluster, pod, reconcile};
use rovn_api::MacAddr;
use rovn_controller::desired::{ClusterState, DesiredState, desired_state};
use rovn_controller::reconcile::{self, ApplyOptions};
use rovn_ovsdb::{Client, Model, Uuid};
use rovn_ovsdb_schemas::nb::{LogicalSwitch, LogicalSwitchPort};

/// A small deterministic generator, so a failing sequence can be replayed from its seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound.max(1)
    }
}

fn mutate(state: &mut ClusterState, rng: &mut Lcg, round: usize, fresh: &mut usize) {
    for _ in 0..2 + rng.next(12) {
        if state.pods.is_empty() {
            break;
        }
        let i = rng.next(state.pods.len());
        match rng.next(5) {
            0 => {
                state.pods.remove(i);
            }
            1 => state.pods[i].uid = format!("uid-r{round}-{i}"),
            2 => {
                let p = &mut state.pods[i];
                let [a, b, _, d] = p.ip.octets();
                p.ip = std::net::Ipv4Addr::new(a, b, 100 + round as u8, d);
                p.mac = MacAddr::derived_from(p.ip);
            }
            3 => state.pods[i].node = format!("node{}", rng.next(state.nodes.len())),
            _ => {
                *fresh += 1;
                state.pods.push(pod(*fresh, state.nodes.len().max(1)));
            }
        }
    }
    if rng.next(4) == 0 && state.nodes.len() > 1 {
        state.nodes.pop();
    }
}

/// Checks NB against `desired`: the same owned switch ports, each on its desired switch with
/// the desired managed columns.
fn check(client: &Client, desired: &DesiredState) -> Result<()> {
    let (ports, parent_of) = client
        .read(|r| {
            let lsps = r.table(LogicalSwitchPort::TABLE)?;
            let switches = r.table(LogicalSwitch::TABLE)?;
            let ports: BTreeMap<String, LogicalSwitchPort> = lsps
                .iter()
                .filter_map(|(u, row)| LogicalSwitchPort::from_row(*u, row).ok())
                .map(|p| (p.name.clone(), p))
                .collect();
            let parent_of: BTreeMap<Uuid, String> = switches
                .iter()
                .filter_map(|(u, row)| LogicalSwitch::from_row(*u, row).ok())
                .flat_map(|s| {
                    s.ports
                        .iter()
                        .map(|p| (*p, s.name.clone()))
                        .collect::<Vec<_>>()
                })
                .collect();
            Some((ports, parent_of))
        })
        .flatten()
        .context("no replica")?;
    let owned: BTreeSet<&String> = ports
        .iter()
        .filter(|(_, p)| p.external_ids.get("rovn.io/vendor").map(String::as_str) == Some("rovn"))
        .map(|(n, _)| n)
        .collect();
    let wanted: BTreeSet<&str> = desired
        .rows::<LogicalSwitchPort>()
        .map(|(key, _)| key.as_str())
        .collect();
    let owned: BTreeSet<&str> = owned.into_iter().map(String::as_str).collect();
    ensure!(
        owned == wanted,
        "owned ports differ: {owned:?} vs {wanted:?}"
    );
    for (key, placed) in desired.rows::<LogicalSwitchPort>() {
        let name = key.as_str();
        let want: LogicalSwitchPort = desired.model(key).context("model")?;
        let have = &ports[name];
        ensure!(
            parent_of.get(&have.uuid).map(String::as_str)
                == placed.parent.as_ref().map(|p| p.as_str()),
            "{name} on the wrong switch"
        );
        ensure!(have.addresses == want.addresses, "{name} addresses");
        ensure!(
            have.port_security == want.port_security,
            "{name} port_security"
        );
        for (k, v) in want.options.iter().chain(&want.external_ids) {
            ensure!(
                have.options.get(k) == Some(v) || have.external_ids.get(k) == Some(v),
                "{name} lacks {k}={v}"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_round_converges_exactly() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let mut changed_rows = 0;
    for seed in [1u64, 7, 42] {
        let client = ovn.client().await?;
        let mut rng = Lcg(seed);
        let mut state = cluster(4, 30);
        let mut fresh = 1000;
        for round in 0..12 {
            mutate(&mut state, &mut rng, round, &mut fresh);
            let desired = desired_state(&state);
            ensure!(
                desired.problems.is_empty(),
                "seed {seed} round {round}: {:?}",
                desired.problems
            );
            let (plan, _) = reconcile(&client, &state).await?;
            if round > 0 {
                changed_rows += plan.steps().count();
            }
            check(&client, &desired).with_context(|| format!("seed {seed} round {round}"))?;
            let (again, _) = reconcile(&client, &state).await?;
            ensure!(
                again.is_empty(),
                "seed {seed} round {round}: not converged: {:?}",
                again.steps().collect::<Vec<_>>()
            );
        }
    }
    // The sequences must exercise changes, not only initial applies.
    println!("rows changed after the first round of each seed: {changed_rows}");
    ensure!(changed_rows > 150, "only {changed_rows} rows changed");
    Ok(())
}

/// The steady-state rounds: only the owners whose desired rows changed are diffed, through the
/// replica's indexes. After every such round NB must be exactly what a full diff would make it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_limited_to_changed_owners_converge_like_full_ones() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let mut scoped_steps = 0;
    for seed in [3u64, 11] {
        let client = ovn.client().await?;
        let mut rng = Lcg(seed);
        let mut state = cluster(4, 30);
        let mut previous = desired_state(&state);
        reconcile(&client, &state).await?;
        let mut fresh = 2000;
        for round in 0..12 {
            mutate(&mut state, &mut rng, round, &mut fresh);
            let desired = desired_state(&state);
            let changed = desired.changed_owners(&previous);
            let plan = client
                .read(|r| reconcile::diff_owners(&desired, r, &changed))
                .context("no replica")??;
            for step in plan.steps() {
                let owner = step.owner.as_ref().context("a step without an owner")?;
                ensure!(
                    changed.contains(owner),
                    "{owner} changed nothing but was written"
                );
            }
            scoped_steps += plan.steps().count();
            reconcile::apply(&client, &plan, &ApplyOptions::default()).await?;
            check(&client, &desired).with_context(|| format!("seed {seed} round {round}"))?;
            let full = client
                .read(|r| reconcile::diff(&desired, r))
                .context("no replica")??;
            ensure!(
                full.is_empty(),
                "seed {seed} round {round}: the scoped round left work: {:?}",
                full.steps().map(|s| &s.what).collect::<Vec<_>>()
            );
            previous = desired;
        }
    }
    ensure!(scoped_steps > 100, "only {scoped_steps} scoped steps");
    Ok(())
}

/// A pod on a Subnet NB does not have yet: a round limited to the pod also writes the Subnet's
/// switch, since the pod's port needs it as its parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_round_brings_the_parents_its_rows_need() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let client = ovn.client().await?;
    let mut state = cluster(1, 2);
    reconcile(&client, &state).await?;
    state.subnets.push(rovn_controller::desired::Subnet {
        name: "green".into(),
        cidr: "10.18.0.0/16".parse()?,
        gateway: "10.18.0.1".parse()?,
        private: false,
        allow_subnets: Vec::new(),
    });
    let mut green = pod(100, 1);
    green.switch = "green".into();
    green.ip = "10.18.0.9".parse()?;
    green.mac = MacAddr::derived_from(green.ip);
    let owner = rovn_api::Owner::pod(&green.namespace, &green.name);
    state.pods.push(green);
    let desired = desired_state(&state);
    // The cluster's egress `allow` lists every Subnet (the controller's Subnet changes are full
    // rounds): it is in scope, the green Subnet is not and must be brought in as a parent.
    let cluster_owner = rovn_api::Owner::cluster(rovn_api::names::CLUSTER_ROUTER);
    let plan = client
        .read(|r| reconcile::diff_owners(&desired, r, &[owner, cluster_owner].into()))
        .context("no replica")??;
    reconcile::apply(&client, &plan, &ApplyOptions::default()).await?;
    check(&client, &desired)?;
    let full = client
        .read(|r| reconcile::diff(&desired, r))
        .context("no replica")??;
    ensure!(
        full.is_empty(),
        "left: {:?}",
        full.steps().map(|s| &s.what).collect::<Vec<_>>()
    );
    Ok(())
}
