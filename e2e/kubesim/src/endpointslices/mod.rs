//! The EndpointSlice controller kube-controller-manager runs, inside the server: rovn
//! programs OVN load balancers from EndpointSlices, so the lab needs slices that look
//! like the ones upstream's controller (`k8s.io/endpointslice`) writes, without a real
//! control plane.
//!
//! Split as kube-rs controllers are: `desired` is pure (a Service, its pods and its
//! existing slices in, the create/update/delete plan out) so its rules can be tested
//! one by one against upstream's; `index` is the incremental bookkeeping that keeps a
//! pod event from costing a rescan of every pod; `controller` is the small task that
//! feeds store changes into the index and applies plans through the API write path.

pub mod controller;
pub mod desired;
pub mod index;

pub use controller::spawn;
