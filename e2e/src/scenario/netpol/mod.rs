//! The `networking.k8s.io/v1` NetworkPolicy truth-table suite, after upstream's e2e
//! (`test/e2e/network/netpol`): a world of namespaces x, y, z with pods a, b, c serving TCP and
//! UDP on 80 and 81 under named ports ([`world`]); cases that change policies, labels and pods
//! ([`cases`]); after every change the whole matrix is probed with one `rovn-podtool probe` per
//! source pod ([`probing`]) and compared with an independent model of the spec ([`model`]),
//! mismatches printed as upstream-style tables ([`matrix`]).

pub mod cases;
pub mod matrix;
pub mod model;
pub mod objects;
pub mod probing;
pub mod selector;
pub mod suite;
pub mod world;

pub use cases::run_all;
pub use suite::CaseReport;
