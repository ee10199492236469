//! rovn's end-to-end tooling: the local lab of OVN in network namespaces ([`lab`]), the program
//! pods run in tests ([`podtool`]), the scenarios run against a cluster ([`scenario`]) and the
//! benchmarks ([`bench`]).
#![warn(missing_docs)]

pub mod bench;
pub mod lab;
pub mod podtool;
pub mod scenario;
