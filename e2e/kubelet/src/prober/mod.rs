//! Readiness probes, as the real kubelet runs them (`pkg/kubelet/prober`), so that Services in
//! the lab route only to pods whose containers say they can serve, and endpoints come and go
//! as they do in a real cluster.
//!
//! The pure parts are apart from the I/O: [`spec`] validates and defaults a container's
//! `readinessProbe` (the pod spec is untrusted), [`state`] turns results into ready/not ready
//! and decides which results become events, [`http`] builds an `httpGet` request and
//! classifies its response. [`handlers`] runs one probe (exec in the pod's sandbox, TCP and
//! HTTP from the kubelet's own network namespace, that is the node's), and [`worker`] is the
//! per-container task that probes on schedule and tells the pod worker about changes.

pub mod handlers;
pub mod http;
pub mod spec;
pub mod state;
pub mod worker;

/// The result of running a probe once, with the text the real kubelet would put in its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The container passed; the text is the command output or response body (logged only).
    Success(String),
    /// Passed with a caveat the pod should hear about (a redirect that was not followed).
    Warning(String),
    /// The container failed the check (non-zero exit, refused connection, bad status, timeout).
    Failure(String),
    /// The probe could not be run at all (no pod IP, program missing); upstream throws such a
    /// result away, so it changes no readiness.
    Error(String),
}
