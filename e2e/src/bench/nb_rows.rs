//! Sizes of a database once it has settled: rows counted from `ovsdb-client dump`, and the
//! SB logical flow count once ovn-northd has caught up. What the Services and NetworkPolicy
//! benchmarks print beside their timings.

use std::path::Path;
use std::time::Duration;

use crate::lab::cmd;

use super::central::ScratchCentral;
use super::error::BenchError;
use super::stage::until_still;

/// How long the SB flow count must hold still to count as ovn-northd's answer.
const SB_QUIET_FOR: Duration = Duration::from_secs(3);

/// Rows of `database` at `sock` (of `table` only, when given), counted from `ovsdb-client
/// dump`'s tables: each row is one line between a table's dashes and the blank line after.
pub fn row_count(sock: &Path, database: &str, table: Option<&str>) -> Result<usize, BenchError> {
    let remote = format!("unix:{}", sock.display());
    let mut command = std::process::Command::new("ovsdb-client");
    command.args(["dump", &remote, database]);
    if let Some(table) = table {
        command.args([table, "_uuid"]);
    }
    let out = command
        .output()
        .map_err(|e| BenchError::protocol("ovsdb-client dump", e.to_string()))?;
    if !out.status.success() {
        return Err(BenchError::protocol(
            "ovsdb-client dump",
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(count_dump_rows(&String::from_utf8_lossy(&out.stdout)))
}

/// The number of rows in `ovsdb-client dump` output. Pure.
pub fn count_dump_rows(text: &str) -> usize {
    let mut rows = 0;
    let mut in_rows = false;
    for line in text.lines() {
        if line.starts_with("---") {
            in_rows = true;
        } else if line.trim().is_empty() {
            in_rows = false;
        } else if in_rows {
            rows += 1;
        }
    }
    rows
}

/// The SB `Logical_Flow` count once ovn-northd has caught up with NB (`ovn-nbctl --wait=sb
/// sync`: northd has answered NB's current config) and the count has not changed for
/// [`SB_QUIET_FOR`]. Without the first wait, a northd still busy with a big NB leaves the
/// count at 0 long enough to look settled.
pub async fn settled_flow_count(
    ovn: &ScratchCentral,
    timeout: Duration,
) -> Result<usize, BenchError> {
    let db = format!("--db={}", ovn.nb_remote());
    let wait = format!("--timeout={}", timeout.as_secs().max(1));
    tokio::task::block_in_place(|| {
        cmd::run(
            "wait for ovn-northd to catch up with NB",
            "ovn-nbctl",
            [db.as_str(), wait.as_str(), "--wait=sb", "sync"],
        )
    })?;
    until_still(
        Duration::from_millis(500),
        SB_QUIET_FOR,
        timeout,
        "ovn-northd's logical flows to settle",
        |last| format!("{last} flows"),
        || row_count(&ovn.sb_sock, "OVN_Southbound", Some("Logical_Flow")),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_rows_are_the_lines_under_each_tables_dashes() {
        let text = "Load_Balancer table\n_uuid name\n------ ----\nu1 a\nu2 b\n\nLogical_Switch table\n_uuid name\n------ ----\nu3 join\n";
        assert_eq!(count_dump_rows(text), 3);
        assert_eq!(count_dump_rows(""), 0);
    }
}
