//! A leader-only client on a real 3-member raft cluster: it talks only to the leader, and
//! when the leader is killed (SIGKILL) it follows the new one. Writes go on in a loop the
//! whole time; every write acknowledged as committed is there afterwards.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use rovn_ovsdb::client::{Client, ClientConfig, TransactError};
use rovn_ovsdb::monitor::TableMonitor;
use rovn_ovsdb::operation::Operation;
use rovn_ovsdb::{Datum, Row};
use support::{Cluster, NB_DB, ServerExt, remotes};

const WAIT: Duration = Duration::from_secs(30);
const WRITES_BEFORE_KILL: usize = 30;
const WRITES_AFTER_KILL: usize = 30;
const WRITERS: usize = 4;

/// What one writer saw.
#[derive(Default)]
struct Outcome {
    acked: BTreeSet<String>,
    unknown: BTreeSet<String>,
    failed: Vec<String>,
}

fn names_in(rows: impl Iterator<Item = Row>) -> BTreeSet<String> {
    rows.filter_map(|r| r.get("name")?.as_atom()?.as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_only_client_follows_the_new_leader_and_loses_no_write() -> Result<()> {
    let mut cluster = Cluster::start(support::NB_SCHEMA, 3)?;
    let leader = cluster.wait_for_leader(WAIT)?;
    let mut config = ClientConfig::new(NB_DB, remotes(&cluster));
    config.tables = vec![TableMonitor::all("Address_Set")];
    config.leader_only = true;
    config.transact_wait = WAIT;
    let client = Client::start(config)?;
    client.wait_synced(WAIT).await?;
    let leader_remote = cluster.members[leader].remote().to_string();
    ensure!(
        client.current_remote().as_deref() == Some(leader_remote.as_str()),
        "connected to {:?}, but the leader is {leader_remote}",
        client.current_remote()
    );

    // Four writers in parallel, so that some transactions are in flight when the leader dies.
    let client = Arc::new(client);
    let acked_count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = client.clone();
        let acked_count = acked_count.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("w{w}_{i}");
                i += 1;
                let row = Row::from([("name".to_string(), Datum::atom(name.as_str()))]);
                match client
                    .transact(&[Operation::insert("Address_Set", row)])
                    .await
                {
                    Ok(_) => {
                        acked_count.fetch_add(1, Ordering::Relaxed);
                        outcome.acked.insert(name);
                    }
                    Err(TransactError::OutcomeUnknown { .. }) => {
                        outcome.unknown.insert(name);
                    }
                    Err(e) => outcome.failed.push(format!("{name}: {e}")),
                }
            }
            outcome
        }));
    }
    let started = Instant::now();
    while acked_count.load(Ordering::Relaxed) < WRITES_BEFORE_KILL {
        ensure!(started.elapsed() < WAIT, "writes do not get through");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.members[leader].stop();
    let killed_at = Instant::now();
    while acked_count.load(Ordering::Relaxed) < WRITES_BEFORE_KILL + WRITES_AFTER_KILL {
        ensure!(
            killed_at.elapsed() < Duration::from_secs(90),
            "writes stalled after the kill; last error {:?}",
            client.last_error()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut acked = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    let mut rejected = Vec::new();
    for w in writers {
        let o = w.await?;
        acked.extend(o.acked);
        unknown.extend(o.unknown);
        rejected.extend(o.failed);
    }
    let failover = killed_at.elapsed();
    eprintln!(
        "{} writes acked, {} ambiguous, {} rejected; {} writes in {failover:?} after the kill; stats {:?}",
        acked.len(),
        unknown.len(),
        rejected.len(),
        WRITES_AFTER_KILL,
        client.stats()
    );

    let new_leader = cluster.wait_for_leader(WAIT)?;
    ensure!(new_leader != leader, "the killed member is still leader?");
    client.wait_synced(WAIT).await?;
    let current = client.current_remote();
    let new_leader_remote = cluster.members[new_leader].remote().to_string();
    ensure!(
        current.as_deref() == Some(new_leader_remote.as_str()),
        "client on {current:?}, new leader is {new_leader_remote}"
    );

    // Read back from the new leader with a plain session.
    let admin = cluster.members[new_leader].admin().await?;
    let schema = admin.get_schema(NB_DB).await?;
    let table = schema
        .table("Address_Set")
        .ok_or_else(|| anyhow!("no Address_Set"))?;
    let res = admin
        .transact(
            NB_DB,
            &[Operation::select("Address_Set", vec![]).with_columns(["name"])],
        )
        .await?;
    let stored = names_in(
        res.first()
            .ok_or_else(|| anyhow!("empty select"))?
            .rows_decoded(table)?
            .into_iter()
            .map(|(_, r)| r),
    );
    let lost: Vec<&String> = acked.difference(&stored).collect();
    ensure!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    ensure!(rejected.is_empty(), "writes failed outright: {rejected:?}");
    let extra: Vec<&String> = stored
        .iter()
        .filter(|n| !acked.contains(*n) && !unknown.contains(*n))
        .collect();
    ensure!(extra.is_empty(), "rows nobody wrote: {extra:?}");
    let replica = client
        .read(|r| {
            names_in(
                r.table("Address_Set")
                    .map(|t| t.iter().map(|(_, row)| (**row).clone()).collect::<Vec<_>>())
                    .unwrap_or_default()
                    .into_iter(),
            )
        })
        .ok_or_else(|| anyhow!("no replica"))?;
    ensure!(replica == stored, "replica differs from the new leader");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_only_client_skips_followers() -> Result<()> {
    let cluster = Cluster::start(support::NB_SCHEMA, 3)?;
    let leader = cluster.wait_for_leader(WAIT)?;
    // Followers first in the list: the client must pass them over.
    let mut remotes: Vec<_> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| cluster.members[i].remote())
        .collect();
    remotes.push(cluster.members[leader].remote());
    let mut config = ClientConfig::new(NB_DB, remotes);
    config.tables = vec![TableMonitor::all("Address_Set")];
    config.leader_only = true;
    let client = Client::start(config)?;
    client.wait_synced(WAIT).await?;
    ensure!(client.current_remote() == Some(cluster.members[leader].remote().to_string()));
    ensure!(client.stats().servers_skipped >= 2, "{:?}", client.stats());

    // Without leader_only, the first server (a follower) is fine.
    let mut config = ClientConfig::new(NB_DB, vec![cluster.members[(leader + 1) % 3].remote()]);
    config.tables = vec![TableMonitor::all("Address_Set")];
    let reader = Client::start(config)?;
    reader.wait_synced(WAIT).await?;
    ensure!(reader.stats().servers_skipped == 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_only_client_leaves_a_server_that_stops_leading() -> Result<()> {
    let cluster = Cluster::start(support::NB_SCHEMA, 3)?;
    let leader = cluster.wait_for_leader(WAIT)?;
    let mut config = ClientConfig::new(NB_DB, remotes(&cluster));
    config.tables = vec![TableMonitor::all("Address_Set")];
    config.leader_only = true;
    let client = Client::start(config)?;
    client.wait_synced(WAIT).await?;
    let old_remote = cluster.members[leader].remote().to_string();
    ensure!(client.current_remote().as_deref() == Some(old_remote.as_str()));

    // The leader hands leadership over but keeps running and keeps the session open: only
    // its _Server.Database row says it no longer leads.
    cluster.members[leader].appctl(&["cluster/failure-test", "transfer-leadership"])?;
    let started = Instant::now();
    loop {
        let current = client.current_remote();
        let new_leader = cluster.leader();
        if let (Some(current), Some(l)) = (&current, new_leader)
            && l != leader
            && *current == cluster.members[l].remote().to_string()
        {
            break;
        }
        ensure!(
            started.elapsed() < WAIT,
            "client still on {current:?}; leader now {new_leader:?}; last error {:?}",
            client.last_error()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        cluster.members[leader].is_running(),
        "the old leader should still run"
    );
    let row = Row::from([("name".to_string(), Datum::atom("after_transfer"))]);
    client
        .transact(&[Operation::insert("Address_Set", row)])
        .await?;
    Ok(())
}
