//! Labs with real OVN: chassis register, tunnels appear, hand-made pods on different nodes
//! ping each other and talk TCP through Geneve (and VXLAN), the underlay carries TCP between
//! every place, the CLI works end to end, and `down` leaves nothing behind.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use rovn_e2e::lab::{Encap, LabGuard, LabNames, Place, node, sb_chassis};

const PODTOOL: &str = env!("CARGO_BIN_EXE_rovn-podtool");

#[test]
fn lab_up_down() {
    let name = unique_name("lu");
    let guard = LabGuard::up(&spec(&name, 2)).expect("lab up");
    let names = LabNames::new(name.clone());

    let mut chassis = sb_chassis(&names).expect("list chassis");
    chassis.sort();
    assert_eq!(chassis, ["node1", "node2"]);

    for (node, peer) in [(1, 2), (2, 1)] {
        let tunnel = eventually(Duration::from_secs(15), || {
            node::tunnel_remotes(&names, node, Encap::Geneve)
                .is_ok_and(|r| r.contains(&node_ip(peer)))
        });
        assert!(tunnel, "node{node} has no geneve tunnel to node{peer}");
    }

    let a = make_pod(&names, 1, "a", 11, "sw0");
    let b = make_pod(&names, 2, "b", 12, "sw0");
    let pinged = eventually(Duration::from_secs(15), || {
        output(&mut in_ns(&a.ns, "ping", &["-c", "1", "-W", "1", &b.ip]))
            .status
            .success()
    });
    assert!(pinged, "{} cannot ping {} across nodes", a.lsp, b.lsp);

    // Detached like a pod's process, so only `down` can end it.
    serve_in(&b.ns, "8080", "pod-b");
    let server_pids = rovn_e2e::lab::netns::pids(&b.ns).expect("pids");
    assert_eq!(
        server_pids.len(),
        1,
        "podtool serve is not running in {}",
        b.ns
    );
    let target = format!("{}:8080", b.ip);
    let big = "x".repeat(60_000);
    let mut said = String::new();
    let talked = eventually(Duration::from_secs(10), || {
        let out = output(&mut in_ns(
            &a.ns,
            PODTOOL,
            &["connect", "tcp", &target, "--message", &big],
        ));
        said = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success()
    });
    assert!(talked, "TCP from {} to {target} failed", a.lsp);
    let mut lines = said.lines();
    let greeting = lines.next().unwrap_or_default();
    assert!(
        greeting.starts_with(&format!("hostname=pod-b client={}:", a.ip)),
        "unexpected greeting {greeting:?}"
    );
    assert_eq!(
        lines.next(),
        Some(big.as_str()),
        "echo of 60 kB came back altered"
    );

    guard.down().expect("lab down");
    assert_gone(&name);
    assert!(
        !rovn_e2e::lab::daemon::is_alive(server_pids[0]),
        "the pod's server survived down"
    );
}

#[test]
fn vxlan_lab_builds_vxlan_tunnels() {
    let name = unique_name("vx");
    let mut spec = spec(&name, 2);
    spec.encap = Encap::Vxlan;
    let guard = LabGuard::up(&spec).expect("lab up");
    let names = LabNames::new(name.clone());
    let tunnel = eventually(Duration::from_secs(15), || {
        node::tunnel_remotes(&names, 1, Encap::Vxlan).is_ok_and(|r| r.contains(&node_ip(2)))
    });
    assert!(tunnel, "node1 has no vxlan tunnel to node2");
    let a = make_pod(&names, 1, "a", 21, "sw1");
    let b = make_pod(&names, 2, "b", 22, "sw1");
    let pinged = eventually(Duration::from_secs(15), || {
        output(&mut in_ns(&a.ns, "ping", &["-c", "1", "-W", "1", &b.ip]))
            .status
            .success()
    });
    assert!(pinged, "no ping across nodes over VXLAN");
    drop(guard);
    assert_gone(&name);
}

#[test]
fn cli_up_exec_status_down() {
    let lab_bin = env!("CARGO_BIN_EXE_rovn-lab");
    let name = unique_name("cl");
    let _cleanup = rovn_e2e::lab::DownOnDrop::new(name.clone());
    let out = run_ok(Command::new(lab_bin).args([
        "up",
        "--name",
        name.as_str(),
        "--nodes",
        "2",
        "--no-kube",
    ]));
    let names = LabNames::new(name.clone());
    assert!(out.contains(&format!("nb={}", names.nb_remote())), "{out}");
    assert!(out.contains(&format!("sb={}", names.sb_remote())), "{out}");
    assert!(
        out.contains(&format!("node=node2 ip=172.30.0.12 netns=rl-{name}-node2")),
        "{out}"
    );
    assert!(!out.contains("kubeconfig="), "{out}");

    // The node's environment makes OVS tools work without flags.
    let bridges = run_ok(Command::new(lab_bin).args([
        "exec",
        "--name",
        name.as_str(),
        "node1",
        "--",
        "ovs-vsctl",
        "list-br",
    ]));
    assert_eq!(
        bridges.split_whitespace().collect::<Vec<_>>(),
        ["br-int", "br-phy"]
    );
    run_ok(Command::new(lab_bin).args([
        "exec",
        "--name",
        name.as_str(),
        "node2",
        "--",
        "ovs-appctl",
        "-t",
        "ovn-controller",
        "version",
    ]));
    let sb = run_ok(Command::new(lab_bin).args([
        "exec",
        "--name",
        name.as_str(),
        "central",
        "--",
        "ovn-sbctl",
        "--bare",
        "--columns=name",
        "list",
        "Chassis",
    ]));
    assert_eq!(sb.split_whitespace().count(), 2, "{sb}");
    let failing = output(Command::new(lab_bin).args([
        "exec",
        "--name",
        name.as_str(),
        "outside",
        "--",
        "false",
    ]));
    assert_eq!(failing.status.code(), Some(1));

    let status = run_ok(Command::new(lab_bin).arg("status"));
    assert!(
        status.contains(&format!("lab={name} nodes=node1,node2")),
        "{status}"
    );
    // Other labs (of tests running in parallel) may be listed too; look at ours only.
    let ours: Vec<&str> = status
        .lines()
        .skip_while(|l| !l.starts_with(&format!("lab={name} ")))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert!(
        ours.iter()
            .any(|l| l.contains("daemon=node1/ovn-controller")),
        "{status}"
    );
    assert!(ours.iter().all(|l| l.ends_with("alive=yes")), "{status}");

    run_ok(Command::new(lab_bin).args(["down", "--name", name.as_str()]));
    assert_gone(&name);
    let bad = output(Command::new(lab_bin).args([
        "exec",
        "--name",
        name.as_str(),
        "node1",
        "--",
        "true",
    ]));
    assert!(!bad.status.success());
}

#[test]
fn interrupted_cli_up_leaves_nothing() {
    let lab_bin = env!("CARGO_BIN_EXE_rovn-lab");
    let name = unique_name("ci");
    let _cleanup = rovn_e2e::lab::DownOnDrop::new(name.clone());
    let names = LabNames::new(name.clone());
    // Interrupt at several moments once `up` has begun making things.
    for delay_ms in [0, 150, 300, 450] {
        let up = Command::new(lab_bin)
            .args(["up", "--name", name.as_str(), "--nodes", "3", "--no-kube"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start rovn-lab up");
        let begun = eventually(Duration::from_secs(10), || names.state_file().exists());
        assert!(begun, "up never started");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let pid = nix::unistd::Pid::from_raw(up.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("send SIGINT");
        let out = up.wait_with_output().expect("wait for up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            // This machine finished `up` before the signal; nothing was interrupted.
            rovn_e2e::lab::down(&name).expect("down");
            continue;
        }
        assert_eq!(
            out.status.code(),
            Some(130),
            "after {delay_ms} ms: {stderr}"
        );
        assert!(stderr.contains("tearing lab"), "{stderr}");
        assert_gone(&name);
    }
}

/// Starts `rovn-podtool serve --tcp PORT` detached inside `ns`, answering as `hostname`.
fn serve_in(ns: &str, port: &str, hostname: &str) {
    run_ok(
        in_ns(
            ns,
            "sh",
            &[
                "-c",
                "\"$@\" >/dev/null 2>&1 &",
                "sh",
                PODTOOL,
                "serve",
                "--tcp",
                port,
            ],
        )
        .env("HOSTNAME", hostname),
    );
}

#[test]
fn underlay_carries_tcp_between_every_place() {
    let name = unique_name("ul");
    let guard = LabGuard::up(&spec(&name, 2)).expect("lab up");
    let names = guard.names();
    let central = names.netns(Place::Central);
    let outside = names.netns(Place::Outside);
    let node1 = names.netns(Place::Node(1));
    let node2 = names.netns(Place::Node(2));
    serve_in(&central, "7000", "central");
    serve_in(&outside, "7000", "outside");
    serve_in(&node2, "7000", "node2");
    // 60 kB each way: segmentation and checksums must survive the OVS userspace datapath
    // (kubelets talk to the API server in the central namespace this way).
    let big = "y".repeat(60_000);
    for (from, to) in [
        (&node1, "172.30.0.1"),
        (&node1, "172.30.0.254"),
        (&node1, "172.30.0.12"),
        (&outside, "172.30.0.12"),
        (&central, "172.30.0.12"),
    ] {
        let target = format!("{to}:7000");
        let mut said = String::new();
        let talked = eventually(Duration::from_secs(10), || {
            let out = output(&mut in_ns(
                from,
                PODTOOL,
                &[
                    "connect",
                    "tcp",
                    &target,
                    "--message",
                    &big,
                    "--timeout",
                    "3s",
                ],
            ));
            said = String::from_utf8_lossy(&out.stdout).into_owned();
            out.status.success()
        });
        assert!(talked, "TCP from {from} to {target} failed");
        assert_eq!(
            said.lines().nth(1),
            Some(big.as_str()),
            "{from} -> {target}"
        );
    }
    guard.down().expect("down");
    assert_gone(&name);
}
