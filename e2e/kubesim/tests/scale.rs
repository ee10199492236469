//! Load: many pods created concurrently over HTTP while several clients watch, then
//! listed with pagination. `KUBESIM_SCALE_PODS` sets the count (default 2000; the
//! brief's figure is 10000). `KUBESIM_URL` points it at an already running server
//! (e.g. the binary, to measure the server's own CPU time apart from the client's).
//! The EndpointSlice controller under load: `KUBESIM_EPS_PODS` pods (default 2000; the
//! brief's figure is 10000) behind one Service per ten pods.

mod common;

use std::time::{Duration, Instant};

use common::start;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

fn pod(i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("load-{i:05}"), "labels": {"app": "load", "shard": (i % 10).to_string()}},
        "spec": {"containers": [{"name": "main", "image": "rovn-podtool", "args": ["serve"], "ports": [{"containerPort": 8080}]}]}
    }))
    .expect("pod literal")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pods_created_concurrently_while_watched() {
    let n: usize = std::env::var("KUBESIM_SCALE_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let _in_process;
    let client = match std::env::var("KUBESIM_URL") {
        Ok(url) => common::client_for(&url),
        Err(_) => {
            let t = start().await;
            let client = t.client.clone();
            _in_process = t;
            client
        }
    };
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let rv = pods
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");

    let mut watchers = Vec::new();
    for selector in ["", "shard=3", "app=load"] {
        let stream = pods
            .watch(&WatchParams::default().labels(selector).timeout(600), &rv)
            .await
            .expect("watch");
        watchers.push(tokio::spawn(async move {
            let want = if selector == "shard=3" { n / 10 } else { n };
            let mut seen = 0;
            let mut stream = stream.boxed();
            while seen < want {
                match stream.try_next().await {
                    Ok(Some(WatchEvent::Added(_))) => seen += 1,
                    Ok(Some(WatchEvent::Error(e))) => panic!("watch error {e:?}"),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            seen
        }));
    }
    let (store, writer) = reflector::store();
    let refl = tokio::spawn(
        reflector::reflector(writer, watcher(pods.clone(), watcher::Config::default()))
            .default_backoff()
            .for_each(|_| async {}),
    );

    let started = Instant::now();
    let results: Vec<Result<Pod, kube::Error>> = futures::stream::iter(0..n)
        .map(|i| {
            let pods = pods.clone();
            async move { pods.create(&PostParams::default(), &pod(i)).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let create_time = started.elapsed();
    assert!(results.iter().all(Result::is_ok), "every create succeeds");

    let started = Instant::now();
    let mut total = 0;
    let mut lp = ListParams::default().limit(500);
    loop {
        let page = pods.list(&lp).await.expect("page");
        total += page.items.len();
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    let list_time = started.elapsed();
    assert_eq!(total, n);

    for (w, want) in watchers.into_iter().zip([n, n / 10, n]) {
        let seen = tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .expect("watchers keep up")
            .expect("watch task");
        assert_eq!(seen, want);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.state().len() != n {
        assert!(
            Instant::now() < deadline,
            "reflector holds {} of {n}",
            store.state().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    refl.abort();
    eprintln!(
        "scale: {n} pods created in {:.2}s ({:.0}/s), paged list in {:.0} ms",
        create_time.as_secs_f64(),
        n as f64 / create_time.as_secs_f64(),
        list_time.as_secs_f64() * 1000.0
    );
}

fn ready_status(pod: &serde_json::Value, ip: &str, ready: bool) -> serde_json::Value {
    let mut v = pod.clone();
    v["status"] = json!({"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]});
    v
}

/// Whether every pod is a ready endpoint, counting the store's managed slices.
fn ready_endpoints(state: &rovn_kubesim::cluster::State, ns: &str) -> usize {
    state
        .store
        .list("discovery.k8s.io/endpointslices", Some(ns))
        .flat_map(|s| s.value["endpoints"].as_array().into_iter().flatten())
        .filter(|e| e["conditions"]["ready"] == true)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpointslices_keep_up_with_many_services_and_pods() {
    use rovn_kubesim::cluster::Target;
    let n: usize = std::env::var("KUBESIM_EPS_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let services = n.div_ceil(10);
    let t = start().await;
    let cluster = t.server.cluster().clone();
    let ns = "eps-scale";
    let (pod_def, svc_def) = {
        let mut state = cluster.write();
        let ns_def = state
            .registry
            .get("", "v1", "namespaces")
            .expect("namespaces");
        state
            .create(&ns_def, None, json!({"metadata": {"name": ns}}), false)
            .expect("namespace");
        (
            state.registry.get("", "v1", "pods").expect("pods"),
            state.registry.get("", "v1", "services").expect("services"),
        )
    };
    let started = Instant::now();
    for s in 0..services {
        let svc = json!({"metadata": {"name": format!("svc-{s:04}")},
            "spec": {"selector": {"app": format!("a{s}")}, "ports": [{"port": 80, "targetPort": 8080}]}});
        cluster
            .write()
            .create(&svc_def, Some(ns), svc, false)
            .expect("service");
    }
    for i in 0..n {
        let name = format!("pod-{i:05}");
        let pod = json!({"metadata": {"name": name, "labels": {"app": format!("a{}", i % services)}},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]}});
        {
            let mut state = cluster.write();
            let created = state.create(&pod_def, Some(ns), pod, false).expect("pod");
            let ip = format!("10.{}.{}.{}", 100 + i / 65536, (i / 256) % 256, i % 256);
            let running = ready_status(&created.value, &ip, true);
            state
                .update(&pod_def, ns, &name, running, Target::Status, false)
                .expect("status");
        }
        if i % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let written = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready_endpoints(&cluster.read(), ns) != n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} endpoints ready",
            ready_endpoints(&cluster.read(), ns)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let converged = started.elapsed();

    // One pod turns not-ready: exactly one slice changes.
    let flip = Instant::now();
    let rv = {
        let mut state = cluster.write();
        let current = state
            .store
            .get("/pods", ns, "pod-00042")
            .cloned()
            .expect("pod");
        state
            .update(
                &pod_def,
                ns,
                "pod-00042",
                ready_status(&current.value, "10.100.0.42", false),
                Target::Status,
                false,
            )
            .expect("status")
            .rv
    };
    while ready_endpoints(&cluster.read(), ns) != n - 1 {
        assert!(
            flip.elapsed() < Duration::from_secs(30),
            "the flip never reached a slice"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let flip_time = flip.elapsed();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (changes, _) = cluster
        .read()
        .store
        .watch_from("discovery.k8s.io/endpointslices", rv)
        .expect("history");
    assert_eq!(changes.len(), 1, "one pod's change rewrites one slice");
    eprintln!(
        "endpointslices: {services} Services, {n} pods written in {:.2}s, all slices ready after {:.2}s; one readiness flip reached its slice in {:.0} ms",
        written.as_secs_f64(),
        converged.as_secs_f64(),
        flip_time.as_secs_f64() * 1000.0
    );
}
