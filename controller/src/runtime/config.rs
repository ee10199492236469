//! What one controller process is told to do: the parsed command line, free of clap so tests
//! can build it directly and run the controller in-process.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;

/// Everything [`super::run`] needs besides the shutdown signal.
#[derive(Clone)]
pub struct RunConfig {
    /// NB remotes (`unix:`, `tcp:`, `ssl:`), tried in turn.
    pub nb_remotes: Vec<String>,
    /// The key, certificate and CA of `ssl:` NB remotes.
    pub nb_tls: Option<rovn_ovsdb::TlsConfig>,
    /// Where the Kubernetes API is.
    pub kube: KubeSource,
    /// `ovn-default`'s CIDR when the controller creates it.
    pub default_cidr: Ipv4Net,
    /// `ovn-default`'s gateway (first host when absent).
    pub default_gateway: Option<Ipv4Addr>,
    /// `ovn-default`'s `excludeIps`.
    pub default_exclude_ips: Vec<String>,
    /// `ovn-default`'s `natOutgoing` (true unless told otherwise: pods reach the outside as
    /// their node).
    pub default_nat_outgoing: bool,
    /// The join network between nodes and the cluster router.
    pub join_cidr: Ipv4Net,
    /// The Service range, which no Subnet may overlap.
    pub service_cidr: Ipv4Net,
    /// The HTTP listener for `/metrics`, `/healthz`, `/readyz`; `None` for none (tests).
    pub listen: Option<SocketAddr>,
    /// Leader election; `None` runs without it.
    pub election: Option<ElectionConfig>,
    /// Interval of the full resync round.
    pub resync_interval: Duration,
    /// Bound on operations per NB transaction.
    pub max_ops_per_transaction: usize,
    /// Allocation patches in flight at once.
    pub max_concurrent_patches: usize,
}

/// How the Kubernetes client is made.
#[derive(Clone)]
pub enum KubeSource {
    /// `kube::Config::infer()` (in-cluster or `~/.kube/config`).
    Infer,
    /// A kubeconfig file.
    Kubeconfig(PathBuf),
    /// A client the caller built (in-process tests).
    Client(kube::Client),
}

/// The Lease two replicas compete for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionConfig {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's holder identity.
    pub identity: String,
    /// How long a Lease not renewed stays held (client-go's default is 15 s).
    pub lease_duration: Duration,
}

impl RunConfig {
    /// A configuration with the contract's defaults for everything but the NB remotes and the
    /// Kubernetes client.
    pub fn new(nb_remotes: Vec<String>, kube: KubeSource) -> RunConfig {
        RunConfig {
            nb_remotes,
            nb_tls: None,
            kube,
            default_cidr: Ipv4Net::new(Ipv4Addr::new(10, 16, 0, 0), 16).unwrap_or_default(),
            default_gateway: None,
            default_exclude_ips: Vec::new(),
            default_nat_outgoing: true,
            join_cidr: Ipv4Net::new(Ipv4Addr::new(100, 64, 0, 0), 16).unwrap_or_default(),
            service_cidr: Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 12).unwrap_or_default(),
            listen: None,
            election: None,
            resync_interval: Duration::from_secs(300),
            max_ops_per_transaction: 2000,
            max_concurrent_patches: 64,
        }
    }
}
