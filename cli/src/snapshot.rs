//! Plain snapshots of what the plugin reads: pods, nodes and Services from the API server, the
//! rows of NB and SB that matter. The decisions (`flow`, `verdict`, `diagnose`, `topology`)
//! take these, so tests build them by hand and the I/O modules only fill them in.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rovn_api::annotations::{NodeJoin, PodAllocation};
use rovn_api::names::{self, OWNER_KEY, VENDOR, VENDOR_KEY};
use rovn_ovsdb::Uuid;
use rovn_ovsdb_schemas::nb::{
    Acl, LoadBalancer, LogicalRouter, LogicalRouterPort, LogicalSwitch, LogicalSwitchPort,
};
use rovn_ovsdb_schemas::sb::{Chassis, ChassisPrivate, Encap, PortBinding};

/// A pod as rovn sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID (empty when the API server gave none).
    pub uid: String,
    /// The node it is bound to.
    pub node: Option<String>,
    /// hostNetwork pods have no port of their own.
    pub host_network: bool,
    /// Succeeded or Failed: rovn releases their addresses and ports.
    pub terminal: bool,
    /// The allocation from its annotations: `Ok(None)` before the controller allocated, `Err`
    /// with the reason when the annotations are malformed.
    pub allocation: Result<Option<PodAllocation>, String>,
}

impl PodView {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The logical switch port rovn names after the pod.
    pub fn port_name(&self) -> String {
        names::pod_port(&self.namespace, &self.name)
    }

    /// The allocation when the pod should have a port: allocated, not hostNetwork, not finished.
    pub fn live_allocation(&self) -> Option<&PodAllocation> {
        if self.host_network || self.terminal {
            return None;
        }
        self.allocation.as_ref().ok().and_then(Option::as_ref)
    }
}

/// A node as rovn sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    /// Its name.
    pub name: String,
    /// `rovn.io/chassis`, as the agent wrote it.
    pub chassis: Option<String>,
    /// Its `join` address, when the controller gave it one and it parses.
    pub join: Option<NodeJoin>,
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortView {
    /// The port's name (may be empty).
    pub name: String,
    /// The port clients connect to on the ClusterIP.
    pub port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
}

/// A Service as the plugin needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its ClusterIPs (none for headless Services).
    pub cluster_ips: Vec<IpAddr>,
    /// Its ports, in the Service's order.
    pub ports: Vec<ServicePortView>,
}

/// What the API server said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeSnapshot {
    /// Every pod.
    pub pods: Vec<PodView>,
    /// Every node.
    pub nodes: Vec<NodeView>,
    /// Every Service.
    pub services: Vec<ServiceView>,
}

impl KubeSnapshot {
    /// The pod `namespace/name`.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodView> {
        self.pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    /// The live pod holding `ip`, if one does.
    pub fn pod_with_ip(&self, ip: IpAddr) -> Option<&PodView> {
        self.pods
            .iter()
            .find(|p| p.live_allocation().is_some_and(|a| a.ip == ip))
    }

    /// The Service `namespace/name`.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceView> {
        self.services
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
    }
}

/// The NB rows the plugin reasons about, typed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NbSnapshot {
    /// Every logical switch.
    pub switches: Vec<LogicalSwitch>,
    /// Every logical switch port, by UUID (switches refer to them so).
    pub ports: BTreeMap<Uuid, LogicalSwitchPort>,
    /// Every logical router.
    pub routers: Vec<LogicalRouter>,
    /// Every logical router port.
    pub router_ports: Vec<LogicalRouterPort>,
    /// Every load balancer.
    pub load_balancers: Vec<LoadBalancer>,
    /// Every ACL.
    pub acls: Vec<Acl>,
}

impl NbSnapshot {
    /// The switch named `name`.
    pub fn switch(&self, name: &str) -> Option<&LogicalSwitch> {
        self.switches.iter().find(|s| s.name == name)
    }

    /// The switch holding the port `port`.
    pub fn switch_of(&self, port: &str) -> Option<&LogicalSwitch> {
        self.switches.iter().find(|s| {
            s.ports
                .iter()
                .any(|u| self.ports.get(u).is_some_and(|p| p.name == port))
        })
    }

    /// The logical switch port named `name`.
    pub fn port(&self, name: &str) -> Option<&LogicalSwitchPort> {
        self.ports.values().find(|p| p.name == name)
    }

    /// The router port `switch` is connected through: its `router`-type port's `router-port`
    /// option names it. The first one, as rovn gives each switch one.
    pub fn router_port_of(&self, switch: &LogicalSwitch) -> Option<&LogicalRouterPort> {
        switch
            .ports
            .iter()
            .filter_map(|u| self.ports.get(u))
            .filter(|p| p.type_ == "router")
            .filter_map(|p| p.options.get(names::ROUTER_PORT_OPTION))
            .find_map(|lrp| self.router_ports.iter().find(|r| &r.name == lrp))
    }

    /// The load balancer serving `vip` (`ip:port`) for `protocol` (`tcp`, `udp`, `sctp`).
    pub fn load_balancer_for(&self, vip: &str, protocol: &str) -> Option<&LoadBalancer> {
        self.load_balancers.iter().find(|lb| {
            lb.vips.contains_key(vip)
                && lb
                    .protocol
                    .as_ref()
                    .is_none_or(|p| rovn_ovsdb::model::StringEnum::as_str(p) == protocol)
        })
    }
}

/// The SB rows the plugin reasons about.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SbSnapshot {
    /// Every registered chassis.
    pub chassis: Vec<Chassis>,
    /// Every port binding.
    pub bindings: Vec<PortBinding>,
    /// Every chassis's private row: its `nb_cfg` says how far its ovn-controller has processed.
    pub chassis_private: Vec<ChassisPrivate>,
    /// Every tunnel endpoint a chassis offers.
    pub encaps: Vec<Encap>,
    /// `SB_Global.nb_cfg`: how far ovn-northd has processed NB (`None` without the row).
    pub nb_cfg: Option<i64>,
}

/// Whether `external_ids` marks a row as rovn's.
pub fn is_rovn(external_ids: &BTreeMap<String, String>) -> bool {
    external_ids.get(VENDOR_KEY).map(String::as_str) == Some(VENDOR)
}

/// The `rovn.io/owner` of a row, as written.
pub fn owner_of(external_ids: &BTreeMap<String, String>) -> Option<&str> {
    external_ids.get(OWNER_KEY).map(String::as_str)
}

/// How a logical port reads for an operator: the pod or node it belongs to (from its owner, or
/// from rovn's naming when a foreign port has no owner), or just its name.
pub fn describe_port(nb: &NbSnapshot, port: &str) -> String {
    let owner = nb.port(port).and_then(|p| owner_of(&p.external_ids));
    match owner.and_then(|o| o.parse::<rovn_api::Owner>().ok()) {
        Some(owner) => match owner.namespace() {
            Some(ns) => format!("port {port} ({} {ns}/{})", owner.kind(), owner.name()),
            None => format!("port {port} ({} {})", owner.kind(), owner.name()),
        },
        None if nb.port(port).is_some() => format!("port {port} (not rovn's)"),
        None => format!("port {port}"),
    }
}
