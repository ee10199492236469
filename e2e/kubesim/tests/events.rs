//! core/v1 and events.k8s.io/v1 Events are one storage seen two ways: what kube-runtime's
//! `Recorder` writes shows in the core API, `kubectl get events` and `kubectl describe
//! pod`; what is written through core shows through events.k8s.io with upstream's field
//! mapping; watches, field selectors and deletes work across the two.

mod common;

use std::time::Duration;

use common::kubectl::Kubectl;
use common::{api_code, start, unique};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event as CoreEvent, Namespace, Pod};
use k8s_openapi::api::events::v1::Event as EventV1;
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;

async fn namespace(client: &kube::Client) -> String {
    let name = unique("ev");
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns literal");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    name
}

async fn make_pod(client: &kube::Client, ns: &str, name: &str) -> Pod {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "rovn-podtool"}]}
    }))
    .expect("pod literal");
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod created")
}

fn core_event(name: &str, pod: &Pod) -> CoreEvent {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "involvedObject": {
            "kind": "Pod", "apiVersion": "v1",
            "name": pod.metadata.name, "namespace": pod.metadata.namespace, "uid": pod.metadata.uid,
        },
        "reason": "Scheduled",
        "message": "assigned to node1",
        "type": "Normal",
        "source": {"component": "default-scheduler", "host": "cp1"},
        "count": 4,
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:05:00Z",
    }))
    .expect("core event literal")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorder_events_show_in_core_api_and_kubectl() {
    let t = start().await;
    let ns = namespace(&t.client).await;
    let pod = make_pod(&t.client, &ns, "wired").await;
    let recorder = Recorder::new(
        t.client.clone(),
        Reporter {
            controller: "rovn-test".into(),
            instance: Some("node7".into()),
        },
    );
    let ev = Event {
        type_: EventType::Warning,
        reason: "PortWired".into(),
        note: Some("veth up on br-int".into()),
        action: "Wire".into(),
        secondary: None,
    };
    let reference = pod.object_ref(&());
    recorder.publish(&ev, &reference).await.expect("published");
    recorder.publish(&ev, &reference).await.expect("series");

    let core: Api<CoreEvent> = Api::namespaced(t.client.clone(), &ns);
    let listed = core.list(&ListParams::default()).await.expect("core list");
    assert_eq!(listed.items.len(), 1, "one event, seen through core/v1");
    let c = &listed.items[0];
    assert_eq!(c.involved_object.name.as_deref(), Some("wired"));
    assert_eq!(c.involved_object.uid, pod.metadata.uid);
    assert_eq!(c.message.as_deref(), Some("veth up on br-int"));
    assert_eq!(c.reason.as_deref(), Some("PortWired"));
    assert_eq!(c.type_.as_deref(), Some("Warning"));
    assert_eq!(c.action.as_deref(), Some("Wire"));
    assert_eq!(c.reporting_component.as_deref(), Some("rovn-test"));
    assert_eq!(c.reporting_instance.as_deref(), Some("node7"));
    let source = c.source.clone().unwrap_or_default();
    assert_eq!(source.component.as_deref(), Some("rovn-test"));
    assert_eq!(source.host.as_deref(), Some("node7"));
    assert_eq!(c.series.as_ref().map(|s| s.count), Some(Some(2)));
    assert!(c.event_time.is_some(), "eventTime kept");

    let v1: Api<EventV1> = Api::namespaced(t.client.clone(), &ns);
    let name = c.metadata.name.clone().expect("event name");
    let same = v1
        .get(&name)
        .await
        .expect("the same event through events.k8s.io");
    assert_eq!(same.metadata.uid, c.metadata.uid);
    assert_eq!(same.metadata.resource_version, c.metadata.resource_version);

    let k = Kubectl::new(&t.server.url());
    let table = k.ok(&["get", "events", "-n", &ns]).await;
    assert!(
        table.contains("PortWired") && table.contains("veth up on br-int"),
        "kubectl get events shows the recorder's event:\n{table}"
    );
    assert!(table.contains("pod/wired"), "object column:\n{table}");
    let described = k.ok(&["describe", "pod", "wired", "-n", &ns]).await;
    let events_section = described
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events section:\n{described}"));
    assert!(
        events_section.contains("PortWired") && events_section.contains("veth up on br-int"),
        "kubectl describe pod lists the event:\n{described}"
    );
}

#[tokio::test]
async fn core_events_show_through_events_v1_with_mapped_fields() {
    let t = start().await;
    let ns = namespace(&t.client).await;
    let pod = make_pod(&t.client, &ns, "sched").await;
    let other = make_pod(&t.client, &ns, "other").await;
    let core: Api<CoreEvent> = Api::namespaced(t.client.clone(), &ns);
    let created = core
        .create(&PostParams::default(), &core_event("sched.1", &pod))
        .await
        .expect("core event created");
    core.create(&PostParams::default(), &core_event("other.1", &other))
        .await
        .expect("second core event created");

    let v1: Api<EventV1> = Api::namespaced(t.client.clone(), &ns);
    let e = v1.get("sched.1").await.expect("seen through events.k8s.io");
    assert_eq!(e.metadata.uid, created.metadata.uid);
    assert_eq!(
        e.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(e.metadata.namespace.as_deref(), Some(ns.as_str()));
    let regarding = e.regarding.clone().unwrap_or_default();
    assert_eq!(regarding.name.as_deref(), Some("sched"));
    assert_eq!(regarding.uid, pod.metadata.uid);
    assert_eq!(e.note.as_deref(), Some("assigned to node1"));
    assert_eq!(e.reason.as_deref(), Some("Scheduled"));
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    assert_eq!(e.deprecated_count, Some(4));
    assert_eq!(
        e.deprecated_source.as_ref().and_then(|s| s.host.as_deref()),
        Some("cp1")
    );
    assert_eq!(e.reporting_controller.as_deref(), Some("default-scheduler"));
    assert_eq!(e.reporting_instance.as_deref(), Some("cp1"));
    assert!(e.deprecated_first_timestamp.is_some() && e.deprecated_last_timestamp.is_some());

    let names = |list: kube::core::ObjectList<EventV1>| -> Vec<String> {
        list.items
            .into_iter()
            .filter_map(|e| e.metadata.name)
            .collect()
    };
    let by_regarding = v1
        .list(&ListParams::default().fields("regarding.name=sched"))
        .await
        .expect("events.k8s.io field selector");
    assert_eq!(names(by_regarding), vec!["sched.1".to_string()]);
    let by_controller = v1
        .list(&ListParams::default().fields("reportingController=default-scheduler"))
        .await
        .expect("reportingController selector");
    assert!(
        by_controller.items.is_empty(),
        "like upstream, the selector indexes the stored reportingComponent, not source"
    );

    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let describe_selector =
        format!("involvedObject.name=sched,involvedObject.namespace={ns},involvedObject.uid={uid}");
    let for_pod = core
        .list(&ListParams::default().fields(&describe_selector))
        .await
        .expect("kubectl describe's selector");
    assert_eq!(for_pod.items.len(), 1);
    let by_source = core
        .list(&ListParams::default().fields("source=default-scheduler,type=Normal"))
        .await
        .expect("source selector");
    assert_eq!(by_source.items.len(), 2);
}

#[tokio::test]
async fn watches_see_writes_through_the_other_group() {
    let t = start().await;
    let ns = namespace(&t.client).await;
    let pod = make_pod(&t.client, &ns, "watched").await;
    let core: Api<CoreEvent> = Api::namespaced(t.client.clone(), &ns);
    let v1: Api<EventV1> = Api::namespaced(t.client.clone(), &ns);

    let rv = v1
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .unwrap_or_default();
    let v1_watch = v1
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .expect("events.k8s.io watch");
    core.create(&PostParams::default(), &core_event("w.core", &pod))
        .await
        .expect("core create");
    let seen: Vec<WatchEvent<EventV1>> =
        tokio::time::timeout(Duration::from_secs(10), v1_watch.take(1).try_collect())
            .await
            .expect("watch event in time")
            .expect("watch stream");
    match seen.first() {
        Some(WatchEvent::Added(e)) => {
            assert_eq!(e.metadata.name.as_deref(), Some("w.core"));
            assert_eq!(e.note.as_deref(), Some("assigned to node1"));
        }
        other => panic!("expected ADDED through events.k8s.io, got {other:?}"),
    }

    let rv = core
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .unwrap_or_default();
    let core_watch = core
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .expect("core watch");
    let written: EventV1 = serde_json::from_value(json!({
        "metadata": {"name": "w.v1"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "action": "Wire", "reason": "Wired", "type": "Normal", "note": "through v1",
        "reportingController": "rovn-test", "reportingInstance": "n1",
        "regarding": {"kind": "Pod", "name": "watched", "namespace": ns},
    }))
    .expect("v1 event literal");
    v1.create(&PostParams::default(), &written)
        .await
        .expect("events.k8s.io create");
    let seen: Vec<WatchEvent<CoreEvent>> =
        tokio::time::timeout(Duration::from_secs(10), core_watch.take(1).try_collect())
            .await
            .expect("watch event in time")
            .expect("watch stream");
    match seen.first() {
        Some(WatchEvent::Added(e)) => {
            assert_eq!(e.metadata.name.as_deref(), Some("w.v1"));
            assert_eq!(e.message.as_deref(), Some("through v1"));
            assert_eq!(e.involved_object.name.as_deref(), Some("watched"));
        }
        other => panic!("expected ADDED through core/v1, got {other:?}"),
    }
}

#[tokio::test]
async fn deleting_through_one_group_removes_from_both() {
    let t = start().await;
    let ns = namespace(&t.client).await;
    let pod = make_pod(&t.client, &ns, "gone").await;
    let core: Api<CoreEvent> = Api::namespaced(t.client.clone(), &ns);
    let v1: Api<EventV1> = Api::namespaced(t.client.clone(), &ns);
    core.create(&PostParams::default(), &core_event("d.1", &pod))
        .await
        .expect("first");
    core.create(&PostParams::default(), &core_event("d.2", &pod))
        .await
        .expect("second");

    v1.delete("d.1", &DeleteParams::default())
        .await
        .expect("deleted through events.k8s.io");
    let err = core.get("d.1").await.expect_err("gone from core/v1");
    assert_eq!(api_code(&err), Some(404));

    core.delete("d.2", &DeleteParams::default())
        .await
        .expect("deleted through core/v1");
    let err = v1.get("d.2").await.expect_err("gone from events.k8s.io");
    assert_eq!(api_code(&err), Some(404));
    let left = v1.list(&ListParams::default()).await.expect("list");
    assert!(left.items.is_empty(), "nothing left: {:?}", left.items);
}
