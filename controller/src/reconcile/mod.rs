//! Makes NB hold the desired rows: a pure diff against the replica, then the writes.
//!
//! [`diff`] compares a [`DesiredState`](crate::desired::DesiredState) with the rovn-owned rows
//! of the NB replica and returns a [`Plan`] of the minimal operations; [`apply`] sends the plan
//! in bounded, pipelined transactions. The two are kept apart so the diff can be tested and
//! timed without a server, and so a converged cluster is proven converged by an empty plan
//! before anything is sent.
//!
//! Rules the diff keeps: rows without `external_ids:rovn.io/vendor=rovn` are never written
//! (a name collision with one is a [`Conflict`]); only the columns rovn manages are changed, and
//! maps (`external_ids`, `options`, `other_config`) key by key, so keys other writers add
//! survive; ports join and leave their switch or router by single-element mutations of
//! `ports`, so ports of other writers survive; owned rows nobody wants any more are deleted.

mod apply;
mod current;
mod diff;
mod error;
mod managed;
mod monitor;
mod plan;
mod round;

pub use apply::{Applied, ApplyOptions, apply};
pub use diff::diff;
pub use error::{ApplyError, Conflict, DiffError, TransactionFailure};
pub use monitor::{monitored_tables, owner_indexes};
pub use plan::{Action, Plan, Step, Transaction};
pub use round::{Outcome, ReconcileError, reconcile_once};
