//! kube-rs against the in-process server: CRUD, concurrency errors, selectors,
//! pagination, deletion semantics, binding, Service allocation, leases, nodes, CRDs.

mod common;

use std::collections::BTreeSet;

use common::{api_code, api_reason, start, start_with, unique};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

fn pod(name: &str, labels: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "rovn-podtool", "ports": [{"containerPort": 8080}]}]}
    }))
    .expect("pod literal")
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))
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

#[tokio::test]
async fn pod_crud_and_patches() {
    let t = start().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let created = pods
        .create(&PostParams::default(), &pod("web", json!({"app": "web"})))
        .await
        .expect("create");
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    assert_eq!(
        created.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    let rv1: u64 = meta
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .expect("numeric rv");

    let mut fetched = pods.get("web").await.expect("get");
    assert_eq!(fetched.metadata.uid, created.metadata.uid);
    fetched
        .metadata
        .labels
        .get_or_insert_default()
        .insert("tier".into(), "fe".into());
    let replaced = pods
        .replace("web", &PostParams::default(), &fetched)
        .await
        .expect("replace");
    let rv2: u64 = replaced
        .metadata
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .expect("numeric rv");
    assert!(rv2 > rv1, "resourceVersion increases ({rv1} -> {rv2})");
    assert_eq!(
        replaced.metadata.generation,
        Some(1),
        "label changes do not bump generation"
    );

    let merged = pods
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": null, "m": "1"}}})),
        )
        .await
        .expect("merge patch");
    let labels = merged.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("m").map(String::as_str), Some("1"));
    assert!(!labels.contains_key("tier"));

    let strategic = json!({"spec": {"containers": [{"name": "main", "image": "rovn-podtool:v2"}]}});
    let patched = pods
        .patch("web", &PatchParams::default(), &Patch::Strategic(strategic))
        .await
        .expect("strategic patch");
    let main = &patched.spec.as_ref().expect("spec").containers[0];
    assert_eq!(main.image.as_deref(), Some("rovn-podtool:v2"));
    let ports: Vec<i32> = main
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(
        ports,
        vec![8080],
        "containers merge by name, keeping what the patch leaves out"
    );
    let forbidden =
        json!({"spec": {"containers": [{"name": "main", "ports": [{"containerPort": 9090}]}]}});
    let err = pods
        .patch("web", &PatchParams::default(), &Patch::Strategic(forbidden))
        .await
        .expect_err("pod spec is immutable");
    assert_eq!(api_code(&err), Some(422));
    assert_eq!(
        patched.metadata.generation,
        Some(2),
        "spec change bumps generation"
    );

    let req = http::Request::patch("/api/v1/namespaces/default/pods/web")
        .header("content-type", "application/json-patch+json")
        .body(
            serde_json::to_vec(
                &json!([{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}]),
            )
            .expect("json"),
        )
        .expect("request");
    let via_json_patch: Pod = t.client.request(req).await.expect("json patch");
    assert_eq!(
        via_json_patch
            .metadata
            .annotations
            .unwrap_or_default()
            .get("a")
            .map(String::as_str),
        Some("b")
    );

    let bad = http::Request::patch("/api/v1/namespaces/default/pods/web")
        .header("content-type", "application/json-patch+json")
        .body(b"[{\"op\": \"test\", \"path\": \"/metadata/name\", \"value\": \"other\"}]".to_vec())
        .expect("request");
    let err = t
        .client
        .request::<Pod>(bad)
        .await
        .expect_err("failed test op is refused");
    assert_eq!(api_code(&err), Some(422));

    let list = pods.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());

    pods.delete("web", &DeleteParams::default())
        .await
        .expect("delete unbound pod");
    let err = pods
        .get("web")
        .await
        .expect_err("unbound pod is gone at once");
    assert_eq!(api_code(&err), Some(404));
    assert_eq!(api_reason(&err), "NotFound");
}

#[tokio::test]
async fn errors_are_status_objects() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &config_map("c"))
        .await
        .expect("create");
    let err = cms
        .create(&PostParams::default(), &config_map("c"))
        .await
        .expect_err("duplicate");
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (Some(409), "AlreadyExists")
    );

    let mut newer = first.clone();
    newer
        .data
        .get_or_insert_default()
        .insert("k".into(), "v2".into());
    cms.replace("c", &PostParams::default(), &newer)
        .await
        .expect("replace with current rv");
    let err = cms
        .replace("c", &PostParams::default(), &newer)
        .await
        .expect_err("stale rv");
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (Some(409), "Conflict")
    );

    let stale_patch = Patch::Merge(
        json!({"metadata": {"resourceVersion": first.metadata.resource_version}, "data": {"x": "y"}}),
    );
    let err = cms
        .patch("c", &PatchParams::default(), &stale_patch)
        .await
        .expect_err("stale patch");
    assert_eq!(api_code(&err), Some(409));

    let err = cms.get("missing").await.expect_err("missing");
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (Some(404), "NotFound")
    );

    let in_missing_ns: Api<ConfigMap> = Api::namespaced(t.client.clone(), "no-such-ns");
    let err = in_missing_ns
        .create(&PostParams::default(), &config_map("c"))
        .await
        .expect_err("namespace must exist");
    assert_eq!(api_code(&err), Some(404));

    let err = cms
        .create(&PostParams::default(), &config_map("Bad_Name"))
        .await
        .expect_err("invalid name");
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (Some(422), "Invalid")
    );

    let raw = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(b"{not json".to_vec())
        .expect("request");
    let err = t
        .client
        .request::<ConfigMap>(raw)
        .await
        .expect_err("malformed body");
    assert_eq!(api_code(&err), Some(400));

    let err = cms
        .list(&ListParams::default().labels("a in b"))
        .await
        .expect_err("bad selector");
    assert_eq!(api_code(&err), Some(400));
    let err = cms
        .list(&ListParams::default().fields("data.k=v"))
        .await
        .expect_err("unsupported field");
    assert_eq!(api_code(&err), Some(400));
}

#[tokio::test]
async fn label_and_field_selectors() {
    let t = start().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        pods.create(&PostParams::default(), &pod(name, json!({"app": app})))
            .await
            .expect("create");
    }
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "a"}, "target": {"kind": "Node", "name": "node1"}});
    pods.create_subresource::<_, serde_json::Value>(
        "binding",
        "a",
        &PostParams::default(),
        &binding,
    )
    .await
    .expect("bind a");
    let names = |l: kube::core::ObjectList<Pod>| {
        l.items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            pods.list(&ListParams::default().labels("app=web"))
                .await
                .expect("list")
        ),
        ["a", "b"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().labels("app in (db),app!=web"))
                .await
                .expect("list")
        ),
        ["c"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().fields("spec.nodeName=node1"))
                .await
                .expect("list")
        ),
        ["a"]
    );
    assert_eq!(
        names(
            pods.list(&ListParams::default().fields("spec.nodeName=,status.phase=Pending"))
                .await
                .expect("list")
        ),
        ["b", "c"]
    );
    assert_eq!(
        names(
            pods.list(
                &ListParams::default()
                    .fields("metadata.name!=a")
                    .labels("app=web")
            )
            .await
            .expect("list")
        ),
        ["b"]
    );
    let all: Api<Pod> = Api::all(t.client.clone());
    assert_eq!(
        all.list(&ListParams::default())
            .await
            .expect("list all")
            .items
            .len(),
        3
    );
}

#[tokio::test]
async fn pagination_is_a_consistent_snapshot() {
    let t = start().await;
    let ns = unique("page");
    make_namespace(&t.client, &ns).await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
    for i in 0..25 {
        cms.create(&PostParams::default(), &config_map(&format!("cm-{i:02}")))
            .await
            .expect("create");
    }
    let mut seen = BTreeSet::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    let mut list_rv = None;
    loop {
        let mut lp = ListParams::default().limit(10);
        if let Some(c) = &token {
            lp = lp.continue_token(c);
        }
        let page = cms.list(&lp).await.expect("page");
        pages += 1;
        list_rv.get_or_insert(page.metadata.resource_version.clone());
        assert_eq!(
            Some(page.metadata.resource_version.clone()),
            list_rv,
            "every page reports the first page's rv"
        );
        for cm in page.items {
            assert!(
                seen.insert(cm.metadata.name.expect("name")),
                "no duplicates across pages"
            );
        }
        // Churn between pages must not show up in the snapshot.
        cms.create(
            &PostParams::default(),
            &config_map(&format!("late-{pages}")),
        )
        .await
        .expect("create");
        cms.delete("cm-24", &DeleteParams::default()).await.ok();
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => token = Some(c),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen.len(),
        25,
        "all objects of the snapshot, none added later"
    );
    assert!(seen.contains("cm-24"));
    let err = cms
        .list(&ListParams::default().limit(5).continue_token("999999-5"))
        .await
        .expect_err("unknown token");
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (Some(410), "Expired")
    );
}

#[tokio::test]
async fn watch_from_compacted_history_gets_410() {
    let t = start_with(|c| c.watch_history = 5).await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &config_map("w0"))
        .await
        .expect("create");
    let old_rv = first.metadata.resource_version.clone().expect("rv");
    for i in 1..20 {
        cms.create(&PostParams::default(), &config_map(&format!("w{i}")))
            .await
            .expect("create");
    }
    let stream = cms
        .watch(&WatchParams::default(), &old_rv)
        .await
        .expect("watch starts");
    let events: Vec<WatchEvent<ConfigMap>> = stream.take(1).try_collect().await.expect("events");
    match events.first() {
        Some(WatchEvent::Error(s)) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    let recent = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = cms
        .watch(&WatchParams::default().timeout(5), &recent)
        .await
        .expect("watch")
        .boxed();
    cms.create(&PostParams::default(), &config_map("after"))
        .await
        .expect("create");
    match stream.try_next().await.expect("event") {
        Some(WatchEvent::Added(cm)) => assert_eq!(cm.metadata.name.as_deref(), Some("after")),
        other => panic!("expected ADDED after, got {other:?}"),
    }
}

#[tokio::test]
async fn filtered_watch_reports_objects_leaving_the_selection_as_deleted() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = cms
        .watch(&WatchParams::default().labels("sel=yes").timeout(10), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut cm = config_map("f");
    cm.metadata.labels = Some([("sel".to_string(), "yes".to_string())].into());
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    cms.create(&PostParams::default(), &config_map("other"))
        .await
        .expect("create unlabelled");
    cms.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"sel": "no"}}})),
    )
    .await
    .expect("relabel");
    let kinds: Vec<String> = stream
        .by_ref()
        .take(2)
        .map_ok(|e| match e {
            WatchEvent::Added(c) => format!("ADDED {}", c.metadata.name.unwrap_or_default()),
            WatchEvent::Deleted(c) => format!("DELETED {}", c.metadata.name.unwrap_or_default()),
            other => format!("{other:?}"),
        })
        .try_collect()
        .await
        .expect("events");
    assert_eq!(kinds, ["ADDED f", "DELETED f"]);
}

#[tokio::test]
async fn finalizers_graceful_pod_deletion_and_namespace_cascade() {
    let t = start().await;
    let ns = unique("fin");
    make_namespace(&t.client, &ns).await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), &ns);
    let mut p = pod("bound", json!({}));
    p.metadata.finalizers = Some(vec!["rovn.io/test".into()]);
    pods.create(&PostParams::default(), &p)
        .await
        .expect("create");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bound"}, "target": {"kind": "Node", "name": "node1"}});
    let body = &binding;
    pods.create_subresource::<_, serde_json::Value>(
        "binding",
        "bound",
        &PostParams::default(),
        &body,
    )
    .await
    .expect("bind");
    let err = pods
        .create_subresource::<_, serde_json::Value>(
            "binding",
            "bound",
            &PostParams::default(),
            &body,
        )
        .await
        .expect_err("second binding");
    assert_eq!(api_code(&err), Some(409));
    assert_eq!(
        pods.get("bound")
            .await
            .expect("get")
            .spec
            .expect("spec")
            .node_name
            .as_deref(),
        Some("node1")
    );

    pods.delete("bound", &DeleteParams::default())
        .await
        .expect("graceful delete");
    let terminating = pods
        .get("bound")
        .await
        .expect("still there while the kubelet has not confirmed");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));

    pods.delete(
        "bound",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .expect("kubelet confirms");
    let held = pods.get("bound").await.expect("finalizer still holds it");
    assert_eq!(held.metadata.deletion_grace_period_seconds, Some(0));
    pods.patch(
        "bound",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("drop finalizer");
    assert_eq!(
        api_code(&pods.get("bound").await.expect_err("gone")),
        Some(404)
    );

    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), &ns);
    cms.create(&PostParams::default(), &config_map("c1"))
        .await
        .expect("create cm");
    pods.create(&PostParams::default(), &pod("graceful", json!({})))
        .await
        .expect("create pod");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "graceful"}, "target": {"kind": "Node", "name": "node2"}});
    pods.create_subresource::<_, serde_json::Value>(
        "binding",
        "graceful",
        &PostParams::default(),
        &binding,
    )
    .await
    .expect("bind");
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
    let terminating = namespaces
        .get(&ns)
        .await
        .expect("namespace waits for its graceful pod");
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    assert_eq!(
        api_code(&cms.get("c1").await.expect_err("configmap gone")),
        Some(404)
    );
    let err = cms
        .create(&PostParams::default(), &config_map("c2"))
        .await
        .expect_err("no new content");
    assert_eq!(api_code(&err), Some(403));
    pods.delete(
        "graceful",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .expect("kubelet confirms");
    assert_eq!(
        api_code(&namespaces.get(&ns).await.expect_err("namespace gone")),
        Some(404)
    );
}

#[tokio::test]
async fn services_get_cluster_ips_and_node_ports() {
    let t = start().await;
    let svcs: Api<Service> = Api::namespaced(t.client.clone(), "default");
    let svc = |name: &str, spec: serde_json::Value| -> Service {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec}))
            .expect("svc literal")
    };
    let a = svcs
        .create(
            &PostParams::default(),
            &svc(
                "a",
                json!({"selector": {"app": "a"}, "ports": [{"port": 80}]}),
            ),
        )
        .await
        .expect("a");
    let b = svcs
        .create(
            &PostParams::default(),
            &svc("b", json!({"ports": [{"port": 80, "targetPort": 8080}]})),
        )
        .await
        .expect("b");
    let spec_a = a.spec.expect("spec");
    let ip_a: std::net::Ipv4Addr = spec_a
        .cluster_ip
        .as_deref()
        .expect("clusterIP")
        .parse()
        .expect("IPv4");
    let ip_b: std::net::Ipv4Addr = b
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .expect("clusterIP")
        .parse()
        .expect("IPv4");
    let cidr: ipnet::Ipv4Net = "10.96.0.0/12".parse().expect("cidr");
    assert!(cidr.contains(&ip_a) && cidr.contains(&ip_b) && ip_a != ip_b);
    assert_ne!(
        ip_a.to_string(),
        "10.96.0.1",
        "taken by the kubernetes Service"
    );
    assert_eq!(spec_a.cluster_ips, Some(vec![ip_a.to_string()]));
    assert_eq!(spec_a.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec_a.session_affinity.as_deref(), Some("None"));
    assert_eq!(spec_a.ip_families, Some(vec!["IPv4".to_string()]));
    let port = &spec_a.ports.expect("ports")[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80))
    );

    let fixed = svcs
        .create(
            &PostParams::default(),
            &svc(
                "fixed",
                json!({"clusterIP": "10.100.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}),
            ),
        )
        .await
        .expect("requested IP");
    assert_eq!(
        fixed.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("10.100.0.10")
    );
    let err = svcs
        .create(
            &PostParams::default(),
            &svc(
                "dup",
                json!({"clusterIP": "10.100.0.10", "ports": [{"port": 53}]}),
            ),
        )
        .await
        .expect_err("duplicate IP");
    assert_eq!(api_code(&err), Some(422));
    let headless = svcs
        .create(
            &PostParams::default(),
            &svc(
                "headless",
                json!({"clusterIP": "None", "ports": [{"port": 80}]}),
            ),
        )
        .await
        .expect("headless");
    assert_eq!(
        headless.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("None")
    );
    let np = svcs
        .create(
            &PostParams::default(),
            &svc("np", json!({"type": "NodePort", "ports": [{"port": 80}]})),
        )
        .await
        .expect("nodeport");
    let node_port = np
        .spec
        .and_then(|s| s.ports)
        .and_then(|p| p[0].node_port)
        .expect("nodePort allocated");
    assert!((30000..=32767).contains(&node_port));

    let mut fetched = svcs.get("b").await.expect("get b");
    fetched
        .metadata
        .labels
        .get_or_insert_default()
        .insert("tier".into(), "db".into());
    if let Some(spec) = fetched.spec.as_mut() {
        spec.cluster_ip = None;
        spec.cluster_ips = None;
    }
    let replaced = svcs
        .replace("b", &PostParams::default(), &fetched)
        .await
        .expect("replace b without its ClusterIP");
    assert_eq!(
        replaced.spec.and_then(|s| s.cluster_ip),
        Some(ip_b.to_string()),
        "an update that omits the ClusterIP keeps it"
    );
    assert!(
        svcs.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len()
            >= 5
    );
    let updated = svcs
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": {"app": "a2"}}})),
        )
        .await
        .expect("patch");
    assert_eq!(
        updated.spec.and_then(|s| s.cluster_ip),
        Some(ip_a.to_string()),
        "ClusterIP survives updates"
    );
    svcs.delete("fixed", &DeleteParams::default())
        .await
        .expect("delete");
    svcs.create(
        &PostParams::default(),
        &svc(
            "fixed2",
            json!({"clusterIP": "10.100.0.10", "ports": [{"port": 53}]}),
        ),
    )
    .await
    .expect("released IP is reusable");
}

#[tokio::test]
async fn leases_and_nodes_with_status() {
    let t = start().await;
    let leases: Api<Lease> = Api::namespaced(t.client.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "node1"},
        "spec": {"holderIdentity": "node1", "leaseDurationSeconds": 40, "renewTime": "2026-01-01T00:00:00.000000Z"}})).expect("lease");
    let created = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create lease");
    let mut renewed = created.clone();
    renewed.spec.as_mut().expect("spec").lease_duration_seconds = Some(41);
    let replaced = leases
        .replace("node1", &PostParams::default(), &renewed)
        .await
        .expect("renew");
    assert_eq!(
        replaced.spec.and_then(|s| s.lease_duration_seconds),
        Some(41)
    );
    assert_eq!(
        api_code(
            &leases
                .replace("node1", &PostParams::default(), &renewed)
                .await
                .expect_err("stale")
        ),
        Some(409)
    );

    let nodes: Api<Node> = Api::all(t.client.clone());
    let node: Node = serde_json::from_value(
        json!({"metadata": {"name": "node1", "labels": {"kubernetes.io/hostname": "node1"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "172.30.0.11"}]}}),
    )
    .expect("node");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let after = nodes
        .patch_status("node1", &PatchParams::default(), &Patch::Strategic(status))
        .await
        .expect("status patch");
    let st = after.status.clone().expect("status");
    assert_eq!(st.conditions.expect("conditions")[0].type_, "Ready");
    assert_eq!(st.addresses.expect("addresses")[0].address, "172.30.0.11");
    let mut main_write = after.clone();
    main_write.status = None;
    main_write
        .metadata
        .labels
        .get_or_insert_default()
        .insert("x".into(), "y".into());
    let kept = nodes
        .replace("node1", &PostParams::default(), &main_write)
        .await
        .expect("replace");
    assert!(
        kept.status.and_then(|s| s.conditions).is_some(),
        "status is ignored on the main resource"
    );
    let status_write = nodes
        .patch_status(
            "node1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"z": "1"}}, "status": {"phase": "Running"}}),
            ),
        )
        .await
        .expect("status write");
    assert!(
        !status_write
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("z"),
        "metadata is ignored on /status"
    );
    assert_eq!(
        nodes
            .list(&ListParams::default())
            .await
            .expect("list nodes")
            .items
            .len(),
        1
    );
    nodes
        .delete("node1", &DeleteParams::default())
        .await
        .expect("delete node");
    assert_eq!(
        api_code(&nodes.get("node1").await.expect_err("node gone")),
        Some(404)
    );

    let holder = json!({"spec": {"holderIdentity": "node2"}});
    let patched = leases
        .patch("node1", &PatchParams::default(), &Patch::Strategic(holder))
        .await
        .expect("patch lease");
    assert_eq!(
        patched
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref()),
        Some("node2")
    );
    assert_eq!(
        patched.spec.and_then(|s| s.lease_duration_seconds),
        Some(41)
    );
    assert_eq!(
        leases
            .get("node1")
            .await
            .expect("get lease")
            .metadata
            .resource_version,
        patched.metadata.resource_version
    );
    assert_eq!(
        leases
            .list(&ListParams::default())
            .await
            .expect("list leases")
            .items
            .len(),
        1
    );
    leases
        .delete("node1", &DeleteParams::default())
        .await
        .expect("delete lease");
    assert!(
        leases
            .list(&ListParams::default())
            .await
            .expect("list leases")
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn server_side_apply_creates_then_merges() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let pp = PatchParams::apply("kubesim-test");
    let doc = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}});
    let created = cms
        .patch("applied", &pp, &Patch::Apply(&doc))
        .await
        .expect("apply creates");
    assert_eq!(
        created
            .data
            .unwrap_or_default()
            .get("a")
            .map(String::as_str),
        Some("1")
    );
    let doc = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"b": "2"}});
    let merged = cms
        .patch("applied", &pp, &Patch::Apply(&doc))
        .await
        .expect("apply merges");
    assert_eq!(merged.data.unwrap_or_default().len(), 2);
}

#[tokio::test]
async fn crd_is_served_after_creation_and_gone_after_deletion() {
    let t = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(t.client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "subnets.rovn.io"},
        "spec": {"group": "rovn.io", "scope": "Cluster",
            "names": {"plural": "subnets", "singular": "subnet", "kind": "Subnet", "listKind": "SubnetList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .expect("crd literal");
    let created = crds
        .create(&PostParams::default(), &crd)
        .await
        .expect("create CRD");
    let established = created
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established);

    let discovery = kube::discovery::Discovery::new(t.client.clone())
        .run()
        .await
        .expect("discovery");
    assert!(
        discovery.groups().any(|g| g.name() == "rovn.io"),
        "rovn.io appears in discovery"
    );

    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("rovn.io", "v1", "Subnet"),
        "subnets",
    );
    let subnets: Api<DynamicObject> = Api::all_with(t.client.clone(), &ar);
    let mut obj = DynamicObject::new("s1", &ar);
    obj.data = json!({"spec": {"cidrBlock": "10.20.0.0/16"}, "status": {"ignored": true}});
    let s1 = subnets
        .create(&PostParams::default(), &obj)
        .await
        .expect("create Subnet");
    assert!(
        s1.data.get("status").is_none(),
        "status is dropped on create with a status subresource"
    );
    let st = subnets
        .patch_status(
            "s1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"usingIPs": 3}})),
        )
        .await
        .expect("status patch");
    assert_eq!(st.data["status"]["usingIPs"], 3);
    assert_eq!(st.data["spec"]["cidrBlock"], "10.20.0.0/16");
    let err = subnets
        .patch(
            "s1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"x": 1}})),
        )
        .await
        .expect_err("no strategic merge on custom resources");
    assert_eq!(api_code(&err), Some(415));
    assert_eq!(
        subnets
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );

    crds.delete("subnets.rovn.io", &DeleteParams::default())
        .await
        .expect("delete CRD");
    let err = subnets
        .list(&ListParams::default())
        .await
        .expect_err("no longer served");
    assert_eq!(api_code(&err), Some(404));
}

#[tokio::test]
async fn metadata_only_get_list_and_watch() {
    let t = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut watch = cms
        .watch_metadata(&WatchParams::default().timeout(5), &rv)
        .await
        .expect("metadata watch")
        .boxed();
    cms.create(&PostParams::default(), &config_map("meta"))
        .await
        .expect("create");
    let got = cms.get_metadata("meta").await.expect("get_metadata");
    assert_eq!(got.metadata.name.as_deref(), Some("meta"));
    assert_eq!(
        got.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    let listed = cms
        .list_metadata(&ListParams::default())
        .await
        .expect("list_metadata");
    assert_eq!(listed.items.len(), 1);
    match watch.try_next().await.expect("event") {
        Some(WatchEvent::Added(m)) => {
            assert_eq!(m.metadata.name.as_deref(), Some("meta"));
            assert_eq!(
                m.types.map(|t| t.kind),
                Some("PartialObjectMetadata".to_string())
            );
        }
        other => panic!("expected ADDED, got {other:?}"),
    }
}

#[tokio::test]
async fn runtime_event_recorder_creates_and_updates_events() {
    use k8s_openapi::api::events::v1::Event as EventV1;
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};

    let t = start().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let p = pods
        .create(&PostParams::default(), &pod("evented", json!({})))
        .await
        .expect("pod");
    let reporter = Reporter {
        controller: "kubesim-test".into(),
        instance: Some("t1".into()),
    };
    let recorder = Recorder::new(t.client.clone(), reporter);
    let ev = Event {
        type_: EventType::Normal,
        reason: "Plugged".into(),
        note: Some("port up".into()),
        action: "Plug".into(),
        secondary: None,
    };
    let reference = p.object_ref(&());
    recorder
        .publish(&ev, &reference)
        .await
        .expect("first publish creates");
    recorder
        .publish(&ev, &reference)
        .await
        .expect("second publish patches the series");
    let events: Api<EventV1> = Api::namespaced(t.client.clone(), "default");
    let listed = events
        .list(&ListParams::default())
        .await
        .expect("list events");
    assert_eq!(listed.items.len(), 1, "one event with a series");
    let e = &listed.items[0];
    assert_eq!(e.reason.as_deref(), Some("Plugged"));
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));
}

#[tokio::test]
async fn kubernetes_service_points_at_the_advertised_address() {
    use k8s_openapi::api::core::v1::Endpoints;
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    let plain = start().await;
    let none: Api<Endpoints> = Api::namespaced(plain.client.clone(), "default");
    assert_eq!(
        api_code(
            &none
                .get("kubernetes")
                .await
                .expect_err("loopback-only servers publish nothing")
        ),
        Some(404)
    );

    let t = start_with(|c| c.advertise = Some("172.30.0.1:6443".parse().expect("addr"))).await;
    let eps: Api<Endpoints> = Api::namespaced(t.client.clone(), "default");
    let ep = eps.get("kubernetes").await.expect("endpoints");
    let subset = &ep.subsets.expect("subsets")[0];
    assert_eq!(
        subset.addresses.as_ref().expect("addresses")[0].ip,
        "172.30.0.1"
    );
    assert_eq!(subset.ports.as_ref().expect("ports")[0].port, 6443);
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), "default");
    let listed = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=kubernetes"))
        .await
        .expect("slices");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].endpoints[0].addresses,
        vec!["172.30.0.1".to_string()]
    );
    let svc: Service = Api::namespaced(t.client.clone(), "default")
        .get("kubernetes")
        .await
        .expect("service");
    let port = &svc.spec.expect("spec").ports.expect("ports")[0];
    assert_eq!(
        (port.port, port.target_port.clone()),
        (
            443,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(6443))
        )
    );
}

#[tokio::test]
async fn kubelet_style_status_updates_and_custom_grace_period() {
    let t = start().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let mut p = pod("kubeletted", json!({"app": "k"}));
    p.spec
        .as_mut()
        .expect("spec")
        .termination_grace_period_seconds = Some(5);
    pods.create(&PostParams::default(), &p)
        .await
        .expect("create");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "kubeletted"}, "target": {"kind": "Node", "name": "node1"}});
    pods.create_subresource::<_, serde_json::Value>(
        "binding",
        "kubeletted",
        &PostParams::default(),
        &binding,
    )
    .await
    .expect("bind");

    let mut current = pods.get_status("kubeletted").await.expect("get status");
    let status = current.status.get_or_insert_default();
    status.phase = Some("Running".into());
    status.pod_ip = Some("10.16.0.7".into());
    let running = pods
        .replace_status("kubeletted", &PostParams::default(), &current)
        .await
        .expect("replace_status");
    let st = running.status.expect("status");
    assert_eq!(
        (st.phase.as_deref(), st.pod_ip.as_deref()),
        (Some("Running"), Some("10.16.0.7"))
    );
    let scheduled = st
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.status == "True");
    assert!(scheduled, "binding records PodScheduled");
    let running_list = pods
        .list(&ListParams::default().fields("status.phase=Running,spec.nodeName=node1"))
        .await
        .expect("list");
    assert_eq!(running_list.items.len(), 1);

    pods.delete("kubeletted", &DeleteParams::default())
        .await
        .expect("delete");
    let terminating = pods.get("kubeletted").await.expect("terminating");
    assert_eq!(
        terminating.metadata.deletion_grace_period_seconds,
        Some(5),
        "the pod's own grace period"
    );
    pods.delete(
        "kubeletted",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .expect("kubelet confirms");
    assert_eq!(
        api_code(&pods.get("kubeletted").await.expect_err("gone")),
        Some(404)
    );

    for name in ["c1", "c2", "c3"] {
        pods.create(&PostParams::default(), &pod(name, json!({"batch": "yes"})))
            .await
            .expect("create");
    }
    pods.create(&PostParams::default(), &pod("keep", json!({"batch": "no"})))
        .await
        .expect("create");
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("batch=yes"),
    )
    .await
    .expect("deletecollection");
    let left: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(left, ["keep"]);
}
