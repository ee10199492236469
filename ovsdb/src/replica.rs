//! The in-memory copy of the monitored part of a database.
//!
//! Pure state: rows keyed by UUID, the schema's unique indexes and the indexes a client
//! declares (a column, or one key of a map column such as `external_ids:rovn.io/owner`),
//! all kept current as [`TableUpdates`] are applied. Every applied update yields the
//! [`Change`]s it made, and a full resync ([`Replica::reset`]) yields only the difference
//! between what was held and what the server now has, so consumers never see a
//! delete-everything/insert-everything storm after a reconnect.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::monitor::{RowUpdate, TableUpdates};
use crate::schema::{AtomicType, ColumnType, DatabaseSchema, TableSchema};
use crate::value::{Atom, Datum, Row, Uuid};

/// Why an update cannot be applied, or a replica not built: the replica and the server
/// disagree, and the only cure is a full resync.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReplicaError {
    /// The table is not monitored, or not in the schema.
    #[error("table {0:?} is not in the replica")]
    UnknownTable(String),
    /// A monitored column is not in the table's schema.
    #[error("column {table}.{column} is not in the schema")]
    UnknownColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// A declared index names a column the table does not have, or a map key on a
    /// column that is not a string-keyed map.
    #[error("index {index}: {reason}")]
    BadIndex {
        /// The index, as `Table.column[:key]`.
        index: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server modified or deleted a row the replica does not hold.
    #[error("{op} of row {uuid} in {table}, which the replica does not hold")]
    MissingRow {
        /// `modify` or `delete`.
        op: &'static str,
        /// The table.
        table: String,
        /// The row.
        uuid: Uuid,
    },
    /// The server inserted a row the replica already holds.
    #[error("insert of row {uuid} in {table}, which the replica already holds")]
    DuplicateRow {
        /// The table.
        table: String,
        /// The row.
        uuid: Uuid,
    },
    /// An index lookup on an index nobody declared.
    #[error("no index {0} was declared")]
    NoSuchIndex(String),
}

/// One row-level change, as applied to the replica. Rows are shared (`Arc`) so that
/// broadcasting a change to many subscribers copies no row.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A row appeared.
    Insert {
        /// The table.
        table: String,
        /// The row.
        uuid: Uuid,
        /// Its values.
        new: Arc<Row>,
    },
    /// A row changed.
    Modify {
        /// The table.
        table: String,
        /// The row.
        uuid: Uuid,
        /// Its values before.
        old: Arc<Row>,
        /// Its values after.
        new: Arc<Row>,
    },
    /// A row went away (deleted, or no longer matching the monitor's conditions).
    Delete {
        /// The table.
        table: String,
        /// The row.
        uuid: Uuid,
        /// Its last values.
        old: Arc<Row>,
    },
}

impl Change {
    /// The table the change is in.
    pub fn table(&self) -> &str {
        match self {
            Change::Insert { table, .. }
            | Change::Modify { table, .. }
            | Change::Delete { table, .. } => table,
        }
    }

    /// The row the change is about.
    pub fn uuid(&self) -> Uuid {
        match self {
            Change::Insert { uuid, .. }
            | Change::Modify { uuid, .. }
            | Change::Delete { uuid, .. } => *uuid,
        }
    }
}

/// A secondary index a client declares, to find rows by a value without scanning.
///
/// Multi-valued: many rows may share a key. For a set column (scalar and optional columns
/// included) every element is a key, so `Logical_Switch.ports` finds the switch holding a
/// port; for a map column without `map_key` every map key is a key; with `map_key` the value
/// stored under that key is the key, so `external_ids:rovn.io/owner` finds a Pod's rows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IndexSpec {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// For a string-keyed map column, the key whose value is indexed.
    pub map_key: Option<String>,
}

impl IndexSpec {
    /// An index on every element (set) or every key (map) of a column.
    pub fn column(table: impl Into<String>, column: impl Into<String>) -> IndexSpec {
        IndexSpec {
            table: table.into(),
            column: column.into(),
            map_key: None,
        }
    }

    /// An index on the value under `key` in a string-keyed map column.
    pub fn map_key(
        table: impl Into<String>,
        column: impl Into<String>,
        key: impl Into<String>,
    ) -> IndexSpec {
        IndexSpec {
            table: table.into(),
            column: column.into(),
            map_key: Some(key.into()),
        }
    }

    fn validate(&self, table: &TableSchema) -> Result<(), ReplicaError> {
        let bad = |reason: &str| ReplicaError::BadIndex {
            index: self.to_string(),
            reason: reason.to_string(),
        };
        let ty = table
            .column_type(&self.column)
            .ok_or_else(|| bad("no such column"))?;
        if self.map_key.is_some() && !(ty.is_map() && ty.key.atomic == AtomicType::String) {
            return Err(bad("a map key needs a string-keyed map column"));
        }
        Ok(())
    }

    /// The keys a row has in this index.
    fn keys(&self, row: &Row) -> Vec<Atom> {
        match (row.get(&self.column), &self.map_key) {
            (Some(Datum::Map(m)), Some(key)) => m
                .get(&Atom::String(key.clone()))
                .cloned()
                .into_iter()
                .collect(),
            (Some(Datum::Map(m)), None) => m.keys().cloned().collect(),
            (Some(Datum::Set(s)), _) => s.iter().cloned().collect(),
            (None, _) => Vec::new(),
        }
    }
}

impl fmt::Display for IndexSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.table, self.column)?;
        if let Some(k) = &self.map_key {
            write!(f, ":{k}")?;
        }
        Ok(())
    }
}

/// A multi-valued map from key to the rows that have it.
#[derive(Debug, Clone)]
struct Postings<K: std::hash::Hash + Eq>(HashMap<K, BTreeSet<Uuid>>);

impl<K: std::hash::Hash + Eq> Default for Postings<K> {
    fn default() -> Self {
        Postings(HashMap::new())
    }
}

impl<K: std::hash::Hash + Eq> Postings<K> {
    fn add(&mut self, key: K, uuid: Uuid) {
        self.0.entry(key).or_default().insert(uuid);
    }

    fn remove(&mut self, key: &K, uuid: Uuid) {
        if let Some(set) = self.0.get_mut(key) {
            set.remove(&uuid);
            if set.is_empty() {
                self.0.remove(key);
            }
        }
    }

    fn get(&self, key: &K) -> impl Iterator<Item = Uuid> + '_ {
        self.0.get(key).into_iter().flatten().copied()
    }
}

/// A schema index (unique on the server) over the columns the monitor receives.
#[derive(Debug, Clone)]
struct UniqueIndex {
    columns: Vec<String>,
    postings: Postings<Vec<Datum>>,
}

impl UniqueIndex {
    fn key(&self, row: &Row) -> Vec<Datum> {
        self.columns
            .iter()
            .map(|c| row.get(c).cloned().unwrap_or_default())
            .collect()
    }
}

/// One monitored table's rows and indexes.
#[derive(Debug, Clone)]
pub struct Table {
    name: String,
    /// Monitored columns and their defaults, filled into rows the server sends without them.
    defaults: BTreeMap<String, Datum>,
    rows: HashMap<Uuid, Arc<Row>>,
    unique: Vec<UniqueIndex>,
    declared: Vec<(IndexSpec, Postings<Atom>)>,
}

impl Table {
    /// The table name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// A row by UUID.
    pub fn get(&self, uuid: &Uuid) -> Option<&Arc<Row>> {
        self.rows.get(uuid)
    }

    /// All rows, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &Arc<Row>)> {
        self.rows.iter()
    }

    fn index_row(&mut self, uuid: Uuid, row: &Row) {
        for idx in &mut self.unique {
            let key = idx.key(row);
            idx.postings.add(key, uuid);
        }
        for (spec, postings) in &mut self.declared {
            for key in spec.keys(row) {
                postings.add(key, uuid);
            }
        }
    }

    fn unindex_row(&mut self, uuid: Uuid, row: &Row) {
        for idx in &mut self.unique {
            let key = idx.key(row);
            idx.postings.remove(&key, uuid);
        }
        for (spec, postings) in &mut self.declared {
            for key in spec.keys(row) {
                postings.remove(&key, uuid);
            }
        }
    }

    /// Stores `row` under `uuid`, replacing and unindexing any previous version.
    fn put(&mut self, uuid: Uuid, row: Arc<Row>) -> Option<Arc<Row>> {
        let old = self.remove(uuid);
        self.index_row(uuid, &row);
        self.rows.insert(uuid, row);
        old
    }

    fn remove(&mut self, uuid: Uuid) -> Option<Arc<Row>> {
        let old = self.rows.remove(&uuid)?;
        self.unindex_row(uuid, &old);
        Some(old)
    }

    /// A new row as sent on insert: the server leaves out default-valued columns.
    fn complete(&self, mut row: Row) -> Row {
        for (col, default) in &self.defaults {
            row.entry(col.clone()).or_insert_with(|| default.clone());
        }
        row
    }
}

/// The default value of a column: what ovsdb-server leaves out of `initial` and `insert`
/// rows. Empty for optional columns, sets and maps; `0`, `0.0`, `false`, `""` or the
/// all-zero UUID for scalars.
pub fn default_datum(ty: &ColumnType) -> Datum {
    if ty.min == 0 {
        return Datum::empty_of(ty);
    }
    let key = default_atom(ty.key.atomic);
    match &ty.value {
        Some(v) => Datum::Map(BTreeMap::from([(key, default_atom(v.atomic))])),
        None => Datum::atom(key),
    }
}

fn default_atom(t: AtomicType) -> Atom {
    match t {
        AtomicType::Integer => Atom::Integer(0),
        AtomicType::Real => Atom::Real(0.0),
        AtomicType::Boolean => Atom::Boolean(false),
        AtomicType::String => Atom::String(String::new()),
        AtomicType::Uuid => Atom::Uuid(Uuid::nil()),
    }
}

/// Applies an `update2` difference to a column value: for composite columns elements in
/// the difference toggle (sets) and pairs add, remove (same value) or replace (other value)
/// (maps); single-valued columns take the difference as their new value.
pub fn apply_diff(current: &Datum, diff: &Datum, ty: &ColumnType) -> Datum {
    if !ty.is_composite() {
        return diff.clone();
    }
    match (current, diff) {
        (Datum::Set(cur), Datum::Set(d)) => {
            Datum::Set(cur.symmetric_difference(d).cloned().collect())
        }
        (Datum::Map(cur), Datum::Map(d)) => {
            let mut out = cur.clone();
            for (k, v) in d {
                match out.get(k) {
                    Some(existing) if existing == v => {
                        out.remove(k);
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            Datum::Map(out)
        }
        // Shapes follow the schema, so a mismatch means the replica held nothing valid.
        _ => diff.clone(),
    }
}

/// The monitored part of one database.
#[derive(Debug, Clone)]
pub struct Replica {
    schema: Arc<DatabaseSchema>,
    tables: BTreeMap<String, Table>,
    last_txn_id: Option<String>,
}

impl Replica {
    /// An empty replica of the tables and columns in `monitored` (table name to column
    /// names), with the schema's indexes (when all their columns are monitored) and the
    /// declared `indexes`.
    pub fn new(
        schema: Arc<DatabaseSchema>,
        monitored: &BTreeMap<String, Vec<String>>,
        indexes: &[IndexSpec],
    ) -> Result<Replica, ReplicaError> {
        let mut tables = BTreeMap::new();
        for (name, columns) in monitored {
            let ts = schema
                .table(name)
                .ok_or_else(|| ReplicaError::UnknownTable(name.clone()))?;
            let mut defaults = BTreeMap::new();
            for c in columns {
                let ty = ts
                    .column_type(c)
                    .ok_or_else(|| ReplicaError::UnknownColumn {
                        table: name.clone(),
                        column: c.clone(),
                    })?;
                defaults.insert(c.clone(), default_datum(&ty));
            }
            let unique = ts
                .indexes
                .iter()
                .filter(|cols| cols.iter().all(|c| defaults.contains_key(c)))
                .map(|cols| UniqueIndex {
                    columns: cols.clone(),
                    postings: Postings::default(),
                })
                .collect();
            tables.insert(
                name.clone(),
                Table {
                    name: name.clone(),
                    defaults,
                    rows: HashMap::new(),
                    unique,
                    declared: Vec::new(),
                },
            );
        }
        for spec in indexes {
            let ts = schema
                .table(&spec.table)
                .ok_or_else(|| ReplicaError::UnknownTable(spec.table.clone()))?;
            spec.validate(ts)?;
            let table = tables
                .get_mut(&spec.table)
                .ok_or_else(|| ReplicaError::BadIndex {
                    index: spec.to_string(),
                    reason: "the table is not monitored".into(),
                })?;
            if !table.defaults.contains_key(&spec.column) {
                return Err(ReplicaError::BadIndex {
                    index: spec.to_string(),
                    reason: "the column is not monitored".into(),
                });
            }
            if !table.declared.iter().any(|(s, _)| s == spec) {
                table.declared.push((spec.clone(), Postings::default()));
            }
        }
        Ok(Replica {
            schema,
            tables,
            last_txn_id: None,
        })
    }

    /// A replica for another schema (after an online conversion) holding this one's rows,
    /// restricted to the columns still monitored, with new columns at their defaults and
    /// no transaction id. The full state the server then sends is diffed against it
    /// ([`Replica::reset`]), so rows the conversion left alone produce no change at all.
    pub fn rebuilt(
        &self,
        schema: Arc<DatabaseSchema>,
        monitored: &BTreeMap<String, Vec<String>>,
        indexes: &[IndexSpec],
    ) -> Result<Replica, ReplicaError> {
        let mut fresh = Replica::new(schema, monitored, indexes)?;
        for (name, table) in &mut fresh.tables {
            let Some(old) = self.tables.get(name) else {
                continue;
            };
            for (uuid, row) in &old.rows {
                let kept: Row = row
                    .iter()
                    .filter(|(c, _)| table.defaults.contains_key(*c))
                    .map(|(c, d)| (c.clone(), d.clone()))
                    .collect();
                let completed = table.complete(kept);
                table.put(*uuid, Arc::new(completed));
            }
        }
        Ok(fresh)
    }

    /// The schema the rows were decoded with.
    pub fn schema(&self) -> &Arc<DatabaseSchema> {
        &self.schema
    }

    /// The id of the newest transaction applied (`update3`/`monitor_cond_since`), which
    /// a reconnecting client passes to `monitor_cond_since` to receive only what changed.
    pub fn last_txn_id(&self) -> Option<&str> {
        self.last_txn_id.as_deref()
    }

    /// Records the newest transaction applied; `None` forgets it, forcing a full resync.
    pub fn set_last_txn_id(&mut self, id: Option<String>) {
        self.last_txn_id = id;
    }

    /// A monitored table.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// The monitored tables.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    /// A row by table and UUID.
    pub fn get(&self, table: &str, uuid: &Uuid) -> Option<&Arc<Row>> {
        self.tables.get(table)?.get(uuid)
    }

    /// The rows whose `columns` hold exactly `values`: through the schema index on those
    /// columns when there is one (e.g. Logical_Switch_Port `name`), by a scan otherwise.
    pub fn find_by_columns(&self, table: &str, key: &[(&str, Datum)]) -> Vec<(Uuid, Arc<Row>)> {
        let Some(t) = self.tables.get(table) else {
            return Vec::new();
        };
        let wanted: Vec<&str> = key.iter().map(|(c, _)| *c).collect();
        if let Some(idx) = t.unique.iter().find(|i| {
            i.columns
                .iter()
                .map(String::as_str)
                .eq(wanted.iter().copied())
        }) {
            let k: Vec<Datum> = key.iter().map(|(_, d)| d.clone()).collect();
            return idx
                .postings
                .get(&k)
                .filter_map(|u| t.rows.get(&u).map(|r| (u, r.clone())))
                .collect();
        }
        t.rows
            .iter()
            .filter(|(_, row)| key.iter().all(|(c, d)| row.get(*c).is_some_and(|v| v == d)))
            .map(|(u, r)| (*u, r.clone()))
            .collect()
    }

    /// The rows with `key` in the declared index `spec`.
    pub fn find(
        &self,
        spec: &IndexSpec,
        key: &Atom,
    ) -> Result<Vec<(Uuid, Arc<Row>)>, ReplicaError> {
        let t = self
            .tables
            .get(&spec.table)
            .ok_or_else(|| ReplicaError::NoSuchIndex(spec.to_string()))?;
        let (_, postings) = t
            .declared
            .iter()
            .find(|(s, _)| s == spec)
            .ok_or_else(|| ReplicaError::NoSuchIndex(spec.to_string()))?;
        Ok(postings
            .get(key)
            .filter_map(|u| t.rows.get(&u).map(|r| (u, r.clone())))
            .collect())
    }

    /// Checks that every row update can be applied, so that [`Replica::apply`] changes
    /// nothing when it fails. Each row appears at most once per message.
    fn check(&self, updates: &TableUpdates) -> Result<(), ReplicaError> {
        for rc in &updates.rows {
            let t = self
                .tables
                .get(&rc.table)
                .ok_or_else(|| ReplicaError::UnknownTable(rc.table.clone()))?;
            let held = t.rows.contains_key(&rc.uuid);
            let (needs_row, op) = match &rc.update {
                RowUpdate::Initial(_) | RowUpdate::Insert(_) => (false, "insert"),
                RowUpdate::Modify(_) => (true, "modify"),
                RowUpdate::Delete => (true, "delete"),
                RowUpdate::Update { old: None, .. } => (false, "insert"),
                RowUpdate::Update { new: None, .. } => (true, "delete"),
                RowUpdate::Update { .. } => (true, "modify"),
            };
            if needs_row && !held {
                return Err(ReplicaError::MissingRow {
                    op,
                    table: rc.table.clone(),
                    uuid: rc.uuid,
                });
            }
            if !needs_row && held {
                return Err(ReplicaError::DuplicateRow {
                    table: rc.table.clone(),
                    uuid: rc.uuid,
                });
            }
        }
        Ok(())
    }

    /// Applies an `update`, `update2` or `update3` message (or the reply to a monitor
    /// request, or a `monitor_cond_since` reply with `found`), returning the changes made in
    /// message order. On error nothing was changed.
    pub fn apply(&mut self, updates: TableUpdates) -> Result<Vec<Change>, ReplicaError> {
        self.check(&updates)?;
        let mut changes = Vec::with_capacity(updates.rows.len());
        for rc in updates.rows {
            let schema = self.schema.clone();
            let Some(t) = self.tables.get_mut(&rc.table) else {
                continue;
            };
            let table = rc.table;
            let uuid = rc.uuid;
            match rc.update {
                RowUpdate::Initial(row)
                | RowUpdate::Insert(row)
                | RowUpdate::Update {
                    old: None,
                    new: Some(row),
                } => {
                    let new = Arc::new(t.complete(row));
                    t.put(uuid, new.clone());
                    changes.push(Change::Insert { table, uuid, new });
                }
                RowUpdate::Delete | RowUpdate::Update { new: None, .. } => {
                    if let Some(old) = t.remove(uuid) {
                        changes.push(Change::Delete { table, uuid, old });
                    }
                }
                RowUpdate::Modify(diff) => {
                    let Some(old) = t.rows.get(&uuid).cloned() else {
                        continue;
                    };
                    let mut row = (*old).clone();
                    let ts = schema.table(&table);
                    for (col, d) in diff {
                        let Some(ty) = ts.and_then(|ts| ts.column_type(&col)) else {
                            continue;
                        };
                        let cur = row
                            .get(&col)
                            .cloned()
                            .unwrap_or_else(|| Datum::empty_of(&ty));
                        row.insert(col, apply_diff(&cur, &d, &ty));
                    }
                    let new = Arc::new(row);
                    t.put(uuid, new.clone());
                    changes.push(Change::Modify {
                        table,
                        uuid,
                        old,
                        new,
                    });
                }
                RowUpdate::Update {
                    old: Some(_),
                    new: Some(values),
                } => {
                    let Some(old) = t.rows.get(&uuid).cloned() else {
                        continue;
                    };
                    let mut row = (*old).clone();
                    row.extend(values);
                    let new = Arc::new(row);
                    t.put(uuid, new.clone());
                    changes.push(Change::Modify {
                        table,
                        uuid,
                        old,
                        new,
                    });
                }
            }
        }
        Ok(changes)
    }

    /// Replaces the whole content with `state` (a full initial state: `initial` rows, or
    /// `update` rows with only `new`), returning only the difference: deletes for rows gone,
    /// modifies for rows changed, inserts for rows new. Tables absent from `state` are empty.
    pub fn reset(&mut self, state: TableUpdates) -> Result<Vec<Change>, ReplicaError> {
        let mut incoming: BTreeMap<String, HashMap<Uuid, Row>> = BTreeMap::new();
        for rc in state.rows {
            if !self.tables.contains_key(&rc.table) {
                return Err(ReplicaError::UnknownTable(rc.table));
            }
            let row = match rc.update {
                RowUpdate::Initial(row)
                | RowUpdate::Insert(row)
                | RowUpdate::Update { new: Some(row), .. } => row,
                RowUpdate::Modify(_) | RowUpdate::Delete | RowUpdate::Update { new: None, .. } => {
                    continue;
                }
            };
            incoming.entry(rc.table).or_default().insert(rc.uuid, row);
        }
        let mut changes = Vec::new();
        for (name, t) in &mut self.tables {
            let mut new_rows = incoming.remove(name).unwrap_or_default();
            let gone: Vec<Uuid> = t
                .rows
                .keys()
                .filter(|u| !new_rows.contains_key(u))
                .copied()
                .collect();
            for uuid in gone {
                if let Some(old) = t.remove(uuid) {
                    changes.push(Change::Delete {
                        table: name.clone(),
                        uuid,
                        old,
                    });
                }
            }
            let mut inserted = Vec::new();
            let mut ordered: Vec<(Uuid, Row)> = new_rows.drain().collect();
            ordered.sort_by_key(|(u, _)| *u);
            for (uuid, row) in ordered {
                let row = t.complete(row);
                match t.rows.get(&uuid).cloned() {
                    Some(old) if *old == row => {}
                    Some(old) => {
                        let new = Arc::new(row);
                        t.put(uuid, new.clone());
                        changes.push(Change::Modify {
                            table: name.clone(),
                            uuid,
                            old,
                            new,
                        });
                    }
                    None => inserted.push((uuid, Arc::new(row))),
                }
            }
            for (uuid, new) in inserted {
                t.put(uuid, new.clone());
                changes.push(Change::Insert {
                    table: name.clone(),
                    uuid,
                    new,
                });
            }
        }
        Ok(changes)
    }

    /// Every row, by table: what a test compares with the server's contents.
    pub fn contents(&self) -> BTreeMap<String, BTreeMap<Uuid, Row>> {
        self.tables
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    t.rows.iter().map(|(u, r)| (*u, (**r).clone())).collect(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::monitor::{parse_table_updates, parse_table_updates2};
    use serde_json::json;

    const LSP: &str = "b6aea78b-2238-41fc-b0a4-4e5945fe7b30";
    const LS: &str = "43e5b516-2007-4d7b-bd94-f0f12b225638";

    fn nb() -> Arc<DatabaseSchema> {
        let text = std::fs::read_to_string(rovn_testkit::schema::NB)
            .unwrap_or_else(|e| panic!("NB schema: {e}"));
        Arc::new(DatabaseSchema::from_str(&text).unwrap_or_else(|e| panic!("NB schema: {e}")))
    }

    fn replica(schema: &Arc<DatabaseSchema>, indexes: &[IndexSpec]) -> Replica {
        let monitored = BTreeMap::from([
            (
                "Logical_Switch_Port".to_string(),
                [
                    "name",
                    "external_ids",
                    "addresses",
                    "tag",
                    "enabled",
                    "type",
                ]
                .map(String::from)
                .to_vec(),
            ),
            (
                "Logical_Switch".to_string(),
                ["name", "ports", "external_ids"].map(String::from).to_vec(),
            ),
        ]);
        Replica::new(schema.clone(), &monitored, indexes).unwrap_or_else(|e| panic!("{e}"))
    }

    fn uuid(s: &str) -> Uuid {
        Uuid::parse_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn upd2(schema: &DatabaseSchema, j: Json) -> TableUpdates {
        parse_table_updates2(&j, schema).unwrap_or_else(|e| panic!("{e}"))
    }

    use serde_json::Value as Json;

    /// The messages below were captured from ovsdb-server 3.1 (see the integration tests
    /// for the same checks done live).
    fn initial(schema: &DatabaseSchema) -> TableUpdates {
        upd2(
            schema,
            json!({
                "Logical_Switch": {LS: {"initial": {"name": "s", "ports": ["uuid", LSP]}}},
                "Logical_Switch_Port": {LSP: {"initial": {
                    "addresses": ["set", ["x", "y"]],
                    "external_ids": ["map", [["a", "1"], ["b", "2"]]],
                    "name": "p1"}}}
            }),
        )
    }

    #[test]
    fn initial_rows_get_their_omitted_defaults() {
        let schema = nb();
        let mut r = replica(&schema, &[]);
        let changes = r.apply(initial(&schema)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(changes.len(), 2);
        assert!(changes.iter().all(|c| matches!(c, Change::Insert { .. })));
        let Some(row) = r.get("Logical_Switch_Port", &uuid(LSP)) else {
            panic!("no row")
        };
        assert_eq!(row["tag"], Datum::Set(BTreeSet::new()));
        assert_eq!(row["type"], Datum::atom(""));
        assert_eq!(row["addresses"], Datum::set(["x", "y"]));
        assert_eq!(
            r.get("Logical_Switch", &uuid(LS))
                .map(|r| r["external_ids"].clone()),
            Some(Datum::Map(BTreeMap::new()))
        );
    }

    #[test]
    fn update2_modify_applies_differences() {
        let schema = nb();
        let mut r = replica(&schema, &[]);
        r.apply(initial(&schema)).unwrap_or_else(|e| panic!("{e}"));
        let m1 = upd2(
            &schema,
            json!({"Logical_Switch_Port": {LSP: {"modify": {
                "addresses": ["set", ["x", "z"]], "enabled": true,
                "external_ids": ["map", [["b", "3"], ["c", "4"]]], "tag": 5}}}}),
        );
        let changes = r.apply(m1).unwrap_or_else(|e| panic!("{e}"));
        let [Change::Modify { old, new, .. }] = changes.as_slice() else {
            panic!("{changes:?}")
        };
        assert_eq!(old["addresses"], Datum::set(["x", "y"]));
        assert_eq!(new["addresses"], Datum::set(["y", "z"]));
        assert_eq!(
            new["external_ids"],
            Datum::map([("a", "1"), ("b", "3"), ("c", "4")])
        );
        assert_eq!(new["tag"], Datum::atom(5));
        assert_eq!(new["enabled"], Datum::atom(true));
        let m2 = upd2(
            &schema,
            json!({"Logical_Switch_Port": {LSP: {"modify": {
                "enabled": ["set", []], "external_ids": ["map", [["a", "1"], ["b", "3"]]],
                "tag": ["set", []]}}}}),
        );
        r.apply(m2).unwrap_or_else(|e| panic!("{e}"));
        let Some(row) = r.get("Logical_Switch_Port", &uuid(LSP)) else {
            panic!("no row")
        };
        assert_eq!(row["external_ids"], Datum::map([("c", "4")]));
        assert!(row["tag"].is_empty());
        assert!(row["enabled"].is_empty());
        assert_eq!(row["name"], Datum::atom("p1"));
    }

    #[test]
    fn plain_update_modify_and_delete() {
        let schema = nb();
        let mut r = replica(&schema, &[]);
        let ins = parse_table_updates(
            &json!({"Logical_Switch_Port": {LSP: {"new": {"name": "p1", "addresses": ["set", ["x", "y"]],
                "external_ids": ["map", [["a", "1"]]], "tag": ["set", []], "type": ""}}}}),
            &schema,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        r.apply(ins).unwrap_or_else(|e| panic!("{e}"));
        let m = parse_table_updates(
            &json!({"Logical_Switch_Port": {LSP: {
                "new": {"name": "p1", "addresses": ["set", ["y", "z"]], "external_ids": ["map", [["c", "4"]]], "tag": 5, "type": ""},
                "old": {"addresses": ["set", ["x", "y"]], "tag": ["set", []]}}}}),
            &schema,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        r.apply(m).unwrap_or_else(|e| panic!("{e}"));
        let Some(row) = r.get("Logical_Switch_Port", &uuid(LSP)).cloned() else {
            panic!("no row")
        };
        assert_eq!(row["addresses"], Datum::set(["y", "z"]));
        assert_eq!(row["tag"], Datum::atom(5));
        let d = parse_table_updates(
            &json!({"Logical_Switch_Port": {LSP: {"old": {"name": "p1"}}}}),
            &schema,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let changes = r.apply(d).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(changes.as_slice(), [Change::Delete { old, .. }] if *old == row));
        assert!(r.table("Logical_Switch_Port").is_some_and(Table::is_empty));
    }

    #[test]
    fn inconsistent_updates_are_refused_without_change() {
        let schema = nb();
        let mut r = replica(&schema, &[]);
        r.apply(initial(&schema)).unwrap_or_else(|e| panic!("{e}"));
        let before = r.contents();
        let other = "11111111-2222-3333-4444-555555555555";
        let bad = upd2(
            &schema,
            json!({"Logical_Switch": {LS: {"delete": null}}, "Logical_Switch_Port": {other: {"modify": {"tag": 1}}}}),
        );
        assert!(matches!(
            r.apply(bad),
            Err(ReplicaError::MissingRow { op: "modify", .. })
        ));
        assert_eq!(r.contents(), before);
        assert!(matches!(
            r.apply(initial(&schema)),
            Err(ReplicaError::DuplicateRow { .. })
        ));
    }

    #[test]
    fn indexes_follow_every_change() {
        let schema = nb();
        let owner = IndexSpec::map_key("Logical_Switch_Port", "external_ids", "a");
        let ports = IndexSpec::column("Logical_Switch", "ports");
        let mut r = replica(&schema, &[owner.clone(), ports.clone()]);
        r.apply(initial(&schema)).unwrap_or_else(|e| panic!("{e}"));
        let by_name = r.find_by_columns("Logical_Switch_Port", &[("name", Datum::atom("p1"))]);
        assert_eq!(by_name.len(), 1);
        let found = |r: &Replica, v: &str| -> Vec<Uuid> {
            r.find(&owner, &Atom::from(v))
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .map(|(u, _)| u)
                .collect()
        };
        assert_eq!(found(&r, "1"), vec![uuid(LSP)]);
        let holder = r
            .find(&ports, &Atom::Uuid(uuid(LSP)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(holder.len(), 1);
        r.apply(upd2(
            &schema,
            json!({"Logical_Switch_Port": {LSP: {"modify": {"name": "p2", "external_ids": ["map", [["a", "9"]]]}}}}),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(found(&r, "1").is_empty());
        assert_eq!(found(&r, "9"), vec![uuid(LSP)]);
        assert!(
            r.find_by_columns("Logical_Switch_Port", &[("name", Datum::atom("p1"))])
                .is_empty()
        );
        assert_eq!(
            r.find_by_columns("Logical_Switch_Port", &[("name", Datum::atom("p2"))])
                .len(),
            1
        );
        r.apply(upd2(
            &schema,
            json!({"Logical_Switch_Port": {LSP: {"delete": null}}}),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(found(&r, "9").is_empty());
        assert!(
            r.find(
                &IndexSpec::column("Logical_Switch", "name"),
                &Atom::from("s")
            )
            .is_err()
        );
    }

    #[test]
    fn bad_index_declarations_are_errors() {
        let schema = nb();
        let monitored = BTreeMap::from([("Logical_Switch".to_string(), vec!["name".to_string()])]);
        for spec in [
            IndexSpec::column("Logical_Switch", "nope"),
            IndexSpec::map_key("Logical_Switch", "name", "k"),
            IndexSpec::column("Logical_Switch", "external_ids"),
            IndexSpec::column("ACL", "name"),
        ] {
            assert!(
                Replica::new(schema.clone(), &monitored, std::slice::from_ref(&spec)).is_err(),
                "{spec}"
            );
        }
    }

    #[test]
    fn reset_yields_only_the_difference() {
        let schema = nb();
        let mut r = replica(&schema, &[]);
        r.apply(initial(&schema)).unwrap_or_else(|e| panic!("{e}"));
        let same = r.reset(initial(&schema)).unwrap_or_else(|e| panic!("{e}"));
        assert!(same.is_empty(), "{same:?}");
        let new_ls = "22222222-2222-3333-4444-555555555555";
        let changes = r
            .reset(upd2(
                &schema,
                json!({
                    "Logical_Switch": {new_ls: {"initial": {"name": "t"}}},
                    "Logical_Switch_Port": {LSP: {"initial": {"name": "p1", "tag": 7,
                        "addresses": ["set", ["x", "y"]], "external_ids": ["map", [["a", "1"], ["b", "2"]]]}}}
                }),
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        let kinds: Vec<(&str, &str)> = changes
            .iter()
            .map(|c| {
                let k = match c {
                    Change::Insert { .. } => "insert",
                    Change::Modify { .. } => "modify",
                    Change::Delete { .. } => "delete",
                };
                (c.table(), k)
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("Logical_Switch", "delete"),
                ("Logical_Switch", "insert"),
                ("Logical_Switch_Port", "modify")
            ]
        );
        assert_eq!(
            r.get("Logical_Switch_Port", &uuid(LSP))
                .map(|r| r["tag"].clone()),
            Some(Datum::atom(7))
        );
        assert!(r.get("Logical_Switch", &uuid(LS)).is_none());
    }

    #[test]
    fn diff_of_optional_and_scalar_columns_is_the_new_value() {
        let schema = nb();
        let Some(lsp) = schema.table("Logical_Switch_Port") else {
            panic!("no LSP")
        };
        let tag = lsp.columns["tag"].ty.clone();
        assert_eq!(
            apply_diff(&Datum::atom(3), &Datum::atom(4), &tag),
            Datum::atom(4)
        );
        let name = lsp.columns["name"].ty.clone();
        assert_eq!(
            apply_diff(&Datum::atom("a"), &Datum::atom("b"), &name),
            Datum::atom("b")
        );
        let addrs = lsp.columns["addresses"].ty.clone();
        assert_eq!(
            apply_diff(&Datum::set(["a", "b"]), &Datum::set(["b", "c"]), &addrs),
            Datum::set(["a", "c"])
        );
    }

    #[test]
    fn rebuilt_for_a_new_schema_keeps_rows_and_defaults_new_columns() {
        let schema = nb();
        let mut r = replica(&schema, &[]);
        r.apply(initial(&schema)).unwrap_or_else(|e| panic!("{e}"));
        r.set_last_txn_id(Some("t".into()));
        let mut upgraded = (*schema).clone();
        let Some(ls) = upgraded.tables.get_mut("Logical_Switch") else {
            panic!("no Logical_Switch")
        };
        let ty = ColumnType::from_json(&json!({"key": "integer", "min": 0, "max": 1}))
            .unwrap_or_else(|e| panic!("{e}"));
        ls.columns.insert(
            "extra".into(),
            crate::schema::ColumnSchema {
                name: "extra".into(),
                ty,
                ephemeral: false,
                mutable: true,
            },
        );
        let monitored = BTreeMap::from([(
            "Logical_Switch".to_string(),
            ["name", "extra"].map(String::from).to_vec(),
        )]);
        let r2 = r
            .rebuilt(Arc::new(upgraded), &monitored, &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r2.last_txn_id(), None);
        assert!(r2.table("Logical_Switch_Port").is_none());
        let Some(row) = r2.get("Logical_Switch", &uuid(LS)) else {
            panic!("row lost")
        };
        assert_eq!(row["name"], Datum::atom("s"));
        assert!(row["extra"].is_empty());
        assert!(!row.contains_key("ports"));
    }
}
