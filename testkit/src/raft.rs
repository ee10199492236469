//! A real raft cluster of `ovsdb-server`s on 127.0.0.1.
//!
//! Standalone databases in ovsdb-server 3.1 keep no transaction history (their
//! `monitor_cond_since` replies always carry the zero transaction id), so resuming after a
//! reconnect can only be shown on a clustered database; a one-member cluster is the smallest.
//! Each member is an [`OvsdbServer`] in its own subdirectory with its own raft port (probed
//! free on 127.0.0.1); its admin socket lets tests change the database while clients cannot
//! reach it. Drop kills every member and removes the directory, also when a test fails.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use crate::ovsdb::{Listener, OvsdbServer};
use crate::process::run_checked;
use crate::wait::Wait;

/// A raft cluster of `n` members on one schema.
pub struct RaftCluster {
    /// The members, in creation order (member 0 created the cluster).
    pub members: Vec<OvsdbServer>,
    dir: tempfile::TempDir,
}

impl RaftCluster {
    /// Creates and starts the cluster, then waits for a leader.
    pub fn start(schema: &str, n: usize) -> Result<RaftCluster> {
        let dir = tempfile::Builder::new()
            .prefix("rovn-raft-test-")
            .tempdir()
            .context("creating the cluster's temp dir")?;
        let mut members = Vec::new();
        let mut raft_addrs = Vec::new();
        for i in 0..n {
            let sub = dir.path().join(format!("m{i}"));
            std::fs::create_dir(&sub).with_context(|| format!("creating {}", sub.display()))?;
            members.push(OvsdbServer::in_dir(&sub, schema, Listener::None)?);
            raft_addrs.push(format!("tcp:127.0.0.1:{}", free_port()?));
        }
        let first = members
            .first()
            .ok_or_else(|| anyhow!("a cluster needs a member"))?;
        run_checked(
            Command::new("ovsdb-tool")
                .arg("create-cluster")
                .arg(first.db_path())
                .arg(schema)
                .arg(&raft_addrs[0]),
            "ovsdb-tool create-cluster",
        )?;
        for (m, addr) in members.iter().zip(&raft_addrs).skip(1) {
            run_checked(
                Command::new("ovsdb-tool")
                    .arg("join-cluster")
                    .arg(m.db_path())
                    .arg(m.db_name())
                    .arg(addr)
                    .arg(&raft_addrs[0]),
                "ovsdb-tool join-cluster",
            )?;
        }
        let mut cluster = RaftCluster { members, dir };
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
            .position(|m| role(m).as_deref() == Some("leader"))
    }

    /// Waits until some member is leader and every running member knows the cluster.
    pub fn wait_for_leader(&self, timeout: Duration) -> Result<usize> {
        let found = Wait::new(timeout).poll(|| {
            let all_in = self
                .members
                .iter()
                .filter(|m| m.is_running())
                .all(|m| role(m).is_some_and(|r| r == "leader" || r == "follower"));
            Ok::<_, std::convert::Infallible>(self.leader().filter(|_| all_in))
        });
        let Ok(found) = found;
        found.ok_or_else(|| {
            let logs: Vec<String> = self.members.iter().map(|m| m.log_tail(10)).collect();
            anyhow!(
                "no raft leader within {timeout:?}; logs:\n{}",
                logs.join("\n---\n")
            )
        })
    }

    /// Restarts member `i` on the same database file; with `clients` false only its admin
    /// socket listens, so clients under test stay disconnected.
    pub fn restart(&mut self, i: usize, clients: bool) -> Result<()> {
        let m = &mut self.members[i];
        if clients {
            m.restart()
        } else {
            m.restart_without_clients()
        }
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The member's raft role (`leader`, `follower`, `candidate`), from `cluster/status`.
pub fn role(member: &OvsdbServer) -> Option<String> {
    if !member.is_running() {
        return None;
    }
    let text = member.appctl(&["cluster/status", member.db_name()]).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Role: "))
        .map(|r| r.trim().to_string())
}

/// A port nobody listens on right now.
fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("probing a free port")?;
    Ok(l.local_addr().context("reading the probed port")?.port())
}
