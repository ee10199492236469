//! The rendered rows of every table rovn writes, keyed by their stable identity.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rovn_api::Owner;
use rovn_ovsdb::model::ToDatum;
use rovn_ovsdb::{Datum, Row, Uuid};

use crate::tables::{Identity, Managed, Ownership};
use rovn_api::names;

/// A row's identity within its table: its name where the table has one, else its owner and a
/// stable id (`rovn.io/owner` + `rovn.io/id` in `external_ids`). The same key on the desired and
/// the current side is the same row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowKey(String);

impl RowKey {
    /// The key of a row identified by its name.
    pub fn name(name: impl Into<String>) -> RowKey {
        RowKey(name.into())
    }

    /// The key of a nameless row: its owner's rendering and its id, as they appear in
    /// `external_ids`.
    pub fn owned(owner: &str, id: &str) -> RowKey {
        RowKey(format!("{owner}#{id}"))
    }

    /// The key as text, for logs and errors.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A column whose value is a set of references to other rows rovn writes, named by their keys
/// because a row that does not exist yet has no UUID. The reconciler resolves the keys and
/// adds or removes only references to rovn's own rows, so references other writers added
/// survive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refs {
    /// The referencing column.
    pub column: &'static str,
    /// The referenced table.
    pub table: &'static str,
    /// The referenced rows.
    pub keys: BTreeSet<RowKey>,
}

/// One row rovn wants, reduced to what the reconciler compares: its managed columns (with
/// `external_ids` already carrying the vendor, owner and id keys), its parent and its
/// references.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRow {
    /// The object the row exists for.
    pub owner: Owner,
    /// The parent row's key, for tables whose rows live in a parent's column.
    pub parent: Option<RowKey>,
    /// rovn's columns with their values and how rovn owns each.
    pub columns: Vec<(&'static str, Datum, Ownership)>,
    /// Reference columns, resolved when the plan is made.
    pub refs: Vec<Refs>,
    /// The incarnation (`pod-uid`): a current row with another one is replaced, not updated.
    pub incarnation: Option<String>,
}

impl DesiredRow {
    /// The desired value of `column`, when rovn manages it.
    pub fn column(&self, column: &str) -> Option<&Datum> {
        self.columns
            .iter()
            .find(|(c, _, _)| *c == column)
            .map(|(_, d, _)| d)
    }

    /// Makes `column` a reference column rovn manages (if it is not yet) and adds `keys` of
    /// `table` to it: rows of several owners may add themselves to one row's column.
    pub fn refer(
        &mut self,
        column: &'static str,
        table: &'static str,
        keys: impl IntoIterator<Item = RowKey>,
    ) {
        match self.refs.iter_mut().find(|r| r.column == column) {
            Some(refs) => refs.keys.extend(keys),
            None => self.refs.push(Refs {
                column,
                table,
                keys: keys.into_iter().collect(),
            }),
        }
    }

    /// Takes `key` out of the reference column `column`: the referenced row is going away.
    pub fn unrefer(&mut self, column: &str, key: &RowKey) {
        if let Some(refs) = self.refs.iter_mut().find(|r| r.column == column) {
            refs.keys.remove(key);
        }
    }
}

/// The NB rows rovn wants, by table and key. Only the columns rovn manages are meaningful; the
/// reconciler leaves every other column and every foreign map key alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    /// Rows by table name, then key.
    tables: BTreeMap<&'static str, BTreeMap<RowKey, DesiredRow>>,
    /// Each owner's rows, so one object's rows can be replaced or diffed without a scan.
    by_owner: BTreeMap<Owner, Vec<(&'static str, RowKey)>>,
    /// Owners whose objects could not be rendered ([`DesiredState::problems`]): their
    /// existing rows are kept as they are instead of being collected as garbage, so a typo in
    /// one object never tears down its running network.
    pub held_owners: BTreeSet<Owner>,
    /// Why some objects were left out.
    pub problems: Vec<DesiredError>,
    /// Owners the controller holds for reasons of its own (a pod refused while it carries an
    /// allocation, a rejected Subnet): like [`DesiredState::held_owners`], their rows stay,
    /// but the hold outlives the rendering of their objects.
    kept: BTreeSet<Owner>,
}

impl DesiredState {
    /// How many rows are desired, for logs and metrics.
    pub fn row_count(&self) -> usize {
        self.tables.values().map(BTreeMap::len).sum()
    }

    /// The desired rows of `table`, by key.
    pub fn table(&self, table: &str) -> Option<&BTreeMap<RowKey, DesiredRow>> {
        self.tables.get(table)
    }

    /// The tables with desired rows.
    pub fn tables(&self) -> impl Iterator<Item = (&'static str, &BTreeMap<RowKey, DesiredRow>)> {
        self.tables.iter().map(|(t, rows)| (*t, rows))
    }

    /// Replaces the owners the controller keeps ([`DesiredState::is_held`]).
    pub fn set_kept(&mut self, kept: BTreeSet<Owner>) {
        self.kept = kept;
    }

    /// Whether `owner`'s existing rows stay as they are, whatever it wants.
    pub fn is_held(&self, owner: &Owner) -> bool {
        self.held_owners.contains(owner) || self.kept.contains(owner)
    }

    /// Every held owner, rendered ones and kept ones.
    pub fn held(&self) -> impl Iterator<Item = &Owner> {
        self.held_owners.iter().chain(&self.kept)
    }

    /// The (table, key) of every row `owner` wants.
    pub fn keys_of(&self, owner: &Owner) -> &[(&'static str, RowKey)] {
        self.by_owner.get(owner).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The owners whose rows or hold differ between `previous` and `self`: what a diff limited
    /// to owners must look at after the whole state was rendered again.
    pub fn changed_owners(&self, previous: &DesiredState) -> BTreeSet<Owner> {
        let rows_of = |state: &DesiredState,
                       owner: &Owner|
         -> Vec<(&'static str, RowKey, Option<DesiredRow>)> {
            state
                .keys_of(owner)
                .iter()
                .map(|(t, k)| {
                    (
                        *t,
                        k.clone(),
                        state.table(t).and_then(|rows| rows.get(k)).cloned(),
                    )
                })
                .collect()
        };
        let owners: BTreeSet<&Owner> = self
            .by_owner
            .keys()
            .chain(previous.by_owner.keys())
            .chain(self.held())
            .chain(previous.held())
            .collect();
        owners
            .into_iter()
            .filter(|o| {
                self.is_held(o) != previous.is_held(o) || rows_of(self, o) != rows_of(previous, o)
            })
            .cloned()
            .collect()
    }

    /// The desired row of `M`'s table with `key`, to add references to it.
    pub fn row_mut<M: Managed>(&mut self, key: &RowKey) -> Option<&mut DesiredRow> {
        self.tables.get_mut(M::TABLE)?.get_mut(key)
    }

    /// Forgets everything `owner` wants, its problems and its hold: the first step of
    /// rendering one object again.
    pub fn remove_owner(&mut self, owner: &Owner) {
        for (table, key) in self.by_owner.remove(owner).unwrap_or_default() {
            if let Some(rows) = self.tables.get_mut(table) {
                rows.remove(&key);
            }
        }
        self.held_owners.remove(owner);
        self.problems.retain(|p| p.owner() != owner);
    }

    /// The desired rows of `M`'s table.
    pub fn rows<M: Managed>(&self) -> impl Iterator<Item = (&RowKey, &DesiredRow)> {
        self.tables.get(M::TABLE).into_iter().flatten()
    }

    /// The desired row of `M`'s table with `key`.
    pub fn row<M: Managed>(&self, key: &RowKey) -> Option<&DesiredRow> {
        self.tables.get(M::TABLE)?.get(key)
    }

    /// The desired row with `key` as `M`'s model (rovn's columns only; reference and
    /// parent columns empty), for tests and tools that read what rovn wants.
    pub fn model<M: Managed>(&self, key: &RowKey) -> Option<M> {
        let want = self.row::<M>(key)?;
        let mut row: Row = want
            .columns
            .iter()
            .map(|(column, datum, _)| (column.to_string(), datum.clone()))
            .collect();
        if M::IDENTITY == Identity::Name {
            row.insert(M::NAME_COLUMN.to_string(), Datum::atom(key.as_str()));
        }
        M::from_row(Uuid::nil(), &row).ok()
    }

    /// Adds `row` for `owner`, under the row `parent` of the table's parent table where it has
    /// one. `id` is the row's stable id for tables without names, ignored for named ones.
    /// `external_ids` gets the vendor, owner and id keys here, so every row carries them the
    /// same way. A key already taken holds `owner` and returns `None`.
    pub fn add<M: Managed>(
        &mut self,
        owner: &Owner,
        row: &M,
        id: &str,
        parent: Option<RowKey>,
    ) -> Option<&mut DesiredRow> {
        let owner_text = owner.to_string();
        let key = match M::IDENTITY {
            Identity::Name => RowKey::name(row.name().unwrap_or_default()),
            Identity::OwnerId => RowKey::owned(&owner_text, id),
        };
        let mut columns = row.managed();
        if M::HAS_EXTERNAL_IDS {
            let mut ids = row.external_ids().clone();
            ids.insert(names::VENDOR_KEY.to_string(), names::VENDOR.to_string());
            ids.insert(names::OWNER_KEY.to_string(), owner_text);
            if M::IDENTITY == Identity::OwnerId {
                ids.insert(names::ID_KEY.to_string(), id.to_string());
            }
            columns.push(("external_ids", ids.to_datum(), Ownership::OwnKeys));
        }
        let incarnation = row.external_ids().get(names::POD_UID_KEY).cloned();
        if let Some(existing) = self.tables.get(M::TABLE).and_then(|t| t.get(&key)) {
            let problem = DesiredError::Duplicate {
                owner: owner.clone(),
                name: format!("{} {key}", M::TABLE),
                other: existing.owner.clone(),
            };
            self.hold(owner, problem);
            return None;
        }
        self.by_owner
            .entry(owner.clone())
            .or_default()
            .push((M::TABLE, key.clone()));
        let table = self.tables.entry(M::TABLE).or_default();
        Some(table.entry(key).or_insert(DesiredRow {
            owner: owner.clone(),
            parent,
            columns,
            refs: Vec::new(),
            incarnation,
        }))
    }

    /// Leaves `owner`'s rows as they are, and records why.
    pub fn hold(&mut self, owner: &Owner, problem: DesiredError) {
        self.held_owners.insert(owner.clone());
        self.problems.push(problem);
    }
}

/// An object of the cluster snapshot that cannot become NB rows. Each names the object and
/// what a user would fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesiredError {
    /// A gateway outside its subnet, or a CIDR that cannot hold ports.
    #[error("{owner}: {reason}")]
    BadSubnet {
        /// The Subnet (or the cluster, for `join`).
        owner: Owner,
        /// What is wrong.
        reason: String,
    },
    /// An object that cannot be read (a NetworkPolicy whose pod selector is malformed): what
    /// it wants is not known, so its rows stay as they were.
    #[error("{owner}: {reason}")]
    Unreadable {
        /// The object.
        owner: Owner,
        /// What cannot be read.
        reason: String,
    },
    /// Two objects want the same row.
    #[error("{owner}: row {name} is already wanted by {other}")]
    Duplicate {
        /// The object left out.
        owner: Owner,
        /// The contested row, as `<table> <key>`.
        name: String,
        /// The object that keeps it.
        other: Owner,
    },
    /// A pod on a switch that is not desired.
    #[error("{owner}: logical switch {switch} does not exist")]
    UnknownSwitch {
        /// The pod.
        owner: Owner,
        /// The switch it names.
        switch: String,
    },
    /// An address outside the switch's CIDR.
    #[error("{owner}: address {ip} is outside {switch} ({cidr})")]
    OutsideSubnet {
        /// The pod or node.
        owner: Owner,
        /// The address.
        ip: std::net::Ipv4Addr,
        /// The switch.
        switch: String,
        /// Its CIDR.
        cidr: ipnet::Ipv4Net,
    },
}

impl DesiredError {
    /// The object the problem is about, whom its Event goes to.
    pub fn owner(&self) -> &Owner {
        match self {
            DesiredError::BadSubnet { owner, .. }
            | DesiredError::Unreadable { owner, .. }
            | DesiredError::Duplicate { owner, .. }
            | DesiredError::UnknownSwitch { owner, .. }
            | DesiredError::OutsideSubnet { owner, .. } => owner,
        }
    }
}
