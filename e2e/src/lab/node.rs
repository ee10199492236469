//! A lab node: a namespace with its own ovsdb-server, ovs-vswitchd (userspace `netdev`
//! datapath) and ovn-controller, attached to the underlay through `br-phy`.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use super::cmd;
use super::daemon::{self, Daemon, DaemonSpec};
use super::error::LabError;
use super::names::{
    LabNames, NODE_INT_BRIDGE, NODE_PHYS_BRIDGE, NODE_UNDERLAY_IF, Place, UNDERLAY_BRIDGE,
    UNDERLAY_PREFIX_LEN,
};
use super::netns;
use super::ovs;
use super::poll;

const VSWITCH_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// The tunnel encapsulation between chassis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encap {
    /// OVN's default.
    #[default]
    Geneve,
    /// The alternative rovn supports.
    Vxlan,
}

impl fmt::Display for Encap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encap::Geneve => "geneve",
            Encap::Vxlan => "vxlan",
        })
    }
}

impl FromStr for Encap {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "geneve" => Ok(Encap::Geneve),
            "vxlan" => Ok(Encap::Vxlan),
            other => Err(LabError::InvalidSpec(format!(
                "encap {other:?}: expected geneve or vxlan"
            ))),
        }
    }
}

/// The running daemons of one node.
#[derive(Debug)]
pub struct Node {
    /// 1-based node number.
    pub index: u8,
    /// The node's Open_vSwitch database server.
    pub ovsdb: Daemon,
    /// The switch.
    pub vswitchd: Daemon,
}

/// Creates the node's namespace (forwarding on, as on a real node) and its underlay veth (`eth0`
/// in the node, `nodeI` on `br-lab`).
pub fn create_underlay(names: &LabNames, index: u8) -> Result<(), LabError> {
    let place = Place::Node(index);
    let ns = names.netns(place);
    let central = names.netns(Place::Central);
    let port = place.underlay_port();
    netns::add(&ns)?;
    netns::add_veth(&central, &port, &ns, NODE_UNDERLAY_IF)?;
    netns::batch(
        &central,
        &[
            format!("link set {port} master {UNDERLAY_BRIDGE}"),
            format!("link set {port} up"),
        ],
    )?;
    netns::batch(&ns, &[format!("link set {NODE_UNDERLAY_IF} up")])?;
    netns::enable_forwarding(&ns)?;
    // Traffic from the central namespace towards the node crosses the OVS userspace datapath,
    // which does not finish partial checksums.
    netns::tx_checksum_off(&central, &port)
}

/// Starts the node's switch: database, configuration, vswitchd, then the underlay address on
/// `br-phy` once vswitchd has made it.
pub fn start_switch(
    names: &LabNames,
    index: u8,
    encap: Encap,
    deadline: Instant,
) -> Result<Node, LabError> {
    let place = Place::Node(index);
    let started = Instant::now();
    let step = |what: &str| {
        tracing::debug!(
            node = index,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "{what}"
        )
    };
    let db_file = names.node_db_file(index);
    cmd::run(
        &format!("create the Open_vSwitch database of {}", place.label()),
        "ovsdb-tool",
        [
            "create".as_ref(),
            db_file.as_os_str(),
            VSWITCH_SCHEMA.as_ref(),
        ],
    )?;
    let db_sock = names.node_db_sock(index);
    let ovsdb = daemon::start(&ovs::daemon_spec(
        names,
        place,
        "ovsdb-server",
        vec![
            format!("--remote=punix:{}", db_sock.display()).into(),
            db_file.into(),
        ],
    ))?;
    ovs::wait_for_socket(&ovsdb, &db_sock, deadline)?;
    step("ovsdb-server serving");
    cmd::run(
        &format!("configure Open_vSwitch of {}", place.label()),
        "ovs-vsctl",
        switch_config_args(names, index, encap),
    )?;
    let vswitchd = daemon::start(&ovs::daemon_spec(
        names,
        place,
        "ovs-vswitchd",
        vec![names.node_db_remote(index).into()],
    ))?;
    step("configured; vswitchd started");
    wait_for_bridges(names, index, &vswitchd, deadline)?;
    step("bridges made");
    let ip = place.underlay_ip();
    netns::batch(
        &names.netns(place),
        &[
            format!("addr add {ip}/{UNDERLAY_PREFIX_LEN} dev {NODE_PHYS_BRIDGE}"),
            format!("link set {NODE_PHYS_BRIDGE} up"),
        ],
    )?;
    Ok(Node {
        index,
        ovsdb,
        vswitchd,
    })
}

/// The node's ovn-controller: its command line, pidfile and log.
pub fn controller_spec(names: &LabNames, index: u8) -> DaemonSpec {
    ovs::daemon_spec(
        names,
        Place::Node(index),
        "ovn-controller",
        vec![names.node_db_remote(index).into()],
    )
}

/// Starts the node's ovn-controller; call once the SB is reachable and the bridges exist, so it
/// connects on its first try instead of after a reconnect back-off.
pub fn start_controller(names: &LabNames, index: u8) -> Result<Daemon, LabError> {
    daemon::start(&controller_spec(names, index))
}

/// Waits until the node's ovn-controller `daemon` says it is connected to SB
/// (`connection-status`), failing early (with its log) if it exits.
pub fn wait_controller_connected(
    names: &LabNames,
    index: u8,
    daemon: &Daemon,
    deadline: Instant,
) -> Result<(), LabError> {
    let ctl = names
        .place_dir(Place::Node(index))
        .join(format!("ovn-controller.{}.ctl", daemon.pid));
    let target = format!("--target={}", ctl.display());
    let connected = poll::until(deadline, poll::INTERVAL, || {
        daemon.ensure_alive()?;
        let status = cmd::run(
            &format!(
                "ovn-controller connection-status on {}",
                Place::Node(index).label()
            ),
            "ovs-appctl",
            [target.as_str(), "connection-status"],
        );
        // Before the control socket exists the call fails: look again.
        Ok::<_, LabError>(status.is_ok_and(|s| s.trim() == "connected").then_some(()))
    })?;
    connected.ok_or_else(|| LabError::Timeout {
        what: format!("{} to connect to SB", daemon.label),
        logs: vec![daemon.log_excerpt()],
    })
}

/// The remote underlay IPs of the node's tunnel ports of type `encap` (made by ovn-controller
/// for every other chassis it knows).
pub fn tunnel_remotes(names: &LabNames, index: u8, encap: Encap) -> Result<Vec<String>, LabError> {
    let out = cmd::run(
        &format!("list tunnel ports of {}", Place::Node(index).label()),
        "ovs-vsctl",
        [
            format!("--db={}", names.node_db_remote(index)),
            "--timeout=5".into(),
            "--bare".into(),
            "--columns=options".into(),
            "find".into(),
            "Interface".into(),
            format!("type={encap}"),
        ],
    )?;
    Ok(parse_remote_ips(&out))
}

/// Fails unless every one of the `nodes` nodes has `encap` tunnels to each other node and no
/// tunnel of the other type, so a test proves which encapsulation its traffic crossed.
pub fn ensure_only_tunnels(names: &LabNames, nodes: u8, encap: Encap) -> Result<(), LabError> {
    let other = match encap {
        Encap::Geneve => Encap::Vxlan,
        Encap::Vxlan => Encap::Geneve,
    };
    for i in 1..=nodes {
        let wanted = tunnel_remotes(names, i, encap)?;
        let unwanted = tunnel_remotes(names, i, other)?;
        if wanted.len() != usize::from(nodes) - 1 || !unwanted.is_empty() {
            return Err(LabError::Protocol {
                what: format!("{encap} tunnels of {}", Place::Node(i).label()),
                detail: format!("{encap} tunnels to {wanted:?}, {other} tunnels to {unwanted:?}"),
            });
        }
    }
    Ok(())
}

/// The `remote_ip` values in `ovs-vsctl --bare` output of Interface options.
pub fn parse_remote_ips(bare_options: &str) -> Vec<String> {
    bare_options
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter_map(|kv| kv.strip_prefix("remote_ip="))
        .map(|v| v.trim_matches('"').to_string())
        .collect()
}

/// One `ovs-vsctl` transaction with everything OVN needs from the node's Open_vSwitch row.
pub fn switch_config_args(names: &LabNames, index: u8, encap: Encap) -> Vec<String> {
    let place = Place::Node(index);
    let system_id = place.label();
    let ip = place.underlay_ip();
    let sb = super::tls::sb_remote(names);
    let mut args: Vec<String> = [
        format!("--db={}", names.node_db_remote(index)),
        // Without a timeout, ovs-vsctl retries a vanished database forever.
        "--timeout=10".into(),
        "--no-wait".into(),
        "--".into(),
        "init".into(),
        "--".into(),
        "set".into(),
        "Open_vSwitch".into(),
        ".".into(),
        format!("external_ids:system-id={system_id}"),
        format!("external_ids:hostname={system_id}"),
        format!("external_ids:ovn-remote={sb}"),
        format!("external_ids:ovn-encap-type={encap}"),
        format!("external_ids:ovn-encap-ip={ip}"),
        "external_ids:ovn-bridge-datapath-type=netdev".into(),
        "--".into(),
        "add-br".into(),
        NODE_INT_BRIDGE.into(),
        "--".into(),
        "set".into(),
        "Bridge".into(),
        NODE_INT_BRIDGE.into(),
        "datapath_type=netdev".into(),
        "fail-mode=secure".into(),
        "other-config:disable-in-band=true".into(),
        "--".into(),
        "add-br".into(),
        NODE_PHYS_BRIDGE.into(),
        "--".into(),
        "set".into(),
        "Bridge".into(),
        NODE_PHYS_BRIDGE.into(),
        "datapath_type=netdev".into(),
        "--".into(),
        "add-port".into(),
        NODE_PHYS_BRIDGE.into(),
        NODE_UNDERLAY_IF.into(),
    ]
    .into();
    if let Some(files) = super::tls::files(names, &system_id) {
        args.extend([
            "--".into(),
            "set-ssl".into(),
            files.private_key.display().to_string(),
            files.certificate.display().to_string(),
            files.ca_cert.display().to_string(),
        ]);
    }
    args
}

fn wait_for_bridges(
    names: &LabNames,
    index: u8,
    vswitchd: &Daemon,
    deadline: Instant,
) -> Result<(), LabError> {
    let ns = names.netns(Place::Node(index));
    let mgmt = names.node_br_int_mgmt(index);
    let ready = poll::until(deadline, poll::INTERVAL, || {
        if mgmt.exists() && netns::link_exists(&ns, NODE_PHYS_BRIDGE)? {
            return Ok(Some(()));
        }
        vswitchd.ensure_alive().map(|_| None)
    })?;
    ready.ok_or_else(|| LabError::Timeout {
        what: format!(
            "{} to create {NODE_INT_BRIDGE} and {NODE_PHYS_BRIDGE}",
            vswitchd.label
        ),
        logs: vec![vswitchd.log_excerpt()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_config_names_the_chassis_and_its_tunnel_endpoint() {
        let names = LabNames::new("dev".parse().unwrap());
        let args = switch_config_args(&names, 2, Encap::Vxlan).join(" ");
        assert!(args.contains("--db=unix:/run/rovn-lab/dev/node2/db.sock"));
        assert!(args.contains("external_ids:system-id=node2"));
        assert!(args.contains("external_ids:ovn-remote=tcp:172.30.0.1:6642"));
        assert!(args.contains("external_ids:ovn-encap-type=vxlan"));
        assert!(args.contains("external_ids:ovn-encap-ip=172.30.0.12"));
        assert!(args.contains("external_ids:ovn-bridge-datapath-type=netdev"));
        assert!(args.contains("add-port br-phy eth0"));
    }

    #[test]
    fn remote_ips_come_from_tunnel_options() {
        let out = "csum=\"true\" key=flow remote_ip=\"172.30.0.12\"\n\ncsum=\"true\" key=flow remote_ip=\"172.30.0.13\"\n";
        assert_eq!(parse_remote_ips(out), ["172.30.0.12", "172.30.0.13"]);
        assert!(parse_remote_ips("").is_empty());
    }

    #[test]
    fn encap_parses_and_prints() {
        assert_eq!("geneve".parse::<Encap>().unwrap(), Encap::Geneve);
        assert_eq!("vxlan".parse::<Encap>().unwrap(), Encap::Vxlan);
        assert!("gre".parse::<Encap>().is_err());
        assert_eq!(Encap::Vxlan.to_string(), "vxlan");
    }
}
