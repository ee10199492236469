//! Many pods at once: every pod one distinct address, every LSP present.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use common::Ovn;
use common::kube::{InProcess, Kube, allocated_ip, annotation, wait_for};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use rovn_api::names::annotations as keys;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_pods_get_distinct_addresses_and_ports() -> Result<()> {
    const PODS: usize = 500;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        ))
        .with_test_writer()
        .try_init();
    let ovn = Ovn::nb_only()?;
    let kube = Kube::start().await?;
    kube.namespace("load").await?;
    for n in 0..5 {
        kube.node(&format!("n{n}")).await?;
    }
    let controller = InProcess::start(kube.config(&ovn.nb_remote()));
    let started = Instant::now();
    let created: Vec<Result<_>> = futures::stream::iter(0..PODS)
        .map(|i| {
            let kube = &kube;
            async move {
                kube.pod("load", &format!("p{i}"), &format!("n{}", i % 5), &[])
                    .await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for c in created {
        c?;
    }
    eprintln!("{PODS} pods created in {:?}", started.elapsed());
    let done = wait_for(Duration::from_secs(60), || async {
        // Listing 500 pods is itself work for the API server: poll slowly.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let pods = kube.pods().await?;
        Ok(pods.len() == PODS
            && pods
                .iter()
                .all(|p| annotation(p, keys::ROUTED) == Some("true")))
    })
    .await?;
    ensure!(done, "not every pod routed within 60 s");
    eprintln!("{PODS} pods routed in {:?}", started.elapsed());

    let pods = kube.pods().await?;
    let ips: BTreeSet<_> = pods.iter().filter_map(allocated_ip).collect();
    ensure!(
        ips.len() == PODS,
        "{} distinct addresses for {PODS} pods",
        ips.len()
    );
    let names = ovn.nbctl(&["--bare", "--columns=name", "list", "Logical_Switch_Port"])?;
    let lsps: BTreeSet<&str> = names.split_whitespace().collect();
    for i in 0..PODS {
        let port = format!("p{i}.load");
        ensure!(lsps.contains(port.as_str()), "LSP {port} missing");
    }
    controller.stop().await
}

/// The benchmark's shape in-process (100 nodes, 10,000 pods created before the controller
/// starts): prints the time to converge and to be ready after a restart. Minutes on a debug
/// build of a shared 2-core machine, hence ignored; run with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10,000 pods: a measurement, not a CI test"]
async fn ten_thousand_pods_converge_and_restart() -> Result<()> {
    const PODS: usize = 10_000;
    const NODES: usize = 100;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        ))
        .with_ansi(false)
        .with_test_writer()
        .try_init();
    let ovn = Ovn::nb_only()?;
    let kube = Kube::start().await?;
    kube.namespace("bench").await?;
    for n in 0..NODES {
        kube.node(&format!("n{n}")).await?;
    }
    let started = Instant::now();
    let created: Vec<Result<_>> = futures::stream::iter(0..PODS)
        .map(|i| {
            let kube = &kube;
            async move {
                kube.pod("bench", &format!("p{i}"), &format!("n{}", i % NODES), &[])
                    .await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for c in created {
        c?;
    }
    eprintln!("created {PODS} pods in {:?}", started.elapsed());
    let started = Instant::now();
    let controller = InProcess::start(kube.config(&ovn.nb_remote()));
    let done = wait_all_routed(&kube, PODS, Duration::from_secs(300)).await?;
    ensure!(done, "not converged in 300 s");
    eprintln!("converge_s={:.2}", started.elapsed().as_secs_f64());
    controller.stop().await?;
    let db = ovn.nb.db_path().to_path_buf();
    let before = common::kube::db_records(&db)?;
    let started = Instant::now();
    let mut binary = kube.spawn_binary(&ovn.nb_remote(), "restart.log", &[])?;
    binary.wait_ready(Duration::from_secs(60)).await?;
    eprintln!("restart_ready_s={:.2}", started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!(
        "restart_nb_writes={}",
        common::kube::db_records(&db)? - before
    );
    if let Some(pid) = binary.pid() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM")) {
            eprintln!("restart peak {line}");
        }
    }
    eprintln!(
        "{}",
        binary
            .log_text()
            .lines()
            .filter(|l| l.contains("ready after") || l.contains("IPAM restored"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}

/// Waits until `count` pods carry `routed=true`, following one watch: re-listing 10,000 pods
/// every second would itself be a large part of the API server's load being measured.
async fn wait_all_routed(kube: &Kube, count: usize, timeout: Duration) -> Result<bool> {
    let follow = async {
        let mut routed = HashSet::new();
        let mut events = watcher::watcher(
            Api::<Pod>::all(kube.client.clone()),
            watcher::Config::default(),
        )
        .boxed();
        while let Some(event) = events.try_next().await? {
            match event {
                Event::Apply(pod) | Event::InitApply(pod) => {
                    let key = (pod.metadata.namespace.clone(), pod.metadata.name.clone());
                    if annotation(&pod, keys::ROUTED) == Some("true") {
                        routed.insert(key);
                    } else {
                        routed.remove(&key);
                    }
                }
                Event::Delete(pod) => {
                    routed.remove(&(pod.metadata.namespace.clone(), pod.metadata.name.clone()));
                }
                Event::Init => routed.clear(),
                Event::InitDone => {}
            }
            if routed.len() == count {
                return Ok(true);
            }
        }
        Ok(false)
    };
    tokio::time::timeout(timeout, follow)
        .await
        .unwrap_or(Ok(false))
}
