//! rovn's node side. Today it holds the CNI front end (`rovn-cni`) and the wire protocol the
//! node agent (`rovn-node`) serves to it; the agent itself joins this crate later.

pub mod cni;
