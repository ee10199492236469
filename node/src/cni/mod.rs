//! The CNI 1.1 front end: `rovn-cni` validates what the container runtime hands it, forwards
//! it to the node agent over a unix socket and prints the agent's answer as CNI requires.
//!
//! The split keeps every decision pure and testable: [`env`](mod@env) and [`request`] turn
//! the environment and stdin into a validated [`protocol::CniRequest`], [`output`] turns an
//! outcome into stdout and an exit status, and only [`client`] (the socket) and
//! [`diagnostics`] (stderr, log file) do I/O.

pub mod args;
pub mod client;
pub mod diagnostics;
pub mod env;
pub mod output;
pub mod protocol;
pub mod request;
pub mod version;
