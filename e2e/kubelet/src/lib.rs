//! The lab's stand-in for the kubelet and kube-scheduler.
//!
//! `rovn-kubelet` is a faithful CNI runtime (see [`cni`]) plus the small part of a kubelet the
//! lab needs: it names sandboxes, creates their network namespaces, runs the pod's programs in
//! them, reports pod status and tears everything down on deletion. `rovn-scheduler` binds
//! unscheduled pods to Ready nodes round robin through the `binding` subresource.
//!
//! Readiness is reported as the real kubelet reports it, so that Services route only to Ready
//! endpoints and endpoints come and go as in a real cluster: a container without a
//! `readinessProbe` is ready once running; one with a probe is not ready until the probe
//! (`exec` in the pod's sandbox, `tcpSocket` or `httpGet` from the node to the pod IP) passes,
//! with upstream's defaults, thresholds and events, and keeps being probed while the pod
//! terminates (see [`prober`]). Readiness changes reach the pod's status at once.
//!
//! Like the real kubelet it serves `exec` (WebSocket channel protocol) and `containerLogs` on
//! the node's address (see [`streaming`]); the API server relays `pods/exec` and `pods/log`
//! there.

#![warn(missing_docs)]

pub mod client;
pub mod cni;
pub mod containers;
pub mod kubelet;
pub mod node;
pub mod pod_sandbox;
pub mod pod_worker;
pub mod prober;
pub mod sandbox;
pub mod scheduler;
pub mod status;
pub mod streaming;
