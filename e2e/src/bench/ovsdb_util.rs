//! Small things the benchmarks need from `rovn-ovsdb`: a monitoring client on one remote, and
//! reading string columns of raw rows. Pure apart from [`start_client`].

use std::time::Duration;

use rovn_ovsdb::{Atom, Client, ClientConfig, Datum, Event, Remote, Row, TableMonitor};
use tokio::sync::broadcast;

use super::error::BenchError;

/// Events a benchmark client buffers: enough for a controller's whole first sync of 10,000
/// ports to arrive while the benchmark is busy elsewhere.
pub const EVENT_CAPACITY: usize = 1 << 17;

/// Starts a client of `database` at `remote` monitoring `tables`, subscribed from its first
/// sync on, and waits until it is synced.
pub async fn start_client(
    database: &str,
    remote: &str,
    tables: Vec<TableMonitor>,
    timeout: Duration,
) -> Result<(Client, broadcast::Receiver<Event>), BenchError> {
    let what = format!("{database} at {remote}");
    let parsed: Remote = remote
        .parse()
        .map_err(|e| BenchError::ovsdb(what.clone(), e))?;
    let mut config = ClientConfig::new(database, vec![parsed]);
    config.tables = tables;
    config.event_capacity = EVENT_CAPACITY;
    let (client, events) =
        Client::start_subscribed(config).map_err(|e| BenchError::ovsdb(what.clone(), e))?;
    client
        .wait_synced(timeout)
        .await
        .map_err(|e| BenchError::ovsdb(what, e))?;
    Ok((client, events))
}

/// The string value of scalar column `column`.
pub fn string_column<'a>(row: &'a Row, column: &str) -> Option<&'a str> {
    row.get(column)
        .and_then(Datum::as_atom)
        .and_then(Atom::as_str)
}

/// The value under `key` of string map column `column`.
pub fn map_value<'a>(row: &'a Row, column: &str, key: &str) -> Option<&'a str> {
    row.get(column)
        .and_then(Datum::as_map)
        .and_then(|m| m.get(&Atom::String(key.to_string())))
        .and_then(Atom::as_str)
}

#[cfg(test)]
mod tests {
    use rovn_api::names::{VENDOR, VENDOR_KEY};

    use super::*;

    #[test]
    fn columns_are_read_as_strings() {
        let row: Row = [
            ("name".to_string(), Datum::atom("p.default")),
            (
                "external_ids".to_string(),
                Datum::map([(VENDOR_KEY, VENDOR)]),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(string_column(&row, "name"), Some("p.default"));
        assert_eq!(map_value(&row, "external_ids", VENDOR_KEY), Some(VENDOR));
        assert_eq!(map_value(&row, "external_ids", "other"), None);
        assert_eq!(string_column(&row, "missing"), None);
    }
}
