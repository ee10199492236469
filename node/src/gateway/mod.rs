//! The node's NAT: one nftables table `ip rovn`, owned by the agent, that masquerades
//! `natOutgoing` pods leaving the cluster and DNATs NodePorts, externalIPs, LoadBalancer ingress
//! IPs and hostPorts (see `docs/architecture.md`, "The node's nftables").
//!
//! [`state`] is what the table depends on, [`render`] turns it into one transaction (pure): a
//! full rebuild, or the difference from the state last applied,
//! [`observed`] compares what the kernel holds with it (pure), [`nft`] reads and applies. The
//! Kubernetes side that computes the state lives in `agent::gateway`.

pub mod nft;
pub mod observed;
pub mod render;
pub mod state;

pub use nft::{Nft, NftError, SyncOutcome, sync};
pub use state::{Frontend, GatewayState, PodRange, Protocol, Target};
