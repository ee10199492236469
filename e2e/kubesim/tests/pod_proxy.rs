//! `pods/NAME:PORT/proxy/PATH` relays a GET to the pod's address and passes its answer back,
//! as `kubectl get --raw` sees it on a real server; what cannot be relayed is a Status.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use common::{api_code, start};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// A one-thread HTTP server on 127.0.0.1 that answers every request with 418 and the request
/// line it got, so a test sees exactly what reached the pod.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("bound address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut line = String::new();
            let mut reader = BufReader::new(&stream);
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let body = line.trim_end();
            let answer = format!(
                "HTTP/1.1 418 I'm a teapot\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = (&stream).write_all(answer.as_bytes());
        }
    });
    port
}

async fn pod_at(pods: &Api<Pod>, name: &str, ip: Option<&str>, port: u16) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "x",
            "ports": [{"name": "web", "containerPort": port}]}]},
    }))
    .expect("pod literal");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    if let Some(ip) = ip {
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"podIP": ip, "phase": "Running"}})),
        )
        .await
        .expect("patch pod status");
    }
}

async fn get(client: &kube::Client, path: &str) -> Result<String, kube::Error> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .expect("request literal");
    client.request_text(request).await
}

#[tokio::test]
async fn the_proxy_relays_gets_to_the_pod_and_refuses_the_rest() {
    let t = start().await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let port = echo_server();
    pod_at(&pods, "web", Some("127.0.0.1"), port).await;
    pod_at(&pods, "pending", None, port).await;
    let base = "/api/v1/namespaces/default/pods";

    // The pod's non-2xx answer comes back as it is; kube-rs reports it as an error whose
    // body is the pod's text, with its code.
    for (target, expected) in [
        (format!("web:{port}"), "GET /debug/plan?x=1 HTTP/1.0"),
        ("web:web".to_string(), "GET /debug/plan?x=1 HTTP/1.0"),
        ("web".to_string(), "GET /debug/plan?x=1 HTTP/1.0"),
    ] {
        let answer = get(&t.client, &format!("{base}/{target}/proxy/debug/plan?x=1")).await;
        match answer {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 418, "{target}: {status:?}");
                assert!(status.message.contains(expected), "{target}: {status:?}");
            }
            other => panic!("{target}: expected the pod's 418, got {other:?}"),
        }
    }

    for (path, code) in [
        (format!("{base}/missing:{port}/proxy/"), 404),
        (format!("{base}/pending:{port}/proxy/"), 503),
        (format!("{base}/web:nosuchport/proxy/"), 503),
    ] {
        let e = get(&t.client, &path).await.expect_err("no answer to relay");
        assert_eq!(api_code(&e), Some(code), "{path}: {e:?}");
    }
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("address").port();
    drop(closed);
    let e = get(&t.client, &format!("{base}/web:{closed_port}/proxy/"))
        .await
        .expect_err("connection refused");
    assert_eq!(api_code(&e), Some(503), "{e:?}");

    let post = http::Request::post(format!("{base}/web:{port}/proxy/"))
        .body(Vec::new())
        .expect("request literal");
    let e = t
        .client
        .request_text(post)
        .await
        .expect_err("POST is not relayed");
    assert_eq!(api_code(&e), Some(405), "{e:?}");
}
