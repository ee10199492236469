//! Central OVN in the lab's central namespace: the underlay bridge, NB and SB ovsdb-servers
//! (unix sockets for the root namespace, TCP on the underlay for nodes) and ovn-northd.

use std::time::Instant;

use super::cmd;
use super::daemon::{self, Daemon};
use super::error::LabError;
use super::names::{
    CENTRAL_IP, LabNames, NB_TCP_PORT, Place, SB_TCP_PORT, UNDERLAY_BRIDGE, UNDERLAY_PREFIX_LEN,
};
use super::netns;
use super::ovs;
use super::tls;

const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
const SB_SCHEMA: &str = "/usr/share/ovn/ovn-sb.ovsschema";

/// The running central daemons.
#[derive(Debug)]
pub struct Central {
    /// Northbound ovsdb-server.
    pub nb: Daemon,
    /// Southbound ovsdb-server.
    pub sb: Daemon,
    /// ovn-northd, translating NB into SB.
    pub northd: Daemon,
}

impl Central {
    /// All central daemons, for liveness checks.
    pub fn daemons(&self) -> [&Daemon; 3] {
        [&self.nb, &self.sb, &self.northd]
    }
}

/// Creates the central namespace and the underlay bridge every other place plugs into.
pub fn create_underlay(names: &LabNames) -> Result<(), LabError> {
    let ns = names.netns(Place::Central);
    netns::add(&ns)?;
    netns::batch(
        &ns,
        &[
            format!("link add {UNDERLAY_BRIDGE} type bridge"),
            format!("addr add {CENTRAL_IP}/{UNDERLAY_PREFIX_LEN} dev {UNDERLAY_BRIDGE}"),
            format!("link set {UNDERLAY_BRIDGE} up"),
        ],
    )
}

/// Creates the databases, starts NB and SB, waits until both serve, then starts ovn-northd
/// (started earlier it would sit out a reconnect back-off).
pub fn start(names: &LabNames, deadline: Instant) -> Result<Central, LabError> {
    let started = Instant::now();
    let step = |what: &str| {
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(elapsed_ms, "central: {what}");
    };
    let nb_file = names.nb_db_file();
    let sb_file = names.sb_db_file();
    cmd::run(
        "create the Northbound database",
        "ovsdb-tool",
        ["create".as_ref(), nb_file.as_os_str(), NB_SCHEMA.as_ref()],
    )?;
    cmd::run(
        "create the Southbound database",
        "ovsdb-tool",
        ["create".as_ref(), sb_file.as_os_str(), SB_SCHEMA.as_ref()],
    )?;
    step("databases created");
    let nb = start_db(names, "ovnnb_db", &names.nb_sock(), NB_TCP_PORT, &nb_file)?;
    let sb = start_db(names, "ovnsb_db", &names.sb_sock(), SB_TCP_PORT, &sb_file)?;
    ovs::wait_for_socket(&nb, &names.nb_sock(), deadline)?;
    ovs::wait_for_socket(&sb, &names.sb_sock(), deadline)?;
    step("NB and SB serving");
    let northd = daemon::start(&ovs::daemon_spec(
        names,
        Place::Central,
        "ovn-northd",
        vec![
            format!("--ovnnb-db={}", names.nb_remote()).into(),
            format!("--ovnsb-db={}", names.sb_remote()).into(),
        ],
    ))?;
    Ok(Central { nb, sb, northd })
}

/// How long the NB server gets to exit on SIGTERM when restarted.
const NB_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Stops the running Northbound ovsdb-server (SIGTERM); its database file stays. Fails if it
/// was not running.
pub fn stop_nb(names: &LabNames) -> Result<(), LabError> {
    let pidfile = names.pidfile(Place::Central, "ovnnb_db");
    if !daemon::stop_pidfile(&pidfile, NB_STOP_GRACE)? {
        return Err(LabError::Protocol {
            what: "stop central/ovnnb_db".into(),
            detail: format!("no running daemon in {}", pidfile.display()),
        });
    }
    Ok(())
}

/// Starts the Northbound ovsdb-server on its existing database file (so its content survives)
/// and waits until it serves; clients (ovn-northd, rovn-controller) reconnect by themselves.
pub fn start_nb(names: &LabNames, deadline: Instant) -> Result<Daemon, LabError> {
    let nb = start_db(
        names,
        "ovnnb_db",
        &names.nb_sock(),
        NB_TCP_PORT,
        &names.nb_db_file(),
    )?;
    ovs::wait_for_socket(&nb, &names.nb_sock(), deadline)?;
    Ok(nb)
}

fn start_db(
    names: &LabNames,
    daemon_name: &str,
    sock: &std::path::Path,
    tcp_port: u16,
    db_file: &std::path::Path,
) -> Result<Daemon, LabError> {
    let ctl = names
        .place_dir(Place::Central)
        .join(format!("{daemon_name}.ctl"));
    let mut spec = ovs::daemon_spec(
        names,
        Place::Central,
        daemon_name,
        vec![
            format!("--remote=punix:{}", sock.display()).into(),
            format!("--unixctl={}", ctl.display()).into(),
        ],
    );
    match tls::files(names, tls::SERVERS) {
        Some(files) => {
            spec.args
                .push(format!("--remote=pssl:{tcp_port}:{CENTRAL_IP}").into());
            spec.args.extend(tls::args(&files));
        }
        None => spec
            .args
            .push(format!("--remote=ptcp:{tcp_port}:{CENTRAL_IP}").into()),
    }
    spec.args.push(db_file.into());
    spec.program = "ovsdb-server".into();
    daemon::start(&spec)
}
