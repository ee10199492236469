//! The `Subnet` custom resource (group `rovn.io`, v1) and its status.
//!
//! Every field is a plain string, bool or list here, never a parsed address: a Subnet with a
//! typo must still deserialize, so the controller can report it in the object's status rather
//! than fail the whole watch. Parsing and validation live in the controller
//! (`rovn_controller::subnets`); the type lives here because the node agent watches Subnets
//! too, for the routes `ovn0` carries.

// Each `printcolumn(...)` repeats `type_ =`, which clippy mistakes for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The condition type the controller maintains on every Subnet.
pub const READY: &str = "Ready";

/// The finalizer the controller puts on every Subnet it accepts (as Kubernetes puts
/// `kubernetes.io/pvc-protection` on claims): a deleted Subnet that pods still use stays, with
/// its switch and their ports, until the last of them is gone.
pub const FINALIZER: &str = "rovn.io/subnet-protection";

/// A Subnet: a logical switch attached to the cluster router, the pool pods of its namespaces
/// get addresses from.
#[derive(
    CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[kube(
    group = "rovn.io",
    version = "v1",
    kind = "Subnet",
    plural = "subnets",
    shortname = "subnet",
    status = "SubnetStatus",
    derive = "PartialEq",
    doc = "A rovn Subnet: one logical switch on the cluster router and the address pool of the namespaces it lists.",
    printcolumn(name = "CIDR", type_ = "string", json_path = ".spec.cidrBlock"),
    printcolumn(name = "Gateway", type_ = "string", json_path = ".status.gateway"),
    printcolumn(name = "Namespaces", type_ = "string", json_path = ".spec.namespaces"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[0].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[0].reason"
    ),
    printcolumn(name = "Used", type_ = "integer", json_path = ".status.usedIPs"),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.availableIPs"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SubnetSpec {
    /// The subnet's IPv4 CIDR, e.g. `10.16.0.0/16`.
    pub cidr_block: String,
    /// The router's address on the subnet; the first host address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Addresses never handed out: single addresses (`10.16.0.5`) or ranges (`a..b`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_ips: Vec<String>,
    /// The namespaces whose pods get addresses here; pods of unlisted namespaces use `ovn-default`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Whether traffic leaving the cluster from this subnet is masqueraded to the node's address.
    #[serde(default)]
    pub nat_outgoing: bool,
    /// Whether the subnet's pods accept traffic only from the subnet itself, from nodes and
    /// from `allowSubnets` (Kube-OVN's field): other Subnets' pods are refused whatever a
    /// NetworkPolicy allows.
    #[serde(default)]
    pub private: bool,
    /// IPv4 CIDRs a `private` subnet also accepts traffic from (Kube-OVN's `allowSubnets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_subnets: Vec<String>,
}

/// What the controller reports about a Subnet: address usage and whether it was accepted.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
pub struct SubnetStatus {
    /// Addresses held by pods (and nodes).
    #[serde(rename = "usedIPs", default)]
    #[schemars(extend("format" = "int64"))]
    pub used_ips: u64,
    /// Addresses still free to hand out.
    #[serde(rename = "availableIPs", default)]
    #[schemars(extend("format" = "int64"))]
    pub available_ips: u64,
    /// The gateway in effect (`spec.gateway`, or the first host address when that is absent),
    /// so `kubectl get subnets` shows it either way; absent while the Subnet is not accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The CIDR in effect: `spec.cidrBlock` once accepted, or the last accepted one while an
    /// edit is refused (pods still use the old one); absent while the Subnet is not accepted.
    #[serde(rename = "cidrBlock", default, skip_serializing_if = "Option::is_none")]
    pub cidr_block: Option<String>,
    /// The `excludeIps` in effect (the last accepted ones while an edit is refused).
    #[serde(rename = "excludeIps", default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_ips: Vec<String>,
    /// The `Ready` condition (always first, which the `Ready` and `Reason` printer columns rely
    /// on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<SubnetCondition>,
}

/// A Kubernetes-style condition (the fields of `metav1.Condition`), kept as a small own type so
/// its schema is exactly what the CRD publishes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubnetCondition {
    /// The condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason, e.g. `Overlap`.
    pub reason: String,
    /// A human-readable explanation naming what to fix.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
    /// The Subnet's `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Subnet {
    /// Whether the controller accepted this Subnet (`Ready=True`): the node agent and tools
    /// should ignore a Subnet that is not, since no switch or pool exists for it.
    pub fn is_ready(&self) -> bool {
        self.status.as_ref().is_some_and(|status| {
            status
                .conditions
                .iter()
                .any(|c| c.type_ == READY && c.status == "True")
        })
    }
}

/// The CustomResourceDefinition to install, as `deploy/crds/subnet.yaml` holds it: the
/// controller installs it when missing and `rovn-crdgen` writes the manifest from it.
pub fn crd() -> CustomResourceDefinition {
    Subnet::crd()
}
