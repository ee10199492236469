//! kube-runtime's watcher and reflector against the in-process server: they must
//! converge on the server's contents while objects churn, after 410s, and with
//! streaming lists.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{start_with, unique};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

fn config_map(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"churn": "yes"}}, "data": {"v": value}}),
    )
    .expect("configmap literal")
}

async fn make_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns literal");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

/// name → resourceVersion, as the server lists it.
async fn server_view(api: &Api<ConfigMap>) -> BTreeMap<String, String> {
    api.list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.unwrap_or_default(),
                c.metadata.resource_version.unwrap_or_default(),
            )
        })
        .collect()
}

fn cache_view(store: &reflector::Store<ConfigMap>) -> BTreeMap<String, String> {
    store
        .state()
        .iter()
        .map(|c| {
            (
                c.metadata.name.clone().unwrap_or_default(),
                c.metadata.resource_version.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits until the reflector's cache equals the server's list (names and versions).
async fn assert_converges(api: &Api<ConfigMap>, store: &reflector::Store<ConfigMap>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let want = server_view(api).await;
        let have = cache_view(store);
        if want == have {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "reflector did not converge: server has {} objects, cache {}",
                want.len(),
                have.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spawn_reflector(
    api: Api<ConfigMap>,
    config: watcher::Config,
) -> (reflector::Store<ConfigMap>, tokio::task::JoinHandle<()>) {
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config)).default_backoff();
    let task = tokio::spawn(async move {
        stream.for_each(|_| async {}).await;
    });
    (store, task)
}

async fn churn(api: Api<ConfigMap>, worker: usize, count: usize) {
    for i in 0..count {
        let name = format!("w{worker}-{i}");
        api.create(&PostParams::default(), &config_map(&name, "0"))
            .await
            .expect("create");
        if i % 3 == 0 {
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"v": "1"}})),
            )
            .await
            .expect("patch");
        }
        if i % 4 == 0 {
            api.delete(&name, &DeleteParams::default())
                .await
                .expect("delete");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_converges_while_objects_churn() {
    let t = start_with(|_| {}).await;
    let ns = unique("churn");
    make_namespace(&t.client, &ns).await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
    for i in 0..30 {
        api.create(
            &PostParams::default(),
            &config_map(&format!("pre-{i}"), "0"),
        )
        .await
        .expect("create");
    }
    let (store, task) = spawn_reflector(api.clone(), watcher::Config::default().page_size(7));
    tokio::time::timeout(Duration::from_secs(10), store.wait_until_ready())
        .await
        .expect("initial list in time")
        .expect("writer alive");
    let workers: Vec<_> = (0..3)
        .map(|w| tokio::spawn(churn(api.clone(), w, 60)))
        .collect();
    for w in workers {
        w.await.expect("churn task");
    }
    assert_converges(&api, &store).await;
    assert!(cache_view(&store).len() > 100);
    task.abort();
}

// Single-threaded on purpose: while the burst below runs, no watcher task can drain
// its buffer, so every live watcher is lapped deterministically.
#[tokio::test]
async fn reflector_recovers_from_410() {
    let t = start_with(|c| {
        c.watch_history = 8;
        c.watcher_buffer = 16;
    })
    .await;
    let ns = unique("gone");
    make_namespace(&t.client, &ns).await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
    api.create(&PostParams::default(), &config_map("seed", "0"))
        .await
        .expect("create");
    let (store, task) = spawn_reflector(api.clone(), watcher::Config::default().timeout(2));
    tokio::time::timeout(Duration::from_secs(10), store.wait_until_ready())
        .await
        .expect("initial list in time")
        .expect("writer alive");

    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut raw = api
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .expect("raw watch")
        .boxed();
    // A burst far beyond the watcher buffer, committed without yielding to the runtime.
    {
        let cluster = t.server.cluster().clone();
        let mut state = cluster.write();
        let def = state
            .registry
            .get("", "v1", "configmaps")
            .expect("configmaps served");
        for i in 0..300 {
            let body = serde_json::to_value(config_map(&format!("burst-{i}"), "0")).expect("json");
            state
                .create(&def, Some(&ns), body, false)
                .expect("in-process create");
        }
    }
    let saw_expired = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = raw.try_next().await.expect("watch stream") {
            if let WatchEvent::Error(s) = ev {
                return s.code == 410 && s.reason == "Expired";
            }
        }
        false
    })
    .await
    .expect("raw watch ends in time");
    assert!(saw_expired, "a lapped watcher gets 410 Expired");
    churn(api.clone(), 9, 30).await;
    assert_converges(&api, &store).await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_watcher_converges() {
    let t = start_with(|c| c.bookmark_interval = Duration::from_millis(300)).await;
    let ns = unique("stream");
    make_namespace(&t.client, &ns).await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
    for i in 0..20 {
        api.create(
            &PostParams::default(),
            &config_map(&format!("pre-{i}"), "0"),
        )
        .await
        .expect("create");
    }
    let (store, task) = spawn_reflector(
        api.clone(),
        watcher::Config::default()
            .streaming_lists()
            .labels("churn=yes"),
    );
    tokio::time::timeout(Duration::from_secs(10), store.wait_until_ready())
        .await
        .expect("initial events in time")
        .expect("writer alive");
    assert_eq!(
        cache_view(&store).len(),
        20,
        "initial-events-end bookmark marks the full initial state"
    );
    churn(api.clone(), 0, 40).await;
    assert_converges(&api, &store).await;
    task.abort();
}

#[tokio::test]
async fn bookmarks_carry_the_current_resource_version() {
    let t = start_with(|c| c.bookmark_interval = Duration::from_millis(200)).await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .expect("watch")
        .boxed();
    let other: Api<ConfigMap> = Api::namespaced(t.client.clone(), "kube-system");
    let created = other
        .create(&PostParams::default(), &config_map("elsewhere", "0"))
        .await
        .expect("create");
    let latest: u64 = created
        .metadata
        .resource_version
        .and_then(|r| r.parse().ok())
        .expect("rv");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ev = tokio::time::timeout_at(deadline, stream.try_next())
            .await
            .expect("bookmark in time")
            .expect("stream");
        match ev {
            Some(WatchEvent::Bookmark(b)) => {
                let brv: u64 = b
                    .metadata
                    .resource_version
                    .parse()
                    .expect("numeric bookmark rv");
                if brv >= latest {
                    break;
                }
            }
            Some(WatchEvent::Added(c)) if c.metadata.namespace.as_deref() == Some("default") => {}
            Some(other) => panic!("unexpected event {other:?}"),
            None => panic!("watch ended before a bookmark"),
        }
    }
}

#[tokio::test]
async fn watch_timeout_seconds_is_honoured() {
    let t = start_with(|_| {}).await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let started = tokio::time::Instant::now();
    let stream = api
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .expect("watch");
    let events: Vec<_> = tokio::time::timeout(Duration::from_secs(10), stream.collect::<Vec<_>>())
        .await
        .expect("watch ends by itself");
    assert!(events.iter().all(Result::is_ok));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "watch lasted {took:?}"
    );
}
