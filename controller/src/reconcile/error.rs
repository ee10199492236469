//! Why a reconcile could not do (all of) its work; each error names the row and its objects.

use rovn_api::Owner;
use rovn_ovsdb::{TransactError, Uuid};

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
    pub owner: Owner,
}

/// Why no plan could be computed.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The replica does not hold a table the diff must see (add it to the client's monitor).
    #[error("table {0} is not monitored by the NB client; cannot tell what exists")]
    NotMonitored(String),
    /// A diff limited to some owners needs an index the NB client did not declare (add
    /// [`super::indexes`] to its configuration).
    #[error("index {0} is not declared on the NB client")]
    NotIndexed(String),
    /// The client has not synced a replica yet.
    #[error("the NB client has no replica yet (not synced)")]
    NoReplica,
}

/// One transaction that failed, with the objects it failed for.
#[derive(Debug, thiserror::Error)]
pub enum TransactionFailure {
    /// The server refused an operation, or the session was lost.
    #[error("reconciling {what} (for {}): {source}", list(owners))]
    Transact {
        /// The objects of the failing operation, or of the whole transaction when the server
        /// names no operation.
        owners: Vec<Owner>,
        /// The row or rows concerned.
        what: String,
        /// The client's error.
        #[source]
        source: TransactError,
    },
    /// A parent mutation did not find its one parent row (with none, the rows it should have
    /// attached were collected by the server).
    #[error(
        "reconciling {what} (for {}): parent row {parent} was not found exactly once",
        list(owners)
    )]
    MissingParent {
        /// The objects of the children.
        owners: Vec<Owner>,
        /// The children.
        what: String,
        /// The parent row.
        parent: String,
    },
    /// The transaction refers to a row an earlier transaction of the plan should have
    /// inserted, and that one failed: it was not sent.
    #[error(
        "reconciling {what} (for {}): not sent, since a row it refers to was not created",
        list(owners)
    )]
    NotCreated {
        /// The objects of the transaction.
        owners: Vec<Owner>,
        /// Its first row.
        what: String,
    },
}

impl TransactionFailure {
    /// Every object the failure is about: each gets its own Event.
    pub fn owners(&self) -> &[Owner] {
        match self {
            TransactionFailure::Transact { owners, .. }
            | TransactionFailure::MissingParent { owners, .. }
            | TransactionFailure::NotCreated { owners, .. } => owners,
        }
    }
}

fn list(owners: &[Owner]) -> String {
    owners
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
