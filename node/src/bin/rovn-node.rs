//! `rovn-node`: the per-node agent. Flags and logging here; everything else in
//! `rovn_node::agent`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ipnet::Ipv4Net;
use rovn_api::parse_duration;
use rovn_node::agent::{self, AgentConfig, DatapathType, EncapType};

#[derive(Parser, Debug)]
#[command(
    name = "rovn-node",
    about = "rovn's node agent: OVS/OVN chassis setup and the CNI server"
)]
struct Args {
    /// The Kubernetes Node this agent serves.
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// Kubeconfig file (default: in-cluster or ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The local Open_vSwitch database.
    #[arg(
        long,
        env = "ROVN_OVS_DB",
        default_value = "unix:/run/openvswitch/db.sock"
    )]
    ovs_db: String,
    /// The OVN Southbound remote written to external_ids:ovn-remote.
    #[arg(long, env = "ROVN_OVN_REMOTE")]
    ovn_remote: String,
    /// Private key (PEM) of ovn-controller's `ssl:` Southbound session (written to the local
    /// database's SSL row, which ovn-controller reads).
    #[arg(long, env = "ROVN_OVSDB_PRIVATE_KEY")]
    private_key: Option<PathBuf>,
    /// Certificate (PEM) of that session.
    #[arg(long, env = "ROVN_OVSDB_CERTIFICATE")]
    certificate: Option<PathBuf>,
    /// CA certificate (PEM) the Southbound server's certificate must chain to.
    #[arg(long, env = "ROVN_OVSDB_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Tunnel encapsulation: geneve or vxlan.
    #[arg(long, env = "ROVN_ENCAP_TYPE", default_value = "geneve")]
    encap_type: EncapType,
    /// Tunnel endpoint (default: the Node's InternalIP).
    #[arg(long, env = "ROVN_ENCAP_IP")]
    encap_ip: Option<Ipv4Addr>,
    /// br-int's datapath: system or netdev.
    #[arg(long, env = "ROVN_DATAPATH_TYPE", default_value = "system")]
    datapath_type: DatapathType,
    /// The unix socket rovn-cni talks to.
    #[arg(long, env = "ROVN_CNI_SOCKET", default_value = "/run/rovn/cni.sock")]
    cni_socket: PathBuf,
    /// Where the conflist is written.
    #[arg(long, env = "ROVN_CNI_CONF_DIR", default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// The conflist's file name.
    #[arg(long, env = "ROVN_CNI_CONF_NAME", default_value = "10-rovn.conflist")]
    cni_conf_name: String,
    /// Where rovn-cni is installed.
    #[arg(long, env = "ROVN_CNI_BIN_DIR", default_value = "/opt/cni/bin")]
    cni_bin_dir: PathBuf,
    /// The Service CIDR, routed via the join gateway.
    #[arg(long, env = "ROVN_SERVICE_CIDR", default_value = "10.96.0.0/12")]
    service_cidr: Ipv4Net,
    /// Pod MTU (default: the underlay MTU minus the tunnel overhead).
    #[arg(long, env = "ROVN_MTU")]
    mtu: Option<u32>,
    /// Address of /metrics and /healthz.
    #[arg(long, env = "ROVN_LISTEN", default_value = "0.0.0.0:10665")]
    listen: SocketAddr,
    /// How long ADD waits for the controller's allocation (e.g. 60s, 500ms).
    #[arg(long, env = "ROVN_ALLOCATION_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    allocation_timeout: Duration,
    /// How long ADD waits for ovn-controller to install the port.
    #[arg(long, env = "ROVN_OVN_INSTALLED_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    ovn_installed_timeout: Duration,
    /// Own the node's nftables table `rovn`: natOutgoing masquerade, NodePorts, externalIPs,
    /// LoadBalancer ingress IPs and hostPorts (false leaves the node's nftables alone).
    #[arg(long, env = "ROVN_GATEWAY", default_value_t = true, action = clap::ArgAction::Set)]
    gateway: bool,
    /// The controller's LoadBalancer pool (its --lb-cidr): this node announces (answers ARP
    /// for) the addresses of it the controller assigns to it. Absent: none.
    #[arg(long, env = "ROVN_LB_CIDR")]
    lb_cidr: Option<Ipv4Net>,
    /// Log format: text or json (filter with RUST_LOG).
    #[arg(long, env = "ROVN_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing(&args.log_format);
    let ovn_tls =
        rovn_ovsdb::TlsConfig::from_files(args.private_key, args.certificate, args.ca_cert)?;
    if ovn_tls.is_none() && args.ovn_remote.trim_start().starts_with("ssl:") {
        anyhow::bail!(
            "--ovn-remote {} is ssl: give --private-key, --certificate and --ca-cert",
            args.ovn_remote
        );
    }
    let config = AgentConfig {
        node_name: args.node_name,
        kubeconfig: args.kubeconfig,
        ovs_db: args.ovs_db,
        ovn_remote: args.ovn_remote,
        ovn_tls,
        encap_type: args.encap_type,
        encap_ip: args.encap_ip,
        datapath_type: args.datapath_type,
        cni_socket: args.cni_socket,
        cni_conf_dir: args.cni_conf_dir,
        cni_conf_name: args.cni_conf_name,
        cni_bin_dir: args.cni_bin_dir,
        service_cidr: args.service_cidr,
        mtu: args.mtu,
        listen: args.listen,
        allocation_timeout: args.allocation_timeout,
        ovn_installed_timeout: args.ovn_installed_timeout,
        gateway: args.gateway,
        lb_cidr: args.lb_cidr,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(agent::run(config)).map_err(|e| {
        tracing::error!(error = format!("{e:#}"), "rovn-node failed");
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_command_line_parses() {
        let args = Args::try_parse_from([
            "rovn-node",
            "--node-name",
            "node1",
            "--ovn-remote",
            "tcp:172.30.0.1:6642",
            "--encap-type",
            "vxlan",
            "--datapath-type",
            "netdev",
            "--mtu",
            "1400",
            "--allocation-timeout",
            "2s",
        ])
        .unwrap();
        assert_eq!(args.encap_type, EncapType::Vxlan);
        assert_eq!(args.datapath_type, DatapathType::Netdev);
        assert_eq!(args.allocation_timeout, Duration::from_secs(2));
        assert!(
            Args::try_parse_from([
                "rovn-node",
                "--node-name",
                "n",
                "--ovn-remote",
                "x",
                "--encap-type",
                "gre"
            ])
            .is_err()
        );
    }
}
