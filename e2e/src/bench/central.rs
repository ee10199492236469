//! A private central OVN for the controller benchmark: a fresh NB and SB ovsdb-server on unix
//! sockets in the run's scratch directory, and ovn-northd between them. No namespace and no
//! TCP port, so it runs beside any lab. Built from the lab's own pieces (`cmd`, `daemon`,
//! `ovs::wait_for_socket`); unlike the lab's central it has no underlay to listen on.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::lab::cmd;
use crate::lab::daemon::DaemonSpec;
use crate::lab::ovs;

use super::error::BenchError;
use super::procs::Running;

/// The NB and SB schemas installed by Debian's `ovn-common`.
pub use rovn_testkit::schema::{NB as NB_SCHEMA, SB as SB_SCHEMA};

/// The running NB, SB and ovn-northd; all stopped when dropped (northd first).
#[derive(Debug)]
pub struct ScratchCentral {
    /// The NB database file, whose records count committed transactions.
    pub nb_db: PathBuf,
    /// The NB unix socket.
    pub nb_sock: PathBuf,
    /// The SB unix socket.
    pub sb_sock: PathBuf,
    northd: Running,
    sb: Running,
    nb: Running,
}

impl ScratchCentral {
    /// `unix:<nb socket>`, for the controller and the benchmark's own client.
    pub fn nb_remote(&self) -> String {
        format!("unix:{}", self.nb_sock.display())
    }

    /// An error naming the first daemon that has exited.
    pub fn ensure_alive(&self) -> Result<(), BenchError> {
        self.nb.ensure_alive()?;
        self.sb.ensure_alive()?;
        self.northd.ensure_alive()
    }
}

impl Drop for ScratchCentral {
    fn drop(&mut self) {
        for daemon in [&mut self.northd, &mut self.sb, &mut self.nb] {
            if let Err(e) = daemon.stop() {
                eprintln!("rovn-bench: {e}");
            }
        }
    }
}

/// Creates both databases in `dir` and starts NB, SB and ovn-northd.
pub fn start(dir: &Path, deadline: Instant) -> Result<ScratchCentral, BenchError> {
    start_seeded(dir, None, deadline)
}

/// As [`start`], but NB starts as a copy of the standalone database file `nb_seed` (when
/// given): a second OVN on the same rows, for comparing layouts.
pub fn start_seeded(
    dir: &Path,
    nb_seed: Option<&Path>,
    deadline: Instant,
) -> Result<ScratchCentral, BenchError> {
    let nb_db = dir.join("nb.db");
    let sb_db = dir.join("sb.db");
    let nb_sock = dir.join("nb.sock");
    let sb_sock = dir.join("sb.sock");
    let mut create = vec![("create the Southbound database", &sb_db, SB_SCHEMA)];
    match nb_seed {
        Some(seed) => {
            std::fs::copy(seed, &nb_db).map_err(|e| BenchError::io("copy", seed, e))?;
        }
        None => create.push(("create the Northbound database", &nb_db, NB_SCHEMA)),
    }
    for (what, file, schema) in create {
        cmd::run(
            what,
            "ovsdb-tool",
            ["create".as_ref(), file.as_os_str(), schema.as_ref()],
        )?;
    }
    let nb = Running::start(&db_spec(dir, "nb", &nb_sock, &nb_db))?;
    let sb = Running::start(&db_spec(dir, "sb", &sb_sock, &sb_db))?;
    for (daemon, sock) in [(&nb, &nb_sock), (&sb, &sb_sock)] {
        if let Some(d) = daemon.daemon() {
            ovs::wait_for_socket(d, sock, deadline)?;
        }
    }
    let northd = Running::start(&ovn_spec(
        dir,
        "ovn-northd",
        "ovn-northd",
        vec![
            format!("--ovnnb-db=unix:{}", nb_sock.display()).into(),
            format!("--ovnsb-db=unix:{}", sb_sock.display()).into(),
            format!("--unixctl={}", dir.join("ovn-northd.ctl").display()).into(),
        ],
    ))?;
    Ok(ScratchCentral {
        nb_db,
        nb_sock,
        sb_sock,
        northd,
        sb,
        nb,
    })
}

fn db_spec(dir: &Path, which: &str, sock: &Path, db: &Path) -> DaemonSpec {
    ovn_spec(
        dir,
        &format!("{which}-ovsdb-server"),
        "ovsdb-server",
        vec![
            format!("--remote=punix:{}", sock.display()).into(),
            format!("--unixctl={}", dir.join(format!("{which}.ctl")).display()).into(),
            db.into(),
        ],
    )
}

/// An OVS/OVN daemon of the scratch central: logs and run files in `dir`, nothing in the
/// system's run directories.
fn ovn_spec(dir: &Path, label: &str, program: &str, args: Vec<OsString>) -> DaemonSpec {
    let log_file = dir.join(format!("{label}.log"));
    let mut all_args: Vec<OsString> = vec![
        "-vconsole:off".into(),
        "--no-chdir".into(),
        format!("--log-file={}", log_file.display()).into(),
    ];
    all_args.extend(args);
    DaemonSpec {
        label: format!("bench/{label}"),
        netns: None,
        program: program.into(),
        args: all_args,
        env: vec![
            ("OVS_RUNDIR".into(), dir.into()),
            ("OVN_RUNDIR".into(), dir.into()),
        ],
        pidfile: dir.join(format!("{label}.pid")),
        log_file,
        writes_own_pidfile: false,
    }
}
