//! The kubelet's streaming endpoints, as the real kubelet serves them on port 10250 for the
//! API server's `pods/exec` and `pods/log`: commands run in a running container (its
//! environment and network namespace) over the WebSocket channel protocol, and container
//! output read from the kept log. [`registry`] is what the pod workers tell it about their
//! containers; [`channel`] the protocol's framing (pure); [`server`] the HTTP side.

pub mod channel;
pub mod exec;
pub mod logs;
pub mod registry;
pub mod server;
