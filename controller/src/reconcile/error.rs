//! Why a reconcile could not do (all of) its work; each error names the row or object.

use rovn_ovsdb::{TransactError, Uuid};

use super::apply::Applied;

/// A row rovn wants whose name is taken by a row it does not own. rovn never overwrites such a
/// row; an operator must rename or remove one of the two.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{table} {name} ({uuid}) exists without external_ids:rovn.io/vendor=rovn; not overwriting it for {owner}"
)]
pub struct Conflict {
    /// The table.
    pub table: &'static str,
    /// The contested name.
    pub name: String,
    /// The foreign row.
    pub uuid: Uuid,
    /// The object that wants the name.
    pub owner: String,
}

/// Why no plan could be computed.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The replica does not hold a table the diff must see (add it to the client's monitor).
    #[error("table {0} is not monitored by the NB client; cannot tell what exists")]
    NotMonitored(String),
    /// The client has not synced a replica yet.
    #[error("the NB client has no replica yet (not synced)")]
    NoReplica,
}

/// One transaction that failed, with the object it failed for.
#[derive(Debug, thiserror::Error)]
pub enum TransactionFailure {
    /// The server refused an operation, or the session was lost.
    #[error("reconciling {what} (for {owner}): {source}")]
    Transact {
        /// The owner of the failing operation (or of the transaction's rows).
        owner: String,
        /// The row or rows concerned.
        what: String,
        /// The client's error.
        #[source]
        source: TransactError,
    },
    /// A `ports` mutation did not find its one parent row (with none, the ports it should
    /// have attached were collected by the server).
    #[error("reconciling {what} (for {owner}): parent row {parent} was not found exactly once")]
    MissingParent {
        /// The owners of the ports.
        owner: String,
        /// The ports.
        what: String,
        /// The parent switch or router.
        parent: String,
    },
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
