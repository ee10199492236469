//! The lab's own PKI (`rovn-lab up --tls`), made with `ovs-pki` in the lab's state directory.
//! While it exists, NB and SB listen on the underlay only with `ssl:` (their unix sockets stay,
//! for ovn-northd and the tools in the root namespace), and the controller, every node's
//! ovn-controller and rovn-node connect with certificates it signed: the PKI directory is the
//! lab's record that it runs TLS, as `lab.json` is of the rest.

use std::ffi::OsString;

use rovn_testkit::ovsdb::{Pki, Tls};

use super::error::LabError;
use super::names::{CENTRAL_IP, LabNames, NB_TCP_PORT, Place, SB_TCP_PORT};

/// Who the NB and SB servers' certificate is issued to.
pub const SERVERS: &str = "ovsdb";
/// Who the controller's certificate is issued to.
pub const CONTROLLER: &str = "controller";

fn failed(what: &str, error: anyhow::Error) -> LabError {
    LabError::Command {
        what: what.into(),
        command: "ovs-pki".into(),
        status: "failed".into(),
        stderr: format!("{error:#}"),
    }
}

/// Makes the PKI and the certificates of the servers, the controller and every node.
pub fn create(names: &LabNames, nodes: &[u8]) -> Result<(), LabError> {
    let pki = Pki::create_in(&names.pki_dir()).map_err(|e| failed("creating the lab's PKI", e))?;
    let holders = [SERVERS.to_string(), CONTROLLER.to_string()]
        .into_iter()
        .chain(nodes.iter().map(|&i| Place::Node(i).label()));
    for holder in holders {
        pki.issue(&holder)
            .map_err(|e| failed(&format!("issuing {holder}'s certificate"), e))?;
    }
    Ok(())
}

/// The files of `holder`, when the lab runs TLS.
pub fn files(names: &LabNames, holder: &str) -> Option<Tls> {
    let pki = Pki::open(&names.pki_dir());
    pki.ca_cert().is_file().then(|| pki.files(holder))
}

/// Whether the lab runs TLS.
pub fn enabled(names: &LabNames) -> bool {
    files(names, SERVERS).is_some()
}

/// The SB remote ovn-controllers and agents use over the underlay.
pub fn sb_remote(names: &LabNames) -> String {
    if enabled(names) {
        format!("ssl:{CENTRAL_IP}:{SB_TCP_PORT}")
    } else {
        names.sb_tcp_remote()
    }
}

/// The NB remote the controller uses: the underlay's `ssl:` listener with TLS, else the unix
/// socket.
pub fn controller_nb_remote(names: &LabNames) -> String {
    if enabled(names) {
        format!("ssl:{CENTRAL_IP}:{NB_TCP_PORT}")
    } else {
        names.nb_remote()
    }
}

/// `--private-key=… --certificate=… --ca-cert=…`, as OVS, OVN and rovn take them.
pub fn args(tls: &Tls) -> Vec<OsString> {
    vec![
        format!("--private-key={}", tls.private_key.display()).into(),
        format!("--certificate={}", tls.certificate.display()).into(),
        format!("--ca-cert={}", tls.ca_cert.display()).into(),
    ]
}
