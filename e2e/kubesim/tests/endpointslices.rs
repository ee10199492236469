//! The in-server EndpointSlice controller seen from a kube-rs client, as rovn sees it:
//! slices appear for a Service's pods, follow readiness and graceful deletion, spill
//! over at 100 endpoints, leave selector-less Services' slices alone and go away with
//! their Service. Every wait polls with a deadline.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::{start, unique};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER: &str = "endpointslice-controller.k8s.io";

/// Polls `check` until it returns `Some`, failing the test with `what` after 15 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn namespace(client: &kube::Client) -> String {
    let name = unique("eps");
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
    name
}

async fn service(client: &kube::Client, ns: &str, name: &str, spec: Value) {
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"team": "blue"}}, "spec": spec}),
    )
    .expect("service literal");
    Api::<Service>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &svc)
        .await
        .expect("service created");
}

/// Creates a pod labelled `app`, binds it to node1 and reports it running at `ip`
/// with the given readiness, as scheduler and kubelet would.
async fn running_pod(pods: &Api<Pod>, name: &str, app: &str, ip: &str, ready: bool) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": "rovn-podtool",
                 "ports": [{"name": "http", "containerPort": 8080}]}]}
    }))
    .expect("pod literal");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                         "target": {"kind": "Node", "name": "node1"}});
    pods.create_subresource::<_, Value>("binding", name, &PostParams::default(), &binding)
        .await
        .expect("bound");
    set_status(pods, name, ip, ready).await;
}

async fn set_status(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .expect("status patched");
}

async fn slices_of(slices: &Api<EndpointSlice>, service: &str) -> Vec<EndpointSlice> {
    slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .expect("list slices")
        .items
}

/// The (ready, serving, terminating) conditions of `pod`'s endpoint, if it has one.
fn conditions_of(slices: &[EndpointSlice], pod: &str) -> Option<(bool, bool, bool)> {
    slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .find(|e| e.target_ref.as_ref().and_then(|t| t.name.as_deref()) == Some(pod))
        .map(|e| {
            let c = e.conditions.clone().unwrap_or_default();
            (
                c.ready == Some(true),
                c.serving == Some(true),
                c.terminating == Some(true),
            )
        })
}

#[tokio::test]
async fn slices_follow_readiness_and_graceful_deletion() {
    let t = start().await;
    let ns = namespace(&t.client).await;
    service(
        &t.client,
        &ns,
        "web",
        json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
    )
    .await;
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), &ns);

    let placeholder = eventually("the placeholder slice", || async {
        let s = slices_of(&slices, "web").await;
        (s.len() == 1).then(|| s[0].clone())
    })
    .await;
    assert!(placeholder.endpoints.is_empty());
    let svc_uid = Api::<Service>::namespaced(t.client.clone(), &ns)
        .get("web")
        .await
        .expect("service")
        .metadata
        .uid;
    let owner = &placeholder
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.name.as_str(),
            Some(owner.uid.clone()),
            owner.controller
        ),
        ("Service", "web", svc_uid, Some(true))
    );
    let labels = placeholder.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get(MANAGED_BY).map(String::as_str), Some(CONTROLLER));
    assert_eq!(labels.get("team").map(String::as_str), Some("blue"));
    let name = placeholder.metadata.name.clone().unwrap_or_default();
    assert!(
        name.starts_with("web-") && name.len() == "web-".len() + 5,
        "{name}"
    );

    running_pod(&pods, "p1", "web", "10.244.1.10", true).await;
    let slice = eventually("p1 ready in the slice", || async {
        let s = slices_of(&slices, "web").await;
        (conditions_of(&s, "p1") == Some((true, true, false))).then(|| s[0].clone())
    })
    .await;
    assert_eq!(
        slice.metadata.name.as_deref(),
        Some(name.as_str()),
        "the placeholder was reused"
    );
    let ep = &slice.endpoints[0];
    assert_eq!(ep.addresses, vec!["10.244.1.10".to_string()]);
    assert_eq!(ep.node_name.as_deref(), Some("node1"));
    let port = &slice.ports.clone().unwrap_or_default()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("http"), Some(8080), Some("TCP")),
        "the named targetPort resolved to the container port"
    );

    set_status(&pods, "p1", "10.244.1.10", false).await;
    eventually("p1 not ready", || async {
        (conditions_of(&slices_of(&slices, "web").await, "p1") == Some((false, false, false)))
            .then_some(())
    })
    .await;
    set_status(&pods, "p1", "10.244.1.10", true).await;
    eventually("p1 ready again", || async {
        (conditions_of(&slices_of(&slices, "web").await, "p1") == Some((true, true, false)))
            .then_some(())
    })
    .await;

    pods.delete("p1", &DeleteParams::default())
        .await
        .expect("graceful delete");
    eventually("p1 terminating but serving", || async {
        (conditions_of(&slices_of(&slices, "web").await, "p1") == Some((false, true, true)))
            .then_some(())
    })
    .await;
    pods.delete(
        "p1",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .expect("kubelet confirms");
    let left = eventually("p1 gone from the slices", || async {
        let s = slices_of(&slices, "web").await;
        (conditions_of(&s, "p1").is_none()).then_some(s)
    })
    .await;
    assert_eq!(
        left.len(),
        1,
        "one empty slice stays, as upstream's placeholder"
    );
    assert!(left[0].endpoints.is_empty());
}

#[tokio::test]
async fn many_pods_spill_into_two_slices_and_go_with_their_service() {
    let t = start().await;
    let ns = namespace(&t.client).await;
    service(
        &t.client,
        &ns,
        "big",
        json!({"selector": {"app": "big"}, "ports": [{"port": 80, "targetPort": 8080}]}),
    )
    .await;
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), &ns);
    for i in 0..150 {
        running_pod(
            &pods,
            &format!("big-{i:03}"),
            "big",
            &format!("10.244.2.{}", i + 1),
            true,
        )
        .await;
    }
    let got = eventually("150 endpoints in 2 slices", || async {
        let s = slices_of(&slices, "big").await;
        let total: usize = s.iter().map(|s| s.endpoints.len()).sum();
        (total == 150).then_some(s)
    })
    .await;
    // How the 150 are packed depends on how the pods' events were batched (upstream packs
    // as it goes, too); what holds is two slices of at most 100 each.
    let sizes: Vec<usize> = got.iter().map(|s| s.endpoints.len()).collect();
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");

    Api::<Service>::namespaced(t.client.clone(), &ns)
        .delete("big", &DeleteParams::default())
        .await
        .expect("service deleted");
    eventually("the slices gone with the Service", || async {
        slices_of(&slices, "big").await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn user_slices_are_left_alone_and_a_removed_selector_removes_managed_slices() {
    let t = start().await;
    let ns = namespace(&t.client).await;
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), &ns);
    service(&t.client, &ns, "manual", json!({"ports": [{"port": 80}]})).await;
    let user: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "manual-1", "labels": {"kubernetes.io/service-name": "manual"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.0.2.1"]}],
        "ports": [{"port": 80}]
    }))
    .expect("slice literal");
    let user = slices
        .create(&PostParams::default(), &user)
        .await
        .expect("user slice");
    running_pod(&pods, "m1", "manual", "10.244.3.1", true).await;

    // The controller handles changes in order: once a later Service's slice shows the
    // pod, everything before it (the selector-less Service, its slice) was seen.
    service(
        &t.client,
        &ns,
        "selected",
        json!({"selector": {"app": "manual"}, "ports": [{"port": 80}]}),
    )
    .await;
    let managed = eventually("the selected Service's slice", || async {
        let s = slices_of(&slices, "selected").await;
        (conditions_of(&s, "m1") == Some((true, true, false))).then_some(s)
    })
    .await;
    assert_eq!(managed.len(), 1);
    let untouched = slices_of(&slices, "manual").await;
    assert_eq!(
        untouched.len(),
        1,
        "no managed slice for a selector-less Service"
    );
    assert_eq!(
        untouched[0].metadata.resource_version,
        user.metadata.resource_version
    );

    Api::<Service>::namespaced(t.client.clone(), &ns)
        .patch(
            "selected",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": null}})),
        )
        .await
        .expect("selector removed");
    eventually(
        "managed slices gone after the selector was removed",
        || async {
            slices_of(&slices, "selected")
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        slices_of(&slices, "manual").await[0]
            .metadata
            .resource_version,
        user.metadata.resource_version
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_falls_behind_the_change_feed_catches_up() {
    use rovn_kubesim::cluster::Target;
    // A 16-event feed: the burst below overflows it while the controller batches.
    let t = common::start_with(|c| c.watcher_buffer = 16).await;
    let ns = namespace(&t.client).await;
    service(
        &t.client,
        &ns,
        "burst",
        json!({"selector": {"app": "burst"}, "ports": [{"port": 80}]}),
    )
    .await;
    let slices: Api<EndpointSlice> = Api::namespaced(t.client.clone(), &ns);
    eventually("the placeholder slice", || async {
        (slices_of(&slices, "burst").await.len() == 1).then_some(())
    })
    .await;
    {
        let mut state = t.server.cluster().write();
        let def = state.registry.get("", "v1", "pods").expect("pods");
        for i in 0..120 {
            let name = format!("burst-{i:03}");
            let pod = json!({"metadata": {"name": name, "labels": {"app": "burst"}},
                "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]}});
            let mut created = state
                .create(&def, Some(&ns), pod, false)
                .expect("pod")
                .value
                .clone();
            let ip = format!("10.244.4.{}", i + 1);
            created["status"] = json!({"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": "True"}]});
            state
                .update(&def, &ns, &name, created, Target::Status, false)
                .expect("status");
        }
    }
    let got = eventually("all 120 endpoints after re-indexing", || async {
        let s = slices_of(&slices, "burst").await;
        let ready = s
            .iter()
            .flat_map(|s| &s.endpoints)
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count();
        (ready == 120).then_some(s)
    })
    .await;
    let mut sizes: Vec<usize> = got.iter().map(|s| s.endpoints.len()).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![20, 100]);
}
