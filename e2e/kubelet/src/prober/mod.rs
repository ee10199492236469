//! Readiness probes, as the real kubelet runs them (`pkg/kubelet/prober`), so that Services in
//! the lab route only to pods whose containers say they can serve.

pub mod spec;
