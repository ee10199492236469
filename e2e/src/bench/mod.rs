//! Benchmarks that print `key=value` figures: the controller at scale ([`controller`]) and
//! pod network-ready latency beside the OVN floor ([`pod_ready`]). They measure; they never
//! judge (no thresholds), so they are not tests.
//!
//! Run them from a release build, as root, with the workspace's binaries next to `rovn-bench`:
//! `cargo build --release --bins`, then `target/release/rovn-bench controller --nodes 100
//! --pods 10000` and `target/release/rovn-bench pod-ready --nodes 2 --pods 200`. Figures go to
//! stdout, one per line; progress and errors to stderr.

pub mod api_server;
pub mod bounded;
pub mod central;
pub mod cni;
pub mod controller;
pub mod controller_proc;
pub mod error;
pub mod figures;
pub mod floor;
pub mod lb_watch;
pub mod load;
pub mod lsp_watch;
pub mod nb_log;
pub mod nb_rows;
pub mod netpol;
pub mod netpol_model;
pub mod netpol_naive;
pub mod objects;
pub mod ovsdb_util;
pub mod pod_latency;
pub mod pod_ready;
pub mod pod_watch;
pub mod policy_watch;
pub mod procs;
pub mod scratch;
pub mod services;
pub mod stage;
pub mod stats;
pub mod veth;

pub use error::BenchError;
pub use figures::Figures;
