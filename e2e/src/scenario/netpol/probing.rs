//! Observing a [`Matrix`] on a cluster: one `rovn-podtool probe` per source pod, all sources at
//! once, each probing its destinations on every column concurrently; and probing again until
//! what is seen is what the model expects, or a bound passes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::matrix::{Cell, Column, Comparison, Matrix, agrees};
use crate::podtool::probe::{ProbeTarget, Verdict, parse_result_line};
use crate::scenario::cluster::{Cluster, PodRef, argv};

/// Bound on one probe: silence this long is a drop. Well above a lab round trip under load,
/// well below what would make a table slow.
pub const PROBE_TIMEOUT: &str = "1s";
/// How long a change (a policy, a label) may take to show in the table.
pub const CONVERGE_WITHIN: Duration = Duration::from_secs(10);
/// Pause between probe rounds while waiting to converge.
const ROUND_GAP: Duration = Duration::from_millis(300);

/// Probes the cells of `matrix` (all of them, or those in `only`) once: what each saw. A
/// source whose prober could not run fails all its cells with the reason.
pub async fn observe(
    cluster: &impl Cluster,
    matrix: &Matrix,
    only: Option<&BTreeSet<Cell>>,
) -> BTreeMap<Cell, Verdict> {
    // Whether a node answers is the suite's question after the case.
    let _ = flush_conntrack(cluster).await;
    let targets = matrix.targets();
    let cell_of: HashMap<ProbeTarget, (usize, Column)> =
        targets.iter().map(|&(d, c, t)| (t, (d, c))).collect();
    let mut runs = Vec::new();
    for (s, source) in matrix.sources.iter().enumerate() {
        let mine: Vec<&(usize, Column, ProbeTarget)> = targets
            .iter()
            .filter(|(d, c, _)| only.is_none_or(|cells| cells.contains(&(s, *d, *c))))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let mut command = argv([
            cluster.podtool().as_str(),
            "probe",
            "--timeout",
            PROBE_TIMEOUT,
        ]);
        command.extend(mine.iter().map(|(_, _, t)| t.to_string()));
        let cells: Vec<Cell> = mine.iter().map(|&&(d, c, _)| (s, d, c)).collect();
        runs.push(async move { (s, cells, run_prober(cluster, source, &command).await) });
    }
    let mut observed = BTreeMap::new();
    for (s, cells, output) in futures::future::join_all(runs).await {
        match output {
            Ok(lines) => {
                for result in lines.lines().filter_map(parse_result_line) {
                    if let Some(&(d, c)) = cell_of.get(&result.target) {
                        observed.insert((s, d, c), result.verdict);
                    }
                }
            }
            Err(reason) => {
                for cell in cells {
                    observed.insert(cell, Verdict::Failed(reason.clone()));
                }
            }
        }
    }
    observed
}

async fn run_prober(
    cluster: &impl Cluster,
    source: &PodRef,
    command: &[String],
) -> Result<String, String> {
    match cluster.exec_in_pod(source, command).await {
        Ok(out) => out
            .ok(&format!("rovn-podtool probe in {source}"))
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Empties every node's connection tracker before a probe round, and says why some node's
/// `ovs-vswitchd` does not answer, if one does not. The lab's userspace datapath (OVS 3.1.0)
/// mishandles what a finished connection leaves of its NAT entry: a new flow over the same
/// addresses and ports (the sources' ephemeral ports come round again after a few hundred
/// probes) was dropped for seconds, and a UDP one made it abort on an assertion in
/// `conn_update_state`. Every probe is a fresh connection, so nothing checked depends on what
/// the trackers held.
pub async fn flush_conntrack(cluster: &impl Cluster) -> Option<String> {
    let command = argv(["ovs-appctl", "-t", "ovs-vswitchd", "dpctl/flush-conntrack"]);
    for node in cluster.nodes() {
        let why = match cluster.exec_on_node(&node, &command).await {
            Ok(out) if out.success => continue,
            Ok(out) => out.stderr.trim().to_string(),
            Err(e) => e.to_string(),
        };
        return Some(format!(
            "ovs-vswitchd on {node} is gone ({why}); see its log"
        ));
    }
    None
}

/// How often a cell that should be reached but was not is probed again at the deadline.
const LAST_CHANCES: usize = 2;

/// At the deadline: cells that should be reached but were not are probed up to
/// [`LAST_CHANCES`] more times. A lone silent probe can be a packet the loaded userspace
/// datapath lost (a SYN whose retransmission comes after the 1 s timeout); a reply can never
/// be faked, so a cell reached that should be denied is wrong at once and never retried.
async fn last_chance(
    cluster: &impl Cluster,
    matrix: &Matrix,
    expected: &BTreeMap<Cell, bool>,
    mut observed: BTreeMap<Cell, Verdict>,
    wrong: &BTreeSet<Cell>,
) -> Comparison {
    let mut silent: BTreeSet<Cell> = wrong
        .iter()
        .filter(|cell| expected.get(cell) == Some(&true))
        .copied()
        .collect();
    for _ in 0..LAST_CHANCES {
        if silent.is_empty() {
            break;
        }
        let seen = observe(cluster, matrix, Some(&silent)).await;
        silent.retain(|cell| seen.get(cell).is_none_or(|v| !agrees(true, v)));
        for (cell, verdict) in seen {
            if agrees(true, &verdict) {
                observed.insert(cell, verdict);
            }
        }
    }
    Comparison::new(expected, &observed)
}

/// Probes until every cell agrees with `expected`, at most for `within`: a change needs time
/// to reach OVN, but a table that never settles is the answer. After a full round only the
/// wrong cells are probed again (every connection costs the datapath a conntrack entry), and
/// once they agree one more full round confirms the whole table.
pub async fn converge(
    cluster: &impl Cluster,
    matrix: &Matrix,
    expected: &BTreeMap<Cell, bool>,
    within: Duration,
) -> Comparison {
    let deadline = Instant::now() + within;
    let mut observed = observe(cluster, matrix, None).await;
    let mut full = true;
    loop {
        let comparison = Comparison::new(expected, &observed);
        let wrong = comparison.wrong_cells();
        if wrong.is_empty() && full {
            return comparison;
        }
        if Instant::now() >= deadline {
            return last_chance(cluster, matrix, expected, observed, &wrong).await;
        }
        tokio::time::sleep(ROUND_GAP).await;
        if wrong.is_empty() {
            observed = observe(cluster, matrix, None).await;
            full = true;
        } else {
            observed.extend(observe(cluster, matrix, Some(&wrong)).await);
            full = false;
        }
    }
}
