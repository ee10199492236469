//! The replica's rows of one table, indexed the way the diff looks them up.

use std::collections::HashMap;
use std::sync::Arc;

use rovn_api::Owner;
use rovn_ovsdb::{Atom, Datum, Replica, Row, Uuid};

use super::error::DiffError;
use crate::desired::RowKey;
use crate::names;
use crate::tables::{Identity, TableSpec};

/// One row of the replica, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct CurrentRow<'r> {
    pub uuid: Uuid,
    pub row: &'r Arc<Row>,
    /// Written by rovn (`rovn.io/vendor=rovn`; for tables without `external_ids`, named as rovn
    /// names a desired row).
    pub owned: bool,
}

impl<'r> CurrentRow<'r> {
    /// The `rovn.io/owner` value, empty when absent.
    pub fn owner_text(&self) -> &'r str {
        self.external_id(names::OWNER_KEY).unwrap_or("")
    }

    /// The owner, when the value is one this version of rovn writes.
    pub fn owner(&self) -> Option<Owner> {
        self.owner_text().parse().ok()
    }

    /// The value under `key` in `external_ids`.
    pub fn external_id(&self, key: &str) -> Option<&'r str> {
        string_in_map(self.row, "external_ids", key)
    }
}

/// Rows of one table by key, each key's rows in UUID order. For named tables every row is
/// indexed (a foreign row holding a wanted name is a conflict); for nameless ones only rovn's.
pub(crate) struct CurrentTable<'r> {
    pub by_key: HashMap<RowKey, Vec<CurrentRow<'r>>>,
    /// Every row's key, to describe a parent in messages.
    pub keys: HashMap<Uuid, RowKey>,
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
    /// Indexes `spec`'s table of `replica`; the table must be monitored, or the diff would
    /// mistake "not replicated" for "absent" and insert duplicates. `desired` says, for tables
    /// without `external_ids`, which names are rovn's.
    pub fn index(
        replica: &'r Replica,
        spec: &TableSpec,
        desired: impl Fn(&RowKey) -> bool,
    ) -> Result<CurrentTable<'r>, DiffError> {
        let t = replica
            .table(spec.table)
            .ok_or_else(|| DiffError::NotMonitored(spec.table.to_string()))?;
        let mut by_key: HashMap<RowKey, Vec<CurrentRow>> = HashMap::with_capacity(t.len());
        let mut keys = HashMap::with_capacity(t.len());
        for (uuid, row) in t.iter() {
            let vendor =
                string_in_map(row, "external_ids", names::VENDOR_KEY) == Some(names::VENDOR);
            let key = match spec.identity {
                Identity::Name => match name_of(row) {
                    Some(name) => RowKey::name(name),
                    None => continue,
                },
                Identity::OwnerId if vendor => {
                    let owner = string_in_map(row, "external_ids", names::OWNER_KEY).unwrap_or("");
                    let id = string_in_map(row, "external_ids", names::ID_KEY).unwrap_or("");
                    RowKey::owned(owner, id)
                }
                Identity::OwnerId => continue,
            };
            let owned = if spec.has_external_ids {
                vendor
            } else {
                desired(&key)
            };
            keys.insert(*uuid, key.clone());
            by_key.entry(key).or_default().push(CurrentRow {
                uuid: *uuid,
                row,
                owned,
            });
        }
        for rows in by_key.values_mut() {
            rows.sort_by_key(|r| r.uuid);
        }
        Ok(CurrentTable { by_key, keys })
    }

    /// The rows with `key`.
    pub fn keyed(&self, key: &RowKey) -> &[CurrentRow<'r>] {
        self.by_key.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every owned row with its key, in no particular order.
    pub fn owned(&self) -> impl Iterator<Item = (&RowKey, CurrentRow<'r>)> + '_ {
        self.by_key
            .iter()
            .flat_map(|(key, rows)| rows.iter().filter(|r| r.owned).map(move |r| (key, *r)))
    }

    /// Whether row `uuid` is rovn's.
    pub fn is_owned(&self, uuid: &Uuid) -> bool {
        self.keys
            .get(uuid)
            .and_then(|key| self.by_key.get(key))
            .is_some_and(|rows| rows.iter().any(|r| r.uuid == *uuid && r.owned))
    }
}

/// Child UUID → the UUID of the parent row whose `column` holds it, over every row of the
/// parent `table`.
pub(crate) fn parents_of(
    replica: &Replica,
    table: &str,
    column: &str,
) -> Result<HashMap<Uuid, Uuid>, DiffError> {
    let t = replica
        .table(table)
        .ok_or_else(|| DiffError::NotMonitored(table.to_string()))?;
    let mut out = HashMap::new();
    for (uuid, row) in t.iter() {
        if let Some(Datum::Set(children)) = row.get(column) {
            for child in children {
                if let Atom::Uuid(child) = child {
                    out.insert(*child, *uuid);
                }
            }
        }
    }
    Ok(out)
}
