//! rovn's node side: the CNI front end (`rovn-cni`), the wire protocol between it and the node
//! agent, and the agent (`rovn-node`) that plugs pods into `br-int`.

pub mod agent;
pub mod cni;
pub mod gateway;
pub mod netdev;
