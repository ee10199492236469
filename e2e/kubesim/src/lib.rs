//! `rovn-kubesim`: the lab's stand-in for kube-apiserver, serving the REST subset that
//! rovn (kube-rs) and `kubectl` use, over plain HTTP without authentication.
//!
//! Served: core/v1 namespaces, nodes, pods (+status, +binding), services (+status),
//! endpoints, events, configmaps, serviceaccounts; discovery.k8s.io/v1 endpointslices;
//! networking.k8s.io/v1 networkpolicies; coordination.k8s.io/v1 leases;
//! events.k8s.io/v1 events; apiextensions.k8s.io/v1 customresourcedefinitions and the
//! custom resources they define; apps/v1 deployments, daemonsets, statefulsets (+status);
//! rbac.authorization.k8s.io/v1 clusterroles, clusterrolebindings, roles, rolebindings;
//! policy/v1 poddisruptionbudgets (+status); admissionregistration.k8s.io/v1
//! validatingadmissionpolicies (+status), validatingadmissionpolicybindings (the kinds a
//! rovn install applies: stored, nothing acts on them); legacy discovery, `/version`,
//! health endpoints, and `/openapi/v3` (the vendored Kubernetes v1.33 documents).
//!
//! Writes are validated against the vendored schemas or the CRD's (`schema`,
//! `field_validation`): wrong types, missing required fields and, per `fieldValidation`,
//! unknown fields are refused as kube-apiserver refuses them; `dryRun=All` stores nothing.
//!
//! Faithful where clients can tell: one cluster-wide resourceVersion counter, 409/404/
//! 422/410 `Status` errors with upstream reasons, list pagination over a consistent
//! snapshot, watches resumable from a bounded history with 410 `Expired` beyond it (or
//! when a watcher falls too far behind), bookmarks and streaming lists,
//! selector-filtered watches, status subresources, generation, finalizers, graceful pod
//! deletion, namespace cascade deletion, pod spec immutability, label validation,
//! Service ClusterIP/NodePort allocation, the `kubernetes` Service with endpoints at the
//! advertised address, `kubectl get` Tables, `PartialObjectMetadata` responses.
//!
//! Controllers: kube-controller-manager's EndpointSlice controller (`endpointslices`),
//! because rovn programs OVN load balancers from slices: every Service with a selector
//! gets slices of its pods shaped as upstream's (names, labels, ownerReference,
//! ready/serving/terminating, per-pod named targetPorts, grouping by port list, 100
//! endpoints a slice, an empty placeholder slice), written through the API write path.
//!
//! Layers: `store` (objects, resourceVersions, history; pure) ← `cluster` / `deletion`
//! (write semantics; pure) ← `api` / `watch` (HTTP) ← `server` (listeners, lifecycle);
//! `endpointslices` is a task on the store's change feed writing through `cluster`.
//!
//! Simplifications (invisible to kube-rs and kubectl in the lab's use):
//! - server-side apply is "create if absent, else strategic merge (built-ins) or JSON
//!   merge (custom resources)"; no `managedFields`, no field ownership conflicts;
//! - no admission, RBAC or authentication; responses are always JSON (clients that
//!   prefer protobuf also accept JSON); protobuf request bodies are decoded only for
//!   ConfigMap, Namespace and Service (the common fields kubectl's
//!   `create configmap|namespace|service` send), other kinds get 415;
//! - `/openapi/v3` of CRD groups and events.k8s.io/v1 publishes only the PATCH operations
//!   with their `fieldValidation` parameter (so kubectl leaves validation to the server)
//!   and no schemas; `/openapi/v2` is an empty document (so kubectl's client-side check
//!   of a `kind: List` passes);
//! - schema validation checks structure only (no formats, patterns, bounds or CEL), and
//!   unknown fields accepted under `fieldValidation=Warn|Ignore` are kept, not pruned;
//! - no CRD defaulting, pruning or version conversion (all served versions of a CRD
//!   share storage, like `conversion: None`); Events are the one converted kind: core/v1
//!   and events.k8s.io/v1 share one storage (`event_versions`);
//! - no other controllers: no garbage collection of dependents (`propagationPolicy` is
//!   accepted and ignored), no Endpoints controller, no scheduler;
//! - the EndpointSlice controller publishes IPv4 addresses only, sets no topology
//!   hints and no `endpoints.kubernetes.io/last-change-trigger-time` annotation, keeps
//!   pods whose Node object is missing (upstream skips them), lists a slice's ports in
//!   Service order (upstream: hash order), and deletes the slices itself when their
//!   Service is deleted (no garbage collector), loses its selector or becomes
//!   ExternalName (upstream leaves those stale, kubernetes issue 118376);
//! - list `resourceVersion`/`resourceVersionMatch` are accepted and the current state is
//!   served (always at least as new as asked);
//! - one global history window: a watch resuming from a resourceVersion older than the
//!   window gets 410 even if its own kind did not change since;
//! - generation is tracked for every kind; no port-forward or attach; `pods/exec` and
//!   `pods/log` are relayed to the pod's kubelet (`kubelet_relay`), exec over WebSocket only
//!   (kubectl falls back to SPDY only when the WebSocket upgrade fails).

#![warn(missing_docs)]

pub mod api;
pub mod clock;
pub mod cluster;
pub mod crd;
pub mod defaults;
pub mod deletion;
pub mod discovery;
pub mod endpointslices;
pub mod event_versions;
pub mod field_validation;
pub mod kubelet_relay;
pub mod listen;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod proxy;
pub mod resources;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod validation;
pub mod watch;

pub use listen::ListenSpec;
pub use server::{Cluster, Config, RunningServer, ServerError, start};
