//! Waiting until a lab's OVN is really usable: every chassis registered in the SB and every
//! node with a tunnel to every other node. Timeouts name what is missing and show the logs of
//! the ovn-controllers concerned.

use std::time::{Duration, Instant};

use super::cmd;
use super::daemon::Daemon;
use super::error::LabError;
use super::names::{LabNames, Place};
use super::node::{self, Encap};
use super::poll;

/// How often the SB and the switches are asked.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The chassis names registered in the SB.
pub fn sb_chassis(names: &LabNames) -> Result<Vec<String>, LabError> {
    let out = cmd::run(
        "list chassis in the Southbound database",
        "ovn-sbctl",
        [
            format!("--db={}", names.sb_remote()).as_str(),
            "--timeout=5",
            "--bare",
            "--columns=name",
            "list",
            "Chassis",
        ],
    )?;
    Ok(out.split_whitespace().map(str::to_string).collect())
}

/// Waits until every node's chassis is in the SB, failing early if a daemon dies.
pub fn wait_for_chassis(
    names: &LabNames,
    indexes: &[u8],
    daemons: &[Daemon],
    controllers: &[Daemon],
    deadline: Instant,
) -> Result<(), LabError> {
    let wanted: Vec<String> = indexes.iter().map(|i| Place::Node(*i).label()).collect();
    let mut registered = Vec::new();
    let done = poll::until(deadline, POLL_INTERVAL, || {
        for d in daemons {
            d.ensure_alive()?;
        }
        registered = sb_chassis(names)?;
        Ok::<_, LabError>(wanted.iter().all(|w| registered.contains(w)).then_some(()))
    })?;
    done.ok_or_else(|| {
        let missing: Vec<&String> = wanted.iter().filter(|w| !registered.contains(w)).collect();
        LabError::Timeout {
            what: format!("chassis {missing:?} to register in the Southbound database"),
            logs: controllers
                .iter()
                .filter(|c| {
                    missing
                        .iter()
                        .any(|m| c.label.starts_with(&format!("{m}/")))
                })
                .map(Daemon::log_excerpt)
                .collect(),
        }
    })
}

/// Waits until every node has a tunnel to every other node, so pods on different nodes can talk
/// as soon as `up` returns.
pub fn wait_for_tunnels(
    names: &LabNames,
    encap: Encap,
    indexes: &[u8],
    controllers: &[Daemon],
    deadline: Instant,
) -> Result<(), LabError> {
    let mut incomplete: Vec<u8> = indexes.to_vec();
    let done = poll::until(deadline, POLL_INTERVAL, || {
        let mut still = Vec::new();
        for &i in &incomplete {
            let remotes = node::tunnel_remotes(names, i, encap)?;
            let complete = indexes
                .iter()
                .filter(|&&j| j != i)
                .all(|&j| remotes.contains(&Place::Node(j).underlay_ip().to_string()));
            if !complete {
                still.push(i);
            }
        }
        incomplete = still;
        Ok::<_, LabError>(incomplete.is_empty().then_some(()))
    })?;
    done.ok_or_else(|| LabError::Timeout {
        what: format!(
            "{encap} tunnels to every other node on {:?}",
            incomplete
                .iter()
                .map(|i| Place::Node(*i).label())
                .collect::<Vec<_>>()
        ),
        logs: controllers
            .iter()
            .filter(|c| {
                incomplete
                    .iter()
                    .any(|i| c.label == format!("{}/ovn-controller", Place::Node(*i).label()))
            })
            .map(Daemon::log_excerpt)
            .collect(),
    })
}
