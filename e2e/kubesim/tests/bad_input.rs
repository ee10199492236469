//! Malformed and hostile requests get 4xx `Status` answers, never a 5xx or a dropped
//! connection, and the server keeps serving afterwards.

mod common;

use common::start;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

const POD: &str = "/api/v1/namespaces/default/pods";

fn cases() -> Vec<(&'static str, String, &'static str, Vec<u8>)> {
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    vec![
        ("GET", "/api/v1/nosuch".into(), "", vec![]),
        ("GET", "/apis/a/b/c/d/e/f/g".into(), "", vec![]),
        ("GET", "/api/v1/namespaces//pods".into(), "", vec![]),
        ("GET", format!("{POD}?labelSelector=a%20in%20(b"), "", vec![]),
        ("GET", format!("{POD}?fieldSelector=spec.containers=x"), "", vec![]),
        ("GET", format!("{POD}?limit=-1"), "", vec![]),
        ("GET", format!("{POD}?limit=1&continue=garbage"), "", vec![]),
        ("GET", format!("{POD}?limit=1&continue=1-18446744073709551615"), "", vec![]),
        ("GET", format!("{POD}?watch=1&resourceVersion=abc"), "", vec![]),
        ("GET", format!("{POD}?watch=1&timeoutSeconds=x"), "", vec![]),
        ("POST", POD.into(), "application/json", b"{not json".to_vec()),
        ("POST", POD.into(), "application/json", b"[]".to_vec()),
        ("POST", POD.into(), "application/json", b"".to_vec()),
        ("POST", POD.into(), "application/json", deep.into_bytes()),
        ("POST", POD.into(), "application/json", vec![0xff, 0xfe, 0x00]),
        ("POST", POD.into(), "application/yaml", b"a: [".to_vec()),
        ("POST", POD.into(), "application/yaml", b"- 1\n- 2\n".to_vec()),
        ("POST", POD.into(), "application/vnd.kubernetes.protobuf", b"k8s\0\x0a\xff\xff".to_vec()),
        ("POST", POD.into(), "text/plain", b"hello".to_vec()),
        ("POST", POD.into(), "application/json", br#"{"kind":"Service","metadata":{"name":"x"}}"#.to_vec()),
        ("POST", POD.into(), "application/json", br#"{"metadata":{"name":"x","namespace":"other"},"spec":{"containers":[{"name":"c"}]}}"#.to_vec()),
        ("POST", POD.into(), "application/json", br#"{"metadata":{"name":"x"},"spec":"nope"}"#.to_vec()),
        ("POST", POD.into(), "application/json", br#"{"metadata":"x"}"#.to_vec()),
        ("POST", POD.into(), "application/json", br#"{"metadata":{"name":"x","labels":{"a":1}},"spec":{"containers":[{"name":"c"}]}}"#.to_vec()),
        ("POST", "/api/v1/services".into(), "application/json", b"{}".to_vec()),
        ("POST", "/api/v1/namespaces/default/services".into(), "application/json", br#"{"metadata":{"name":"s"},"spec":{"ports":[{"port":99999}]}}"#.to_vec()),
        ("POST", "/api/v1/namespaces/default/services".into(), "application/json", br#"{"metadata":{"name":"s"},"spec":{"type":"Weird","ports":[{"port":1}]}}"#.to_vec()),
        ("POST", "/api/v1/namespaces/default/services".into(), "application/json", br#"{"metadata":{"name":"s"},"spec":{"clusterIP":"banana"}}"#.to_vec()),
        ("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions".into(), "application/json", br#"{"metadata":{"name":"x"},"spec":{}}"#.to_vec()),
        ("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions".into(), "application/json", br#"{"metadata":{"name":"pods.x"},"spec":{"group":"","names":{"plural":"pods","kind":"P"},"scope":"Cluster","versions":[{"name":"v1","served":true,"storage":true}]}}"#.to_vec()),
        ("POST", format!("{POD}/p/binding"), "application/json", br#"{"target":{}}"#.to_vec()),
        ("POST", format!("{POD}/missing/binding"), "application/json", br#"{"target":{"name":"n"}}"#.to_vec()),
        ("POST", format!("{POD}/x/status"), "application/json", b"{}".to_vec()),
        ("PUT", format!("{POD}/missing"), "application/json", b"{}".to_vec()),
        ("PUT", POD.into(), "application/json", b"{}".to_vec()),
        ("PATCH", format!("{POD}/victim"), "application/json-patch+json", br#"{"op":"add"}"#.to_vec()),
        ("PATCH", format!("{POD}/victim"), "application/json-patch+json", br#"[{"op":"move","from":"/spec","path":"/spec/x"}]"#.to_vec()),
        ("PATCH", format!("{POD}/victim"), "application/json-patch+json", br#"[{"op":"replace","path":"","value":7}]"#.to_vec()),
        ("PATCH", format!("{POD}/victim"), "application/json-patch+json", br#"[{"op":"add","path":"/metadata/name","value":"other"}]"#.to_vec()),
        ("PATCH", format!("{POD}/victim"), "application/merge-patch+json", br#"{"metadata":"x"}"#.to_vec()),
        ("PATCH", format!("{POD}/victim"), "application/merge-patch+json", br#"{"spec":{"containers":null}}"#.to_vec()),
        ("PATCH", format!("{POD}/victim"), "application/merge-patch+json", b"[1]".to_vec()),
        ("PATCH", format!("{POD}/victim"), "application/strategic-merge-patch+json", br#"{"$patch":"delete"}"#.to_vec()),
        ("PATCH", format!("{POD}/victim"), "application/strategic-merge-patch+json", br#"{"spec":{"containers":[{"image":"no-name"}]}}"#.to_vec()),
        ("PATCH", format!("{POD}/victim"), "application/strategic-merge-patch+json", br#"{"spec":{"$patch":"explode"}}"#.to_vec()),
        ("PATCH", format!("{POD}/victim"), "application/apply-patch+yaml", b"metadata: {name: victim}".to_vec()),
        ("PATCH", format!("{POD}/victim?fieldManager=t"), "application/apply-patch+yaml", b"{{{".to_vec()),
        ("PATCH", format!("{POD}/victim"), "application/xml", b"<x/>".to_vec()),
        ("DELETE", format!("{POD}/victim"), "application/json", b"{oops".to_vec()),
        ("DELETE", format!("{POD}/victim?gracePeriodSeconds=abc"), "", vec![]),
        ("DELETE", format!("{POD}/victim?propagationPolicy=Sideways"), "", vec![]),
        ("DELETE", format!("{POD}/victim"), "application/json", br#"{"preconditions":{"uid":"not-it"}}"#.to_vec()),
        ("DELETE", "/api".into(), "", vec![]),
        ("POST", "/version".into(), "application/json", b"{}".to_vec()),
    ]
}

#[tokio::test]
async fn hostile_requests_get_4xx_statuses() {
    let t = start().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let victim: Pod = serde_json::from_value(json!({"metadata": {"name": "victim"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})).expect("pod");
    pods.create(&PostParams::default(), &victim)
        .await
        .expect("victim created");
    let before = pods.get("victim").await.expect("victim");

    for (method, path, ct, body) in cases() {
        let mut req = http::Request::builder().method(method).uri(&path);
        if !ct.is_empty() {
            req = req.header("content-type", ct);
        }
        let req = req.body(body).expect("request builds");
        match t.client.request_text(req).await {
            Ok(text) => panic!("{method} {path} ({ct}) unexpectedly succeeded: {text}"),
            Err(kube::Error::Api(s)) => {
                assert!(
                    (400..500).contains(&s.code),
                    "{method} {path} ({ct}) gave {}: {}",
                    s.code,
                    s.message
                );
                assert!(
                    !s.reason.is_empty() && !s.message.is_empty(),
                    "{method} {path}: Status lacks reason/message"
                );
            }
            Err(other) => panic!("{method} {path} ({ct}) failed outside the API: {other}"),
        }
    }
    // Huge but well-formed values are served, not overflowed.
    let huge = http::Request::get(format!("{POD}?limit=18446744073709551615"))
        .body(Vec::new())
        .expect("request");
    t.client
        .request_text(huge)
        .await
        .expect("huge limit lists everything");

    // A client-supplied timestamp that is not RFC 3339 must not upset Table rendering.
    let event = json!({"metadata": {"name": "odd"}, "involvedObject": {"kind": "Pod", "name": "victim"},
        "lastTimestamp": "2026-01-01T00:00:0\u{e9}0Z", "reason": "Test", "message": "m", "type": "Normal"});
    let create = http::Request::post("/api/v1/namespaces/default/events")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&event).expect("json"))
        .expect("request");
    t.client.request_text(create).await.expect("event created");
    let table = http::Request::get("/api/v1/namespaces/default/events")
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .expect("request");
    let text = t
        .client
        .request_text(table)
        .await
        .expect("events as a Table");
    assert!(
        text.contains("\"kind\":\"Table\"") && text.contains("<unknown>"),
        "{text}"
    );

    let after = pods
        .get("victim")
        .await
        .expect("server still serves and the victim is intact");
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );
}
