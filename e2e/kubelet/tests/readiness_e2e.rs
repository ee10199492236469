//! Readiness probes through the kubelet against `rovn-kubesim`, on a lab node with real CNI
//! plugins: probes decide `Ready`, the status says so promptly, events tell why.
//!
//! The pods' server is this test binary itself, started again by the kubelet as a container
//! running the ignored test [`probe_target_server`]: no program outside the workspace is needed,
//! and the server answers whatever status a probe path asks for.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::harness::{Harness, pod};
use common::procs::{BoxError, wait_for};
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

/// The port the pods' server listens on.
const PORT: u16 = 8080;

/// Not a test: the HTTP server the test pods run. Does nothing unless `PROBE_TARGET_PORT` is
/// set, as it is only in the pods' environment. `/healthz` answers 200, `/status/N` answers N,
/// `/redirect` sends a same-host redirect to `/healthz`, `/away` a redirect to another host.
#[test]
#[ignore = "the server pods run; started by the kubelet, not by cargo test"]
fn probe_target_server() {
    let Some(port) = std::env::var("PROBE_TARGET_PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    else {
        return;
    };
    let Ok(listener) = std::net::TcpListener::bind(("0.0.0.0", port)) else {
        std::process::exit(2);
    };
    println!("serving on {port}");
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || answer(conn));
    }
}

fn answer(mut conn: std::net::TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let (status, extra) = match path {
        "/healthz" => (200, String::new()),
        "/redirect" => (302, "Location: /healthz\r\n".to_owned()),
        "/away" => (302, "Location: http://elsewhere.invalid/\r\n".to_owned()),
        p => match p
            .strip_prefix("/status/")
            .and_then(|c| c.parse::<u16>().ok())
        {
            Some(code) => (code, String::new()),
            None => (404, String::new()),
        },
    };
    let body = format!("status {status}\n");
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A pod whose container runs [`probe_target_server`] with a named port `http`, and
/// `readinessProbe` merged from `probe` over `periodSeconds: 1`.
fn server_pod(name: &str, probe: serde_json::Value) -> Result<Pod, BoxError> {
    let exe = std::env::current_exe()?;
    let mut p = pod(name, "unused", json!({}))?;
    let mut readiness = json!({"periodSeconds": 1});
    if let (Some(r), Some(extra)) = (readiness.as_object_mut(), probe.as_object()) {
        r.extend(extra.clone());
    }
    let container = serde_json::from_value(json!({
        "name": "main", "image": "ignored",
        "command": [exe, "probe_target_server", "--exact", "--ignored", "--nocapture"],
        "env": [{"name": "PROBE_TARGET_PORT", "value": PORT.to_string()}],
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": readiness,
    }))?;
    if let Some(spec) = p.spec.as_mut() {
        spec.containers = vec![container];
    }
    Ok(p)
}

fn condition(p: &Pod, kind: &str) -> Option<PodCondition> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .cloned()
}

fn is_ready(p: &Pod) -> bool {
    condition(p, "Ready").is_some_and(|c| c.status == "True")
}

fn container_ready(p: &Pod) -> Option<bool> {
    Some(
        p.status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .ready,
    )
}

fn container_running(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

/// Waits until `check` holds for the pod and returns it.
async fn pod_where(
    pods: &Api<Pod>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Pod) -> bool,
) -> Result<Pod, BoxError> {
    let check = &check;
    wait_for(timeout, &format!("pod {name}: {what}"), || async move {
        let p = pods.get_opt(name).await.ok().flatten()?;
        check(&p).then_some(p)
    })
    .await
}

/// Waits for an event about pod `name` with `reason` whose note contains `text`.
async fn event_for(
    events: &Api<Event>,
    name: &str,
    reason: &str,
    text: &str,
) -> Result<Event, BoxError> {
    wait_for(
        Duration::from_secs(20),
        &format!("{reason} event for {name} saying {text:?}"),
        || async {
            let list = events.list(&Default::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.note.as_deref().is_some_and(|n| n.contains(text))
            })
        },
    )
    .await
}

/// Waits until the wall clock is past `t` (whole seconds), so that a condition flipping now gets
/// a `lastTransitionTime` distinguishable from `t` (the API keeps seconds).
async fn clock_past(t: Timestamp) -> Result<(), BoxError> {
    let after = t + SignedDuration::from_secs(1);
    wait_for(Duration::from_secs(5), "the clock to pass", || async {
        (Timestamp::now() >= after).then_some(())
    })
    .await
}

fn ready_since(p: &Pod) -> Result<Timestamp, BoxError> {
    condition(p, "Ready")
        .and_then(|c| c.last_transition_time)
        .map(|t| t.0)
        .ok_or_else(|| "Ready has no lastTransitionTime".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_http_probes_gate_ready() -> Result<(), BoxError> {
    let mut h = Harness::start("rp").await?;
    let pods = h.pods();
    let events: Api<Event> = Api::namespaced(h.client.clone(), "default");
    let scenario = async {
        // Its server answers 500: it must never become Ready. (The delay lets the server
        // listen first, so the first failure, the one reported, is the 500.)
        let never = server_pod(
            "never",
            json!({"httpGet": {"path": "/status/500", "port": PORT},
                   "failureThreshold": 1, "initialDelaySeconds": 2}),
        )?;
        pods.create(&PostParams::default(), &never).await?;
        let web = server_pod(
            "web",
            json!({"httpGet": {"path": "/redirect", "port": "http",
                               "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                   "initialDelaySeconds": 5}),
        )?;
        pods.create(&PostParams::default(), &web).await?;
        let tcp = server_pod("tcp", json!({"tcpSocket": {"port": PORT}}))?;
        pods.create(&PostParams::default(), &tcp).await?;
        let away = server_pod("away", json!({"httpGet": {"path": "/away", "port": PORT}}))?;
        pods.create(&PostParams::default(), &away).await?;
        let unknown_port = server_pod("unknown-port", json!({"tcpSocket": {"port": "metrics"}}))?;
        pods.create(&PostParams::default(), &unknown_port).await?;
        let two_handlers = server_pod(
            "two-handlers",
            json!({"tcpSocket": {"port": PORT}, "exec": {"command": ["true"]}}),
        )?;
        pods.create(&PostParams::default(), &two_handlers).await?;

        // Running is not Ready: nothing is probed during the initial delay.
        let running = pod_where(&pods, "web", "Running", Duration::from_secs(30), |p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .await?;
        assert!(!is_ready(&running), "web Ready before its first probe");
        assert_eq!(container_ready(&running), Some(false));
        let web = pod_where(&pods, "web", "Ready", Duration::from_secs(20), is_ready).await?;
        assert_eq!(container_ready(&web), Some(true));
        assert_eq!(
            condition(&web, "ContainersReady").map(|c| c.status),
            Some("True".into())
        );
        let started = web
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.clone())
            .ok_or("web has no startedAt")?;
        let waited = ready_since(&web)?.duration_since(started.0);
        assert!(
            waited >= SignedDuration::from_secs(5),
            "Ready {waited:?} after start, before initialDelaySeconds"
        );

        pod_where(&pods, "tcp", "Ready", Duration::from_secs(30), is_ready).await?;

        // A redirect to another host is not followed: a warning, which still counts as success.
        pod_where(&pods, "away", "Ready", Duration::from_secs(30), is_ready).await?;
        event_for(
            &events,
            "away",
            "ProbeWarning",
            "Probe terminated redirects",
        )
        .await?;

        // A probe that fails is reported on the container, and the pod stays not Ready.
        let failed = event_for(
            &events,
            "never",
            "Unhealthy",
            "Readiness probe failed: HTTP probe failed with statuscode: 500",
        )
        .await?;
        assert_eq!(
            failed.regarding.and_then(|r| r.field_path).as_deref(),
            Some("spec.containers{main}")
        );
        assert_eq!(failed.type_.as_deref(), Some("Warning"));
        // Malformed probes: an event, never Ready, no crash.
        event_for(&events, "unknown-port", "Unhealthy", "\"metrics\"").await?;
        event_for(&events, "two-handlers", "Unhealthy", "more than 1 handler").await?;
        for name in ["never", "unknown-port", "two-handlers"] {
            let p = pods.get(name).await?;
            assert_eq!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Running"),
                "{name}"
            );
            assert!(container_running(&p), "{name} not running");
            assert!(!is_ready(&p), "{name} is Ready");
            assert_eq!(container_ready(&p), Some(false), "{name}");
            assert_eq!(
                condition(&p, "Ready").and_then(|c| c.message),
                Some("containers with unready status: [main]".into()),
                "{name}"
            );
        }
        // By now `never` has failed many probes (one a second) in one streak: still one event,
        // never repeated (the recorder would have made a series of a repeat).
        let never_events: Vec<Event> = events
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some("Unhealthy")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("never")
            })
            .collect();
        assert_eq!(never_events.len(), 1, "one event per failure streak");
        assert!(
            never_events.iter().all(|e| e.series.is_none()),
            "the event was repeated: {:?}",
            never_events[0].series
        );

        for name in [
            "never",
            "web",
            "tcp",
            "away",
            "unknown-port",
            "two-handlers",
        ] {
            pods.delete(name, &DeleteParams::default()).await?;
        }
        wait_for(Duration::from_secs(30), "all pods deleted", || async {
            let list = pods.list(&Default::default()).await.ok()?;
            list.items.is_empty().then_some(())
        })
        .await?;
        Ok(())
    };
    h.check(scenario).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_probe_flips_ready_and_keeps_probing_while_terminating() -> Result<(), BoxError> {
    let mut h = Harness::start("rx").await?;
    let pods = h.pods();
    let events: Api<Event> = Api::namespaced(h.client.clone(), "default");
    let flag = h.dir.path().join("flip-unready");
    let scenario = async {
        // On SIGTERM the container marks itself unready and takes 3 s to shut down.
        let script = "trap 'touch \"$FLAG\"; sleep 3; exit 0' TERM; while :; do sleep 0.2; done";
        let mut flip = pod("flip", script, json!({}))?;
        let flag_text = flag.to_string_lossy().into_owned();
        let container = flip
            .spec
            .as_mut()
            .and_then(|s| s.containers.first_mut())
            .ok_or("no container")?;
        container.env = Some(vec![serde_json::from_value(
            json!({"name": "FLAG", "value": flag_text}),
        )?]);
        container.readiness_probe = Some(serde_json::from_value(json!({
            "exec": {"command": ["test", "!", "-e", flag_text]},
            "periodSeconds": 1,
            "failureThreshold": 1,
        }))?);
        pods.create(&PostParams::default(), &flip).await?;

        let ready = pod_where(&pods, "flip", "Ready", Duration::from_secs(30), is_ready).await?;
        let t1 = ready_since(&ready)?;
        let scheduled = condition(&ready, "PodScheduled").and_then(|c| c.last_transition_time);

        clock_past(t1).await?;
        std::fs::write(&flag, "")?;
        let unready = pod_where(&pods, "flip", "not Ready", Duration::from_secs(15), |p| {
            !is_ready(p)
        })
        .await?;
        let t2 = ready_since(&unready)?;
        assert!(t2 > t1, "lastTransitionTime did not move: {t1} then {t2}");
        assert_eq!(container_ready(&unready), Some(false));
        assert!(container_running(&unready), "not ready because it stopped?");
        assert_eq!(
            condition(&unready, "ContainersReady").map(|c| c.status),
            Some("False".into())
        );
        assert_eq!(
            condition(&unready, "Ready").and_then(|c| c.reason),
            Some("ContainersNotReady".into())
        );
        event_for(&events, "flip", "Unhealthy", "Readiness probe failed").await?;

        clock_past(t2).await?;
        std::fs::remove_file(&flag)?;
        let again = pod_where(
            &pods,
            "flip",
            "Ready again",
            Duration::from_secs(15),
            is_ready,
        )
        .await?;
        let t3 = ready_since(&again)?;
        assert!(t3 > t2, "lastTransitionTime did not move: {t2} then {t3}");
        assert_eq!(
            condition(&again, "PodScheduled").and_then(|c| c.last_transition_time),
            scheduled,
            "an unchanged condition moved"
        );
        // Probes keep succeeding (period 1 s): Ready and its transition time stay put.
        clock_past(t3 + SignedDuration::from_secs(2)).await?;
        let steady = pods.get("flip").await?;
        assert!(is_ready(&steady));
        assert_eq!(
            ready_since(&steady)?,
            t3,
            "lastTransitionTime moved without a change"
        );

        // Deleted: the container, told to stop, fails its probe while it still runs; the real
        // kubelet keeps probing readiness through the grace period, and so must this one.
        pods.delete("flip", &DeleteParams::default()).await?;
        let terminating = pod_where(
            &pods,
            "flip",
            "terminating and not Ready",
            Duration::from_secs(15),
            |p| p.metadata.deletion_timestamp.is_some() && !is_ready(p),
        )
        .await?;
        assert!(
            container_running(&terminating),
            "Ready went False only because the container stopped"
        );
        wait_for(Duration::from_secs(30), "flip deleted", || async {
            matches!(pods.get_opt("flip").await, Ok(None)).then_some(())
        })
        .await?;
        Ok(())
    };
    h.check(scenario).await
}
