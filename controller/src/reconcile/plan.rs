//! The operations a diff decided on, and how they are cut into bounded transactions.

use std::collections::BTreeMap;

use rovn_api::names::COMMENT_PREFIX;
use rovn_api::{Owner, OwnerKind};
use rovn_ovsdb::{Atom, Condition, Datum, Mutation, Operation, Uuid};

use super::error::Conflict;

/// What a step does to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// A new row.
    Insert,
    /// Changed columns, map keys or references of an existing row.
    Update,
    /// An existing row replaced by a new one (new incarnation or new parent).
    Replace,
    /// An owned row nobody wants any more.
    Delete,
}

/// A row as a transaction can name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum RowRef {
    /// A row already in NB.
    Existing(Uuid),
    /// A row inserted by an earlier phase of the same plan, by the uuid-name of its insert:
    /// [`super::apply`] replaces the name with the UUID the server gave it.
    Created(String),
}

impl RowRef {
    /// The row as a reference atom.
    pub fn atom(&self) -> Atom {
        match self {
            RowRef::Existing(uuid) => Atom::Uuid(*uuid),
            RowRef::Created(symbol) => Atom::NamedUuid(symbol.clone()),
        }
    }

    fn condition(&self) -> Condition {
        Condition::eq("_uuid", Datum::atom(self.atom()))
    }
}

/// A child row joining or leaving the column of its parent that holds it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Link {
    /// The parent table.
    pub table: &'static str,
    /// The parent's column.
    pub column: &'static str,
    /// The parent row.
    pub parent: RowRef,
    /// The parent, as `<table> <key>`, for messages.
    pub parent_what: String,
    /// The child to add: the uuid-name of an insert in the same step.
    pub insert: Option<Atom>,
    /// The child to take out.
    pub delete: Option<Uuid>,
}

/// Everything one row needs, indivisible: a child's insert and its parent's mutation always
/// land in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The object the row is for; `None` for a garbage row whose `rovn.io/owner` this version
    /// of rovn cannot read.
    pub owner: Option<Owner>,
    /// The row, as `<table> <key>`.
    pub what: String,
    /// What happens to it.
    pub action: Action,
    pub(crate) ops: Vec<Operation>,
    pub(crate) links: Vec<Link>,
    /// The uuid-name of the row this step inserts, which later phases refer to.
    pub(crate) creates: Option<String>,
}

impl Step {
    /// The step's own operations (its parent's mutation is added when batched), for logs and
    /// inspection.
    pub fn ops(&self) -> &[Operation] {
        &self.ops
    }
}

/// What one operation of a transaction is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The objects it is for (several for a parent mutation shared by their rows).
    pub owners: Vec<Owner>,
    /// The row or rows, for messages.
    pub what: String,
}

/// One transaction of a plan, with what each operation is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// The operations, in order.
    pub ops: Vec<Operation>,
    /// For each operation, what it is for.
    pub labels: Vec<Label>,
    /// Indexes of parent mutations and the parent each must find.
    pub(crate) parent_mutations: Vec<(usize, String)>,
    /// Indexes of inserts whose UUIDs later phases need, with their uuid-names.
    pub(crate) creates: Vec<(usize, String)>,
    /// The steps it carries, as a range of its phase's steps: a transaction the server refuses
    /// is split along them to find the step at fault.
    pub(crate) steps: std::ops::Range<usize>,
}

impl Transaction {
    /// Every object the transaction writes for, once each.
    pub fn owners(&self) -> Vec<Owner> {
        let mut owners: Vec<Owner> = self
            .labels
            .iter()
            .flat_map(|l| l.owners.iter().cloned())
            .collect();
        owners.sort();
        owners.dedup();
        owners
    }
}

/// The operations that turn NB into the desired state, in phases that must commit in order:
/// each table after the tables its rows refer to (parents, referenced rows), then deletions of
/// unwanted root rows, referring tables first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub(crate) phases: Vec<Vec<Step>>,
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
    /// a transaction of its own), phase by phase; empty phases are left out.
    /// Every step in phase order, when the whole plan fits one transaction of at most
    /// `max_ops` operations (within one transaction, rows refer to rows it inserts by
    /// uuid-name, so the phases need not be apart).
    pub fn single(&self, max_ops: usize) -> Option<Vec<Step>> {
        let steps: Vec<&Step> = self.steps().collect();
        if steps.len() < 2 {
            return None;
        }
        // An upper bound: the ops, one mutation per link, and the comment.
        let cost: usize = steps
            .iter()
            .map(|s| s.ops.len() + s.links.len())
            .sum::<usize>()
            + 1;
        (cost <= max_ops).then(|| steps.into_iter().cloned().collect())
    }

    pub fn transactions(&self, max_ops: usize) -> Vec<Vec<Transaction>> {
        if let Some(steps) = self.single(max_ops) {
            return vec![batch(&steps, 0..steps.len(), usize::MAX)];
        }
        self.phases()
            .map(|steps| batch(steps, 0..steps.len(), max_ops))
            .collect()
    }

    /// The phases with something to do, in order.
    pub(crate) fn phases(&self) -> impl Iterator<Item = &[Step]> {
        self.phases
            .iter()
            .filter(|steps| !steps.is_empty())
            .map(Vec::as_slice)
    }
}

type ParentKey<'p> = (&'static str, &'static str, &'p RowRef);

/// Steps accumulated for one transaction, with the parent mutations merged per parent.
#[derive(Default)]
struct Pending<'p> {
    steps: Vec<&'p Step>,
    parents: BTreeMap<ParentKey<'p>, Vec<&'p Link>>,
    ops: usize,
}

fn parent_key(link: &Link) -> ParentKey<'_> {
    (link.table, link.column, &link.parent)
}

impl<'p> Pending<'p> {
    fn cost_of(&self, step: &Step) -> usize {
        step.ops.len()
            + step
                .links
                .iter()
                .filter(|l| !self.parents.contains_key(&parent_key(l)))
                .count()
    }

    fn push(&mut self, step: &'p Step) {
        self.ops += self.cost_of(step);
        for link in &step.links {
            self.parents.entry(parent_key(link)).or_default().push(link);
        }
        self.steps.push(step);
    }

    fn finish(self, steps: std::ops::Range<usize>) -> Transaction {
        let mut txn = Transaction {
            ops: Vec::with_capacity(self.ops + 1),
            labels: Vec::with_capacity(self.ops + 1),
            parent_mutations: Vec::new(),
            creates: Vec::new(),
            steps,
        };
        for step in &self.steps {
            for op in &step.ops {
                if let (
                    Some(symbol),
                    Operation::Insert {
                        uuid_name: Some(n), ..
                    },
                ) = (&step.creates, op)
                    && n == symbol
                {
                    txn.creates.push((txn.ops.len(), symbol.clone()));
                }
                txn.ops.push(op.clone());
                txn.labels.push(Label {
                    owners: step.owner.iter().cloned().collect(),
                    what: step.what.clone(),
                });
            }
        }
        for ((table, column, parent), links) in self.parents {
            let inserted: Vec<Atom> = links.iter().filter_map(|l| l.insert.clone()).collect();
            let deleted: Vec<Atom> = links
                .iter()
                .filter_map(|l| l.delete.map(Atom::Uuid))
                .collect();
            let mut mutations = Vec::new();
            if !inserted.is_empty() {
                mutations.push(Mutation::insert(column, Datum::set(inserted)));
            }
            if !deleted.is_empty() {
                mutations.push(Mutation::delete(column, Datum::set(deleted)));
            }
            let mut owners: Vec<Owner> = self
                .steps
                .iter()
                .filter(|s| {
                    s.links
                        .iter()
                        .any(|l| parent_key(l) == (table, column, parent))
                })
                .filter_map(|s| s.owner.clone())
                .collect();
            owners.dedup();
            let parent_what = links
                .first()
                .map(|l| l.parent_what.clone())
                .unwrap_or_default();
            let what = format!("{column} of {parent_what} ({} changed)", links.len());
            txn.parent_mutations.push((txn.ops.len(), parent_what));
            txn.ops.push(Operation::mutate(
                table,
                vec![parent.condition()],
                mutations,
            ));
            txn.labels.push(Label { owners, what });
        }
        let owners = txn.owners();
        txn.ops.push(Operation::Comment(format!(
            "{COMMENT_PREFIX} {}",
            summarize(&owners)
        )));
        txn.labels.push(Label {
            owners,
            what: "the transaction's comment".into(),
        });
        txn
    }
}

/// A readable list of owners for the transaction comment, cut short when long (the comment is
/// for people reading `ovsdb-tool show-log`; errors and Events use the typed owners). The
/// objects a change is about come first: a pod's port shares its transaction with the groups
/// of its policies, namespace and node, and the pod is the one an operator looks for.
fn summarize(owners: &[Owner]) -> String {
    const SHOWN: usize = 8;
    let specific = |o: &&Owner| match o.kind() {
        OwnerKind::Pod | OwnerKind::Service | OwnerKind::NetworkPolicy => 0,
        OwnerKind::Namespace | OwnerKind::Subnet => 1,
        OwnerKind::Node => 2,
        OwnerKind::Cluster => 3,
    };
    let mut ordered: Vec<&Owner> = owners.iter().collect();
    ordered.sort_by_key(specific);
    let mut s = ordered
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if owners.len() > SHOWN {
        s.push_str(&format!(" and {} more", owners.len() - SHOWN));
    }
    s
}

/// The steps `range` of a phase's `steps` as transactions of at most `max_ops` operations.
pub(crate) fn batch(
    steps: &[Step],
    range: std::ops::Range<usize>,
    max_ops: usize,
) -> Vec<Transaction> {
    let max_ops = max_ops.max(1);
    let mut out = Vec::new();
    let mut pending = Pending::default();
    let mut first = range.start;
    for (i, step) in steps[range.clone()].iter().enumerate() {
        let index = range.start + i;
        // + 1: the comment that ends every transaction.
        if !pending.steps.is_empty() && pending.ops + pending.cost_of(step) + 1 > max_ops {
            out.push(std::mem::take(&mut pending).finish(first..index));
            first = index;
        }
        pending.push(step);
    }
    if !pending.steps.is_empty() {
        out.push(pending.finish(first..range.end));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn switch() -> RowRef {
        RowRef::Created("sw".into())
    }

    fn port_step(i: usize, parent: &RowRef) -> Step {
        let named = format!("row{i}");
        Step {
            owner: Some(Owner::pod("ns", &format!("p{i}"))),
            what: format!("Logical_Switch_Port p{i}.ns"),
            action: Action::Insert,
            ops: vec![
                Operation::insert("Logical_Switch_Port", Default::default()).with_uuid_name(&named),
            ],
            links: vec![Link {
                table: "Logical_Switch",
                column: "ports",
                parent: parent.clone(),
                parent_what: "Logical_Switch sw".into(),
                insert: Some(Atom::NamedUuid(named.clone())),
                delete: None,
            }],
            creates: Some(named),
        }
    }

    #[test]
    fn ports_and_their_parent_mutation_share_a_bounded_transaction() {
        let plan = Plan {
            phases: vec![(0..10).map(|i| port_step(i, &switch())).collect()],
            ..Default::default()
        };
        let txns = plan.transactions(5);
        assert_eq!(txns.len(), 1);
        assert_eq!(txns[0].len(), 4, "3 + 3 + 3 + 1 ports");
        for txn in &txns[0] {
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
            assert_eq!(txn.creates.len(), inserts);
            assert!(
                comment.starts_with(COMMENT_PREFIX) && comment.contains("Pod/ns/p"),
                "{comment}"
            );
            assert_eq!(txn.labels.len(), txn.ops.len());
        }
        let last = &txns[0][3];
        assert_eq!(last.labels[1].owners, vec![Owner::pod("ns", "p9")]);
        assert_eq!(last.owners(), vec![Owner::pod("ns", "p9")]);
        let Some(Operation::Comment(comment)) = last.ops.last() else {
            panic!("no comment");
        };
        assert_eq!(comment, &format!("{COMMENT_PREFIX} Pod/ns/p9"));
    }

    #[test]
    fn every_owner_of_a_transaction_is_kept_typed() {
        let plan = Plan {
            phases: vec![(0..10).map(|i| port_step(i, &switch())).collect()],
            ..Default::default()
        };
        let txns = plan.transactions(100);
        let owners = txns[0][0].owners();
        assert_eq!(owners.len(), 10, "{owners:?}");
        let Some(Operation::Comment(comment)) = txns[0][0].ops.last() else {
            panic!("no comment");
        };
        assert!(comment.ends_with("and 2 more"), "{comment}");
    }

    #[test]
    fn the_comment_names_pods_before_the_groups_they_join() {
        let mut owners: Vec<Owner> = (0..8).map(|i| Owner::node(&format!("n{i}"))).collect();
        owners.push(Owner::cluster("ovn-cluster"));
        owners.push(Owner::pod("ns", "web"));
        owners.sort();
        let comment = summarize(&owners);
        assert!(comment.starts_with("Pod/ns/web, "), "{comment}");
        assert!(comment.ends_with("and 2 more"), "{comment}");
    }

    proptest::proptest! {
        #[test]
        fn batches_respect_the_bound_and_keep_steps_whole(
            shapes in proptest::collection::vec((1usize..4, 0usize..3), 1..60),
            max_ops in 1usize..20,
        ) {
            let parents: Vec<RowRef> = (0..3).map(|i| RowRef::Created(format!("sw{i}"))).collect();
            let steps: Vec<Step> = shapes
                .iter()
                .enumerate()
                .map(|(i, (ops, parent))| {
                    let mut step = port_step(i, &parents[*parent]);
                    for _ in 1..*ops {
                        step.ops.insert(0, Operation::Comment(format!("s{i}")));
                    }
                    step
                })
                .collect();
            let plan = Plan {
                phases: vec![steps],
                ..Default::default()
            };
            let txns = &plan.transactions(max_ops)[0];
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
