//! Tearing a lab down from its name alone, so it works after a crash of `up`, on a half-made
//! lab, and twice in a row: processes (by pidfile, by command line naming the lab's state
//! dir, and anything inside a lab namespace), then the namespaces (and with them every
//! link), then the state directory with every socket, database and log.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::daemon;
use super::error::LabError;
use super::names::{LabName, LabNames};
use super::netns;
use super::status;

/// How long daemons get to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Bound on stop rounds; each round after the first only finds processes that were starting.
const MAX_STOP_ROUNDS: usize = 4;

/// Whether anything of the lab exists: its state directory or any of its namespaces.
pub fn has_leftovers(names: &LabNames) -> Result<bool, LabError> {
    Ok(names.state_dir().exists() || !netns::list_with_prefix(&names.netns_prefix())?.is_empty())
}

/// Removes everything lab `name` made; idempotent.
pub fn down(name: &LabName) -> Result<(), LabError> {
    let names = LabNames::new(name.clone());
    let state_dir = names.state_dir().display().to_string();
    // With the trailing slash, lab `ab` never matches a daemon of lab `abc`.
    let state_dir_prefix = format!("{state_dir}/");
    // Repeat until a round finds nothing: a daemon whose `ip netns exec` had not yet entered
    // its namespace during one round is inside it in the next.
    let mut survivors = Vec::new();
    for _ in 0..MAX_STOP_ROUNDS {
        let pids = lab_pids(&names, &state_dir_prefix);
        if pids.is_empty() {
            break;
        }
        tracing::debug!(lab = %name, ?pids, "stopping");
        survivors = daemon::stop(&pids, STOP_GRACE);
    }
    let namespaces = netns::list_with_prefix(&names.netns_prefix())?;

    let mut problems = Vec::new();
    if !survivors.is_empty() {
        problems.push(format!("processes {survivors:?} survived SIGKILL"));
    }
    for ns in &namespaces {
        if let Err(e) = netns::delete(ns) {
            problems.push(e.to_string());
        }
    }
    match std::fs::remove_dir_all(names.state_dir()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push(format!("remove {state_dir}: {e}")),
    }
    let remaining = netns::list_with_prefix(&names.netns_prefix())?;
    if !remaining.is_empty() {
        problems.push(format!("namespaces {remaining:?} remain"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LabError::Leftovers {
            name: name.to_string(),
            leftovers: problems.join("; "),
        })
    }
}

/// Tears down every lab whose owner process has exited (e.g. a test killed before its guard
/// could run) and returns their names; labs without an owner are left alone.
pub fn down_stale() -> Result<Vec<LabName>, LabError> {
    let mut removed = Vec::new();
    for lab in status::status()? {
        let stale = lab
            .info
            .as_ref()
            .and_then(|i| i.owner)
            .is_some_and(|owner| !owner.is_alive());
        if stale && let Ok(name) = lab.name.parse::<LabName>() {
            down(&name)?;
            removed.push(name);
        }
    }
    Ok(removed)
}

/// Every process of the lab: by pidfile, by command line (root-namespace daemons whose
/// pidfiles are gone), and everything inside a lab namespace.
fn lab_pids(names: &LabNames, state_dir_prefix: &str) -> Vec<i32> {
    let mut pids: BTreeSet<i32> = pidfiles(names.state_dir())
        .iter()
        .filter_map(|p| daemon::read_pidfile(p))
        .filter(|pid| daemon::is_alive(*pid) && daemon::cmdline_mentions(*pid, state_dir_prefix))
        .collect();
    // Only the lab's own programs: a shell tailing a lab log must survive `down`.
    pids.extend(lab_processes(state_dir_prefix));
    for ns in netns::list_with_prefix(&names.netns_prefix()).unwrap_or_default() {
        // A namespace file left half-made by a crash has no processes; deleting it later
        // reports anything that is really wrong with it.
        if let Ok(in_ns) = netns::pids(&ns) {
            pids.extend(in_ns);
        }
    }
    pids.into_iter().filter(|p| daemon::is_alive(*p)).collect()
}

/// Programs a lab runs; `down` looks for them by command line when pidfiles are gone.
pub const LAB_PROGRAMS: &[&str] = &[
    "ovsdb-server",
    "ovs-vswitchd",
    "ovn-northd",
    "ovn-controller",
    "rovn-kubesim",
    "rovn-kubelet",
    "rovn-scheduler",
    "rovn-controller",
    "rovn-node",
    // Helpers of an interrupted `up`, which could otherwise retry a vanished socket.
    "ovs-vsctl",
    "ovn-sbctl",
    "ovn-nbctl",
    "ovsdb-tool",
];

/// The running lab programs whose command line contains `needle` (the lab's state dir).
pub fn lab_processes(needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            daemon::program_name(*pid).is_some_and(|p| LAB_PROGRAMS.contains(&p.as_str()))
                && daemon::cmdline_mentions(*pid, needle)
                && daemon::is_alive(*pid)
        })
        .collect()
}

/// Every `*.pid` file below `dir` (missing or unreadable directories yield none).
pub fn pidfiles(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() && path.extension().is_some_and(|e| e == "pid") => {
                    found.push(path)
                }
                _ => {}
            }
        }
    }
    found.sort();
    found
}
