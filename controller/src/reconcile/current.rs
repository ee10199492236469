//! The replica's rows of one table, indexed the way the diff looks them up.

use std::collections::HashMap;
use std::sync::Arc;

use rovn_api::names;
use rovn_ovsdb::{Atom, Datum, Replica, Row, Uuid};

use super::error::DiffError;

/// One row of the replica, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct CurrentRow<'r> {
    pub uuid: Uuid,
    pub row: &'r Arc<Row>,
    pub owned: bool,
}

impl CurrentRow<'_> {
    /// The `rovn.io/owner` value, empty when absent.
    pub fn owner(&self) -> &str {
        self.external_id(names::OWNER_KEY).unwrap_or("")
    }

    /// The value under `key` in `external_ids`.
    pub fn external_id(&self, key: &str) -> Option<&str> {
        string_in_map(self.row, "external_ids", key)
    }
}

/// Rows of one table by name, every row (owned or not), each name's rows in UUID order.
pub(crate) struct CurrentTable<'r> {
    pub by_name: HashMap<&'r str, Vec<CurrentRow<'r>>>,
    pub names: HashMap<Uuid, &'r str>,
}

fn string_in_map<'r>(row: &'r Row, column: &str, key: &str) -> Option<&'r str> {
    let Some(Datum::Map(map)) = row.get(column) else {
        return None;
    };
    map.iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .and_then(|(_, v)| v.as_str())
}

fn name_of(row: &Row) -> Option<&str> {
    row.get("name")?.as_atom()?.as_str()
}

impl<'r> CurrentTable<'r> {
    /// Indexes `table` of `replica`; the table must be monitored, or the diff would mistake
    /// "not replicated" for "absent" and insert duplicates.
    pub fn index(replica: &'r Replica, table: &str) -> Result<CurrentTable<'r>, DiffError> {
        let t = replica
            .table(table)
            .ok_or_else(|| DiffError::NotMonitored(table.to_string()))?;
        let mut by_name: HashMap<&str, Vec<CurrentRow>> = HashMap::with_capacity(t.len());
        let mut names = HashMap::with_capacity(t.len());
        for (uuid, row) in t.iter() {
            let Some(name) = name_of(row) else { continue };
            names.insert(*uuid, name);
            let owned =
                string_in_map(row, "external_ids", names::VENDOR_KEY) == Some(names::VENDOR);
            by_name.entry(name).or_default().push(CurrentRow {
                uuid: *uuid,
                row,
                owned,
            });
        }
        for rows in by_name.values_mut() {
            rows.sort_by_key(|r| r.uuid);
        }
        Ok(CurrentTable { by_name, names })
    }

    /// The rows named `name`.
    pub fn named(&self, name: &str) -> &[CurrentRow<'r>] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every owned row with its name, in no particular order.
    pub fn owned(&self) -> impl Iterator<Item = (&'r str, CurrentRow<'r>)> + '_ {
        self.by_name
            .iter()
            .flat_map(|(name, rows)| rows.iter().filter(|r| r.owned).map(|r| (*name, *r)))
    }
}

/// Child UUID → the UUID of the parent row whose `ports` holds it, over every parent row.
pub(crate) fn parents_of(replica: &Replica, table: &str) -> Result<HashMap<Uuid, Uuid>, DiffError> {
    let t = replica
        .table(table)
        .ok_or_else(|| DiffError::NotMonitored(table.to_string()))?;
    let mut out = HashMap::new();
    for (uuid, row) in t.iter() {
        if let Some(Datum::Set(ports)) = row.get("ports") {
            for port in ports {
                if let Atom::Uuid(child) = port {
                    out.insert(*child, *uuid);
                }
            }
        }
    }
    Ok(out)
}
