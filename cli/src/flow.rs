//! The `ovn-trace` microflow of a first packet from a pod, built from what rovn wrote: the
//! source pod's port, MAC and IP from its annotations, the destination's MAC when it sits on
//! the same switch, else the MAC of the router port the source's switch hangs off (read from
//! NB, as a real packet would be addressed to the pod's gateway). Pure.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use rovn_api::MacAddr;

use crate::snapshot::{KubeSnapshot, NbSnapshot, PodView};

/// The source port the traced packet comes from.
pub const DEFAULT_SRC_PORT: u16 = 40000;
/// The destination port when neither the command line nor a Service names one.
pub const DEFAULT_DST_PORT: u16 = 80;

/// The transport of the traced packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TCP (a SYN).
    Tcp,
    /// UDP.
    Udp,
    /// An ICMP echo request.
    Icmp,
}

impl FromStr for Proto {
    type Err = FlowError;
    fn from_str(s: &str) -> Result<Proto, FlowError> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "icmp" | "icmp4" => Ok(Proto::Icmp),
            _ => Err(FlowError::BadArgument(format!(
                "protocol {s:?}: expected tcp, udp or icmp"
            ))),
        }
    }
}

impl Proto {
    /// The load balancer protocol name (`tcp`, `udp`); ICMP has none.
    pub fn lb_protocol(self) -> Option<&'static str> {
        match self {
            Proto::Tcp => Some("tcp"),
            Proto::Udp => Some("udp"),
            Proto::Icmp => None,
        }
    }
}

/// Why no flow could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// A malformed command-line value.
    #[error("{0}")]
    BadArgument(String),
    /// The named object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The object exists but cannot be traced from/to, and why.
    #[error("{what}: {why}")]
    Untraceable {
        /// The object.
        what: String,
        /// Why.
        why: String,
    },
}

/// The transport part of the microflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// TCP ports.
    Tcp {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
    },
    /// UDP ports.
    Udp {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
    },
    /// ICMP echo request.
    Icmp,
}

/// The first packet of a connection, in `ovn-trace`'s expression language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Microflow {
    /// The logical port the packet enters on.
    pub inport: String,
    /// Source MAC.
    pub eth_src: MacAddr,
    /// Destination MAC.
    pub eth_dst: MacAddr,
    /// Source IP.
    pub ip_src: Ipv4Addr,
    /// Destination IP.
    pub ip_dst: Ipv4Addr,
    /// Transport.
    pub l4: L4,
}

impl fmt::Display for Microflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "inport == \"{}\" && eth.src == {} && eth.dst == {} && ip4.src == {} && ip4.dst == {} && ip.ttl == 64",
            self.inport, self.eth_src, self.eth_dst, self.ip_src, self.ip_dst
        )?;
        match self.l4 {
            L4::Tcp { src, dst } => write!(f, " && tcp.src == {src} && tcp.dst == {dst}"),
            L4::Udp { src, dst } => write!(f, " && udp.src == {src} && udp.dst == {dst}"),
            L4::Icmp => write!(f, " && icmp4.type == 8 && icmp4.code == 0"),
        }
    }
}

impl Microflow {
    /// The same packet as OpenFlow sees it entering `br-int` on OpenFlow port `in_port`, for
    /// `ovs-appctl ofproto/trace` on the source node (ovn-controller's flows find the logical
    /// inport from the OpenFlow port).
    pub fn ovs_flow(&self, in_port: impl fmt::Display) -> String {
        let (proto, l4) = match self.l4 {
            L4::Tcp { src, dst } => ("tcp", format!(",tp_src={src},tp_dst={dst}")),
            L4::Udp { src, dst } => ("udp", format!(",tp_src={src},tp_dst={dst}")),
            L4::Icmp => ("icmp", ",icmp_type=8,icmp_code=0".to_string()),
        };
        format!(
            "in_port={in_port},{proto},dl_src={},dl_dst={},nw_src={},nw_dst={},nw_ttl=64{l4}",
            self.eth_src, self.eth_dst, self.ip_src, self.ip_dst
        )
    }
}

/// What the command line names as the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `namespace/pod`.
    Pod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// `svc/namespace/name`.
    Service {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// An IP address.
    Ip(IpAddr),
}

/// `namespace/name`, both non-empty.
pub fn parse_pod_ref(text: &str) -> Result<(String, String), FlowError> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(FlowError::BadArgument(format!(
            "{text:?}: expected <namespace>/<pod>"
        ))),
    }
}

impl FromStr for Destination {
    type Err = FlowError;
    fn from_str(text: &str) -> Result<Destination, FlowError> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Destination::Ip(ip));
        }
        if let Some(rest) = text
            .strip_prefix("svc/")
            .or_else(|| text.strip_prefix("service/"))
        {
            let (namespace, name) = parse_pod_ref(rest).map_err(|_| {
                FlowError::BadArgument(format!("{text:?}: expected svc/<namespace>/<name>"))
            })?;
            return Ok(Destination::Service { namespace, name });
        }
        let (namespace, name) = parse_pod_ref(text).map_err(|_| {
            FlowError::BadArgument(format!(
                "{text:?}: expected <namespace>/<pod>, svc/<namespace>/<name> or an IP"
            ))
        })?;
        Ok(Destination::Pod { namespace, name })
    }
}

/// What the packet is addressed to, for the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A pod (`namespace/name`) and its port.
    Pod {
        /// `namespace/name`.
        key: String,
        /// Its logical switch port.
        port: String,
    },
    /// A Service (`namespace/name`) and the VIP (`ip:port`).
    Service {
        /// `namespace/name`.
        key: String,
        /// `ip:port`.
        vip: String,
    },
    /// An address no pod or Service holds.
    Address(Ipv4Addr),
}

/// Source-side changes to the packet: spoofed addresses (to check port security) and ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Send from this IP instead of the pod's.
    pub src_ip: Option<Ipv4Addr>,
    /// Send from this MAC instead of the pod's.
    pub src_mac: Option<MacAddr>,
    /// The source port (default [`DEFAULT_SRC_PORT`]).
    pub src_port: Option<u16>,
}

/// Everything `ovn-trace` needs, and what the packet was meant for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The switch the packet enters (the source pod's).
    pub switch: String,
    /// The microflow.
    pub flow: Microflow,
    /// The source pod, `namespace/name`.
    pub source: String,
    /// What the packet is addressed to.
    pub target: Target,
    /// The transport, for finding the load balancer.
    pub proto: Proto,
}

/// The request as the command line gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Source pod `namespace`, `name`.
    pub source: (String, String),
    /// Destination.
    pub destination: Destination,
    /// Transport, if given.
    pub proto: Option<Proto>,
    /// Destination port, if given.
    pub port: Option<u16>,
    /// Source-side changes.
    pub overrides: Overrides,
}

fn v4(ip: IpAddr, what: &str) -> Result<Ipv4Addr, FlowError> {
    match ip {
        IpAddr::V4(v4) => Ok(v4),
        IpAddr::V6(_) => Err(FlowError::Untraceable {
            what: what.to_string(),
            why: format!("{ip} is IPv6; rovn and this trace are IPv4 only"),
        }),
    }
}

/// A pod that can be traced from/to: its allocation, or why not.
fn allocated(pod: &PodView) -> Result<&rovn_api::annotations::PodAllocation, FlowError> {
    let untraceable = |why: String| FlowError::Untraceable {
        what: format!("pod {}", pod.key()),
        why,
    };
    if pod.host_network {
        return Err(untraceable(
            "it is a hostNetwork pod and has no logical port".into(),
        ));
    }
    if pod.terminal {
        return Err(untraceable(
            "it has finished, rovn released its port".into(),
        ));
    }
    match &pod.allocation {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(untraceable(
            "rovn has not allocated it an address yet (rovn.io/allocated is not \"true\")".into(),
        )),
        Err(e) => Err(untraceable(format!("its rovn.io annotations are bad: {e}"))),
    }
}

/// Builds the trace of `request` over the snapshots.
pub fn plan(kube: &KubeSnapshot, nb: &NbSnapshot, request: &Request) -> Result<Plan, FlowError> {
    let (src_ns, src_name) = &request.source;
    let src = kube
        .pod(src_ns, src_name)
        .ok_or_else(|| FlowError::NotFound(format!("pod {src_ns}/{src_name}")))?;
    let src_alloc = allocated(src)?;
    let src_ip = v4(src_alloc.ip, &format!("pod {}", src.key()))?;

    // The destination: a pod's address and MAC, a Service's VIP, or a bare address.
    let mut proto = request.proto;
    let mut port = request.port;
    let (ip_dst, same_switch_mac, target) = match &request.destination {
        Destination::Pod { namespace, name } => {
            let dst = kube
                .pod(namespace, name)
                .ok_or_else(|| FlowError::NotFound(format!("pod {namespace}/{name}")))?;
            pod_target(src_alloc, dst)?
        }
        Destination::Service { namespace, name } => {
            let svc = kube
                .service(namespace, name)
                .ok_or_else(|| FlowError::NotFound(format!("service {namespace}/{name}")))?;
            service_target(svc, &mut proto, &mut port)?
        }
        Destination::Ip(ip) => {
            if let Some(dst) = kube.pod_with_ip(*ip) {
                pod_target(src_alloc, dst)?
            } else if let Some(svc) = kube.services.iter().find(|s| s.cluster_ips.contains(ip)) {
                let (_, _, target) = service_target(svc, &mut proto, &mut port)?;
                (v4(*ip, "destination")?, None, retarget(target, *ip, port))
            } else {
                let ip = v4(*ip, "destination")?;
                (ip, None, Target::Address(ip))
            }
        }
    };
    let proto = proto.unwrap_or(Proto::Tcp);
    let dst_port = port.unwrap_or(DEFAULT_DST_PORT);
    let src_port = request.overrides.src_port.unwrap_or(DEFAULT_SRC_PORT);

    let eth_dst = match same_switch_mac {
        Some(mac) => mac,
        None => gateway_mac(nb, &src_alloc.switch)?,
    };
    let l4 = match proto {
        Proto::Tcp => L4::Tcp {
            src: src_port,
            dst: dst_port,
        },
        Proto::Udp => L4::Udp {
            src: src_port,
            dst: dst_port,
        },
        Proto::Icmp => L4::Icmp,
    };
    Ok(Plan {
        switch: src_alloc.switch.clone(),
        flow: Microflow {
            inport: src.port_name(),
            eth_src: request.overrides.src_mac.unwrap_or(src_alloc.mac),
            eth_dst,
            ip_src: request.overrides.src_ip.unwrap_or(src_ip),
            ip_dst,
            l4,
        },
        source: src.key(),
        target,
        proto,
    })
}

type Resolved = (Ipv4Addr, Option<MacAddr>, Target);

fn pod_target(
    src: &rovn_api::annotations::PodAllocation,
    dst: &PodView,
) -> Result<Resolved, FlowError> {
    let alloc = allocated(dst)?;
    let ip = v4(alloc.ip, &format!("pod {}", dst.key()))?;
    let mac = (alloc.switch == src.switch).then_some(alloc.mac);
    Ok((
        ip,
        mac,
        Target::Pod {
            key: dst.key(),
            port: dst.port_name(),
        },
    ))
}

fn service_target(
    svc: &crate::snapshot::ServiceView,
    proto: &mut Option<Proto>,
    port: &mut Option<u16>,
) -> Result<Resolved, FlowError> {
    let key = format!("{}/{}", svc.namespace, svc.name);
    let untraceable = |why: &str| FlowError::Untraceable {
        what: format!("service {key}"),
        why: why.to_string(),
    };
    let ip = svc
        .cluster_ips
        .iter()
        .find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .ok_or_else(|| untraceable("it has no IPv4 ClusterIP (headless?)"))?;
    // The Service port: the one asked for, else the first; its protocol unless one was given.
    let chosen = match *port {
        Some(p) => svc.ports.iter().find(|sp| sp.port == p),
        None => svc.ports.first(),
    };
    if port.is_none() {
        *port = chosen.map(|sp| sp.port);
    }
    if proto.is_none() {
        *proto = match chosen.map(|sp| sp.protocol.to_ascii_lowercase()) {
            Some(p) if p == "udp" => Some(Proto::Udp),
            Some(p) if p == "sctp" => return Err(untraceable("SCTP ports are not traced")),
            _ => Some(Proto::Tcp),
        };
    }
    let vip = format!("{ip}:{}", port.unwrap_or(DEFAULT_DST_PORT));
    Ok((ip, None, Target::Service { key, vip }))
}

fn retarget(target: Target, ip: IpAddr, port: Option<u16>) -> Target {
    match target {
        Target::Service { key, .. } => Target::Service {
            key,
            vip: format!("{ip}:{}", port.unwrap_or(DEFAULT_DST_PORT)),
        },
        other => other,
    }
}

/// The MAC of the router port `switch` hangs off, which a pod addresses packets for other
/// networks to.
pub fn gateway_mac(nb: &NbSnapshot, switch: &str) -> Result<MacAddr, FlowError> {
    let ls = nb
        .switch(switch)
        .ok_or_else(|| FlowError::NotFound(format!("logical switch {switch} in NB")))?;
    let lrp = nb
        .router_port_of(ls)
        .ok_or_else(|| FlowError::Untraceable {
            what: format!("logical switch {switch}"),
            why: "it has no router-type port whose router-port exists, so nothing routes off it"
                .into(),
        })?;
    lrp.mac.parse().map_err(|e| FlowError::Untraceable {
        what: format!("router port {}", lrp.name),
        why: format!("{e}"),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use rovn_api::annotations::PodAllocation;
    use rovn_ovsdb::Uuid;
    use rovn_ovsdb_schemas::nb::{LogicalRouterPort, LogicalSwitch, LogicalSwitchPort};

    use super::*;
    use crate::snapshot::{ServicePortView, ServiceView};

    pub fn pod(ns: &str, name: &str, ip: &str, switch: &str, node: &str) -> PodView {
        let ip: IpAddr = ip.parse().unwrap();
        let cidr = if switch == "ovn-default" {
            "10.16.0.0/16"
        } else {
            "10.17.0.0/16"
        };
        let cidr: ipnet::IpNet = cidr.parse().unwrap();
        PodView {
            namespace: ns.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            node: Some(node.into()),
            host_network: false,
            terminal: false,
            allocation: Ok(Some(PodAllocation {
                ip,
                mac: MacAddr::derived_from(ip),
                gateway: match cidr.network() {
                    IpAddr::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n) + 1)),
                    other => other,
                },
                cidr,
                switch: switch.into(),
            })),
        }
    }

    /// NB with `ovn-default` (router port MAC 0a:58:0a:10:00:01) and `other`.
    pub fn nb() -> NbSnapshot {
        let mut nb = NbSnapshot::default();
        for (switch, gw) in [("ovn-default", "10.16.0.1"), ("other", "10.17.0.1")] {
            let peer = LogicalSwitchPort {
                uuid: Uuid::new_v4(),
                name: format!("{switch}-ovn-cluster"),
                type_: "router".into(),
                options: BTreeMap::from([(
                    "router-port".to_string(),
                    format!("ovn-cluster-{switch}"),
                )]),
                ..Default::default()
            };
            nb.switches.push(LogicalSwitch {
                uuid: Uuid::new_v4(),
                name: switch.into(),
                ports: BTreeSet::from([peer.uuid]),
                ..Default::default()
            });
            nb.ports.insert(peer.uuid, peer);
            let gw: Ipv4Addr = gw.parse().unwrap();
            nb.router_ports.push(LogicalRouterPort {
                uuid: Uuid::new_v4(),
                name: format!("ovn-cluster-{switch}"),
                mac: MacAddr::derived_from(gw).to_string(),
                networks: BTreeSet::from([format!("{gw}/16")]),
                ..Default::default()
            });
        }
        nb
    }

    pub fn kube() -> KubeSnapshot {
        KubeSnapshot {
            pods: vec![
                pod("demo", "client", "10.16.0.7", "ovn-default", "node1"),
                pod("demo", "server", "10.16.0.8", "ovn-default", "node2"),
                pod("demo", "far", "10.17.0.5", "other", "node2"),
            ],
            nodes: vec![],
            services: vec![ServiceView {
                namespace: "demo".into(),
                name: "web".into(),
                cluster_ips: vec!["10.96.0.6".parse().unwrap()],
                ports: vec![
                    ServicePortView {
                        name: "dns".into(),
                        port: 53,
                        protocol: "UDP".into(),
                    },
                    ServicePortView {
                        name: "http".into(),
                        port: 80,
                        protocol: "TCP".into(),
                    },
                ],
            }],
        }
    }

    fn request(dst: &str) -> Request {
        Request {
            source: ("demo".into(), "client".into()),
            destination: dst.parse().unwrap(),
            proto: None,
            port: None,
            overrides: Overrides::default(),
        }
    }

    #[test]
    fn same_switch_pods_are_addressed_directly() {
        let mut r = request("demo/server");
        r.port = Some(8080);
        let plan = plan(&kube(), &nb(), &r).unwrap();
        assert_eq!(plan.switch, "ovn-default");
        assert_eq!(
            plan.flow.to_string(),
            "inport == \"client.demo\" && eth.src == 0a:58:0a:10:00:07 && eth.dst == 0a:58:0a:10:00:08 \
             && ip4.src == 10.16.0.7 && ip4.dst == 10.16.0.8 && ip.ttl == 64 && tcp.src == 40000 && tcp.dst == 8080"
        );
        assert_eq!(
            plan.target,
            Target::Pod {
                key: "demo/server".into(),
                port: "server.demo".into()
            }
        );
        // The same packet for ofproto/trace, entering br-int on the pod's OpenFlow port.
        assert_eq!(
            plan.flow.ovs_flow(7),
            "in_port=7,tcp,dl_src=0a:58:0a:10:00:07,dl_dst=0a:58:0a:10:00:08,nw_src=10.16.0.7,\
             nw_dst=10.16.0.8,nw_ttl=64,tp_src=40000,tp_dst=8080"
        );
    }

    #[test]
    fn other_switches_and_services_go_to_the_gateway_mac() {
        let plan_far = plan(&kube(), &nb(), &request("demo/far")).unwrap();
        assert_eq!(plan_far.flow.eth_dst.to_string(), "0a:58:0a:10:00:01");
        assert_eq!(plan_far.flow.ip_dst.to_string(), "10.17.0.5");

        // The first Service port (UDP 53) unless one is given.
        let svc = plan(&kube(), &nb(), &request("svc/demo/web")).unwrap();
        assert_eq!(svc.flow.eth_dst.to_string(), "0a:58:0a:10:00:01");
        assert!(
            svc.flow
                .to_string()
                .ends_with("udp.src == 40000 && udp.dst == 53")
        );
        assert_eq!(
            svc.target,
            Target::Service {
                key: "demo/web".into(),
                vip: "10.96.0.6:53".into()
            }
        );
        let mut r = request("svc/demo/web");
        r.port = Some(80);
        let svc80 = plan(&kube(), &nb(), &r).unwrap();
        assert!(svc80.flow.to_string().ends_with("tcp.dst == 80"));
        // A ClusterIP given as an address is the Service too.
        let mut r = request("10.96.0.6");
        r.port = Some(80);
        let by_ip = plan(&kube(), &nb(), &r).unwrap();
        assert_eq!(by_ip.target, svc80.target);
    }

    #[test]
    fn addresses_resolve_to_pods_and_overrides_spoof() {
        let mut r = request("10.16.0.8");
        r.proto = Some(Proto::Icmp);
        r.overrides.src_ip = Some("10.16.0.99".parse().unwrap());
        r.overrides.src_mac = Some("0a:58:0a:10:00:99".parse().unwrap());
        let p = plan(&kube(), &nb(), &r).unwrap();
        assert!(matches!(p.target, Target::Pod { .. }));
        let text = p.flow.to_string();
        assert!(text.contains("ip4.src == 10.16.0.99"), "{text}");
        assert!(text.contains("eth.src == 0a:58:0a:10:00:99"), "{text}");
        assert!(
            text.ends_with("icmp4.type == 8 && icmp4.code == 0"),
            "{text}"
        );
        let outside = plan(&kube(), &nb(), &request("8.8.8.8")).unwrap();
        assert_eq!(outside.target, Target::Address("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn unknown_or_unallocated_pods_are_errors() {
        assert_eq!(
            plan(&kube(), &nb(), &request("demo/nope")),
            Err(FlowError::NotFound("pod demo/nope".into()))
        );
        let mut k = kube();
        k.pods[1].allocation = Ok(None);
        let err = plan(&k, &nb(), &request("demo/server")).unwrap_err();
        assert!(err.to_string().contains("not allocated"), "{err}");
        assert!("a/b/c".parse::<Destination>().is_err());
        assert!("svc/x".parse::<Destination>().is_err());
        assert!("tcpx".parse::<Proto>().is_err());
    }
}
