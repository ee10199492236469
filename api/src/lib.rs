//! The words every rovn binary shares, and nothing that does I/O: the controller writes them,
//! the node agent and the CNI read them, the lab and the tests check them. Keeping them in one
//! crate at the bottom of the workspace is what lets `node/` and `e2e/` agree with the
//! controller without depending on it.

pub mod annotations;
mod duration;
pub mod events;
mod mac;
pub mod names;
pub mod node;
mod owner;
mod protocol;
pub mod subnet;

pub use duration::{DurationError, parse_duration};
pub use mac::{MacAddr, MacAddrError};
pub use owner::{Owner, OwnerError, OwnerKind};
pub use protocol::Protocol;
