//! rovn's end-to-end tooling: the local lab of OVN in network namespaces ([`lab`]) and the
//! program pods run in tests ([`podtool`]).
#![warn(missing_docs)]

pub mod lab;
pub mod podtool;
