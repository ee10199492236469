//! The local lab: central OVN plus N nodes, each a network namespace with its own OVS and
//! ovn-controller, joined by an underlay bridge, optionally with the Kubernetes stand-ins.
//! Everything is scoped by the lab's name (see [`names`]) so labs run side by side and
//! `down` can always find what a lab made.

pub mod bins;
pub mod cancel;
pub mod central;
pub mod cmd;
pub mod daemon;
pub mod down;
pub mod error;
pub mod guard;
pub mod kube;
#[allow(clippy::module_inception)]
pub mod lab;
pub mod manifests;
pub mod names;
pub mod netns;
pub mod node;
pub mod outside;
pub mod ovs;
pub mod poll;
pub mod probe;
pub mod readiness;
pub mod rovn;
pub mod spec;
pub mod status;
pub mod tls;

pub use daemon::ProcessRef;
pub use down::{down, down_stale};
pub use error::LabError;
pub use guard::{DownOnDrop, LabGuard};
pub use lab::{Lab, exec_command};
pub use names::{LabName, LabNames, Place};
pub use node::Encap;
pub use readiness::sb_chassis;
pub use spec::{LabInfo, LabSpec, NodeInfo};
pub use status::{LabStatus, status};
