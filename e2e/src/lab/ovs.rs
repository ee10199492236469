//! What the OVS and OVN daemons of a lab have in common: how they are started (own pidfile,
//! own log file, run dirs of their place, inside their place's namespace) and how the lab
//! waits for their sockets.

use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

use super::daemon::{Daemon, DaemonSpec};
use super::error::LabError;
use super::names::{LabNames, Place};
use super::poll;

/// The spec of OVS/OVN daemon `program` of `place`, with the lab's pidfile and log conventions
/// and `args` appended. The pidfile is named after the program so `ovs-appctl -t` finds it.
pub fn daemon_spec(
    names: &LabNames,
    place: Place,
    program: &str,
    args: Vec<OsString>,
) -> DaemonSpec {
    let pidfile = names.pidfile(place, program);
    let log_file = names.log_file(place, program);
    let mut all_args: Vec<OsString> = vec![
        // First, so the log file gets every message once; stderr (the same file) then only
        // carries what the daemon says before logging is set up.
        "-vconsole:off".into(),
        "--no-chdir".into(),
        format!("--pidfile={}", pidfile.display()).into(),
        format!("--log-file={}", log_file.display()).into(),
    ];
    all_args.extend(args);
    DaemonSpec {
        label: format!("{}/{program}", place.label()),
        netns: Some(names.netns(place)),
        program: program.into(),
        args: all_args,
        env: names
            .env_for(place)
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect(),
        pidfile,
        log_file,
        writes_own_pidfile: true,
    }
}

/// Waits until `daemon` accepts connections on unix socket `path`, failing early (with its
/// log) if it exits.
pub fn wait_for_socket(daemon: &Daemon, path: &Path, deadline: Instant) -> Result<(), LabError> {
    let ready = poll::until(deadline, poll::INTERVAL, || {
        if UnixStream::connect(path).is_ok() {
            return Ok(Some(()));
        }
        daemon.ensure_alive().map(|_| None)
    })?;
    ready.ok_or_else(|| LabError::Timeout {
        what: format!("{} to listen on {}", daemon.label, path.display()),
        logs: vec![daemon.log_excerpt()],
    })
}
