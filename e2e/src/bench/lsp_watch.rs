//! Counting, through an NB monitor, the pod ports rovn has committed: the NB half of the
//! controller's convergence.

use std::collections::BTreeSet;
use std::time::Duration;

use rovn_api::names::{VENDOR, VENDOR_KEY};
use rovn_ovsdb::{Change, Client, Event, Replica, Row, TableMonitor};
use rovn_ovsdb_schemas::nb::{self, LogicalSwitchPort};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::error::BenchError;
use super::ovsdb_util::{map_value, start_client, string_column};

const LSP_TABLE: &str = "Logical_Switch_Port";

/// A synced NB monitor of logical switch port names and owners.
pub struct LspWatch {
    client: Client,
    events: broadcast::Receiver<Event>,
}

impl LspWatch {
    /// Connects to NB at `remote` and syncs.
    pub async fn start(remote: &str, timeout: Duration) -> Result<LspWatch, BenchError> {
        let table = TableMonitor::all(LSP_TABLE)
            .with_columns([LogicalSwitchPort::NAME, LogicalSwitchPort::EXTERNAL_IDS]);
        let (client, events) = start_client(nb::DATABASE, remote, vec![table], timeout).await?;
        Ok(LspWatch { client, events })
    }

    /// Waits until every name of `expected` is a rovn-owned port in NB; returns when.
    pub async fn wait_for_all(
        &mut self,
        expected: &BTreeSet<String>,
        timeout: Duration,
    ) -> Result<Instant, BenchError> {
        let deadline = Instant::now() + timeout;
        let mut present = self.recount(expected);
        while present.len() < expected.len() {
            let received = tokio::time::timeout_at(deadline, self.events.recv()).await;
            match received {
                Err(_) => {
                    return Err(BenchError::Timeout {
                        what: format!("{} pod ports in NB", expected.len()),
                        detail: format!("{} present", present.len()),
                    });
                }
                Ok(Err(RecvError::Lagged(_))) => present = self.recount(expected),
                Ok(Err(RecvError::Closed)) => {
                    return Err(BenchError::protocol("the NB monitor", "its client stopped"));
                }
                Ok(Ok(Event::Change(change))) if change.table() == LSP_TABLE => {
                    apply_change(&mut present, expected, &change)
                }
                Ok(Ok(_)) => {}
            }
        }
        Ok(Instant::now())
    }

    fn recount(&self, expected: &BTreeSet<String>) -> BTreeSet<String> {
        self.client
            .read(|replica| owned_ports(replica, expected))
            .unwrap_or_default()
    }
}

/// The names of `expected` that are rovn-owned ports in the replica.
fn owned_ports(replica: &Replica, expected: &BTreeSet<String>) -> BTreeSet<String> {
    replica
        .table(LSP_TABLE)
        .map(|t| {
            t.iter()
                .filter_map(|(_, row)| counted_name(row, expected))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The port's name if it is one of `expected` and owned by rovn.
fn counted_name<'a>(row: &'a Row, expected: &BTreeSet<String>) -> Option<&'a str> {
    let name = string_column(row, LogicalSwitchPort::NAME)?;
    let owned = map_value(row, LogicalSwitchPort::EXTERNAL_IDS, VENDOR_KEY) == Some(VENDOR);
    (owned && expected.contains(name)).then_some(name)
}

/// Updates the set of present ports with one row change.
fn apply_change(present: &mut BTreeSet<String>, expected: &BTreeSet<String>, change: &Change) {
    match change {
        Change::Insert { new, .. } => {
            if let Some(name) = counted_name(new, expected) {
                present.insert(name.to_string());
            }
        }
        Change::Modify { old, new, .. } => {
            if let Some(name) = string_column(old, LogicalSwitchPort::NAME) {
                present.remove(name);
            }
            if let Some(name) = counted_name(new, expected) {
                present.insert(name.to_string());
            }
        }
        Change::Delete { old, .. } => {
            if let Some(name) = string_column(old, LogicalSwitchPort::NAME) {
                present.remove(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rovn_ovsdb::{Datum, Uuid};

    use super::*;

    fn port(name: &str, vendor: Option<&str>) -> Arc<Row> {
        let ids: Vec<(&str, &str)> = vendor.map(|v| (VENDOR_KEY, v)).into_iter().collect();
        Arc::new(
            [
                ("name".to_string(), Datum::atom(name)),
                ("external_ids".to_string(), Datum::map(ids)),
            ]
            .into_iter()
            .collect(),
        )
    }

    #[test]
    fn only_expected_rovn_ports_count() {
        let expected: BTreeSet<String> = ["a.default".to_string()].into();
        let mut present = BTreeSet::new();
        let uuid = Uuid::nil();
        let insert = |new| Change::Insert {
            table: LSP_TABLE.into(),
            uuid,
            new,
        };
        apply_change(&mut present, &expected, &insert(port("a.default", None)));
        apply_change(
            &mut present,
            &expected,
            &insert(port("b.default", Some(VENDOR))),
        );
        assert!(present.is_empty());
        apply_change(
            &mut present,
            &expected,
            &insert(port("a.default", Some(VENDOR))),
        );
        assert_eq!(present.len(), 1);
        let delete = Change::Delete {
            table: LSP_TABLE.into(),
            uuid,
            old: port("a.default", Some(VENDOR)),
        };
        apply_change(&mut present, &expected, &delete);
        assert!(present.is_empty());
    }
}
