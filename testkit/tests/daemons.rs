//! The kit's daemons start, answer, and leave nothing behind when dropped.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, ensure};
use rovn_testkit::{Listener, OvnCentral, OvsdbServer, RaftCluster, schema, wait};

fn gone(pid: Option<u32>, dir: PathBuf) -> Result<()> {
    let pid = pid.ok_or_else(|| anyhow::anyhow!("no pid"))?;
    ensure!(
        !PathBuf::from(format!("/proc/{pid}")).exists(),
        "process {pid} survived its guard"
    );
    ensure!(!dir.exists(), "{} survived its guard", dir.display());
    Ok(())
}

#[test]
fn a_standalone_server_listens_restarts_and_cleans_up() -> Result<()> {
    let mut server = OvsdbServer::start_with(schema::NB, Listener::Tcp)?;
    ensure!(server.db_name() == schema::NB_DB);
    let port = server.port().ok_or_else(|| anyhow::anyhow!("no port"))?;
    server.restart()?;
    ensure!(
        server.port() == Some(port),
        "the port changed across a restart"
    );
    let dbs = server.ovsdb_client(&["list-dbs"])?;
    ensure!(dbs.contains(schema::NB_DB), "{dbs}");
    let (pid, dir) = (server.pid(), server.dir().to_path_buf());
    drop(server);
    gone(pid, dir)
}

#[test]
fn a_raft_cluster_elects_a_leader_and_cleans_up() -> Result<()> {
    let cluster = RaftCluster::start(schema::NB, 1)?;
    ensure!(cluster.leader() == Some(0));
    let (pid, dir) = (cluster.members[0].pid(), cluster.dir().to_path_buf());
    drop(cluster);
    gone(pid, dir)
}

#[test]
fn northd_copies_nb_into_sb() -> Result<()> {
    let ovn = OvnCentral::with_northd()?;
    ovn.nbctl(&["ls-add", "sw0", "--", "lsp-add", "sw0", "p0"])?;
    let bound = wait::until(Duration::from_secs(20), "a Port_Binding for p0", || {
        ovn.sbctl(&["--bare", "--columns=logical_port", "list", "Port_Binding"])
            .map(|out| out.contains("p0").then_some(()))
    });
    ensure!(bound.is_ok(), "{bound:?}");
    Ok(())
}
