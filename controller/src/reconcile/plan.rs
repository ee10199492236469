//! The operations a diff decided on, and how they are cut into bounded transactions.

use std::collections::BTreeMap;

use rovn_api::names::{self, COMMENT_PREFIX};
use rovn_ovsdb::{Atom, Condition, Datum, Mutation, Operation, Uuid};

use super::error::Conflict;

/// What a step does to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// A new row.
    Insert,
    /// Changed columns or map keys of an existing row.
    Update,
    /// An existing row replaced by a new one (new incarnation or new parent).
    Replace,
    /// An owned row nobody wants any more.
    Delete,
}

/// The parent of a port as a transaction can name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ParentRef {
    /// A row already in NB.
    Existing {
        table: &'static str,
        name: String,
        uuid: Uuid,
    },
    /// A row inserted by an earlier phase of the same plan: found by its name, since its
    /// UUID is not known when the plan is made.
    Created { table: &'static str, name: String },
}

impl ParentRef {
    /// Which rows a `ports` mutation matches. A parent created earlier in the plan is matched
    /// by name *and* rovn's vendor key, so a foreign row that took the same name meanwhile
    /// never gets rovn's ports.
    fn conditions(&self) -> Vec<Condition> {
        match self {
            ParentRef::Existing { uuid, .. } => vec![Condition::uuid(*uuid)],
            ParentRef::Created { name, .. } => vec![
                Condition::eq("name", Datum::atom(name.as_str())),
                Condition::includes(
                    "external_ids",
                    Datum::map([(names::VENDOR_KEY, names::VENDOR)]),
                ),
            ],
        }
    }

    fn table(&self) -> &'static str {
        match self {
            ParentRef::Existing { table, .. } | ParentRef::Created { table, .. } => table,
        }
    }

    fn describe(&self) -> String {
        match self {
            ParentRef::Existing { table, name, .. } | ParentRef::Created { table, name } => {
                format!("{table} {name}")
            }
        }
    }
}

/// A port joining or leaving its parent's `ports`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PortLink {
    pub parent: ParentRef,
    /// The port to add: a named-uuid of an insert in the same step, or a UUID.
    pub insert: Option<Atom>,
    /// The port to take out.
    pub delete: Option<Uuid>,
}

/// Everything one row needs, indivisible: a port's insert and its parent's mutation always
/// land in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The object the row is for (`Pod/ns/name`, ...), which errors name.
    pub owner: String,
    /// The row, as `<table> <name>`.
    pub what: String,
    /// What happens to it.
    pub action: Action,
    pub(crate) ops: Vec<Operation>,
    pub(crate) links: Vec<PortLink>,
}

impl Step {
    /// The step's own operations (its parent's `ports` mutation is added when batched), for
    /// logs and inspection.
    pub fn ops(&self) -> &[Operation] {
        &self.ops
    }
}

/// One transaction of a plan, with what each operation is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// The operations, in order.
    pub ops: Vec<Operation>,
    /// For each operation: (owner, row) it is for.
    pub labels: Vec<(String, String)>,
    /// Indexes of `ports` mutations and the parent each must find.
    pub(crate) parent_mutations: Vec<(usize, String)>,
}

/// The operations that turn NB into the desired state, in phases that must commit in order:
/// switches and routers, then their ports (which reference new parents by name), then the
/// deletion of unwanted switches and routers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub(crate) phases: [Vec<Step>; 3],
    /// Desired rows that were not written because a foreign row holds their name.
    pub conflicts: Vec<Conflict>,
}

impl Plan {
    /// Whether nothing is to be written: the state is converged (conflicts aside).
    pub fn is_empty(&self) -> bool {
        self.phases.iter().all(Vec::is_empty)
    }

    /// Every step, in the order it is applied.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.phases.iter().flatten()
    }

    /// How many steps do `action`.
    pub fn count(&self, action: Action) -> usize {
        self.steps().filter(|s| s.action == action).count()
    }

    /// The plan as transactions of at most `max_ops` operations (a step bigger than that gets
    /// a transaction of its own), phase by phase.
    pub fn transactions(&self, max_ops: usize) -> Vec<Vec<Transaction>> {
        self.phases
            .iter()
            .map(|steps| batch(steps, max_ops.max(1)))
            .collect()
    }
}

/// Steps accumulated for one transaction, with the parent mutations merged per parent.
#[derive(Default)]
struct Pending<'p> {
    steps: Vec<&'p Step>,
    parents: BTreeMap<&'p ParentRef, Vec<&'p PortLink>>,
    ops: usize,
}

impl<'p> Pending<'p> {
    fn cost_of(&self, step: &Step) -> usize {
        step.ops.len()
            + step
                .links
                .iter()
                .filter(|l| !self.parents.contains_key(&l.parent))
                .count()
    }

    fn push(&mut self, step: &'p Step) {
        self.ops += self.cost_of(step);
        for link in &step.links {
            self.parents.entry(&link.parent).or_default().push(link);
        }
        self.steps.push(step);
    }

    fn finish(self) -> Transaction {
        let mut txn = Transaction {
            ops: Vec::with_capacity(self.ops),
            labels: Vec::with_capacity(self.ops),
            parent_mutations: Vec::new(),
        };
        for step in &self.steps {
            for op in &step.ops {
                txn.ops.push(op.clone());
                txn.labels.push((step.owner.clone(), step.what.clone()));
            }
        }
        for (parent, links) in self.parents {
            let inserted: Vec<Atom> = links.iter().filter_map(|l| l.insert.clone()).collect();
            let deleted: Vec<Atom> = links
                .iter()
                .filter_map(|l| l.delete.map(Atom::Uuid))
                .collect();
            let mut mutations = Vec::new();
            if !inserted.is_empty() {
                mutations.push(Mutation::insert("ports", Datum::set(inserted)));
            }
            if !deleted.is_empty() {
                mutations.push(Mutation::delete("ports", Datum::set(deleted)));
            }
            let owners: Vec<&str> = self
                .steps
                .iter()
                .filter(|s| s.links.iter().any(|l| &l.parent == parent))
                .map(|s| s.owner.as_str())
                .collect();
            let owner = summarize(&owners);
            let what = format!("ports of {} ({} changed)", parent.describe(), links.len());
            txn.parent_mutations
                .push((txn.ops.len(), parent.describe()));
            txn.ops.push(Operation::mutate(
                parent.table(),
                parent.conditions(),
                mutations,
            ));
            txn.labels.push((owner, what));
        }
        let mut owners: Vec<&str> = self.steps.iter().map(|s| s.owner.as_str()).collect();
        owners.dedup();
        let owners = summarize(&owners);
        txn.ops
            .push(Operation::Comment(format!("{COMMENT_PREFIX} {owners}")));
        txn.labels
            .push((owners, "the transaction's comment".into()));
        txn
    }
}

/// A readable list of owners, cut short when long.
fn summarize(owners: &[&str]) -> String {
    const SHOWN: usize = 3;
    let mut s = owners
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if owners.len() > SHOWN {
        s.push_str(&format!(" and {} more", owners.len() - SHOWN));
    }
    s
}

fn batch(steps: &[Step], max_ops: usize) -> Vec<Transaction> {
    let mut out = Vec::new();
    let mut pending = Pending::default();
    for step in steps {
        // + 1: the comment that ends every transaction.
        if !pending.steps.is_empty() && pending.ops + pending.cost_of(step) + 1 > max_ops {
            out.push(std::mem::take(&mut pending).finish());
        }
        pending.push(step);
    }
    if !pending.steps.is_empty() {
        out.push(pending.finish());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port_step(i: usize, parent: &ParentRef) -> Step {
        let named = format!("row{i}");
        Step {
            owner: format!("Pod/ns/p{i}"),
            what: format!("Logical_Switch_Port p{i}.ns"),
            action: Action::Insert,
            ops: vec![
                Operation::insert("Logical_Switch_Port", Default::default()).with_uuid_name(&named),
            ],
            links: vec![PortLink {
                parent: parent.clone(),
                insert: Some(Atom::NamedUuid(named)),
                delete: None,
            }],
        }
    }

    #[test]
    fn ports_and_their_parent_mutation_share_a_bounded_transaction() {
        let parent = ParentRef::Created {
            table: "Logical_Switch",
            name: "sw".into(),
        };
        let mut plan = Plan::default();
        plan.phases[1] = (0..10).map(|i| port_step(i, &parent)).collect();
        let txns = plan.transactions(5);
        assert_eq!(txns[1].len(), 4, "3 + 3 + 3 + 1 ports");
        for txn in &txns[1] {
            assert!(txn.ops.len() <= 5);
            let [
                ..,
                Operation::Mutate { mutations, .. },
                Operation::Comment(comment),
            ] = txn.ops.as_slice()
            else {
                panic!(
                    "the parent mutation and the comment do not end {:?}",
                    txn.ops
                );
            };
            let inserts = txn.ops.len() - 2;
            assert_eq!(mutations.len(), 1);
            assert_eq!(mutations[0].value.len(), inserts);
            assert!(
                comment.starts_with(COMMENT_PREFIX) && comment.contains("Pod/ns/p"),
                "{comment}"
            );
            assert_eq!(txn.labels.len(), txn.ops.len());
        }
        assert!(txns[0].is_empty() && txns[2].is_empty());
        assert_eq!(txns[1][3].labels[1].0, "Pod/ns/p9");
        let Some(Operation::Comment(last)) = txns[1][3].ops.last() else {
            panic!("no comment");
        };
        assert_eq!(last, &format!("{COMMENT_PREFIX} Pod/ns/p9"));
    }

    #[test]
    fn owners_are_summarized() {
        assert_eq!(summarize(&["a", "b"]), "a, b");
        assert_eq!(summarize(&["a", "b", "c", "d", "e"]), "a, b, c and 2 more");
    }

    proptest::proptest! {
        #[test]
        fn batches_respect_the_bound_and_keep_steps_whole(
            shapes in proptest::collection::vec((1usize..4, 0usize..3), 1..60),
            max_ops in 1usize..20,
        ) {
            let parents: Vec<ParentRef> = (0..3)
                .map(|i| ParentRef::Created { table: "Logical_Switch", name: format!("sw{i}") })
                .collect();
            let steps: Vec<Step> = shapes
                .iter()
                .enumerate()
                .map(|(i, (ops, parent))| {
                    let named = format!("row{i}");
                    let mut own: Vec<Operation> = (1..*ops)
                        .map(|_| Operation::Comment(format!("s{i}")))
                        .collect();
                    own.push(
                        Operation::insert("Logical_Switch_Port", Default::default())
                            .with_uuid_name(&named),
                    );
                    Step {
                        owner: format!("o{i}"),
                        what: format!("w{i}"),
                        action: Action::Insert,
                        ops: own,
                        links: vec![PortLink {
                            parent: parents[*parent].clone(),
                            insert: Some(Atom::NamedUuid(named)),
                            delete: None,
                        }],
                    }
                })
                .collect();
            let mut plan = Plan::default();
            plan.phases[1] = steps;
            let txns = &plan.transactions(max_ops)[1];
            let mut seen = 0;
            for txn in txns {
                // One step's own 3 operations, its parent mutation and the comment.
                let biggest = 5;
                proptest::prop_assert!(txn.ops.len() <= max_ops.max(biggest));
                proptest::prop_assert_eq!(txn.ops.len(), txn.labels.len());
                let inserted: Vec<Atom> = txn.ops.iter().filter_map(|op| match op {
                    Operation::Insert { uuid_name: Some(n), .. } => Some(Atom::NamedUuid(n.clone())),
                    _ => None,
                }).collect();
                let attached: Vec<Atom> = txn.ops.iter().filter_map(|op| match op {
                    Operation::Mutate { mutations, .. } => mutations[0].value.as_set().cloned(),
                    _ => None,
                }).flatten().collect();
                let mut a = inserted.clone();
                let mut b = attached;
                a.sort();
                b.sort();
                proptest::prop_assert_eq!(a, b, "every insert is attached in its own transaction");
                seen += inserted.len();
            }
            proptest::prop_assert_eq!(seen, shapes.len());
        }
    }
}
