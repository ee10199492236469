//! The node agent (`rovn-node`): it makes one node an OVN chassis rovn can use (OVS and OVN
//! settings, `br-int`, the node's own port `ovn0` and its routes), installs the CNI config,
//! and serves `rovn-cni`'s requests that plug pods into `br-int`.
//!
//! Pure decisions (what OVS rows, routes, CNI results and files should look like) live apart
//! from the code that reads and writes them, so they are unit-tested without a node.

pub mod announce;
pub mod cleanup;
pub mod cni;
pub mod config;
pub mod conflist;
pub mod errors;
pub mod gateway;
pub mod kube;
pub mod metrics;
pub mod node_port;
pub mod ovs;
pub mod run;
pub mod server;
pub mod state;

pub use config::{AgentConfig, DatapathType, EncapType};
pub use run::run;
