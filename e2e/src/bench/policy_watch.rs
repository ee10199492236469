//! Following, through an NB monitor, rovn's NetworkPolicy rows: ACLs by owner and id with
//! their matches, Address_Sets by name with their addresses, Port_Group names, and when any
//! of them last changed. The NB half of the NetworkPolicy benchmark.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rovn_api::names::{ID_KEY, OWNER_KEY, VENDOR, VENDOR_KEY};
use rovn_ovsdb::{Atom, Change, Client, Datum, Event, Replica, Row, TableMonitor};
use rovn_ovsdb_schemas::nb::{self, Acl, AddressSet, PortGroup};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::error::BenchError;
use super::ovsdb_util::{map_value, start_client, string_column};

const ACL: &str = "ACL";
const ADDRESS_SET: &str = "Address_Set";
const PORT_GROUP: &str = "Port_Group";

/// rovn's policy rows as NB holds them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyRows {
    /// `(owner, id)` → the ACL's match.
    pub acls: BTreeMap<(String, String), String>,
    /// Address_Set name → its addresses.
    pub sets: BTreeMap<String, BTreeSet<String>>,
    /// Port_Group names.
    pub groups: BTreeSet<String>,
}

/// A synced NB monitor of rovn's ACLs, Address_Sets and Port_Groups.
pub struct PolicyWatch {
    client: Client,
    events: broadcast::Receiver<Event>,
    rows: PolicyRows,
    last_change: Instant,
}

impl PolicyWatch {
    /// Connects to NB at `remote` and syncs.
    pub async fn start(remote: &str, timeout: Duration) -> Result<PolicyWatch, BenchError> {
        let tables = vec![
            TableMonitor::all(ACL).with_columns([Acl::MATCH, Acl::EXTERNAL_IDS]),
            TableMonitor::all(ADDRESS_SET).with_columns([
                AddressSet::NAME,
                AddressSet::ADDRESSES,
                AddressSet::EXTERNAL_IDS,
            ]),
            TableMonitor::all(PORT_GROUP).with_columns([PortGroup::NAME, PortGroup::EXTERNAL_IDS]),
        ];
        let (client, events) = start_client(nb::DATABASE, remote, tables, timeout).await?;
        let mut watch = PolicyWatch {
            client,
            events,
            rows: PolicyRows::default(),
            last_change: Instant::now(),
        };
        watch.reread();
        Ok(watch)
    }

    /// What NB holds now, as far as the events read so far tell.
    pub fn rows(&self) -> &PolicyRows {
        &self.rows
    }

    /// Waits until `done` holds of the rows; returns when it first did. `what` names the wait
    /// and `left` says, on a timeout, what was still missing.
    pub async fn wait_until(
        &mut self,
        what: &str,
        done: impl Fn(&PolicyRows) -> bool,
        left: impl Fn(&PolicyRows) -> String,
        timeout: Duration,
    ) -> Result<Instant, BenchError> {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.rows) {
                return Ok(Instant::now());
            }
            if !self.next_event(deadline).await? {
                return Err(BenchError::Timeout {
                    what: what.to_string(),
                    detail: left(&self.rows),
                });
            }
        }
    }

    /// Waits until no row has changed for `still`; returns when the last change was seen.
    pub async fn wait_still(
        &mut self,
        still: Duration,
        timeout: Duration,
    ) -> Result<Instant, BenchError> {
        let deadline = Instant::now() + timeout;
        loop {
            let quiet_until = (self.last_change + still).max(Instant::now());
            if quiet_until >= deadline {
                return Err(BenchError::Timeout {
                    what: "rovn's policy rows in NB to hold still".into(),
                    detail: format!("still changing {:?} after the wait began", timeout),
                });
            }
            if !self.next_event(quiet_until).await? {
                return Ok(self.last_change);
            }
        }
    }

    /// Reads one event, or returns `false` when `until` came first.
    async fn next_event(&mut self, until: Instant) -> Result<bool, BenchError> {
        match tokio::time::timeout_at(until, self.events.recv()).await {
            Err(_) => Ok(false),
            Ok(Err(RecvError::Lagged(_))) => {
                self.reread();
                self.last_change = Instant::now();
                Ok(true)
            }
            Ok(Err(RecvError::Closed)) => {
                Err(BenchError::protocol("the NB monitor", "its client stopped"))
            }
            Ok(Ok(Event::Change(change))) => {
                if self.apply(&change) {
                    self.last_change = Instant::now();
                }
                Ok(true)
            }
            Ok(Ok(_)) => Ok(true),
        }
    }

    fn reread(&mut self) {
        self.rows = self.client.read(read_rows).unwrap_or_default();
    }

    /// Applies a change to one of rovn's rows; `false` for rows of others.
    fn apply(&mut self, change: &Change) -> bool {
        let (old, new) = match change {
            Change::Insert { new, .. } => (None, Some(new.as_ref())),
            Change::Modify { old, new, .. } => (Some(old.as_ref()), Some(new.as_ref())),
            Change::Delete { old, .. } => (Some(old.as_ref()), None),
        };
        let (old, new) = (old.filter(|r| is_rovns(r)), new.filter(|r| is_rovns(r)));
        if old.is_none() && new.is_none() {
            return false;
        }
        let rows = &mut self.rows;
        match change.table() {
            ACL => {
                if let Some(key) = old.and_then(acl_key) {
                    rows.acls.remove(&key);
                }
                if let Some((key, match_)) = new.and_then(acl) {
                    rows.acls.insert(key, match_);
                }
            }
            ADDRESS_SET => {
                if let Some(name) = old.and_then(|r| string_column(r, AddressSet::NAME)) {
                    rows.sets.remove(name);
                }
                if let Some((name, addresses)) = new.and_then(address_set) {
                    rows.sets.insert(name, addresses);
                }
            }
            PORT_GROUP => {
                if let Some(name) = old.and_then(|r| string_column(r, PortGroup::NAME)) {
                    rows.groups.remove(name);
                }
                if let Some(name) = new.and_then(|r| string_column(r, PortGroup::NAME)) {
                    rows.groups.insert(name.to_string());
                }
            }
            _ => return false,
        }
        true
    }
}

fn is_rovns(row: &Row) -> bool {
    map_value(row, "external_ids", VENDOR_KEY) == Some(VENDOR)
}

fn read_rows(replica: &Replica) -> PolicyRows {
    let rows = |table: &str| -> Vec<Row> {
        replica
            .table(table)
            .map(|t| {
                t.iter()
                    .map(|(_, row)| row.as_ref().clone())
                    .filter(is_rovns)
                    .collect()
            })
            .unwrap_or_default()
    };
    PolicyRows {
        acls: rows(ACL).iter().filter_map(acl).collect(),
        sets: rows(ADDRESS_SET).iter().filter_map(address_set).collect(),
        groups: rows(PORT_GROUP)
            .iter()
            .filter_map(|r| string_column(r, PortGroup::NAME).map(str::to_string))
            .collect(),
    }
}

fn acl_key(row: &Row) -> Option<(String, String)> {
    Some((
        map_value(row, Acl::EXTERNAL_IDS, OWNER_KEY)?.to_string(),
        map_value(row, Acl::EXTERNAL_IDS, ID_KEY)?.to_string(),
    ))
}

/// An ACL's owner and id, and its match. Pure.
fn acl(row: &Row) -> Option<((String, String), String)> {
    Some((acl_key(row)?, string_column(row, Acl::MATCH)?.to_string()))
}

/// An address set's name and addresses. Pure.
fn address_set(row: &Row) -> Option<(String, BTreeSet<String>)> {
    let name = string_column(row, AddressSet::NAME)?.to_string();
    let addresses = row
        .get(AddressSet::ADDRESSES)
        .and_then(Datum::as_set)
        .map(|set| {
            set.iter()
                .filter_map(Atom::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some((name, addresses))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_read_by_owner_and_id_or_name() {
        let ids = Datum::map([
            (VENDOR_KEY, VENDOR),
            (OWNER_KEY, "NetworkPolicy/ns/p"),
            (ID_KEY, "ingress.0"),
        ]);
        let acl_row: Row = [
            ("match".to_string(), Datum::atom("outport == @pg && ip4")),
            ("external_ids".to_string(), ids.clone()),
        ]
        .into_iter()
        .collect();
        assert!(is_rovns(&acl_row));
        assert_eq!(
            acl(&acl_row),
            Some((
                ("NetworkPolicy/ns/p".to_string(), "ingress.0".to_string()),
                "outport == @pg && ip4".to_string()
            ))
        );
        let set_row: Row = [
            ("name".to_string(), Datum::atom("np.ns.p.ingress.0")),
            (
                "addresses".to_string(),
                Datum::set(["10.16.0.2", "10.16.0.3"]),
            ),
            ("external_ids".to_string(), ids),
        ]
        .into_iter()
        .collect();
        let (name, addresses) = address_set(&set_row).unwrap_or_default();
        assert_eq!(name, "np.ns.p.ingress.0");
        assert_eq!(addresses.len(), 2);
    }
}
