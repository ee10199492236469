//! Readiness probes, as the real kubelet runs them (`pkg/kubelet/prober`), so that Services in
//! the lab route only to pods whose containers say they can serve.

pub mod handlers;
pub mod http;
pub mod spec;
pub mod state;

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
