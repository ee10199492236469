//! The replica's rows of one table, indexed the way the diff looks them up.

use std::collections::HashMap;
use std::sync::Arc;

use rovn_api::Owner;
use rovn_ovsdb::{Atom, Datum, IndexSpec, Replica, Row, Uuid};

use super::error::DiffError;
use crate::desired::RowKey;
use crate::tables::{Identity, TableSpec};
use rovn_api::names;

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
        external_id(self.row, key)
    }
}

/// Rows of one table by key, each key's rows in UUID order. For named tables every row is
/// indexed (a foreign row holding a wanted name is a conflict); for nameless ones only rovn's.
pub(crate) struct CurrentTable<'r> {
    pub by_key: HashMap<RowKey, Vec<CurrentRow<'r>>>,
    /// Every row's key, to describe a parent in messages.
    pub keys: HashMap<Uuid, RowKey>,
}

/// The value under `key` in a replica row's `external_ids`: how every reader of rovn's rows
/// finds their vendor, owner, id and incarnation.
pub(crate) fn external_id<'r>(row: &'r Row, key: &str) -> Option<&'r str> {
    let Some(Datum::Map(map)) = row.get("external_ids") else {
        return None;
    };
    map.iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .and_then(|(_, v)| v.as_str())
}

/// A replica row's `name`.
pub(crate) fn name_of(row: &Row) -> Option<&str> {
    string_column(row, "name")
}

fn string_column<'a>(row: &'a Row, column: &str) -> Option<&'a str> {
    row.get(column)?.as_atom()?.as_str()
}

impl<'r> CurrentTable<'r> {
    /// Indexes every row of `spec`'s table; the table must be monitored, or the diff would
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
        Ok(CurrentTable::of_rows(spec, t.iter(), desired))
    }

    /// Indexes only the rows a diff limited to some owners can touch: the rows holding the
    /// `keys` they want (found by name) and the rows they own (found by the owner index).
    pub fn scoped<'k>(
        replica: &'r Replica,
        spec: &TableSpec,
        keys: impl Iterator<Item = &'k RowKey>,
        owners: impl Iterator<Item = &'k str>,
        desired: impl Fn(&RowKey) -> bool,
    ) -> Result<CurrentTable<'r>, DiffError> {
        let t = replica
            .table(spec.table)
            .ok_or_else(|| DiffError::NotMonitored(spec.table.to_string()))?;
        let mut uuids = std::collections::BTreeSet::new();
        if spec.identity == Identity::Name {
            let by_name = name_index(spec);
            for key in keys {
                uuids.extend(find(replica, &by_name, key.as_str())?);
            }
        }
        if spec.has_external_ids {
            let by_owner = owner_index(spec.table);
            for owner in owners {
                uuids.extend(find(replica, &by_owner, owner)?);
            }
        }
        let rows = uuids.into_iter().filter_map(|u| Some((u, t.get(&u)?)));
        let rows: Vec<(Uuid, &'r Arc<Row>)> = rows.collect();
        Ok(CurrentTable::of_rows(
            spec,
            rows.iter().map(|(u, r)| (u, *r)),
            desired,
        ))
    }

    fn of_rows<'u>(
        spec: &TableSpec,
        rows: impl Iterator<Item = (&'u Uuid, &'r Arc<Row>)>,
        desired: impl Fn(&RowKey) -> bool,
    ) -> CurrentTable<'r> {
        let mut by_key: HashMap<RowKey, Vec<CurrentRow>> = HashMap::new();
        let mut keys = HashMap::new();
        for (uuid, row) in rows {
            let Some(key) = key_of(spec, row) else {
                continue;
            };
            let owned = if spec.has_external_ids {
                is_vendor(row)
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
        CurrentTable { by_key, keys }
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

/// Whether NB (the replica) still holds a row of rovn's owned by `owner`, in any table rovn
/// writes: how the controller knows a deleted object's rows are gone before it lets the
/// object go. An unindexed table counts as holding rows, so the answer errs on keeping.
pub fn owns_rows(replica: &Replica, owner: &Owner) -> bool {
    let key = owner.to_string();
    crate::tables::specs()
        .iter()
        .filter(|spec| spec.has_external_ids)
        .any(|spec| match find(replica, &owner_index(spec.table), &key) {
            Ok(rows) => rows
                .iter()
                .any(|u| replica.get(spec.table, u).is_some_and(|row| is_vendor(row))),
            Err(_) => true,
        })
}

fn is_vendor(row: &Row) -> bool {
    external_id(row, names::VENDOR_KEY) == Some(names::VENDOR)
}

/// A row's key, or `None` for a nameless row that is not rovn's (it has no identity rovn
/// could want).
fn key_of(spec: &TableSpec, row: &Row) -> Option<RowKey> {
    match spec.identity {
        Identity::Name => string_column(row, spec.name_column).map(RowKey::name),
        Identity::OwnerId if is_vendor(row) => {
            let owner = external_id(row, names::OWNER_KEY).unwrap_or("");
            let id = external_id(row, names::ID_KEY).unwrap_or("");
            Some(RowKey::owned(owner, id))
        }
        Identity::OwnerId => None,
    }
}

/// The index on a table's names the scoped diff looks rows up by.
pub(crate) fn name_index(spec: &TableSpec) -> IndexSpec {
    IndexSpec::column(spec.table, spec.name_column)
}

/// The index on `table`'s `external_ids:rovn.io/owner`.
pub(crate) fn owner_index(table: &str) -> IndexSpec {
    IndexSpec::map_key(table, "external_ids", names::OWNER_KEY)
}

/// The index on a parent column, which finds the parent holding a child.
pub(crate) fn parent_index(table: &str, column: &str) -> IndexSpec {
    IndexSpec::column(table, column)
}

fn find(replica: &Replica, index: &IndexSpec, key: &str) -> Result<Vec<Uuid>, DiffError> {
    replica
        .find(index, &Atom::from(key))
        .map(|rows| rows.into_iter().map(|(u, _)| u).collect())
        .map_err(|_| DiffError::NotIndexed(index.to_string()))
}

/// The owned row holding `key` in `spec`'s table, found by name: how a scoped diff finds a
/// parent or a referenced row whose owner it is not looking at.
pub(crate) fn owned_by_name(
    replica: &Replica,
    spec: &TableSpec,
    key: &RowKey,
    desired: bool,
) -> Result<Option<Uuid>, DiffError> {
    let uuids = find(replica, &name_index(spec), key.as_str())?;
    Ok(uuids.into_iter().find(|u| {
        replica.get(spec.table, u).is_some_and(|row| {
            if spec.has_external_ids {
                is_vendor(row)
            } else {
                desired
            }
        })
    }))
}

/// Whether row `uuid` of `table` is rovn's, read from the replica itself, so the answer does
/// not depend on which rows a diff indexed.
pub(crate) fn is_owned(replica: &Replica, table: &str, uuid: &Uuid) -> bool {
    replica.get(table, uuid).is_some_and(|row| is_vendor(row))
}

/// Where the parent of a child row is found: a scan of the whole parent table for a full diff,
/// the parent-column index for a scoped one.
pub(crate) enum ParentsOf<'r> {
    Scanned(HashMap<Uuid, Uuid>),
    Indexed(&'r Replica, IndexSpec),
}

impl ParentsOf<'_> {
    /// The parent row holding `child`.
    pub fn get(&self, child: &Uuid) -> Option<Uuid> {
        match self {
            ParentsOf::Scanned(map) => map.get(child).copied(),
            ParentsOf::Indexed(replica, index) => replica
                .find(index, &Atom::Uuid(*child))
                .ok()
                .and_then(|rows| rows.first().map(|(u, _)| *u)),
        }
    }
}
