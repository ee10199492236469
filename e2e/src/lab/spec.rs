//! What a lab is asked to be ([`LabSpec`]) and what it offers once up ([`LabInfo`], also
//! stored as `lab.json` so `status` and `down --stale` can read it).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use super::daemon::ProcessRef;
use super::names::{LabName, LabNames, Place};
use super::node::Encap;

/// What to build.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// The lab's name; scopes every namespace, file and process.
    pub name: LabName,
    /// Number of nodes (chassis).
    pub nodes: u8,
    /// Tunnel encapsulation between chassis.
    pub encap: Encap,
    /// Whether to start the API server, kubelets and scheduler.
    pub kube: bool,
    /// Whether to run rovn itself: `rovn-controller` in the central namespace and one
    /// `rovn-node` per node. Implies `kube`.
    pub rovn: bool,
    /// Whether to start a test kubelet per node (only with `kube`). Without kubelets the lab
    /// registers each Node object itself, so a benchmark can drive CNI directly.
    pub kubelets: bool,
    /// Where the project's binaries are; `None` means [`super::bins::default_bin_dir`].
    pub bin_dir: Option<PathBuf>,
    /// Deadline for the whole `up`.
    pub timeout: Duration,
    /// Leave a failed lab in place for inspection instead of tearing it down.
    pub keep_on_failure: bool,
    /// The process whose life bounds the lab's (a test); once it is gone the lab is stale and
    /// `rovn-lab down --stale` removes it. `None` for labs meant to outlive their creator.
    pub owner: Option<ProcessRef>,
    /// Whether NB and SB listen on the underlay only with `ssl:`, and everyone connects with
    /// certificates of the lab's own PKI ([`super::tls`]).
    pub tls: bool,
}

impl LabSpec {
    /// A spec with the defaults: Geneve, no kube, no rovn, kubelets when kube runs, 60 s
    /// timeout, clean up on failure.
    pub fn new(name: LabName, nodes: u8) -> Self {
        LabSpec {
            name,
            nodes,
            encap: Encap::Geneve,
            kube: false,
            rovn: false,
            kubelets: true,
            bin_dir: None,
            timeout: Duration::from_secs(60),
            keep_on_failure: false,
            owner: None,
            tls: false,
        }
    }

    /// A spec for a lab running rovn on the Kubernetes stand-ins (kubelets included).
    pub fn with_rovn(name: LabName, nodes: u8) -> Self {
        LabSpec {
            kube: true,
            rovn: true,
            ..LabSpec::new(name, nodes)
        }
    }

    /// Whether the Kubernetes stand-ins run (asked for, or implied by rovn).
    pub fn runs_kube(&self) -> bool {
        self.kube || self.rovn
    }
}

/// One node as the outside world sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    /// `nodeI`, also its chassis name and Kubernetes Node name.
    pub name: String,
    /// Its underlay address (on `br-phy`).
    pub ip: Ipv4Addr,
    /// Its network namespace.
    pub netns: String,
}

/// What a running lab offers; also stored as `lab.json` for `status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LabInfo {
    /// The lab's name.
    pub name: String,
    /// Tunnel encapsulation.
    pub encap: Encap,
    /// The nodes.
    pub nodes: Vec<NodeInfo>,
    /// NB database remote for the root namespace.
    pub nb: String,
    /// SB database remote for the root namespace.
    pub sb: String,
    /// Root-namespace kubeconfig, when kube runs.
    pub kubeconfig: Option<PathBuf>,
    /// Root-namespace API server address, when kube runs.
    pub api: Option<String>,
    /// The process whose life bounds the lab's, if any.
    #[serde(default)]
    pub owner: Option<ProcessRef>,
    /// Whether rovn-controller and rovn-node run in the lab.
    #[serde(default)]
    pub rovn: bool,
    /// Whether test kubelets run on the nodes.
    #[serde(default)]
    pub kubelets: bool,
    /// Whether the lab's OVSDB traffic over the underlay is TLS.
    #[serde(default)]
    pub tls: bool,
}

impl LabInfo {
    /// What a lab with these nodes will offer, before any of it runs (recorded first so that
    /// `status` can describe a lab that is still coming up).
    pub fn planned(names: &LabNames, encap: Encap, indexes: &[u8]) -> LabInfo {
        LabInfo {
            name: names.name().to_string(),
            encap,
            nodes: indexes
                .iter()
                .map(|&i| NodeInfo {
                    name: Place::Node(i).label(),
                    ip: Place::Node(i).underlay_ip(),
                    netns: names.netns(Place::Node(i)),
                })
                .collect(),
            nb: names.nb_remote(),
            sb: names.sb_remote(),
            kubeconfig: None,
            api: None,
            owner: None,
            rovn: false,
            kubelets: false,
            tls: false,
        }
    }

    /// The `key=value` lines `rovn-lab up` prints, one fact per line for scripts to grep.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(k) = &self.kubeconfig {
            lines.push(format!("kubeconfig={}", k.display()));
        }
        lines.push(format!("nb={}", self.nb));
        lines.push(format!("sb={}", self.sb));
        for n in &self.nodes {
            lines.push(format!("node={} ip={} netns={}", n.name, n.ip, n.netns));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines_are_key_value_facts() {
        let names = LabNames::new("dev".parse().unwrap());
        let mut info = LabInfo::planned(&names, Encap::Geneve, &[1, 2]);
        assert_eq!(
            info.summary_lines(),
            [
                "nb=unix:/run/rovn-lab/dev/central/nb.sock",
                "sb=unix:/run/rovn-lab/dev/central/sb.sock",
                "node=node1 ip=172.30.0.11 netns=rl-dev-node1",
                "node=node2 ip=172.30.0.12 netns=rl-dev-node2",
            ]
        );
        info.kubeconfig = Some(names.kubeconfig());
        assert_eq!(
            info.summary_lines()[0],
            "kubeconfig=/run/rovn-lab/dev/kubeconfig"
        );
    }

    #[test]
    fn lab_info_round_trips_through_json() {
        let names = LabNames::new("dev".parse().unwrap());
        let info = LabInfo::planned(&names, Encap::Vxlan, &[1]);
        let text = serde_json::to_string(&info).unwrap();
        assert!(text.contains("\"encap\":\"vxlan\""), "{text}");
        assert_eq!(serde_json::from_str::<LabInfo>(&text).unwrap(), info);
    }
}
