//! OVN's central part for tests: a Northbound server, optionally a Southbound server and an
//! `ovn-northd` translating one into the other, and `ovn-nbctl`/`ovn-sbctl` against them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

use crate::ovsdb::OvsdbServer;
use crate::process::{ChildGuard, log_tail, run_checked};

/// A running `ovn-northd`, killed on drop.
pub struct Northd {
    log: PathBuf,
    _child: ChildGuard,
}

impl Northd {
    /// Starts `ovn-northd` between two OVSDB remotes (`unix:PATH`, ...), with its unixctl
    /// socket and log in `dir`.
    pub fn start(nb_remote: &str, sb_remote: &str, dir: &Path) -> Result<Northd> {
        let log = dir.join("northd.log");
        let child = ChildGuard::spawn_daemon(
            Command::new("ovn-northd")
                .arg(format!("--ovnnb-db={nb_remote}"))
                .arg(format!("--ovnsb-db={sb_remote}"))
                .arg(format!("--unixctl={}", dir.join("northd.ctl").display()))
                .arg(format!("--log-file={}", log.display()))
                .env("OVN_RUNDIR", dir),
            "ovn-northd",
        )?;
        Ok(Northd { log, _child: child })
    }

    /// The last `lines` lines of northd's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

/// NB, optionally SB + ovn-northd.
pub struct OvnCentral {
    pub nb: OvsdbServer,
    pub sb: Option<OvsdbServer>,
    /// Stopped first on drop: it logs into NB's directory.
    northd: Option<Northd>,
}

impl OvnCentral {
    /// NB only: for tests about what is written, not what northd makes of it.
    pub fn nb_only() -> Result<OvnCentral> {
        Ok(OvnCentral {
            nb: OvsdbServer::nb()?,
            sb: None,
            northd: None,
        })
    }

    /// NB, SB and an `ovn-northd` translating one into the other (its files in NB's dir).
    pub fn with_northd() -> Result<OvnCentral> {
        let nb = OvsdbServer::nb()?;
        let sb = OvsdbServer::sb()?;
        let northd = Northd::start(&nb.unix_remote(), &sb.unix_remote(), nb.dir())?;
        Ok(OvnCentral {
            nb,
            sb: Some(sb),
            northd: Some(northd),
        })
    }

    /// NB's client socket, `unix:PATH`.
    pub fn nb_remote(&self) -> String {
        self.nb.unix_remote()
    }

    /// SB's client socket, when there is an SB.
    pub fn sb_remote(&self) -> Option<String> {
        self.sb.as_ref().map(OvsdbServer::unix_remote)
    }

    /// `ovn-northd`, when started.
    pub fn northd(&self) -> Option<&Northd> {
        self.northd.as_ref()
    }

    /// `ovn-nbctl --db=<nb> args...`
    pub fn nbctl(&self, args: &[&str]) -> Result<String> {
        ctl("ovn-nbctl", &self.nb_remote(), args)
    }

    /// `ovn-sbctl --db=<sb> args...`
    pub fn sbctl(&self, args: &[&str]) -> Result<String> {
        let Some(sb) = self.sb_remote() else {
            bail!("this fixture has no SB");
        };
        ctl("ovn-sbctl", &sb, args)
    }
}

impl Drop for OvnCentral {
    fn drop(&mut self) {
        // northd first, so it never logs reconnect noise into a directory being removed.
        self.northd = None;
    }
}

fn ctl(program: &str, db: &str, args: &[&str]) -> Result<String> {
    run_checked(
        Command::new(program)
            .arg(format!("--db={db}"))
            .arg("--timeout=20")
            .args(args),
        &format!("{program} {args:?}"),
    )
}
