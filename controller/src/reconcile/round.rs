//! One reconcile round: diff against the replica, then apply.

use rovn_ovsdb::Client;

use super::apply::{Applied, ApplyOptions, apply};
use std::collections::BTreeSet;

use rovn_api::Owner;

use super::apply::ApplyError;
use super::diff::{diff, diff_owners};
use super::error::{Conflict, DiffError};
use super::plan::Action;

/// What one [`reconcile_once`] found and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Rows inserted.
    pub inserted: usize,
    /// Rows updated in place.
    pub updated: usize,
    /// Rows replaced by a new incarnation.
    pub replaced: usize,
    /// Garbage rows removed.
    pub deleted: usize,
    /// What was sent.
    pub applied: Applied,
    /// Desired rows blocked by foreign rows of the same name.
    pub conflicts: Vec<Conflict>,
}

/// Why a [`reconcile_once`] did not fully converge.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// No plan could be made.
    #[error(transparent)]
    Diff(#[from] DiffError),
    /// Some transactions failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// Diffs `desired` against the client's replica — all of it, or only the rows of `scope`'s
/// owners — and applies the plan: the controller's one reconcile round. A converged state
/// sends nothing. Conflicts are logged and returned, not errors: the rest of the cluster still
/// converges.
pub async fn reconcile_once(
    client: &Client,
    desired: &crate::desired::DesiredState,
    scope: Option<&BTreeSet<Owner>>,
    options: &ApplyOptions,
) -> Result<Outcome, ReconcileError> {
    let plan = client
        .read(|replica| match scope {
            None => diff(desired, replica),
            Some(owners) => diff_owners(desired, replica, owners),
        })
        .ok_or(DiffError::NoReplica)??;
    for conflict in &plan.conflicts {
        tracing::warn!(%conflict, "NB row conflict");
    }
    let applied = apply(client, &plan, options).await?;
    let outcome = Outcome {
        inserted: plan.count(Action::Insert),
        updated: plan.count(Action::Update),
        replaced: plan.count(Action::Replace),
        deleted: plan.count(Action::Delete),
        applied,
        conflicts: plan.conflicts,
    };
    if applied.transactions > 0 {
        tracing::info!(
            inserted = outcome.inserted,
            updated = outcome.updated,
            replaced = outcome.replaced,
            deleted = outcome.deleted,
            transactions = applied.transactions,
            operations = applied.operations,
            "NB reconciled"
        );
    }
    Ok(outcome)
}
