//! What feeds the node's `rovn` table (`crate::gateway`) from the API: Services, their
//! EndpointSlices, Subnets and the node's pods become one desired state ([`convert`] and
//! [`feed::desired`], pure), synced after each burst of changes ([`feed::run`]); LoadBalancer
//! Services with `externalTrafficPolicy: Local` get their `healthCheckNodePort` ([`health`]).

pub mod convert;
pub mod feed;
pub mod health;

pub use feed::{NodeGateway, run};
