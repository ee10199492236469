//! Desired rows vs. the replica → the minimal [`Plan`]. Pure: reads the replica, writes nothing.
//!
//! Generic over tables: each [`TableSpec`] says how its rows are identified, which parent column
//! holds them and which columns and references are rovn's. Tables are visited after the tables
//! they depend on, so a row always finds its parent and the rows it refers to — existing, or
//! inserted by an earlier phase of the same plan.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use rovn_ovsdb::model::Changes;
use rovn_ovsdb::{Atom, Condition, Datum, Operation, Replica, Row, Uuid};

use super::changes::{column_changes, reference_changes};
use super::current::{
    CurrentRow, CurrentTable, ParentsOf, is_owned, owned_by_name, parent_index, parents_of,
};
use super::error::{Conflict, DiffError};
use super::plan::{Action, Link, Plan, RowRef, Step};
use rovn_api::Owner;

use crate::desired::{DesiredRow, DesiredState, RowKey};
use crate::tables::{Identity, TableSpec, specs};
use rovn_api::names;

/// The operations that make `replica` hold `desired`, touching only rows rovn owns.
///
/// Runs in time linear in the rows of the tables it reads; a converged state gives an empty
/// plan. Used at start-up and by the periodic resync; between them [`diff_owners`] keeps a
/// round's cost proportional to what changed.
pub fn diff(desired: &DesiredState, replica: &Replica) -> Result<Plan, DiffError> {
    run(desired, replica, specs(), None)
}

/// As [`diff`], but only for the rows `owners` want or own (and, where such a row needs a
/// parent or a referenced row that NB lacks, for that row's owner too). Rows of other owners
/// are neither compared nor collected, and are found through the replica's indexes
/// ([`super::indexes`]) instead of a scan, so one pod's round costs the same on a cluster of
/// ten pods and of ten thousand.
pub fn diff_owners(
    desired: &DesiredState,
    replica: &Replica,
    owners: &BTreeSet<Owner>,
) -> Result<Plan, DiffError> {
    let specs = specs();
    let scope = expand(desired, replica, &specs, owners.clone())?;
    run(desired, replica, specs, Some(&scope))
}

fn run(
    desired: &DesiredState,
    replica: &Replica,
    specs: Vec<TableSpec>,
    scope: Option<&BTreeSet<Owner>>,
) -> Result<Plan, DiffError> {
    let specs = ordered(specs);
    let depth = specs.iter().map(|(_, rank)| *rank).max().unwrap_or(0) + 1;
    let empty = BTreeMap::new();
    let mut differ = Differ {
        phases: vec![Vec::new(); depth * 2],
        conflicts: Vec::new(),
        held: desired.held().map(ToString::to_string).collect(),
        tables: HashMap::new(),
        named: 0,
        inserts: HashMap::new(),
        replica,
        desired,
        scoped: scope.is_some(),
    };
    for (spec, rank) in &specs {
        let rows = desired.table(spec.table).unwrap_or(&empty);
        let (current, wanted, parent_of) = match scope {
            None => {
                let current = CurrentTable::index(replica, spec, |key| rows.contains_key(key))?;
                let parent_of = match spec.parent {
                    Some(parent) => {
                        ParentsOf::Scanned(parents_of(replica, parent.table, parent.column)?)
                    }
                    None => ParentsOf::Scanned(HashMap::new()),
                };
                (current, rows.iter().collect::<Vec<_>>(), parent_of)
            }
            Some(owners) => {
                let wanted: Vec<(&RowKey, &DesiredRow)> = owners
                    .iter()
                    .flat_map(|o| desired.keys_of(o))
                    .filter(|(table, _)| *table == spec.table)
                    .filter_map(|(_, key)| rows.get_key_value(key))
                    .collect();
                let texts: Vec<String> = owners.iter().map(ToString::to_string).collect();
                let current = CurrentTable::scoped(
                    replica,
                    spec,
                    wanted.iter().map(|(k, _)| *k),
                    texts.iter().map(String::as_str),
                    |key| rows.contains_key(key),
                )?;
                let parent_of = match spec.parent {
                    Some(p) => ParentsOf::Indexed(replica, parent_index(p.table, p.column)),
                    None => ParentsOf::Scanned(HashMap::new()),
                };
                (current, wanted, parent_of)
            }
        };
        let mut table = TableDiff {
            spec,
            current,
            parent_of,
            placed: HashMap::new(),
            deleted: HashSet::new(),
        };
        differ.table(&mut table, rows, &wanted, *rank, depth * 2 - 1 - rank)?;
        differ.tables.insert(spec.table, table);
    }
    Ok(Plan {
        phases: differ.phases,
        conflicts: differ.conflicts,
    })
}

/// `owners` plus the owners of every desired parent or referenced row their rows need and NB
/// does not hold yet (a pod's port on a switch whose Subnet has not been written), repeated
/// until nothing is added.
fn expand(
    desired: &DesiredState,
    replica: &Replica,
    specs: &[TableSpec],
    mut owners: BTreeSet<Owner>,
) -> Result<BTreeSet<Owner>, DiffError> {
    let spec_of = |table: &str| specs.iter().find(|s| s.table == table);
    let mut pending: Vec<Owner> = owners.iter().cloned().collect();
    while let Some(owner) = pending.pop() {
        for (table, key) in desired.keys_of(&owner) {
            let (Some(spec), Some(row)) = (
                spec_of(table),
                desired.table(table).and_then(|t| t.get(key)),
            ) else {
                continue;
            };
            let parent = spec
                .parent
                .zip(row.parent.as_ref())
                .map(|(p, k)| (p.table, k));
            let refs = row
                .refs
                .iter()
                .flat_map(|r| r.keys.iter().map(move |k| (r.table, k)));
            for (target_table, target_key) in parent.into_iter().chain(refs) {
                let Some(target) = desired.table(target_table).and_then(|t| t.get(target_key))
                else {
                    continue;
                };
                if owners.contains(&target.owner) {
                    continue;
                }
                let Some(target_spec) = spec_of(target_table) else {
                    continue;
                };
                if owned_by_name(replica, target_spec, target_key, true)?.is_none() {
                    owners.insert(target.owner.clone());
                    pending.push(target.owner.clone());
                }
            }
        }
    }
    Ok(owners)
}

/// The specs with their rank: 0 for tables that depend on nothing, else one more than the
/// highest rank they depend on. Sorted by rank (stable, so the order of [`specs`] breaks ties).
fn ordered(specs: Vec<TableSpec>) -> Vec<(TableSpec, usize)> {
    fn rank_of(table: &str, specs: &[TableSpec], seen: &mut Vec<&'static str>) -> usize {
        let Some(spec) = specs.iter().find(|s| s.table == table) else {
            return 0;
        };
        if seen.contains(&spec.table) {
            return 0;
        }
        seen.push(spec.table);
        let rank = spec
            .depends_on()
            .map(|t| rank_of(t, specs, seen) + 1)
            .max()
            .unwrap_or(0);
        seen.pop();
        rank
    }
    let mut ranked: Vec<(TableSpec, usize)> = specs
        .iter()
        .map(|s| (s.clone(), rank_of(s.table, &specs, &mut Vec::new())))
        .collect();
    ranked.sort_by_key(|(_, rank)| *rank);
    ranked
}

/// One table's current rows and what the diff decided for them, kept for the tables that
/// depend on it.
struct TableDiff<'r> {
    spec: &'r TableSpec,
    current: CurrentTable<'r>,
    /// Finds a child's parent, for child tables.
    parent_of: ParentsOf<'r>,
    /// Desired keys → the row that will hold them (absent when blocked by a conflict or a
    /// missing parent).
    placed: HashMap<RowKey, RowRef>,
    /// Rows being deleted: their children go with them.
    deleted: HashSet<Uuid>,
}

struct Differ<'r> {
    phases: Vec<Vec<Step>>,
    conflicts: Vec<Conflict>,
    held: HashSet<String>,
    tables: HashMap<&'static str, TableDiff<'r>>,
    named: usize,
    /// The step that inserts each uuid-name, by phase and index.
    inserts: HashMap<String, (usize, usize)>,
    replica: &'r Replica,
    desired: &'r DesiredState,
    /// Limited to some owners: parents and referenced rows of other owners are looked up in
    /// the replica rather than in what this diff placed.
    scoped: bool,
}

/// A reference column, its table and the atoms it should hold.
type ResolvedRefs = (&'static str, &'static str, BTreeSet<Atom>);

fn what(table: &str, key: &RowKey) -> String {
    format!("{table} {key}")
}

fn delete_op(table: &'static str, uuid: Uuid) -> Operation {
    Operation::delete(table, vec![Condition::uuid(uuid)])
}

impl<'r> Differ<'r> {
    fn symbol(&mut self) -> String {
        self.named += 1;
        format!("rovn_row{}", self.named)
    }

    /// Where the row `key` of `table` is: placed by this diff, or, for a scoped diff, the row
    /// rovn already has in NB for a desired key.
    fn placed(&self, table: &'static str, key: &RowKey) -> Result<Option<RowRef>, DiffError> {
        let Some(t) = self.tables.get(table) else {
            return Ok(None);
        };
        if let Some(placed) = t.placed.get(key) {
            return Ok(Some(placed.clone()));
        }
        let desired = self
            .desired
            .table(table)
            .is_some_and(|rows| rows.contains_key(key));
        if !self.scoped || !desired {
            return Ok(None);
        }
        Ok(owned_by_name(self.replica, t.spec, key, desired)?.map(RowRef::Existing))
    }

    fn table(
        &mut self,
        table: &mut TableDiff<'r>,
        rows: &BTreeMap<RowKey, DesiredRow>,
        wanted: &[(&RowKey, &DesiredRow)],
        phase: usize,
        garbage_phase: usize,
    ) -> Result<(), DiffError> {
        let spec = table.spec;
        for &(key, want) in wanted {
            let current = table.current.keyed(key).to_vec();
            if let Some(foreign) = current.iter().find(|r| !r.owned) {
                self.conflicts.push(Conflict {
                    table: spec.table,
                    name: key.to_string(),
                    uuid: foreign.uuid,
                    owner: want.owner.clone(),
                });
                continue;
            }
            let parent = match (spec.parent, &want.parent) {
                (None, _) => None,
                (Some(p), Some(parent_key)) => match self.placed(p.table, parent_key)? {
                    Some(r) => Some((p, r, what(p.table, parent_key))),
                    None => continue,
                },
                (Some(_), None) => continue,
            };
            let refs = self.resolve_refs(want)?;
            let existing = current.first().copied();
            let in_place = existing.filter(|row| {
                let same_parent = match &parent {
                    None => true,
                    Some((_, RowRef::Existing(uuid), _)) => {
                        table.parent_of.get(&row.uuid) == Some(*uuid)
                    }
                    Some((_, RowRef::Created(_), _)) => false,
                };
                same_parent && row.external_id(names::POD_UID_KEY) == want.incarnation.as_deref()
            });
            if let Some(row) = in_place {
                let mut changes = Changes::default();
                column_changes(row.row, &want.columns, &mut changes);
                for (column, target, atoms) in &refs {
                    reference_changes(
                        row.row,
                        column,
                        atoms,
                        |atom| matches!(atom, Atom::Uuid(u) if is_owned(self.replica, target, u)),
                        &mut changes,
                    );
                }
                let ops = changes.into_operations(spec.table, row.uuid);
                if !ops.is_empty() {
                    self.phases[phase].push(Step {
                        owner: Some(want.owner.clone()),
                        what: what(spec.table, key),
                        action: Action::Update,
                        ops,
                        links: Vec::new(),
                        creates: None,
                    });
                }
                table.placed.insert(key.clone(), RowRef::Existing(row.uuid));
            } else {
                let symbol = self.symbol();
                let mut ops = Vec::new();
                let mut links = Vec::new();
                if let Some(old) = existing {
                    self.retire(table, &old, &mut ops, &mut links);
                }
                ops.push(insert(spec, key, want, &refs).with_uuid_name(symbol.clone()));
                let required_parent = parent.as_ref().and_then(|(p, r, _)| match r {
                    RowRef::Created(parent) if p.required => self.inserts.get(parent).copied(),
                    _ => None,
                });
                if let Some((p, parent_ref, parent_what)) = parent {
                    links.push(Link {
                        table: p.table,
                        column: p.column,
                        parent: parent_ref,
                        parent_what,
                        insert: Some(Atom::NamedUuid(symbol.clone())),
                        delete: None,
                    });
                }
                if let (Some((parent_phase, index)), Some(p)) = (required_parent, spec.parent) {
                    // The parent's insert names the child itself: a column that needs an
                    // element would otherwise be filled with a nil reference until a mutation.
                    let step = &mut self.phases[parent_phase][index];
                    let parent_symbol = step.creates.clone();
                    for op in &mut step.ops {
                        if let Operation::Insert {
                            uuid_name: Some(name),
                            row,
                            ..
                        } = op
                            && Some(&*name) == parent_symbol.as_ref()
                        {
                            let mut children = match row.remove(p.column) {
                                Some(Datum::Set(atoms)) => atoms,
                                _ => BTreeSet::new(),
                            };
                            children.insert(Atom::NamedUuid(symbol.clone()));
                            row.insert(p.column.to_string(), Datum::Set(children));
                        }
                    }
                    // The child first, so the parent's insert refers back to a row already made.
                    step.ops.splice(0..0, ops);
                } else {
                    self.inserts
                        .insert(symbol.clone(), (phase, self.phases[phase].len()));
                    self.phases[phase].push(Step {
                        owner: Some(want.owner.clone()),
                        what: what(spec.table, key),
                        action: if existing.is_some() {
                            Action::Replace
                        } else {
                            Action::Insert
                        },
                        ops,
                        links,
                        creates: Some(symbol.clone()),
                    });
                }
                table.placed.insert(key.clone(), RowRef::Created(symbol));
            }
            for duplicate in current.iter().skip(1) {
                self.garbage(table, key, duplicate, phase, garbage_phase);
            }
        }
        let mut garbage: Vec<(RowKey, CurrentRow<'r>)> = table
            .current
            .owned()
            .filter(|(key, row)| {
                spec.has_external_ids
                    && !rows.contains_key(*key)
                    && !self.held.contains(row.owner_text())
            })
            .map(|(key, row)| (key.clone(), row))
            .collect();
        garbage.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.uuid.cmp(&b.1.uuid)));
        for (key, row) in &garbage {
            self.garbage(table, key, row, phase, garbage_phase);
        }
        Ok(())
    }

    /// The reference columns of `want`, each as the atoms the column should hold: rows of the
    /// referenced table that exist or are inserted earlier in the plan. A key that is not
    /// placed (not desired, or blocked) is left out until it is.
    fn resolve_refs(&self, want: &DesiredRow) -> Result<Vec<ResolvedRefs>, DiffError> {
        let mut out = Vec::with_capacity(want.refs.len());
        for r in &want.refs {
            let mut atoms = BTreeSet::new();
            for key in &r.keys {
                if let Some(placed) = self.placed(r.table, key)? {
                    atoms.insert(placed.atom());
                }
            }
            out.push((r.column, r.table, atoms));
        }
        Ok(out)
    }

    /// How `row` leaves: a root row is deleted; a child is taken out of its parent's column
    /// (the server then collects it), or nothing when the parent goes too.
    fn retire(
        &self,
        table: &mut TableDiff<'r>,
        row: &CurrentRow<'r>,
        ops: &mut Vec<Operation>,
        links: &mut Vec<Link>,
    ) {
        table.deleted.insert(row.uuid);
        let Some(p) = table.spec.parent else {
            ops.push(delete_op(table.spec.table, row.uuid));
            return;
        };
        let parents = self.tables.get(p.table);
        match table.parent_of.get(&row.uuid) {
            Some(parent) if parents.is_some_and(|t| t.deleted.contains(&parent)) => {}
            Some(parent) => links.push(Link {
                table: p.table,
                column: p.column,
                parent: RowRef::Existing(parent),
                parent_what: parents
                    .and_then(|t| t.current.keys.get(&parent))
                    .map(|k| what(p.table, k))
                    .unwrap_or_else(|| format!("{} {parent}", p.table)),
                insert: None,
                delete: Some(row.uuid),
            }),
            // An orphan, which a non-root row can only be briefly.
            None => ops.push(delete_op(table.spec.table, row.uuid)),
        }
    }

    /// Removes an owned row nobody wants: children in their table's phase, root rows in the
    /// garbage phases after everything that could still refer to them has let go.
    fn garbage(
        &mut self,
        table: &mut TableDiff<'r>,
        key: &RowKey,
        row: &CurrentRow<'r>,
        phase: usize,
        garbage_phase: usize,
    ) {
        let mut ops = Vec::new();
        let mut links = Vec::new();
        self.retire(table, row, &mut ops, &mut links);
        if ops.is_empty() && links.is_empty() {
            return;
        }
        let phase = if table.spec.parent.is_none() {
            garbage_phase
        } else {
            phase
        };
        self.phases[phase].push(Step {
            owner: row.owner(),
            what: what(table.spec.table, key),
            action: Action::Delete,
            ops,
            links,
            creates: None,
        });
    }
}

/// The insert of a desired row: its name, rovn's columns and references only. The server fills
/// in every other column's default, and the request stays small.
fn insert(spec: &TableSpec, key: &RowKey, want: &DesiredRow, refs: &[ResolvedRefs]) -> Operation {
    let mut row = Row::new();
    if spec.identity == Identity::Name {
        row.insert(spec.name_column.to_string(), Datum::atom(key.as_str()));
    }
    for (column, datum, _) in &want.columns {
        if !datum.is_empty() {
            row.insert(column.to_string(), datum.clone());
        }
    }
    for (column, _, atoms) in refs {
        if !atoms.is_empty() {
            row.insert(column.to_string(), Datum::Set(atoms.clone()));
        }
    }
    Operation::insert(spec.table, row)
}

#[cfg(test)]
mod tests;
