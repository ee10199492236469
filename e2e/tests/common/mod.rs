//! Helpers shared by the lab tests: unique lab names, commands in lab namespaces, waiting,
//! and the check that nothing of a lab remains.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::time::Duration;

use rovn_e2e::lab::{LabGuard, LabName, LabNames, LabSpec, Place, netns};
use rovn_e2e::scenario::report::FailureReport;
use rovn_testkit::wait;

/// A lab name unique to this test process and `tag` (≤ 3 chars), so tests run in parallel and
/// beside a developer's lab.
pub fn unique_name(tag: &str) -> LabName {
    rovn_testkit::unique::per_process(tag)
        .parse()
        .expect("tag and pid form a valid lab name")
}

/// A 2-node lab spec without kube.
pub fn spec(name: &LabName, nodes: u8) -> LabSpec {
    LabSpec::new(name.clone(), nodes)
}

/// Runs a command to completion, panicking with its output if it fails.
pub fn run_ok(command: &mut Command) -> String {
    let out = output(command);
    assert!(
        out.status.success(),
        "{command:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command to completion and returns its output.
pub fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// `program args...` as a command.
pub fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// `ip netns exec NS program args...`.
pub fn in_ns(ns: &str, program: &str, args: &[&str]) -> Command {
    let mut c = netns::exec_command(ns, program);
    c.args(args);
    c
}

/// Retries `check` every 100 ms until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    wait::poll(timeout, || wait::holds(check())) == Ok(Some(()))
}

/// Everything of lab `name` that still exists: namespaces, its state dir, processes that
/// mention its state dir, unix sockets bound below it, root-namespace links named after it.
pub fn leftovers(name: &LabName) -> Vec<String> {
    let names = LabNames::new(name.clone());
    let mut found = Vec::new();
    for ns in netns::list_with_prefix(&names.netns_prefix()).unwrap_or_default() {
        found.push(format!("namespace {ns}"));
    }
    if names.state_dir().exists() {
        found.push(format!("directory {}", names.state_dir().display()));
    }
    let needle = names.state_dir().display().to_string() + "/";
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if !rovn_e2e::lab::daemon::is_alive(pid) {
            continue;
        }
        if rovn_e2e::lab::daemon::cmdline_mentions(pid, &needle) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                .unwrap_or_default();
            found.push(format!("process {pid} ({cmdline})"));
        }
    }
    let unix_sockets = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    for line in unix_sockets.lines().filter(|l| l.contains(&needle)) {
        found.push(format!(
            "unix socket {}",
            line.split_whitespace().last().unwrap_or_default()
        ));
    }
    let links = String::from_utf8_lossy(&output(&mut cmd("ip", &["-o", "link", "show"])).stdout)
        .into_owned();
    for line in links.lines() {
        if let Some(ifname) = line.split(':').nth(1) {
            let ifname = ifname.trim().split('@').next().unwrap_or_default();
            if ifname.starts_with(name.as_str()) {
                found.push(format!("root link {ifname}"));
            }
        }
    }
    found
}

/// Asserts that nothing of lab `name` remains.
pub fn assert_gone(name: &LabName) {
    let left = leftovers(name);
    assert!(left.is_empty(), "lab {name} left: {left:?}");
}

/// `ovs-vsctl` against a node's database.
pub fn vsctl(names: &LabNames, node: u8, args: &[&str]) -> Command {
    let mut c = Command::new("ovs-vsctl");
    c.arg(format!("--db={}", names.node_db_remote(node)))
        .arg("--timeout=10")
        .args(args);
    c
}

/// `ovn-nbctl` against the lab's NB.
pub fn nbctl(names: &LabNames, args: &[&str]) -> Command {
    let mut c = Command::new("ovn-nbctl");
    c.arg(format!("--db={}", names.nb_remote()))
        .arg("--timeout=10")
        .args(args);
    c
}

/// The underlay IP of node `i`.
pub fn node_ip(i: u8) -> String {
    Place::Node(i).underlay_ip().to_string()
}

/// A pod made by hand the way a CNI plugin would: a namespace with `eth0`, its host end on the
/// node's br-int with `iface-id`, and a logical switch port for it.
pub struct HandPod {
    /// The pod's namespace (prefixed with the lab's, so `down` removes it).
    pub ns: String,
    /// The pod's IP.
    pub ip: String,
    /// The logical switch port (= iface-id).
    pub lsp: String,
}

/// Makes pod `tag` (one letter) on `node` with IP 10.99.0.`host` on logical switch `switch`.
pub fn make_pod(names: &LabNames, node: u8, tag: &str, host: u8, switch: &str) -> HandPod {
    let lsp = format!("pod-{tag}");
    let ip = format!("10.99.0.{host}");
    let mac = format!("0a:58:0a:63:00:{host:02x}");
    run_ok(&mut nbctl(
        names,
        &[
            "--",
            "--may-exist",
            "ls-add",
            switch,
            "--",
            "lsp-add",
            switch,
            &lsp,
            "--",
            "lsp-set-addresses",
            &lsp,
            &format!("{mac} {ip}"),
        ],
    ));
    let ns = format!("{}p{tag}", names.netns_prefix());
    let host_if = format!("{}{tag}", names.name());
    let node_ns = names.netns(Place::Node(node));
    netns::add(&ns).expect("create pod namespace");
    netns::add_veth(&node_ns, &host_if, &ns, "eth0").expect("create pod veth");
    netns::batch(
        &ns,
        &[
            format!("link set eth0 address {mac}"),
            "link set eth0 mtu 1400".into(),
            format!("addr add {ip}/24 dev eth0"),
            "link set eth0 up".into(),
        ],
    )
    .expect("configure pod eth0");
    netns::tx_checksum_off(&ns, "eth0").expect("pod tx checksum off");
    netns::batch(&node_ns, &[format!("link set {host_if} up")]).expect("host end up");
    run_ok(&mut vsctl(
        names,
        node,
        &[
            "add-port",
            "br-int",
            &host_if,
            "--",
            "set",
            "Interface",
            &host_if,
            &format!("external_ids:iface-id={lsp}"),
        ],
    ));
    let up = eventually(Duration::from_secs(15), || {
        let out = output(&mut nbctl(
            names,
            &["get", "Logical_Switch_Port", &lsp, "up"],
        ));
        String::from_utf8_lossy(&out.stdout).trim() == "true"
    });
    assert!(up, "logical switch port {lsp} never came up");
    HandPod { ns, ip, lsp }
}

/// How long [`run_kube_lab`]'s phases took.
pub struct LabTimings {
    /// Bringing the lab up.
    pub up: Duration,
    /// The scenario.
    pub scenario: Duration,
    /// Taking the lab down and checking nothing is left.
    pub down: Duration,
}

/// Brings up a `nodes`-node lab (a unique name from `tag`) with the API server, kubelets and
/// scheduler, runs `scenario` on a two-thread runtime (the lab's state is printed if it fails),
/// then takes the lab down and checks nothing of it is left. Panics on any failure: for the
/// lab tests that drive the cluster through the API.
pub fn run_kube_lab<T>(
    tag: &str,
    nodes: u8,
    namespace: &str,
    scenario: impl AsyncFnOnce(&LabNames) -> anyhow::Result<T>,
) -> (T, LabTimings) {
    let started = std::time::Instant::now();
    let name = unique_name(tag);
    let mut spec = LabSpec::new(name.clone(), nodes);
    spec.kube = true;
    let lab = LabGuard::up(&spec).unwrap_or_else(|e| panic!("bringing up lab {name}: {e}"));
    let up = started.elapsed();
    let report = FailureReport::new(lab.names(), nodes, namespace);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("starting the tokio runtime: {e}"));
    let result = runtime
        .block_on(scenario(lab.names()))
        .unwrap_or_else(|e| panic!("lab {name}: {e:#}"));
    drop(runtime);
    drop(report);
    let scenario_done = started.elapsed();
    lab.down()
        .unwrap_or_else(|e| panic!("tearing down lab {name}: {e}"));
    assert_gone(&name);
    let timings = LabTimings {
        up,
        scenario: scenario_done - up,
        down: started.elapsed() - scenario_done,
    };
    (result, timings)
}
