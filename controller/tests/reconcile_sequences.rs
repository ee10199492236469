//! Random sequences of cluster states against a real NB: after every round NB holds exactly
//! the desired rows and the next diff is empty, whatever changed in between.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, ensure};
use common::{Ovn, cluster, pod, reconcile};
use rovn_api::MacAddr;
use rovn_controller::desired::{ClusterState, DesiredState, desired_state};
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
    let wanted: BTreeSet<&String> = desired.switch_ports.keys().collect();
    ensure!(
        owned == wanted,
        "owned ports differ: {owned:?} vs {wanted:?}"
    );
    for (name, want) in &desired.switch_ports {
        let have = &ports[name];
        ensure!(
            parent_of.get(&have.uuid) == Some(&want.parent),
            "{name} on the wrong switch"
        );
        ensure!(have.addresses == want.row.addresses, "{name} addresses");
        ensure!(
            have.port_security == want.row.port_security,
            "{name} port_security"
        );
        for (k, v) in want.row.options.iter().chain(&want.row.external_ids) {
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
