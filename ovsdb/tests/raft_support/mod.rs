//! A real raft cluster of `ovsdb-server`s on 127.0.0.1, for the client's resume and
//! leader-following tests.
//!
//! Standalone databases in ovsdb-server 3.1 keep no transaction history (their
//! `monitor_cond_since` replies always carry the zero transaction id), so resuming after a
//! reconnect can only be shown on a clustered database; a one-member cluster is the
//! smallest. Each member has its own directory, raft port (probed free on 127.0.0.1), client
//! socket, and an "admin" socket that tests use to change the database while clients cannot
//! reach it. Drop kills every member and removes the directory, also when a test fails.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rovn_ovsdb::connection::{ConnectOptions, Connection};
use rovn_ovsdb::transport::Remote;

/// The OVN Northbound schema.
pub const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
/// Its database name.
pub const NB_DB: &str = "OVN_Northbound";

/// One member of the cluster.
pub struct Member {
    db: PathBuf,
    sock: PathBuf,
    admin_sock: PathBuf,
    ctl: PathBuf,
    log: PathBuf,
    raft_port: u16,
    child: Option<Child>,
}

impl Member {
    /// The socket clients under test use.
    pub fn remote(&self) -> Remote {
        Remote::Unix(self.sock.clone())
    }

    /// The socket the test itself uses while clients are kept out.
    pub fn admin_remote(&self) -> Remote {
        Remote::Unix(self.admin_sock.clone())
    }

    /// Whether the process runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The last lines of the member's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Starts the server; with `clients` false only the admin socket listens.
    fn spawn(&mut self, clients: bool) -> Result<()> {
        let mut cmd = Command::new("ovsdb-server");
        cmd.arg(&self.db)
            .arg(format!("--remote=punix:{}", self.admin_sock.display()))
            .arg(format!("--unixctl={}", self.ctl.display()))
            .arg(format!("--log-file={}", self.log.display()))
            .arg("--no-chdir")
            .arg("-vconsole:off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if clients {
            cmd.arg(format!("--remote=punix:{}", self.sock.display()));
        }
        let dir = self.db.parent().map(PathBuf::from).unwrap_or_default();
        cmd.env("OVS_RUNDIR", &dir)
            .env("OVS_LOGDIR", &dir)
            .env("OVS_DBDIR", &dir);
        self.child = Some(cmd.spawn().context("spawning ovsdb-server")?);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                bail!(
                    "ovsdb-server exited with {status}; log:\n{}",
                    self.log_tail(20)
                );
            }
            let admin = std::os::unix::net::UnixStream::connect(&self.admin_sock).is_ok();
            let client = !clients || std::os::unix::net::UnixStream::connect(&self.sock).is_ok();
            if admin && client {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "ovsdb-server did not come up in 15 s; log:\n{}",
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash; the database file stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.sock);
        let _ = std::fs::remove_file(&self.admin_sock);
        let _ = std::fs::remove_file(&self.ctl);
    }

    /// The member's raft role (`leader`, `follower`, `candidate`), from `cluster/status`.
    pub fn role(&self) -> Option<String> {
        self.child.as_ref()?;
        let out = Command::new("ovs-appctl")
            .arg("-t")
            .arg(&self.ctl)
            .arg("cluster/status")
            .arg(NB_DB)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("Role: "))
            .map(|r| r.trim().to_string())
    }

    /// Runs `ovs-appctl -t CTL ARGS...` against the member.
    pub fn appctl(&self, args: &[&str]) -> Result<()> {
        run(
            Command::new("ovs-appctl")
                .arg("-t")
                .arg(&self.ctl)
                .args(args),
            &format!("ovs-appctl {}", args.join(" ")),
        )
    }

    /// A plain session on the admin socket.
    pub async fn admin(&self) -> Result<Connection> {
        let (conn, _) = Connection::connect(&self.admin_remote(), &ConnectOptions::default())
            .await
            .with_context(|| format!("connecting to {}", self.admin_remote()))?;
        Ok(conn)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A raft cluster of `n` members on the NB schema.
pub struct Cluster {
    /// The members, in creation order (member 0 created the cluster).
    pub members: Vec<Member>,
    dir: tempfile::TempDir,
}

/// A port nobody listens on right now.
fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("probing a free port")?;
    Ok(l.local_addr().context("reading the probed port")?.port())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Cluster {
    /// Creates and starts the cluster, then waits for a leader.
    pub fn start(n: usize) -> Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("rovn-raft-test-")
            .tempdir()
            .context("creating the cluster's temp dir")?;
        let mut members = Vec::new();
        for i in 0..n {
            let sub = dir.path().join(format!("m{i}"));
            std::fs::create_dir(&sub).with_context(|| format!("creating {}", sub.display()))?;
            members.push(Member {
                db: sub.join("nb.db"),
                sock: sub.join("nb.sock"),
                admin_sock: sub.join("admin.sock"),
                ctl: sub.join("ctl.sock"),
                log: sub.join("ovsdb-server.log"),
                raft_port: free_port()?,
                child: None,
            });
        }
        let first = &members[0];
        let first_addr = format!("tcp:127.0.0.1:{}", first.raft_port);
        run(
            Command::new("ovsdb-tool")
                .arg("create-cluster")
                .arg(&first.db)
                .arg(NB_SCHEMA)
                .arg(&first_addr),
            "ovsdb-tool create-cluster",
        )?;
        for m in &members[1..] {
            run(
                Command::new("ovsdb-tool")
                    .arg("join-cluster")
                    .arg(&m.db)
                    .arg(NB_DB)
                    .arg(format!("tcp:127.0.0.1:{}", m.raft_port))
                    .arg(&first_addr),
                "ovsdb-tool join-cluster",
            )?;
        }
        let mut cluster = Cluster { members, dir };
        for m in &mut cluster.members {
            m.spawn(true)?;
        }
        cluster.wait_for_leader(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// The index of the current leader.
    pub fn leader(&self) -> Option<usize> {
        self.members
            .iter()
            .position(|m| m.role().as_deref() == Some("leader"))
    }

    /// Waits until some member is leader and every running member knows the cluster.
    pub fn wait_for_leader(&self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader() {
                let all_in = self
                    .members
                    .iter()
                    .filter(|m| m.is_running())
                    .all(|m| m.role().is_some_and(|r| r == "leader" || r == "follower"));
                if all_in {
                    return Ok(l);
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self.members.iter().map(|m| m.log_tail(10)).collect();
                return Err(anyhow!(
                    "no raft leader within {timeout:?}; logs:\n{}",
                    logs.join("\n---\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The client sockets of every member.
    pub fn remotes(&self) -> Vec<Remote> {
        self.members.iter().map(Member::remote).collect()
    }

    /// Restarts member `i` on the same database file; with `clients` false only its admin
    /// socket listens, so clients under test stay disconnected.
    pub fn restart(&mut self, i: usize, clients: bool) -> Result<()> {
        let m = &mut self.members[i];
        m.kill();
        m.spawn(clients)
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}
