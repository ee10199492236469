//! Load: many pods created concurrently over HTTP while several clients watch, then
//! listed with pagination. `KUBESIM_SCALE_PODS` sets the count (default 2000; the
//! brief's figure is 10000). `KUBESIM_URL` points it at an already running server
//! (e.g. the binary, to measure the server's own CPU time apart from the client's).

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
