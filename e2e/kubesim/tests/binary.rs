//! The `rovn-kubesim` binary: flags, ready file, a listener inside a network namespace
//! this test creates, clean exit on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{client_for, unique};

/// Deletes the test's network namespace even when the test fails.
struct NetnsGuard(String);

impl NetnsGuard {
    fn create(name: &str) -> Self {
        let status = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .expect("ip netns add runs");
        assert!(status.success(), "ip netns add {name}");
        let guard = NetnsGuard(name.to_string());
        let status = Command::new("ip")
            .args(["-n", name, "link", "set", "lo", "up"])
            .status()
            .expect("ip link runs");
        assert!(status.success(), "bringing lo up in {name}");
        guard
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Kills the server process if the test ends early.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for_ready_file(path: &Path) -> Vec<SocketAddr> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(path) {
            let v: serde_json::Value = serde_json::from_str(&text)
                .expect("ready file is complete JSON (written atomically)");
            return v["listen"]
                .as_array()
                .expect("listen array")
                .iter()
                .map(|a| {
                    a.as_str()
                        .expect("address string")
                        .parse()
                        .expect("socket address")
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("ready file {} never appeared", path.display());
}

/// GET /healthz from inside a network namespace (a thread that setns'es first).
fn healthz_inside(netns: &str, addr: SocketAddr) -> String {
    let netns = netns.to_string();
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{netns}")).expect("netns file");
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .expect("connect inside the netns");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    })
    .join()
    .expect("netns thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_in_root_and_lab_namespaces() {
    let ns = NetnsGuard::create(&format!("ksim{}", unique("t").replace('-', "")));
    let dir = tempfile::tempdir().expect("temp dir");
    let ready = dir.path().join("ready.json");
    let log = dir.path().join("kubesim.log");
    let child = Command::new(env!("CARGO_BIN_EXE_rovn-kubesim"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--listen")
        .arg(format!("{}@127.0.0.1:0", ns.0))
        .arg("--ready-file")
        .arg(&ready)
        .arg("--log-file")
        .arg(&log)
        .arg("--service-cidr")
        .arg("10.97.0.0/16")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut guard = ChildGuard(Some(child));
    let addrs = wait_for_ready_file(&ready);
    assert_eq!(addrs.len(), 2, "one bound address per --listen");
    assert!(addrs.iter().all(|a| a.port() != 0), "real ports, not :0");

    let client = client_for(&format!("http://{}", addrs[0]));
    let version = client
        .apiserver_version()
        .await
        .expect("version from the root listener");
    assert_eq!(version.major, "1");
    let svc: k8s_openapi::api::core::v1::Service = kube::Api::namespaced(client.clone(), "default")
        .get("kubernetes")
        .await
        .expect("kubernetes service");
    assert_eq!(
        svc.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("10.97.0.1"),
        "--service-cidr is honoured"
    );

    let reply = tokio::task::spawn_blocking({
        let name = ns.0.clone();
        let addr = addrs[1];
        move || healthz_inside(&name, addr)
    })
    .await
    .expect("join");
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.ends_with("ok"),
        "{reply}"
    );

    let mut child = guard.0.take().expect("child");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = child.wait().expect("wait");
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let logged = std::fs::read_to_string(&log).expect("log file");
    assert!(logged.contains("rovn-kubesim serving"), "{logged}");
}

#[test]
fn bad_flags_fail_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_rovn-kubesim"))
        .args(["--listen", "no-such-netns-xyz@127.0.0.1:0"])
        .output()
        .expect("binary runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/run/netns/no-such-netns-xyz"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_rovn-kubesim"))
        .args(["--listen", "garbage"])
        .output()
        .expect("binary runs");
    assert!(!out.status.success());
}
