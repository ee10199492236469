//! rovn's test kit: the one place tests start OVSDB and OVN daemons and the one copy of the
//! small helpers every test suite needs.
//!
//! | module | gives |
//! |---|---|
//! | [`schema`] | the schema files (installed and vendored) and their database names |
//! | [`ovsdb`] | [`OvsdbServer`]: a real `ovsdb-server` on a fresh database (unix, TCP or SSL), and [`Pki`] |
//! | [`raft`] | [`RaftCluster`]: clustered `ovsdb-server`s on 127.0.0.1 |
//! | [`ovn`] | [`OvnCentral`]: NB, optionally SB and `ovn-northd`, with `ovn-nbctl`/`ovn-sbctl` |
//! | [`wait`] | polling until a condition holds, sync and async |
//! | [`unique`] | names no other test process uses |
//! | [`process`] | running a command to completion, kill-on-drop children, log tails |
//!
//! Every daemon lives in its own temp dir (database, sockets, log) and is killed, and its
//! directory removed, when its guard drops, also when the test panics. The crate depends on no
//! rovn package, so `rovn-ovsdb` and `rovn-ovsdb-schemas` can use it in their own tests; higher
//! packages wrap it (a `Remote` for a server, a synced client for NB) in their `tests/`.

pub mod ovn;
pub mod ovsdb;
pub mod process;
pub mod raft;
pub mod schema;
pub mod unique;
pub mod wait;

pub use ovn::{Northd, OvnCentral};
pub use ovsdb::{Listener, OvsdbServer, Pki, Tls};
pub use raft::RaftCluster;
