//! Sends a [`Plan`] to NB: phase after phase, each phase's transactions pipelined.

use std::collections::{HashMap, HashSet};

use futures::stream::{self, StreamExt};
use rovn_ovsdb::{Atom, Client, Datum, Error, Operation, OperationResult, Uuid};

use super::error::TransactionFailure;
use super::plan::{Plan, Transaction, batch};

/// How a plan is cut and sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Bound on operations per transaction: keeps each commit short so other NB writers and
    /// ovn-northd are not stalled behind one huge transaction.
    pub max_ops_per_transaction: usize,
    /// Transactions in flight at once on the session.
    pub max_in_flight: usize,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            max_ops_per_transaction: 2000,
            max_in_flight: 16,
        }
    }
}

/// What an [`apply`] sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Transactions committed.
    pub transactions: usize,
    /// Operations in them.
    pub operations: usize,
}

/// Sends `plan`. A plan that fits one transaction is sent as one, so what it changes lands
/// at once: a new pod's port together with its place in the port groups that isolate it.
/// Otherwise (or when the server refuses that one transaction) the phases go in order (a phase
/// starts once the previous one is answered, since its rows refer to rows the previous ones
/// inserted), the transactions of a phase up to `max_in_flight` at a time. Failed transactions
/// do not stop the others; they are reported together, each naming the objects it failed for,
/// and the next reconcile retries them.
pub async fn apply(
    client: &Client,
    plan: &Plan,
    options: &ApplyOptions,
) -> Result<Applied, ApplyError> {
    if let Some(steps) = plan.single(options.max_ops_per_transaction) {
        let txn = batch(&steps, 0..steps.len(), usize::MAX);
        if let [txn] = txn.as_slice() {
            match client.transact(&txn.ops).await {
                Ok(results) => {
                    let failures = missing_parents(txn, &results);
                    let applied = Applied {
                        transactions: 1,
                        operations: txn.ops.len(),
                    };
                    return if failures.is_empty() {
                        Ok(applied)
                    } else {
                        Err(ApplyError { applied, failures })
                    };
                }
                // Nothing of it was applied: the phases find the steps at fault.
                Err(source) if refused(&source) => {}
                Err(source) => {
                    return Err(ApplyError {
                        applied: Applied::default(),
                        failures: vec![failure(txn, source)],
                    });
                }
            }
        }
    }
    apply_phases(client, plan, options).await
}

/// [`apply`] phase by phase.
async fn apply_phases(
    client: &Client,
    plan: &Plan,
    options: &ApplyOptions,
) -> Result<Applied, ApplyError> {
    let mut applied = Applied::default();
    let mut failures = Vec::new();
    let mut created: HashMap<String, Uuid> = HashMap::new();
    for steps in plan.phases() {
        let mut queue = batch(steps, 0..steps.len(), options.max_ops_per_transaction);
        while !queue.is_empty() {
            let mut ready = Vec::with_capacity(queue.len());
            for txn in &queue {
                match resolve(txn, &created) {
                    Some(ops) => ready.push((txn, ops)),
                    None => failures.push(TransactionFailure::NotCreated {
                        owners: txn.owners(),
                        what: txn
                            .labels
                            .first()
                            .map(|l| l.what.clone())
                            .unwrap_or_default(),
                    }),
                }
            }
            let sends: Vec<_> = ready
                .iter()
                .map(|(txn, ops)| send(client, txn, ops))
                .collect();
            let outcomes: Vec<_> = stream::iter(sends)
                .buffer_unordered(options.max_in_flight.max(1))
                .collect()
                .await;
            let mut retry = Vec::new();
            for (txn, outcome) in outcomes {
                match outcome {
                    Ok(results) => {
                        applied.transactions += 1;
                        applied.operations += txn.ops.len();
                        for (index, symbol) in &txn.creates {
                            if let Some(uuid) = results.get(*index).and_then(OperationResult::uuid)
                            {
                                created.insert(symbol.clone(), uuid);
                            }
                        }
                        failures.extend(missing_parents(txn, &results));
                    }
                    // The server refused it: one step is at fault, or a few. Halves are sent
                    // again until the steps at fault stand alone, so the rest of the batch
                    // still lands and each failure names its own objects.
                    Err(source) if refused(&source) && txn.steps.len() > 1 => {
                        let middle = txn.steps.start + txn.steps.len() / 2;
                        let max = options.max_ops_per_transaction;
                        retry.extend(batch(steps, txn.steps.start..middle, max));
                        retry.extend(batch(steps, middle..txn.steps.end, max));
                    }
                    Err(source) => failures.push(failure(txn, source)),
                }
            }
            queue = retry;
        }
    }
    if failures.is_empty() {
        Ok(applied)
    } else {
        Err(ApplyError { applied, failures })
    }
}

/// Whether the server answered and refused the transaction (an operation's error or a failed
/// commit), as opposed to a session lost or never reached, where splitting it would not help.
fn refused(source: &rovn_ovsdb::TransactError) -> bool {
    matches!(source, rovn_ovsdb::TransactError::Rejected { .. })
        && matches!(source.error(), Error::Transaction { .. })
}

/// `txn`'s operations with every uuid-name of a row an earlier phase inserted replaced by the
/// row's UUID; `None` when such a row was not inserted (its transaction failed). Names the
/// transaction defines itself stay as they are.
fn resolve(txn: &Transaction, created: &HashMap<String, Uuid>) -> Option<Vec<Operation>> {
    let own: HashSet<&str> = txn
        .ops
        .iter()
        .filter_map(|op| match op {
            Operation::Insert {
                uuid_name: Some(name),
                ..
            } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let mut missing = false;
    let mut datum = |d: &mut Datum| {
        let needs = |a: &Atom| matches!(a, Atom::NamedUuid(n) if !own.contains(n.as_str()));
        let swap = |a: &Atom, missing: &mut bool| match a {
            Atom::NamedUuid(n) if !own.contains(n.as_str()) => match created.get(n) {
                Some(uuid) => Atom::Uuid(*uuid),
                None => {
                    *missing = true;
                    a.clone()
                }
            },
            _ => a.clone(),
        };
        match d {
            Datum::Set(atoms) if atoms.iter().any(needs) => {
                *atoms = atoms.iter().map(|a| swap(a, &mut missing)).collect();
            }
            Datum::Map(pairs) if pairs.iter().any(|(k, v)| needs(k) || needs(v)) => {
                *pairs = pairs
                    .iter()
                    .map(|(k, v)| (swap(k, &mut missing), swap(v, &mut missing)))
                    .collect();
            }
            _ => {}
        }
    };
    let mut ops = txn.ops.clone();
    for op in &mut ops {
        match op {
            Operation::Insert { row, .. } => row.values_mut().for_each(&mut datum),
            Operation::Update {
                conditions, row, ..
            } => {
                conditions.iter_mut().for_each(|c| datum(&mut c.value));
                row.values_mut().for_each(&mut datum);
            }
            Operation::Mutate {
                conditions,
                mutations,
                ..
            } => {
                conditions.iter_mut().for_each(|c| datum(&mut c.value));
                mutations.iter_mut().for_each(|m| datum(&mut m.value));
            }
            Operation::Delete { conditions, .. } => {
                conditions.iter_mut().for_each(|c| datum(&mut c.value));
            }
            _ => {}
        }
    }
    (!missing).then_some(ops)
}

/// One transaction and its outcome. A named function rather than an `async` closure so the
/// whole [`apply`] future is `Send` (closures returning futures over borrowed items are not
/// general enough over lifetimes for `tokio::spawn`).
async fn send<'a>(
    client: &'a Client,
    txn: &'a Transaction,
    ops: &'a [Operation],
) -> (
    &'a Transaction,
    Result<Vec<OperationResult>, rovn_ovsdb::TransactError>,
) {
    (txn, client.transact(ops).await)
}

/// A parent mutation that did not match exactly its one parent: with none, its children were
/// collected by the server.
fn missing_parents(txn: &Transaction, results: &[OperationResult]) -> Vec<TransactionFailure> {
    txn.parent_mutations
        .iter()
        .filter(|(index, _)| results.get(*index).and_then(OperationResult::count) != Some(1))
        .map(|(index, parent)| {
            let label = txn.labels.get(*index);
            TransactionFailure::MissingParent {
                owners: label.map(|l| l.owners.clone()).unwrap_or_default(),
                what: label.map(|l| l.what.clone()).unwrap_or_default(),
                parent: parent.clone(),
            }
        })
        .collect()
}

/// Names the objects a failed transaction was for: the failing operation's, or for a failed
/// commit (index past the last operation) or a lost session every object of the transaction.
fn failure(txn: &Transaction, source: rovn_ovsdb::TransactError) -> TransactionFailure {
    let (owners, what) = match source.error() {
        Error::Transaction { index, .. } if *index < txn.labels.len() => {
            let label = &txn.labels[*index];
            (label.owners.clone(), label.what.clone())
        }
        _ => {
            let first = txn
                .labels
                .first()
                .map(|l| l.what.clone())
                .unwrap_or_default();
            (
                txn.owners(),
                format!("{} operations starting with {first}", txn.ops.len()),
            )
        }
    };
    TransactionFailure::Transact {
        owners,
        what,
        source,
    }
}

/// Some transactions of a plan failed; the others were applied.
#[derive(Debug, thiserror::Error)]
#[error("{} of {} transactions failed; first: {}", failures.len(), applied.transactions + failures.len(), failures.first().map(ToString::to_string).unwrap_or_default())]
pub struct ApplyError {
    /// What was applied.
    pub applied: Applied,
    /// What failed.
    pub failures: Vec<TransactionFailure>,
}
