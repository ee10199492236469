//! Sends a [`Plan`] to NB: phase after phase, each phase's transactions pipelined.

use futures::stream::{self, StreamExt};
use rovn_ovsdb::{Client, Error, OperationResult};

use super::error::{ApplyError, TransactionFailure};
use super::plan::{Plan, Transaction};

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

/// Sends `plan`: the phases in order (a phase starts once the previous one is answered, as
/// ports of a new switch find it by name), the transactions of a phase up to
/// `max_in_flight` at a time. Failed transactions do not stop the others; they are reported
/// together, each naming the object it failed for, and the next reconcile retries them.
pub async fn apply(
    client: &Client,
    plan: &Plan,
    options: &ApplyOptions,
) -> Result<Applied, ApplyError> {
    let mut applied = Applied::default();
    let mut failures = Vec::new();
    for phase in plan.transactions(options.max_ops_per_transaction) {
        let sends: Vec<_> = phase.iter().map(|txn| send(client, txn)).collect();
        let outcomes: Vec<_> = stream::iter(sends)
            .buffer_unordered(options.max_in_flight.max(1))
            .collect()
            .await;
        for (txn, outcome) in outcomes {
            match outcome {
                Ok(results) => {
                    applied.transactions += 1;
                    applied.operations += txn.ops.len();
                    failures.extend(missing_parents(txn, &results));
                }
                Err(source) => failures.push(failure(txn, source)),
            }
        }
    }
    if failures.is_empty() {
        Ok(applied)
    } else {
        Err(ApplyError { applied, failures })
    }
}

/// One transaction and its outcome. A named function rather than an `async` closure so the
/// whole [`apply`] future is `Send` (closures returning futures over borrowed items are not
/// general enough over lifetimes for `tokio::spawn`).
async fn send<'a>(
    client: &'a Client,
    txn: &'a Transaction,
) -> (
    &'a Transaction,
    Result<Vec<OperationResult>, rovn_ovsdb::TransactError>,
) {
    (txn, client.transact(&txn.ops).await)
}

/// A `ports` mutation that did not match exactly its one parent: with none, its ports were
/// collected by the server.
fn missing_parents(txn: &Transaction, results: &[OperationResult]) -> Vec<TransactionFailure> {
    txn.parent_mutations
        .iter()
        .filter(|(index, _)| results.get(*index).and_then(OperationResult::count) != Some(1))
        .map(|(index, parent)| {
            let (owner, what) = txn.labels.get(*index).cloned().unwrap_or_default();
            TransactionFailure::MissingParent {
                owner,
                what,
                parent: parent.clone(),
            }
        })
        .collect()
}

/// Names the object a failed transaction was for: the failing operation's, or for a failed
/// commit (index past the last operation) every object of the transaction, summarized.
fn failure(txn: &Transaction, source: rovn_ovsdb::TransactError) -> TransactionFailure {
    let (owner, what) = match source.error() {
        Error::Transaction { index, .. } if *index < txn.labels.len() => txn.labels[*index].clone(),
        _ => {
            let first = txn.labels.first().cloned().unwrap_or_default();
            (
                format!("{} (and the other objects of its transaction)", first.0),
                format!("{} operations starting with {}", txn.ops.len(), first.1),
            )
        }
    };
    TransactionFailure::Transact {
        owner,
        what,
        source,
    }
}
