//! The kubelet and scheduler against `rovn-kubesim`: a node namespace, real CNI plugins (bridge
//! + host-local + tuning, and a recording plugin), pods running `sh`/`sleep`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::harness::{Harness, NODE_IP, phase_of, pod, running_with_ip};
use common::procs::{BoxError, wait_for};
use common::{ping_eventually, spy_calls};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use rovn_kubelet::sandbox;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_run_ping_and_tear_down() -> Result<(), BoxError> {
    let mut h = Harness::start("e2e").await?;
    let (client, prefix, dir) = (
        h.client.clone(),
        h.prefix.clone(),
        h.dir.path().to_path_buf(),
    );
    let (spy_dir, ipam_dir, net_name) = (h.spy_dir.clone(), h.ipam_dir.clone(), h.net_name.clone());
    h.check(scenario(
        &client, &prefix, &dir, &spy_dir, &ipam_dir, &net_name,
    ))
    .await
}

async fn scenario(
    client: &Client,
    prefix: &str,
    dir: &Path,
    spy_dir: &Path,
    ipam_dir: &Path,
    net_name: &str,
) -> Result<(), BoxError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = wait_for(Duration::from_secs(20), "node1 Ready", || async {
        let n = nodes.get_opt("node1").await.ok().flatten()?;
        let ready = n
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(n)
    })
    .await?;
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("kubernetes.io/hostname").map(String::as_str),
        Some("node1")
    );
    let addrs = node.status.and_then(|s| s.addresses).unwrap_or_default();
    assert!(
        addrs
            .iter()
            .any(|a| a.type_ == "InternalIP" && a.address == NODE_IP)
    );
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-node-lease");
    let lease = leases.get("node1").await?;
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("node1")
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let script = "echo started $POD_NAME $POD_IP $GREETING; exec sleep 1000";
    let mut pod_a = pod("pod-a", script, json!({}))?;
    if let Some(c) = pod_a.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        c.ports = Some(vec![serde_json::from_value(
            json!({"containerPort": 80, "hostPort": 8080}),
        )?]);
    }
    pods.create(&PostParams::default(), &pod_a).await?;
    pods.create(&PostParams::default(), &pod("pod-b", script, json!({}))?)
        .await?;
    pods.create(
        &PostParams::default(),
        &pod("no-such-program", "x", json!({})).map(|mut p| {
            if let Some(c) = p.spec.as_mut().and_then(|s| s.containers.first_mut()) {
                c.command = Some(vec!["rovn-no-such-program".into()]);
                c.args = None;
            }
            p
        })?,
    )
    .await?;
    pods.create(
        &PostParams::default(),
        &pod("host-pod", "exec sleep 1000", json!({"hostNetwork": true}))?,
    )
    .await?;
    pods.create(
        &PostParams::default(),
        &pod("fails", "exit 3", json!({"restartPolicy": "Never"}))?,
    )
    .await?;
    pods.create(
        &PostParams::default(),
        &pod("crashy", "sleep 0.2; exit 1", json!({}))?,
    )
    .await?;

    let (ip_a, pod_a) = running_with_ip(&pods, "pod-a").await?;
    let (ip_b, _) = running_with_ip(&pods, "pod-b").await?;
    assert!(
        ip_a.starts_with("10.244.9.") && ip_b.starts_with("10.244.9."),
        "{ip_a} {ip_b}"
    );
    assert_ne!(ip_a, ip_b);
    let status = pod_a.status.clone().unwrap_or_default();
    assert_eq!(status.host_ip.as_deref(), Some(NODE_IP));
    assert_eq!(
        status
            .pod_ips
            .unwrap_or_default()
            .first()
            .map(|p| p.ip.clone()),
        Some(ip_a.clone())
    );
    for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        let ok = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == kind && c.status == "True");
        assert!(ok, "condition {kind} not True");
    }
    let uid_a = pod_a.metadata.uid.clone().ok_or("no uid")?;
    let ns_a = sandbox::sandbox_netns_name(prefix, &uid_a);
    let uid_b = pods.get("pod-b").await?.metadata.uid.ok_or("no uid")?;
    let ns_b = sandbox::sandbox_netns_name(prefix, &uid_b);
    assert!(sandbox::netns_exists(&ns_a), "{ns_a} missing");
    assert!(ping_eventually(&ns_a, &ip_b), "pod-a cannot ping pod-b");
    assert!(ping_eventually(&ns_b, &ip_a), "pod-b cannot ping pod-a");

    // The container's own view: its env and the log file.
    let log = dir.join("state/logs/default_pod-a_main.log");
    let text = wait_for(Duration::from_secs(5), "pod-a log", || async {
        std::fs::read_to_string(&log).ok().filter(|t| !t.is_empty())
    })
    .await?;
    assert_eq!(text.trim(), format!("started pod-a {ip_a} hello"));

    // The CNI calls as a runtime makes them.
    let add_a = spy_calls(spy_dir)
        .into_iter()
        .find(|(verb, _, env)| verb == "ADD" && env.contains("K8S_POD_NAME=pod-a;"))
        .ok_or("no ADD for pod-a")?;
    assert!(
        add_a.2.contains(&format!("CNI_NETNS=/run/netns/{ns_a}")),
        "{}",
        add_a.2
    );
    assert!(
        add_a.2.contains(&format!("K8S_POD_UID={uid_a}")),
        "{}",
        add_a.2
    );
    assert!(
        add_a
            .2
            .contains(&format!("CNI_CONTAINERID={}", sandbox::sandbox_id(&uid_a)))
    );
    assert_eq!(add_a.1["name"], net_name);
    // runtimeConfig reaches a plugin declaring the capability, only with what the pod asks.
    assert_eq!(
        add_a.1["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]})
    );
    let add_b = spy_calls(spy_dir)
        .into_iter()
        .find(|(verb, _, env)| verb == "ADD" && env.contains("K8S_POD_NAME=pod-b;"))
        .ok_or("no ADD for pod-b")?;
    assert!(add_b.1.get("runtimeConfig").is_none(), "{}", add_b.1);

    // A program that cannot be found: the pod waits with the reason and an event, no crash.
    let waiting = wait_for(Duration::from_secs(15), "CreateContainerError", || async {
        let p = pods.get_opt("no-such-program").await.ok().flatten()?;
        let cs = p.status?.container_statuses?.into_iter().next()?;
        let w = cs.state?.waiting?;
        (w.reason.as_deref() == Some("CreateContainerError")).then_some(w)
    })
    .await?;
    assert!(
        waiting
            .message
            .unwrap_or_default()
            .contains("rovn-no-such-program"),
        "message does not name the program"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    wait_for(Duration::from_secs(10), "Failed event", || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("Failed")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                        == Some("no-such-program")
            })
            .map(|_| ())
    })
    .await?;

    let (host_ip, _) = running_with_ip(&pods, "host-pod").await?;
    assert_eq!(host_ip, NODE_IP);

    let failed = wait_for(Duration::from_secs(20), "pod `fails` Failed", || async {
        let (phase, p) = phase_of(&pods, "fails").await?;
        (phase == "Failed").then_some(p)
    })
    .await?;
    let term = failed
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|cs| cs.into_iter().next())
        .and_then(|c| c.state)
        .and_then(|s| s.terminated)
        .ok_or("no terminated state")?;
    assert_eq!(term.exit_code, 3);
    // A finished pod keeps its status but not its sandbox.
    let uid_f = pods.get("fails").await?.metadata.uid.ok_or("no uid")?;
    let ns_f = sandbox::sandbox_netns_name(prefix, &uid_f);
    wait_for(
        Duration::from_secs(10),
        "sandbox of `fails` removed",
        || async { (!sandbox::netns_exists(&ns_f)).then_some(()) },
    )
    .await?;

    // restartPolicy Always: restarted, counted, with the previous run as lastState.
    let crashy = wait_for(Duration::from_secs(20), "crashy restarted", || async {
        let p = pods.get_opt("crashy").await.ok().flatten()?;
        let cs = p.status?.container_statuses?.into_iter().next()?;
        (cs.restart_count >= 1).then_some(cs)
    })
    .await?;
    let last = crashy
        .last_state
        .and_then(|s| s.terminated)
        .ok_or("no lastState")?;
    assert_eq!(last.exit_code, 1);
    assert_eq!(
        phase_of(&pods, "crashy")
            .await
            .map(|(phase, _)| phase)
            .as_deref(),
        Some("Running")
    );

    // Deletion: containers stopped, DEL ran, sandbox gone, pod gone.
    let ipam_file = ipam_dir.join(net_name).join(&ip_a);
    assert!(ipam_file.exists());
    pods.delete("pod-a", &DeleteParams::default()).await?;
    wait_for(Duration::from_secs(20), "pod-a deleted", || async {
        matches!(pods.get_opt("pod-a").await, Ok(None)).then_some(())
    })
    .await?;
    assert!(!sandbox::netns_exists(&ns_a), "{ns_a} still exists");
    assert!(!ipam_file.exists(), "host-local still holds {ip_a}");
    let del_a = spy_calls(spy_dir)
        .into_iter()
        .find(|(verb, _, env)| verb == "DEL" && env.contains("K8S_POD_NAME=pod-a;"))
        .ok_or("no DEL for pod-a")?;
    assert_eq!(result_ip(&del_a.1["prevResult"]), Some(ip_a.clone()));

    for name in ["pod-b", "host-pod", "fails", "crashy", "no-such-program"] {
        pods.delete(name, &DeleteParams::default()).await?;
    }
    wait_for(Duration::from_secs(20), "all pods deleted", || async {
        let list = pods.list(&Default::default()).await.ok()?;
        list.items.is_empty().then_some(())
    })
    .await?;
    assert!(
        sandbox::list_netns(&sandbox::sandbox_name_prefix(prefix))?.is_empty(),
        "sandboxes left behind"
    );
    Ok(())
}

fn result_ip(result: &serde_json::Value) -> Option<String> {
    rovn_kubelet::cni::result_ips(result).into_iter().next()
}

async fn wait_running(pods: &Api<Pod>, name: &str) -> Result<(String, Pod), BoxError> {
    running_with_ip(pods, name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_add_records_event_cleans_up_and_retries() -> Result<(), BoxError> {
    let mut h = Harness::start("fa").await?;
    h.write_conflist(true)?;
    let pods = h.pods();
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(h.client.clone(), "default");
    let (ipam_dir, net_name, spy_dir) = (h.ipam_dir.clone(), h.net_name.clone(), h.spy_dir.clone());
    let conf = (h.conf_dir.clone(), h.net_name.clone());
    let scenario = async {
        pods.create(
            &PostParams::default(),
            &pod("flaky", "exec sleep 1000", json!({}))?,
        )
        .await?;
        let event = wait_for(
            Duration::from_secs(20),
            "FailedCreatePodSandBox event",
            || async {
                let list = events.list(&Default::default()).await.ok()?;
                list.items.into_iter().find(|e| {
                    e.reason.as_deref() == Some("FailedCreatePodSandBox")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("flaky")
                })
            },
        )
        .await?;
        let note = event.note.unwrap_or_default();
        assert!(note.contains("spy refuses ADD"), "{note}");
        // The failed attempt was cleaned up: DEL ran and host-local holds no address.
        wait_for(
            Duration::from_secs(10),
            "DEL after the failed ADD",
            || async {
                spy_calls(&spy_dir)
                    .iter()
                    .any(|(verb, _, env)| verb == "DEL" && env.contains("K8S_POD_NAME=flaky;"))
                    .then_some(())
            },
        )
        .await?;
        let leaked = wait_for(Duration::from_secs(10), "no leaked address", || async {
            let held = std::fs::read_dir(ipam_dir.join(&net_name))
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .filter(|e| e.file_name().to_string_lossy().starts_with("10."))
                        .count()
                })
                .unwrap_or(0);
            (held == 0).then_some(held)
        })
        .await;
        assert!(
            leaked.is_ok(),
            "host-local kept an address of the failed ADD"
        );
        let (phase, _) = phase_of(&pods, "flaky")
            .await
            .ok_or("flaky has no status")?;
        assert_eq!(phase, "Pending");

        // The network gets fixed: the retry succeeds.
        let (dir, name) = &conf;
        let fixed = json!({"cniVersion": "1.0.0", "name": name, "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
             "ipam": {"type": "host-local", "dataDir": ipam_dir,
                      "ranges": [[{"subnet": "10.244.9.0/24"}]]}}]});
        std::fs::write(dir.join("10-pods.conflist"), fixed.to_string())?;
        let (ip, _) = wait_running(&pods, "flaky").await?;
        assert!(ip.starts_with("10.244.9."), "{ip}");
        Ok(())
    };
    h.check(scenario).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_adopts_sandboxes_and_cleans_orphans() -> Result<(), BoxError> {
    let mut h = Harness::start("rs").await?;
    let pods = h.pods();
    for name in ["keep", "orphan", "vanish"] {
        pods.create(
            &PostParams::default(),
            &pod(name, "exec sleep 1000", json!({}))?,
        )
        .await?;
    }
    let mut ips = Vec::new();
    for name in ["keep", "orphan", "vanish"] {
        let (ip, p) = running_with_ip(&pods, name).await?;
        let uid = p.metadata.uid.ok_or("no uid")?;
        ips.push((ip, sandbox::sandbox_netns_name(&h.prefix, &uid)));
    }
    let force = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };

    // A pod removed from the API while its kubelet runs is torn down.
    pods.delete("vanish", &force).await?;
    let vanish_ns = ips[2].1.clone();
    h.check(async {
        wait_for(
            Duration::from_secs(15),
            "vanished pod torn down",
            || async { (!sandbox::netns_exists(&vanish_ns)).then_some(()) },
        )
        .await
    })
    .await?;

    // A pod removed while the kubelet is down leaves an orphan sandbox for the next start.
    let old_pids = sandbox::pids_in_netns(&sandbox::netns_path(&ips[0].1));
    assert!(!old_pids.is_empty(), "keep runs nothing");
    h.kubelet = None;
    pods.delete("orphan", &force).await?;
    let orphan_ns = ips[1].1.clone();
    assert!(sandbox::netns_exists(&orphan_ns));
    h.start_kubelet()?;
    let (ipam_dir, net_name, spy_dir) = (h.ipam_dir.clone(), h.net_name.clone(), h.spy_dir.clone());
    let (keep_ip, keep_ns) = ips[0].clone();
    let orphan_ip = ips[1].0.clone();
    let scenario = async {
        wait_for(
            Duration::from_secs(15),
            "orphan sandbox torn down",
            || async { (!sandbox::netns_exists(&orphan_ns)).then_some(()) },
        )
        .await?;
        assert!(
            !ipam_dir.join(&net_name).join(&orphan_ip).exists(),
            "orphan IP leaked"
        );
        assert!(
            spy_calls(&spy_dir)
                .iter()
                .any(|(verb, _, env)| verb == "DEL" && env.contains("K8S_POD_NAME=orphan;")),
            "no DEL for the orphan"
        );
        // The surviving pod keeps its sandbox and address, its container running again.
        assert!(sandbox::netns_exists(&keep_ns));
        let pid_running = wait_for(
            Duration::from_secs(15),
            "keep's container restarted",
            || async {
                let procs = sandbox::pids_in_netns(&sandbox::netns_path(&keep_ns));
                let fresh = !procs.is_empty() && procs.iter().all(|p| !old_pids.contains(p));
                fresh.then_some(procs)
            },
        )
        .await?;
        assert!(!pid_running.is_empty());
        let (ip_now, _) = running_with_ip(&pods, "keep").await?;
        assert_eq!(ip_now, keep_ip);
        Ok(())
    };
    h.check(scenario).await
}
