//! Desired rows vs. the replica → the minimal [`Plan`]. Pure: reads the replica, writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use rovn_api::names::{self, POD_UID_KEY};
use rovn_ovsdb::{Atom, Datum, Model, Operation, Replica, Row, Uuid};
use rovn_ovsdb_schemas::nb::{LogicalRouter, LogicalRouterPort, LogicalSwitch, LogicalSwitchPort};

use super::current::{CurrentRow, CurrentTable, parents_of};
use super::error::{Conflict, DiffError};
use super::managed::{Managed, changes};
use super::plan::{Action, ParentRef, Plan, PortLink, Step};
use crate::desired::{Attached, DesiredState};

const ROOTS: usize = 0;
const PORTS: usize = 1;
const ROOT_GARBAGE: usize = 2;

/// The operations that make `replica` hold `desired`, touching only rows rovn owns.
///
/// Runs in time linear in the rows of the four tables it reads; a converged state gives an
/// empty plan.
pub fn diff(desired: &DesiredState, replica: &Replica) -> Result<Plan, DiffError> {
    let mut differ = Differ {
        plan: Plan::default(),
        held: &desired.held_owners,
        named: 0,
    };
    let routers = CurrentTable::index(replica, LogicalRouter::TABLE)?;
    let switches = CurrentTable::index(replica, LogicalSwitch::TABLE)?;
    let router_parents = differ.roots(&desired.routers, &routers)?;
    let switch_parents = differ.roots(&desired.switches, &switches)?;
    let lrps = CurrentTable::index(replica, LogicalRouterPort::TABLE)?;
    let lsps = CurrentTable::index(replica, LogicalSwitchPort::TABLE)?;
    let lrp_parents = parents_of(replica, LogicalRouter::TABLE)?;
    let lsp_parents = parents_of(replica, LogicalSwitch::TABLE)?;
    differ.children(&desired.router_ports, &lrps, &router_parents, &lrp_parents)?;
    differ.children(&desired.switch_ports, &lsps, &switch_parents, &lsp_parents)?;
    Ok(differ.plan)
}

/// The parents the children of one table may use.
struct Parents<'r> {
    table: &'static str,
    /// Desired parent name → how a transaction names it; absent when blocked by a conflict.
    refs: HashMap<String, ParentRef>,
    /// Parents being deleted: their ports go with them.
    deleted: HashSet<Uuid>,
    /// Every current parent row's name, to describe old parents.
    names: &'r HashMap<Uuid, &'r str>,
}

struct Differ<'d> {
    plan: Plan,
    held: &'d BTreeSet<String>,
    named: usize,
}

/// The insert of a desired row: its name and rovn's columns only. The server fills in every
/// other column's default, and the request stays small.
fn insert<M: Managed>(name: &str, want: &M) -> Operation {
    let mut row = Row::new();
    row.insert("name".to_string(), Datum::atom(name));
    for (column, value, _) in want.managed() {
        let datum = value.to_datum();
        if !datum.is_empty() {
            row.insert(column.to_string(), datum);
        }
    }
    Operation::insert(M::TABLE, row)
}

fn owner_of<M: Managed>(row: &M) -> String {
    row.external_ids()
        .get(names::OWNER_KEY)
        .cloned()
        .unwrap_or_default()
}

impl Differ<'_> {
    fn uuid_name(&mut self) -> String {
        self.named += 1;
        format!("rovn_row{}", self.named)
    }

    fn push(&mut self, phase: usize, step: Step) {
        self.plan.phases[phase].push(step);
    }

    fn conflict<M: Managed>(&mut self, name: &str, foreign: &CurrentRow, want: &M) {
        self.plan.conflicts.push(Conflict {
            table: M::TABLE,
            name: name.to_string(),
            uuid: foreign.uuid,
            owner: owner_of(want),
        });
    }

    /// Owned rows of `current` that are not desired and whose owner is not held, in a stable
    /// order (name, then UUID) so plans are reproducible.
    fn garbage_of<'r>(
        &self,
        current: &CurrentTable<'r>,
        desired: impl Fn(&str) -> bool,
    ) -> Vec<(&'r str, CurrentRow<'r>)> {
        let mut garbage: Vec<_> = current
            .owned()
            .filter(|(name, row)| !desired(name) && !self.held.contains(row.owner()))
            .collect();
        garbage.sort_by(|a, b| a.0.cmp(b.0).then(a.1.uuid.cmp(&b.1.uuid)));
        garbage
    }

    fn roots<'r, M: Managed>(
        &mut self,
        desired: &BTreeMap<String, M>,
        current: &'r CurrentTable<'r>,
    ) -> Result<Parents<'r>, DiffError> {
        let mut parents = Parents {
            table: M::TABLE,
            refs: HashMap::new(),
            deleted: HashSet::new(),
            names: &current.names,
        };
        for (name, want) in desired {
            let rows = current.named(name);
            if let Some(foreign) = rows.iter().find(|r| !r.owned) {
                self.conflict(name, foreign, want);
                continue;
            }
            let what = format!("{} {name}", M::TABLE);
            let Some((keep, duplicates)) = rows.split_first() else {
                self.push(
                    ROOTS,
                    Step {
                        owner: owner_of(want),
                        what,
                        action: Action::Insert,
                        ops: vec![insert(name, want)],
                        links: Vec::new(),
                    },
                );
                parents.refs.insert(
                    name.clone(),
                    ParentRef::Created {
                        table: M::TABLE,
                        name: name.clone(),
                    },
                );
                continue;
            };
            let ops = changes(keep.row, want).into_operations(M::TABLE, keep.uuid);
            if !ops.is_empty() {
                self.push(
                    ROOTS,
                    Step {
                        owner: owner_of(want),
                        what: what.clone(),
                        action: Action::Update,
                        ops,
                        links: Vec::new(),
                    },
                );
            }
            parents.refs.insert(
                name.clone(),
                ParentRef::Existing {
                    table: M::TABLE,
                    name: name.clone(),
                    uuid: keep.uuid,
                },
            );
            for dup in duplicates {
                self.delete_root::<M>(dup, &what, &mut parents);
            }
        }
        for (name, row) in self.garbage_of(current, |n| desired.contains_key(n)) {
            self.delete_root::<M>(&row, &format!("{} {name}", M::TABLE), &mut parents);
        }
        Ok(parents)
    }

    fn delete_root<M: Managed>(&mut self, row: &CurrentRow, what: &str, parents: &mut Parents) {
        parents.deleted.insert(row.uuid);
        self.push(
            ROOT_GARBAGE,
            Step {
                owner: row.owner().to_string(),
                what: what.to_string(),
                action: Action::Delete,
                ops: vec![Operation::delete(
                    M::TABLE,
                    vec![rovn_ovsdb::Condition::uuid(row.uuid)],
                )],
                links: Vec::new(),
            },
        );
    }

    /// How row `uuid` leaves its current parent: a `ports` deletion, nothing when the parent
    /// goes too, a plain delete for an orphan (which a non-root row can only be briefly).
    fn detach(
        &self,
        uuid: Uuid,
        table: &'static str,
        parents: &Parents,
        parent_of: &HashMap<Uuid, Uuid>,
    ) -> (Vec<Operation>, Vec<PortLink>) {
        match parent_of.get(&uuid) {
            Some(p) if parents.deleted.contains(p) => (Vec::new(), Vec::new()),
            Some(p) => (
                Vec::new(),
                vec![PortLink {
                    parent: ParentRef::Existing {
                        table: parents.table,
                        name: parents.names.get(p).copied().unwrap_or("").to_string(),
                        uuid: *p,
                    },
                    insert: None,
                    delete: Some(uuid),
                }],
            ),
            None => (
                vec![Operation::delete(
                    table,
                    vec![rovn_ovsdb::Condition::uuid(uuid)],
                )],
                Vec::new(),
            ),
        }
    }

    fn children<M: Managed>(
        &mut self,
        desired: &BTreeMap<String, Attached<M>>,
        current: &CurrentTable,
        parents: &Parents,
        parent_of: &HashMap<Uuid, Uuid>,
    ) -> Result<(), DiffError> {
        for (name, Attached { parent, row: want }) in desired {
            let Some(parent_ref) = parents.refs.get(parent) else {
                continue;
            };
            let rows = current.named(name);
            if let Some(foreign) = rows.iter().find(|r| !r.owned) {
                self.conflict(name, foreign, want);
                continue;
            }
            let existing = rows.first();
            let in_place = existing.filter(|row| {
                let same_parent = matches!(parent_ref, ParentRef::Existing { uuid, .. }
                    if parent_of.get(&row.uuid) == Some(uuid));
                same_parent && row.external_id(POD_UID_KEY) == want.incarnation()
            });
            if let Some(row) = in_place {
                let ops = changes(row.row, want).into_operations(M::TABLE, row.uuid);
                if !ops.is_empty() {
                    self.push(
                        PORTS,
                        Step {
                            owner: owner_of(want),
                            what: format!("{} {name}", M::TABLE),
                            action: Action::Update,
                            ops,
                            links: Vec::new(),
                        },
                    );
                }
                continue;
            }
            let named = self.uuid_name();
            let mut ops = Vec::new();
            let mut links = Vec::new();
            if let Some(row) = existing {
                (ops, links) = self.detach(row.uuid, M::TABLE, parents, parent_of);
            }
            ops.push(insert(name, want).with_uuid_name(named.clone()));
            links.push(PortLink {
                parent: parent_ref.clone(),
                insert: Some(Atom::NamedUuid(named)),
                delete: None,
            });
            let action = if existing.is_some() {
                Action::Replace
            } else {
                Action::Insert
            };
            self.push(
                PORTS,
                Step {
                    owner: owner_of(want),
                    what: format!("{} {name}", M::TABLE),
                    action,
                    ops,
                    links,
                },
            );
        }
        for (name, row) in self.garbage_of(current, |n| desired.contains_key(n)) {
            let (ops, links) = self.detach(row.uuid, M::TABLE, parents, parent_of);
            if ops.is_empty() && links.is_empty() {
                continue;
            }
            self.push(
                PORTS,
                Step {
                    owner: row.owner().to_string(),
                    what: format!("{} {name}", M::TABLE),
                    action: Action::Delete,
                    ops,
                    links,
                },
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
