//! Every name, address and path of a lab, derived from the lab's name alone.
//!
//! The orchestrator, the test API server and the test kubelet all rely on these conventions;
//! keeping them in one pure module means a crash-recovery `down` can find everything a lab made
//! without any state other than the name.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::error::LabError;

/// Where every lab keeps its sockets, pidfiles, databases and logs.
pub const STATE_ROOT: &str = "/run/rovn-lab";
/// Where `ip netns` keeps its named namespaces; read to find a lab's namespaces after a crash.
pub const NETNS_DIR: &str = "/run/netns";
/// The Linux bridge inside the central namespace that joins all nodes.
pub const UNDERLAY_BRIDGE: &str = "br-lab";
/// Prefix length of the underlay subnet 172.30.0.0/24.
pub const UNDERLAY_PREFIX_LEN: u8 = 24;
/// The central namespace's address on the underlay: OVN databases and the API server listen here.
pub const CENTRAL_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
/// The outside namespace's address: the "world" for egress tests.
pub const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 254);
/// The lab's LoadBalancer pool (`--lb-cidr` of the controller and the agents): on the underlay,
/// above every node address (`10 + MAX_NODES`) and below [`OUTSIDE_IP`], so the nodes announce
/// its addresses on the network the outside namespace is on.
pub const LB_CIDR: &str = "172.30.0.240/29";
/// TCP port of the Northbound database on the underlay.
pub const NB_TCP_PORT: u16 = 6641;
/// TCP port of the Southbound database on the underlay.
pub const SB_TCP_PORT: u16 = 6642;
/// TCP port of the API server on the underlay (for kubelets inside lab namespaces).
pub const KUBE_LAB_PORT: u16 = 6443;
/// TCP port of rovn-controller's `/metrics`, `/healthz` and `/readyz` (on the central address).
pub const CONTROLLER_PORT: u16 = 10660;
/// The name of the controller's Pod object in `kube-system` and its Lease identity (the
/// Deployment sets the identity to the pod's name the same way, through `POD_NAME`).
pub const CONTROLLER_POD: &str = "rovn-controller-central";
/// TCP port of rovn-node's `/metrics` and `/healthz` (on the node's underlay address).
pub const AGENT_PORT: u16 = 10665;
/// The OVS bridge that carries a node's underlay address (OVS userspace tunnelling needs it).
pub const NODE_PHYS_BRIDGE: &str = "br-phy";
/// The OVN integration bridge on every node.
pub const NODE_INT_BRIDGE: &str = "br-int";
/// The node's underlay interface name inside its namespace.
pub const NODE_UNDERLAY_IF: &str = "eth0";
/// Node names are `node1`..`nodeN`; this bounds N so that 10+N stays a host address below OUTSIDE_IP.
pub const MAX_NODES: u8 = 200;
/// Longest lab name; keeps namespace and socket paths short.
pub const MAX_NAME_LEN: usize = 8;

/// A validated lab name (1-8 chars `[a-z0-9]`), so that `rl-NAME-` prefixes never overlap.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabName(String);

impl LabName {
    /// The name as a string slice, for building names and printing.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LabName {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid_chars = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if s.is_empty() || s.len() > MAX_NAME_LEN || !valid_chars {
            return Err(LabError::InvalidName {
                name: s.to_string(),
                reason: format!("a lab name is 1-{MAX_NAME_LEN} characters of [a-z0-9]"),
            });
        }
        Ok(LabName(s.to_string()))
    }
}

impl fmt::Display for LabName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One of the places of a lab that has its own namespace, directory and daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Place {
    /// Central OVN and the underlay bridge.
    Central,
    /// Node `i` (1-based), a chassis.
    Node(u8),
    /// The world outside the cluster, on the underlay.
    Outside,
}

impl Place {
    /// The short label used in directories, log names and CLI arguments (`central`, `node2`, `outside`).
    pub fn label(&self) -> String {
        match self {
            Place::Central => "central".to_string(),
            Place::Node(i) => format!("node{i}"),
            Place::Outside => "outside".to_string(),
        }
    }

    /// The place's address on the underlay.
    pub fn underlay_ip(&self) -> Ipv4Addr {
        match self {
            Place::Central => CENTRAL_IP,
            Place::Node(i) => Ipv4Addr::new(172, 30, 0, 10u8.saturating_add(*i)),
            Place::Outside => OUTSIDE_IP,
        }
    }

    /// The name of the veth end inside the central namespace that connects this place to `br-lab`.
    pub fn underlay_port(&self) -> String {
        self.label()
    }
}

impl FromStr for Place {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || LabError::InvalidPlace {
            place: s.to_string(),
        };
        match s {
            "central" => Ok(Place::Central),
            "outside" => Ok(Place::Outside),
            _ => {
                let digits = s.strip_prefix("node").ok_or_else(invalid)?;
                if digits.starts_with('0') {
                    return Err(invalid());
                }
                let i: u8 = digits.parse().map_err(|_| invalid())?;
                if i == 0 || i > MAX_NODES {
                    return Err(invalid());
                }
                Ok(Place::Node(i))
            }
        }
    }
}

/// All names and paths of one lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabNames {
    name: LabName,
    state_dir: PathBuf,
}

impl LabNames {
    /// The names of lab `name` under the standard state root.
    pub fn new(name: LabName) -> Self {
        let state_dir = Path::new(STATE_ROOT).join(name.as_str());
        LabNames { name, state_dir }
    }

    /// The lab's name.
    pub fn name(&self) -> &LabName {
        &self.name
    }

    /// `/run/rovn-lab/NAME`: removing it removes every file the lab made.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The directory of a place's sockets, pidfiles and databases (also its OVS_RUNDIR/OVN_RUNDIR).
    pub fn place_dir(&self, place: Place) -> PathBuf {
        self.state_dir.join(place.label())
    }

    /// Where every daemon log of the lab goes.
    pub fn logs_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }

    /// The lab's PKI, when it runs TLS ([`super::tls`]).
    pub fn pki_dir(&self) -> PathBuf {
        self.state_dir.join("pki")
    }

    /// The record of what `up` built, read by `status`.
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("lab.json")
    }

    /// Prefix of every namespace of the lab, including pod sandboxes made by the kubelet.
    pub fn netns_prefix(&self) -> String {
        format!("rl-{}-", self.name)
    }

    /// The network namespace of a place.
    pub fn netns(&self, place: Place) -> String {
        format!("{}{}", self.netns_prefix(), place.label())
    }

    /// The sandbox namespace the kubelet makes for a pod (first 12 hex digits of its UID).
    pub fn pod_netns(&self, pod_uid: &str) -> String {
        let hex: String = pod_uid
            .chars()
            .filter(|c| *c != '-')
            .take(12)
            .collect::<String>()
            .to_ascii_lowercase();
        format!("{}p{hex}", self.netns_prefix())
    }

    /// The pidfile of a daemon of a place.
    pub fn pidfile(&self, place: Place, daemon: &str) -> PathBuf {
        self.place_dir(place).join(format!("{daemon}.pid"))
    }

    /// The log file of a daemon of a place.
    pub fn log_file(&self, place: Place, daemon: &str) -> PathBuf {
        self.logs_dir()
            .join(format!("{}-{daemon}.log", place.label()))
    }

    /// The Northbound database file.
    pub fn nb_db_file(&self) -> PathBuf {
        self.place_dir(Place::Central).join("nb.db")
    }

    /// The Southbound database file.
    pub fn sb_db_file(&self) -> PathBuf {
        self.place_dir(Place::Central).join("sb.db")
    }

    /// The Northbound database's unix socket (reachable from the root namespace).
    pub fn nb_sock(&self) -> PathBuf {
        self.place_dir(Place::Central).join("nb.sock")
    }

    /// The Southbound database's unix socket (reachable from the root namespace).
    pub fn sb_sock(&self) -> PathBuf {
        self.place_dir(Place::Central).join("sb.sock")
    }

    /// The `--db` argument for `ovn-nbctl` from the root namespace.
    pub fn nb_remote(&self) -> String {
        format!("unix:{}", self.nb_sock().display())
    }

    /// The `--db` argument for `ovn-sbctl` from the root namespace.
    pub fn sb_remote(&self) -> String {
        format!("unix:{}", self.sb_sock().display())
    }

    /// The SB address ovn-controllers connect to over the underlay.
    pub fn sb_tcp_remote(&self) -> String {
        format!("tcp:{CENTRAL_IP}:{SB_TCP_PORT}")
    }

    /// The NB address reachable from lab namespaces.
    pub fn nb_tcp_remote(&self) -> String {
        format!("tcp:{CENTRAL_IP}:{NB_TCP_PORT}")
    }

    /// A node's Open_vSwitch database file.
    pub fn node_db_file(&self, node: u8) -> PathBuf {
        self.place_dir(Place::Node(node)).join("conf.db")
    }

    /// A node's Open_vSwitch database socket; `db.sock` is the OVS default name under OVS_RUNDIR.
    pub fn node_db_sock(&self, node: u8) -> PathBuf {
        self.place_dir(Place::Node(node)).join("db.sock")
    }

    /// The `--db` argument for `ovs-vsctl` against a node's database.
    pub fn node_db_remote(&self, node: u8) -> String {
        format!("unix:{}", self.node_db_sock(node).display())
    }

    /// Every node's OVS run directory as a template with `{node}` for the node's name (node names
    /// are the places' labels), as `kubectl rovn --ovs-rundir` takes it.
    pub fn node_rundir_template(&self) -> String {
        format!("{}/{{node}}", self.state_dir.display())
    }

    /// The OpenFlow management socket vswitchd makes for `br-int`; ovn-controller connects to it.
    pub fn node_br_int_mgmt(&self, node: u8) -> PathBuf {
        self.place_dir(Place::Node(node))
            .join(format!("{NODE_INT_BRIDGE}.mgmt"))
    }

    /// Kubeconfig for tools in the root namespace (kubectl, controller, tests).
    pub fn kubeconfig(&self) -> PathBuf {
        self.state_dir.join("kubeconfig")
    }

    /// Kubeconfig for programs inside lab namespaces (the API server on the underlay).
    pub fn kubeconfig_lab(&self) -> PathBuf {
        self.state_dir.join("kubeconfig-lab")
    }

    /// The file the API server writes its bound addresses to once it serves.
    pub fn kubesim_ready_file(&self) -> PathBuf {
        self.place_dir(Place::Central).join("kubesim-ready.json")
    }

    /// The kubelet's state directory on a node.
    pub fn kubelet_state_dir(&self, node: u8) -> PathBuf {
        self.place_dir(Place::Node(node)).join("kubelet")
    }

    /// The CNI configuration directory the node's kubelet reads.
    pub fn cni_conf_dir(&self, node: u8) -> PathBuf {
        self.place_dir(Place::Node(node)).join("cni").join("net.d")
    }

    /// Where a node's rovn-node copies `rovn-cni`; first on the node kubelet's CNI path.
    pub fn cni_bin_dir(&self, node: u8) -> PathBuf {
        self.place_dir(Place::Node(node)).join("cni").join("bin")
    }

    /// The unix socket a node's rovn-node serves CNI requests on.
    pub fn cni_socket(&self, node: u8) -> PathBuf {
        self.place_dir(Place::Node(node)).join("cni.sock")
    }

    /// The conflist rovn-node writes into the kubelet's CNI configuration directory.
    pub fn cni_conflist(&self, node: u8) -> PathBuf {
        self.cni_conf_dir(node).join("10-rovn.conflist")
    }

    /// rovn-controller's log (a fixed name other tools rely on).
    pub fn controller_log(&self) -> PathBuf {
        self.logs_dir().join("rovn-controller.log")
    }

    /// A node's rovn-node log (a fixed name other tools rely on).
    pub fn agent_log(&self, node: u8) -> PathBuf {
        self.logs_dir()
            .join(format!("rovn-node-{}.log", Place::Node(node).label()))
    }

    /// rovn-controller's HTTP address inside the central namespace.
    pub fn controller_listen(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from((CENTRAL_IP, CONTROLLER_PORT))
    }

    /// A node's rovn-node HTTP address inside the node's namespace.
    pub fn agent_listen(&self, node: u8) -> std::net::SocketAddr {
        std::net::SocketAddr::from((Place::Node(node).underlay_ip(), AGENT_PORT))
    }

    /// The API server URL seen from inside lab namespaces.
    pub fn kube_lab_url(&self) -> String {
        format!("http://{CENTRAL_IP}:{KUBE_LAB_PORT}")
    }

    /// The `NETNS@ADDR` listen argument that binds the API server inside the central namespace.
    pub fn kube_lab_listen(&self) -> String {
        format!(
            "{}@{CENTRAL_IP}:{KUBE_LAB_PORT}",
            self.netns(Place::Central)
        )
    }

    /// The environment that makes OVS/OVN tools (`ovs-vsctl`, `ovs-appctl -t`, `ovn-nbctl`, ...) and
    /// kube clients find a place's daemons without further flags.
    pub fn env_for(&self, place: Place) -> Vec<(String, String)> {
        let dir = self.place_dir(place).display().to_string();
        vec![
            ("OVS_RUNDIR".into(), dir.clone()),
            ("OVN_RUNDIR".into(), dir.clone()),
            ("OVS_DBDIR".into(), dir),
            ("OVS_LOGDIR".into(), self.logs_dir().display().to_string()),
            ("OVN_NB_DB".into(), self.nb_remote()),
            ("OVN_SB_DB".into(), self.sb_remote()),
            (
                "KUBECONFIG".into(),
                self.kubeconfig_lab().display().to_string(),
            ),
        ]
    }

    /// The name of the kubeconfig cluster/context/user entries for this lab.
    pub fn kube_context(&self) -> String {
        format!("rovn-lab-{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lb_pool_collides_with_no_lab_address() {
        let pool: ipnet::Ipv4Net = LB_CIDR.parse().unwrap();
        let underlay = ipnet::Ipv4Net::new(CENTRAL_IP, UNDERLAY_PREFIX_LEN).unwrap();
        assert!(underlay.contains(&pool), "announced on the underlay");
        let highest_node = u32::from(Ipv4Addr::new(172, 30, 0, 10)) + u32::from(MAX_NODES);
        assert!(u32::from(pool.network()) > highest_node);
        for taken in [CENTRAL_IP, OUTSIDE_IP] {
            assert!(!pool.contains(&taken), "{taken}");
        }
    }

    fn names(s: &str) -> LabNames {
        LabNames::new(s.parse().unwrap())
    }

    #[test]
    fn lab_names_accept_short_lowercase_alnum() {
        for ok in ["a", "dev", "t0", "abcdefgh", "12345678"] {
            assert!(ok.parse::<LabName>().is_ok(), "{ok} should be valid");
        }
    }

    #[test]
    fn lab_names_reject_everything_else() {
        for bad in [
            "",
            "abcdefghi",
            "Dev",
            "a-b",
            "a_b",
            "a b",
            "é",
            "a/b",
            "..",
            "x\n",
        ] {
            let err = bad.parse::<LabName>().unwrap_err();
            assert!(
                matches!(err, LabError::InvalidName { .. }),
                "{bad:?} gave {err}"
            );
        }
    }

    #[test]
    fn namespaces_follow_the_convention() {
        let n = names("dev");
        assert_eq!(n.netns(Place::Central), "rl-dev-central");
        assert_eq!(n.netns(Place::Node(2)), "rl-dev-node2");
        assert_eq!(n.netns(Place::Outside), "rl-dev-outside");
        assert_eq!(n.netns_prefix(), "rl-dev-");
    }

    #[test]
    fn pod_netns_uses_first_twelve_hex_digits_of_the_uid() {
        let n = names("dev");
        assert_eq!(
            n.pod_netns("3F2504E0-4F89-11D3-9A0C-0305E82C3301"),
            "rl-dev-p3f2504e04f89"
        );
    }

    #[test]
    fn prefixes_of_different_labs_never_overlap() {
        let a = names("ab").netns_prefix();
        let b = names("abc").netns(Place::Central);
        assert!(!b.starts_with(&a));
    }

    #[test]
    fn paths_live_under_the_state_dir() {
        let n = names("dev");
        assert_eq!(n.state_dir(), Path::new("/run/rovn-lab/dev"));
        assert_eq!(n.nb_sock(), Path::new("/run/rovn-lab/dev/central/nb.sock"));
        assert_eq!(n.sb_remote(), "unix:/run/rovn-lab/dev/central/sb.sock");
        assert_eq!(
            n.node_db_sock(1),
            Path::new("/run/rovn-lab/dev/node1/db.sock")
        );
        assert_eq!(
            n.log_file(Place::Node(3), "ovn-controller"),
            Path::new("/run/rovn-lab/dev/logs/node3-ovn-controller.log")
        );
        assert_eq!(n.kubeconfig(), Path::new("/run/rovn-lab/dev/kubeconfig"));
        assert_eq!(
            n.kubeconfig_lab(),
            Path::new("/run/rovn-lab/dev/kubeconfig-lab")
        );
    }

    #[test]
    fn underlay_addresses_follow_the_convention() {
        assert_eq!(Place::Central.underlay_ip(), Ipv4Addr::new(172, 30, 0, 1));
        assert_eq!(Place::Node(1).underlay_ip(), Ipv4Addr::new(172, 30, 0, 11));
        assert_eq!(Place::Node(3).underlay_ip(), Ipv4Addr::new(172, 30, 0, 13));
        assert_eq!(Place::Outside.underlay_ip(), Ipv4Addr::new(172, 30, 0, 254));
        assert_eq!(names("x").sb_tcp_remote(), "tcp:172.30.0.1:6642");
        assert_eq!(names("x").kube_lab_listen(), "rl-x-central@172.30.0.1:6443");
    }

    #[test]
    fn rovn_paths_follow_the_contract() {
        let n = names("dev");
        assert_eq!(
            n.controller_log(),
            Path::new("/run/rovn-lab/dev/logs/rovn-controller.log")
        );
        assert_eq!(
            n.agent_log(2),
            Path::new("/run/rovn-lab/dev/logs/rovn-node-node2.log")
        );
        assert_eq!(
            n.cni_socket(1),
            Path::new("/run/rovn-lab/dev/node1/cni.sock")
        );
        assert_eq!(
            n.cni_bin_dir(1),
            Path::new("/run/rovn-lab/dev/node1/cni/bin")
        );
        assert_eq!(n.controller_listen().to_string(), "172.30.0.1:10660");
        assert_eq!(n.agent_listen(3).to_string(), "172.30.0.13:10665");
    }

    #[test]
    fn env_points_tools_at_the_place_dir() {
        let env = names("dev").env_for(Place::Node(1));
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("OVS_RUNDIR"), Some("/run/rovn-lab/dev/node1"));
        assert_eq!(get("OVN_RUNDIR"), Some("/run/rovn-lab/dev/node1"));
        assert_eq!(
            get("OVN_SB_DB"),
            Some("unix:/run/rovn-lab/dev/central/sb.sock")
        );
    }

    #[test]
    fn places_parse_from_their_labels() {
        for p in [
            Place::Central,
            Place::Outside,
            Place::Node(1),
            Place::Node(12),
        ] {
            assert_eq!(p.label().parse::<Place>().unwrap(), p);
        }
        for bad in ["node0", "node", "node01", "nodex", "node201", "root", ""] {
            assert!(bad.parse::<Place>().is_err(), "{bad:?} should be rejected");
        }
    }
}
