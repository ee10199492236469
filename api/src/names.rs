//! Every name rovn gives an OVN row, and every key it writes, in one place.
//!
//! The names are chosen for `ovn-nbctl show` readability and Kube-OVN compatibility
//! (`docs/architecture.md`, "OVN names"); operators grep for them, so they never change.

/// The cluster router every subnet switch hangs off.
pub const CLUSTER_ROUTER: &str = "ovn-cluster";
/// The switch joining node `ovn0` ports to the cluster router.
pub const JOIN_SWITCH: &str = "join";
/// The Subnet pods land in when their namespace names no other.
pub const DEFAULT_SUBNET: &str = "ovn-default";
/// The load balancer group attached to every subnet switch and `join`.
pub const CLUSTER_LB_GROUP: &str = "cluster-lbs";

/// The namespace of the controller replicas' election Lease.
pub const CONTROLLER_LEASE_NAMESPACE: &str = "kube-system";
/// The controller replicas' election Lease; its holder is the leading replica's pod name, which
/// `kubectl rovn diagnose` reaches through the API server's pod proxy.
pub const CONTROLLER_LEASE: &str = "rovn-controller";
/// The namespace of the ConfigMap [`CONFIG_MAP`].
pub const CONFIG_MAP_NAMESPACE: &str = "kube-system";
/// The ConfigMap of an installation (`deploy/base/rovn-config.yaml`): where the OVN databases are (keys
/// [`CONFIG_NB_KEY`], [`CONFIG_SB_KEY`]), for `kubectl rovn` and for scenarios run on a cluster.
pub const CONFIG_MAP: &str = "rovn-config";
/// The [`CONFIG_MAP`] key holding the Northbound remote.
pub const CONFIG_NB_KEY: &str = "nb-remote";
/// The [`CONFIG_MAP`] key holding the Southbound remote.
pub const CONFIG_SB_KEY: &str = "sb-remote";
/// The node label that keeps the `rovn-node` DaemonSet off a node (its affinity requires the
/// label to be absent): an agent taken off for maintenance, or stopped by a scenario.
pub const AGENT_STOPPED_LABEL: &str = "rovn.io/agent-stopped";
/// The controller's HTTP port (`/metrics`, `/healthz`, `/readyz`, `/debug/plan`).
pub const CONTROLLER_HTTP_PORT: u16 = 10660;

/// `external_ids` key marking a row as written by rovn; rows without it are never touched.
pub const VENDOR_KEY: &str = "rovn.io/vendor";
/// The value of [`VENDOR_KEY`].
pub const VENDOR: &str = "rovn";
/// `external_ids` key naming the Kubernetes object a row exists for; its value is an
/// [`Owner`](crate::Owner) rendered as text.
pub const OWNER_KEY: &str = "rovn.io/owner";
/// `external_ids` key holding a nameless row's stable id among its owner's rows.
pub const ID_KEY: &str = "rovn.io/id";

/// `external_ids` key on a pod port holding the pod's UID: a row with another one is another
/// incarnation and is replaced, not updated.
pub const POD_UID_KEY: &str = "pod-uid";
/// `external_ids` key on pod and node ports naming the node.
pub const NODE_KEY: &str = "node";
/// `Logical_Switch.other_config` key holding the switch's CIDR.
pub const SUBNET_CONFIG: &str = "subnet";
/// `Logical_Switch_Port.options` key binding a port to one chassis.
pub const REQUESTED_CHASSIS: &str = "requested-chassis";
/// `Logical_Switch_Port.options` key naming a router-type port's router port.
pub const ROUTER_PORT_OPTION: &str = "router-port";

/// `rovn.io/id` of the cluster router's default static route (to the join gateway): OVN drops
/// a packet with no route before its router policies run, so egress needs one.
pub const DEFAULT_ROUTE_ID: &str = "default-route";
/// `rovn.io/id` of the cluster's router policy keeping in-cluster destinations on their route.
pub const IN_CLUSTER_POLICY_ID: &str = "in-cluster";
/// `rovn.io/id` of a node's router policy sending its pods' outside traffic to its join IP.
pub const EGRESS_REROUTE_ID: &str = "egress-reroute";
/// `rovn.io/id` of a node's router policy sending traffic for its own address to its join IP.
pub const NODE_ADDRESS_REROUTE_ID: &str = "node-address";

/// How every NB transaction rovn sends ends: a `comment` operation starting with this, which
/// ovsdb-server records with the transaction (`ovsdb-tool show-log` prints it, as it does
/// ovn-nbctl's), so who wrote a row, and for which objects, can be read back from the database
/// file; the benchmarks count rovn's writes by it.
pub const COMMENT_PREFIX: &str = "rovn-controller:";

/// The prefix of every node's port on `join` ([`node_port`]), which tells those ports apart
/// from pod ports wherever both are listed.
pub const NODE_PORT_PREFIX: &str = "node-";

/// Annotation keys on pods and nodes (prefix `rovn.io/`).
pub mod annotations {
    /// The pod's (or a request for a static) address.
    pub const IP_ADDRESS: &str = "rovn.io/ip_address";
    /// The pod's (or a request for a static) MAC.
    pub const MAC_ADDRESS: &str = "rovn.io/mac_address";
    /// The pod's subnet CIDR.
    pub const CIDR: &str = "rovn.io/cidr";
    /// The pod's default gateway.
    pub const GATEWAY: &str = "rovn.io/gateway";
    /// The pod's logical switch (or a request for one).
    pub const LOGICAL_SWITCH: &str = "rovn.io/logical_switch";
    /// `"true"` once the address is allocated and the other annotations are written.
    pub const ALLOCATED: &str = "rovn.io/allocated";
    /// `"true"` once the pod's logical switch port is committed to NB.
    pub const ROUTED: &str = "rovn.io/routed";
    /// The node's address on `join`.
    pub const JOIN_IP: &str = "rovn.io/join_ip";
    /// The node's `ovn0` MAC.
    pub const JOIN_MAC: &str = "rovn.io/join_mac";
    /// The node's chassis name.
    pub const CHASSIS: &str = "rovn.io/chassis";
}

/// A pod's logical switch port, which is also its OVS interface's `iface-id`.
pub fn pod_port(namespace: &str, pod: &str) -> String {
    format!("{pod}.{namespace}")
}

/// A node's port on `join` (host side: the OVS internal port `ovn0`).
pub fn node_port(node: &str) -> String {
    format!("{NODE_PORT_PREFIX}{node}")
}

/// The cluster router's port towards `switch`.
pub fn router_port(switch: &str) -> String {
    format!("{CLUSTER_ROUTER}-{switch}")
}

/// `switch`'s port towards the cluster router.
pub fn switch_router_port(switch: &str) -> String {
    format!("{switch}-{CLUSTER_ROUTER}")
}

/// A Service's load balancer for one protocol (`tcp`, `udp`, `sctp`).
pub fn service_load_balancer(namespace: &str, service: &str, protocol: &str) -> String {
    format!(
        "svc.{namespace}.{service}.{}",
        protocol.to_ascii_lowercase()
    )
}

/// The chassis template variable that holds, on each chassis, the node-local backends of one
/// VIP of a Service with `internalTrafficPolicy: Local`. Template variable names are
/// identifiers, so the Service, protocol and VIP are folded into a 64-bit hash.
pub fn local_backends_variable(
    namespace: &str,
    service: &str,
    protocol: &str,
    vip: &str,
) -> String {
    let identity = format!(
        "{namespace}/{service}/{}/{vip}",
        protocol.to_ascii_lowercase()
    );
    format!("svc_{:016x}", fnv1a64(identity.as_bytes()))
}

/// FNV-1a, 64 bits: stable across releases and platforms, for names and fingerprints that are
/// stored outside the process (NB template variables, the node's nftables rule comments) and
/// must read the same after an upgrade.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The Port_Group of the pods on `node`: what "from the pod's own node" ACLs and the node's
/// egress reroute (through the group's implicit `$<name>_ip4` address set) match on, since
/// subnet switches span nodes and cannot say which node a port is on.
pub fn node_port_group(node: &str) -> String {
    ovn_set_name(&format!("node.{node}"), &format!("Node/{node}"))
}

/// The Port_Group of a private Subnet's pods, which holds the Subnet's isolation ACL.
pub fn private_subnet_port_group(subnet: &str) -> String {
    ovn_set_name(&format!("subnet.{subnet}"), &format!("Subnet/{subnet}"))
}

/// `rovn.io/id` of a private Subnet's ACL dropping traffic from outside its allowed sources.
pub const PRIVATE_ACL_ID: &str = "private";

/// The Port_Group of the pods a NetworkPolicy selects, which holds the policy's ACLs.
pub fn policy_port_group(namespace: &str, policy: &str) -> String {
    ovn_set_name(
        &format!("np.{namespace}.{policy}"),
        &format!("NetworkPolicy/{namespace}/{policy}"),
    )
}

/// One of a NetworkPolicy's Address_Sets: `set` names it among the policy's sets (the rule it
/// serves, and for a named port the port, protocol and number).
pub fn policy_address_set(namespace: &str, policy: &str, set: &str) -> String {
    ovn_set_name(
        &format!("np.{namespace}.{policy}.{set}"),
        &format!("NetworkPolicy/{namespace}/{policy}/{set}"),
    )
}

/// The Port_Group of a namespace's pods isolated in `direction` (`ingress`, `egress`) by some
/// NetworkPolicy: its one ACL drops what no policy allows.
pub fn default_deny_port_group(namespace: &str, direction: &str) -> String {
    ovn_set_name(
        &format!("deny.{direction}.{namespace}"),
        &format!("Namespace/{namespace}/{direction}"),
    )
}

/// The NB Meter that rate-limits the log lines of ACLs with logging on.
pub const ACL_LOG_METER: &str = "rovn-acl-log";

/// `external_ids` key on ACLs: `ingress` or `egress`, relative to the selected pod.
pub const DIRECTION_KEY: &str = "rovn.io/direction";

/// `external_ids` key on Port_Groups and Address_Sets holding the exact identity their hashed
/// name stands for.
pub const IDENTITY_KEY: &str = "rovn.io/identity";

/// The `spec.loadBalancerClass` rovn answers for; a LoadBalancer Service without a class is
/// rovn's too, and one naming any other class is left to whoever implements that class.
pub const LB_CLASS: &str = "rovn.io/lb";

/// Annotation the controller owns on a LoadBalancer Service: the node that announces its
/// address on the underlay (answers ARP for it). Rewritten when anyone else changes it.
pub const LB_NODE_ANNOTATION: &str = "rovn.io/lb-node";

/// Event reasons on LoadBalancer Services (the controller writes them, tests look for them).
pub mod lb_events {
    /// The pool has no free address for the Service.
    pub const POOL_EXHAUSTED: &str = "LoadBalancerPoolExhausted";
    /// `spec.loadBalancerIP` cannot be given (not an address, outside the pool, or held by an
    /// older Service).
    pub const IP_UNAVAILABLE: &str = "LoadBalancerIPUnavailable";
    /// The address in the Service's status is an older Service's.
    pub const IP_CONFLICT: &str = "LoadBalancerIPConflict";
}

/// Label that takes a node out of the set announcing LoadBalancer addresses (Kubernetes'
/// well-known label, which cloud load balancers honour the same way).
pub const EXCLUDE_FROM_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Annotation on a NetworkPolicy turning on ACL logging: `allow`, `deny` or `allow,deny`.
pub const ACL_LOG_ANNOTATION: &str = "rovn.io/acl-log";

/// A Port_Group or Address_Set name: OVN allows only `[a-zA-Z_.][a-zA-Z_.0-9]*`, so the readable
/// part has every other character replaced by `_`; a hash of the exact `identity` keeps names
/// that read alike apart. The identity itself goes into `external_ids` beside it.
pub fn ovn_set_name(readable: &str, identity: &str) -> String {
    let mut name: String = readable
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.chars().next().is_none_or(|c| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    // Long enough to read in `ovn-nbctl list` and ACL matches; the hash keeps it unique.
    name.truncate(MAX_READABLE);
    format!("{name}.{:08x}", fnv1a32(identity.as_bytes()))
}

/// The longest readable part of a set name (ASCII after the mapping above).
const MAX_READABLE: usize = 48;

/// FNV-1a, 32 bits: stable across releases and platforms, which a name stored in NB must be.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_and_router_names_match_the_design() {
        assert_eq!(pod_port("default", "web-0"), "web-0.default");
        assert_eq!(node_port("node1"), "node-node1");
        assert_eq!(router_port("ovn-default"), "ovn-cluster-ovn-default");
        assert_eq!(switch_router_port("ovn-default"), "ovn-default-ovn-cluster");
        assert_eq!(
            service_load_balancer("kube-system", "dns", "UDP"),
            "svc.kube-system.dns.udp"
        );
    }

    #[test]
    fn set_names_are_valid_and_distinct() {
        let valid = |n: &str| {
            let mut chars = n.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '.')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        };
        let a = ovn_set_name("np-allow/web", "NetworkPolicy/ns/np-allow/ingress/0");
        let b = ovn_set_name("np_allow/web", "NetworkPolicy/ns/np_allow/ingress/0");
        assert!(valid(&a) && valid(&b), "{a} {b}");
        assert!(a.starts_with("np_allow_web."));
        assert_ne!(a, b);
        assert!(valid(&ovn_set_name("9lives", "x")));
        assert!(valid(&ovn_set_name("", "x")));
        assert_eq!(ovn_set_name("x", "same"), ovn_set_name("x", "same"));
        assert_eq!(fnv1a32(b"a"), 0xe40c292c);
    }
}
