//! Makes NB hold the desired rows: a pure diff against the replica, then the writes.
//!
//! [`diff`] compares a [`DesiredState`](crate::desired::DesiredState) with the rovn-owned rows
//! of the NB replica, table by table as [`crate::tables`] describes them, and returns a
//! [`Plan`] of the minimal operations; [`apply`] sends the plan in bounded, pipelined
//! transactions. The two are kept apart so the diff can be tested and timed without a server,
//! and so a converged cluster is proven converged by an empty plan before anything is sent.
//!
//! Rules the diff keeps: rows without `external_ids:rovn.io/vendor=rovn` are never written
//! (a name collision with one is a [`Conflict`]); only the columns rovn manages are changed, and
//! maps (`external_ids`, `options`, `other_config`) key by key, so keys other writers add
//! survive; child rows join and leave their parent by single-element mutations of the parent's
//! column, and references are added and removed one by one, only to rovn's own rows, so other
//! writers' children and references survive; owned rows nobody wants any more are deleted,
//! unless their owner is held.

mod apply;
mod changes;
mod current;
mod diff;
mod error;
mod monitor;
mod plan;
mod round;

pub use apply::{Applied, ApplyError, ApplyOptions, apply};
pub use current::owns_rows;
pub(crate) use current::{external_id, name_of, parents_of};
pub use diff::{diff, diff_owners};
pub use error::{Conflict, DiffError, TransactionFailure};
pub use monitor::{indexes, monitored_tables};
pub use plan::{Action, Label, Plan, Step, Transaction};
pub use round::{Outcome, ReconcileError, reconcile_once};
