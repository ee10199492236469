//! rovn-node on a real lab (OVN, OVS userspace datapath, the lab's API server and
//! rovn-controller; no kubelet), driven through `rovn-cni` exactly as a runtime drives it:
//! node set-up, ADD and its result, node → pod through `ovn0`, CHECK, a chained reference
//! plugin, GC, DEL idempotency, restart cleanup that leaves working pods alone, the
//! allocation timeout with its Event, bad input, and `ovn0` routes following Subnets.
//!
//! Needs root and the workspace's binaries built (`cargo build --workspace`).

#[path = "agent_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use rovn_e2e::lab::rovn::{self as lab_rovn, RovnInstall};
use rovn_e2e::lab::{Encap, LabGuard, LabNames, LabSpec};
use serde_json::{Value, json};

use support::{CniCall, Sandbox, on_node, rovn_config, run_plugin, stdout, vsctl};

const NS: &str = "agentt";
const NODE: &str = "node1";

#[test]
fn agent_serves_the_cni_contract_on_a_real_node() {
    let name = support::unique_name("ag");
    let mut spec = LabSpec::with_rovn(name.clone(), 1);
    spec.kubelets = false;
    spec.encap = Encap::Geneve;
    let lab = LabGuard::up(&spec).unwrap_or_else(|e| panic!("bringing up lab {name}: {e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    let names = lab.names().clone();
    let result = runtime.block_on(scenario(&names));
    drop(runtime);
    if let Err(e) = &result {
        let log = std::fs::read_to_string(names.agent_log(1)).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!(
            "rovn-node log (last lines, newest first):\n{}",
            tail.join("\n")
        );
        panic!("lab {name}: {e:#}");
    }
    lab.down()
        .unwrap_or_else(|e| panic!("tearing down lab {name}: {e}"));
}

struct Ctx {
    names: LabNames,
    client: kube::Client,
    cni: PathBuf,
    socket: PathBuf,
}

impl Ctx {
    fn call(&self, call: &CniCall<'_>, extra: Value) -> anyhow::Result<(bool, Value)> {
        run_plugin(&self.cni, call, &rovn_config(&self.socket, extra))
    }

    fn add(
        &self,
        sandbox: &Sandbox,
        container: &str,
        pod: &str,
        uid: &str,
    ) -> anyhow::Result<Value> {
        self.add_as(sandbox, container, (pod, uid), "eth0")
    }

    /// ADD with the sandbox interface named `ifname` (`CNI_IFNAME`).
    fn add_as(
        &self,
        sandbox: &Sandbox,
        container: &str,
        (pod, uid): (&str, &str),
        ifname: &str,
    ) -> anyhow::Result<Value> {
        let netns = sandbox.path();
        let (ok, result) = self.call(
            &CniCall {
                command: "ADD",
                container_id: container,
                netns: Some(&netns),
                ifname,
                pod: Some((NS, pod, uid)),
            },
            json!({}),
        )?;
        ensure!(ok, "ADD of {pod} failed: {result}");
        Ok(result)
    }

    fn del(&self, container: &str, netns: Option<&str>, pod: &str) -> anyhow::Result<()> {
        let (ok, result) = self.call(
            &CniCall {
                command: "DEL",
                container_id: container,
                netns,
                ifname: "eth0",
                pod: Some((NS, pod, "")),
            },
            json!({}),
        )?;
        ensure!(ok, "DEL of {container} failed: {result}");
        Ok(())
    }

    fn port_exists(&self, port: &str) -> anyhow::Result<bool> {
        let ports = vsctl(&self.names, 1, &["list-ports", "br-int"])?;
        Ok(ports.lines().any(|p| p == port))
    }

    fn veth_exists(&self, veth: &str) -> bool {
        on_node(&self.names, 1, "ip", &["link", "show", veth])
            .status
            .success()
    }
}

async fn pod_uid(client: &kube::Client, pod: &str) -> anyhow::Result<(String, String)> {
    let p = support::wait_allocated(client, NS, pod).await?;
    let uid = p.metadata.uid.clone().context("pod without uid")?;
    let ip = rovn_e2e::scenario::pods::annotation(&p, rovn_api::names::annotations::IP_ADDRESS)
        .context("no ip annotation")?
        .to_string();
    Ok((uid, ip))
}

async fn scenario(names: &LabNames) -> anyhow::Result<()> {
    let client = support::kube_client(names).await?;
    let ctx = Ctx {
        names: names.clone(),
        client: client.clone(),
        cni: names.cni_bin_dir(1).join("rovn-cni"),
        socket: names.cni_socket(1),
    };
    check_node_setup(&ctx).await?;
    let (ok, out) = ctx.call(
        &CniCall {
            command: "STATUS",
            container_id: "",
            netns: None,
            ifname: "",
            pod: None,
        },
        json!({}),
    )?;
    ensure!(ok, "STATUS of a ready agent answered {out}");
    support::ensure_namespace(&client, NS).await?;

    // ADD, the result, the sandbox, and node → pod through ovn0.
    support::create_pod(&client, NS, "p1", NODE, BTreeMap::new()).await?;
    let (uid1, ip1) = pod_uid(&client, "p1").await?;
    let s1 = Sandbox::new(names, "s1")?;
    let started = Instant::now();
    let result = ctx.add(&s1, "c1", "p1", &uid1)?;
    eprintln!("ADD of p1 took {:?}", started.elapsed());
    check_add_result(&result, &ip1, &s1)?;
    // The pod MTU leaves room for Geneve's 58 bytes under the underlay's (br-phy's) MTU.
    let underlay: u32 = stdout(&support::on_node(
        names,
        1,
        "cat",
        &["/sys/class/net/br-phy/mtu"],
    ))
    .trim()
    .parse()
    .context("br-phy's MTU")?;
    let pod_mtu = stdout(&s1.run("cat", &["/sys/class/net/eth0/mtu"]));
    ensure!(
        pod_mtu.trim() == (underlay - 58).to_string()
            && result["interfaces"][1]["mtu"] == underlay - 58,
        "pod MTU {} (result {}), underlay {underlay}: expected {}",
        pod_mtu.trim(),
        result["interfaces"][1]["mtu"],
        underlay - 58
    );
    let tx = stdout(&s1.run("ethtool", &["-k", "eth0"]));
    ensure!(
        tx.contains("tx-checksumming: off"),
        "TX checksum offload still on (netdev datapath): {tx}"
    );
    let veth1 = rovn_node::netdev::host_veth_name("c1");
    ensure!(ctx.port_exists(&veth1)?, "no OVS port {veth1} after ADD");
    let iface_id = vsctl(
        names,
        1,
        &["get", "Interface", &veth1, "external_ids:iface-id"],
    )?;
    ensure!(iface_id == "p1.agentt", "iface-id is {iface_id}");
    let route = stdout(&on_node(names, 1, "ip", &["route", "get", &ip1]));
    ensure!(
        route.contains("dev ovn0"),
        "the node does not route {ip1} via ovn0: {route}"
    );
    let ping = on_node(names, 1, "ping", &["-c", "2", "-W", "2", &ip1]);
    ensure!(
        ping.status.success(),
        "node1 cannot ping pod p1 at {ip1}: {}",
        stdout(&ping)
    );

    // A repeated ADD converges on the same attachment.
    let again = ctx.add(&s1, "c1", "p1", &uid1)?;
    ensure!(
        again["ips"] == result["ips"],
        "repeated ADD answered {again}"
    );

    // CHECK: fine, then a tampered sandbox is reported with what differs.
    check_call(&ctx, &s1, ("c1", "p1", &uid1), &result, None)?;
    s1.run("ip", &["link", "set", "eth0", "mtu", "1300"]);
    check_call(&ctx, &s1, ("c1", "p1", &uid1), &result, Some("MTU"))?;
    let mtu = result["interfaces"][1]["mtu"].to_string();
    s1.run("ip", &["link", "set", "eth0", "mtu", &mtu]);
    check_call(&ctx, &s1, ("c1", "p1", &uid1), &result, None)?;

    // A reference plugin chained after rovn accepts rovn's result as prevResult.
    chain_tuning(&ctx, &s1, &uid1)?;

    // GC removes what the runtime no longer lists and keeps the rest.
    support::create_pod(&client, NS, "p2", NODE, BTreeMap::new()).await?;
    let (uid2, _) = pod_uid(&client, "p2").await?;
    let s2 = Sandbox::new(names, "s2")?;
    ctx.add(&s2, "c2", "p2", &uid2)?;
    let veth2 = rovn_node::netdev::host_veth_name("c2");
    let (ok, out) = ctx.call(
        &CniCall {
            command: "GC",
            container_id: "",
            netns: None,
            ifname: "",
            pod: None,
        },
        json!({"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]}),
    )?;
    ensure!(ok, "GC failed: {out}");
    ensure!(
        !ctx.port_exists(&veth2)? && !ctx.veth_exists(&veth2),
        "GC left c2's port or veth"
    );
    ensure!(
        ctx.port_exists(&veth1)? && ctx.veth_exists(&veth1),
        "GC removed c1, which is valid"
    );

    // DEL: of what GC already removed, of an unknown container, twice, without a netns.
    ctx.del("c2", Some(&s2.path()), "p2")?;
    ctx.del("never-added", None, "p2")?;

    // CNI_IFNAME names the sandbox interface; a DEL after the runtime already removed the
    // sandbox (netns gone, and the veth with it) still removes the OVS port.
    support::create_pod(&client, NS, "pn", NODE, BTreeMap::new()).await?;
    let (uid4, ip4) = pod_uid(&client, "pn").await?;
    let s4 = Sandbox::new(names, "sn")?;
    let result4 = ctx.add_as(&s4, "cn", ("pn", &uid4), "net1")?;
    ensure!(
        result4["interfaces"][1]["name"] == "net1"
            && result4["ips"][0]["address"] == format!("{ip4}/16"),
        "ADD as net1 answered {result4}"
    );
    let addr4 = stdout(&s4.run("ip", &["-4", "-o", "addr", "show", "dev", "net1"]));
    ensure!(addr4.contains(&ip4), "net1 lacks {ip4}: {addr4}");
    let (netns4, veth4) = (s4.path(), rovn_node::netdev::host_veth_name("cn"));
    ensure!(ctx.port_exists(&veth4)?, "no OVS port {veth4} after ADD");
    drop(s4);
    ctx.del("cn", Some(&netns4), "pn")?;
    ctx.del("cn", Some(&netns4), "pn")?;
    ensure!(
        !ctx.port_exists(&veth4)? && !ctx.veth_exists(&veth4),
        "DEL with the sandbox gone left port or veth {veth4}"
    );

    concurrent_adds(&ctx).await?;
    check_metrics(
        &ctx,
        &[
            "rovn_node_cni_requests_total{command=\"ADD\",result=\"ok\"}",
            "rovn_node_cni_requests_total{command=\"GC\",result=\"ok\"} 1",
            "rovn_node_cni_add_step_duration_seconds_count{step=\"ovn_installed\"}",
            "rovn_node_cni_add_step_duration_seconds_count{step=\"annotation\"}",
        ],
    )?;

    // Restart: a pod deleted while the agent is down loses its port; p1 is not touched.
    support::create_pod(&client, NS, "p3", NODE, BTreeMap::new()).await?;
    let (uid3, _) = pod_uid(&client, "p3").await?;
    let s3 = Sandbox::new(names, "s3")?;
    ctx.add(&s3, "c3", "p3", &uid3)?;
    let veth3 = rovn_node::netdev::host_veth_name("c3");
    let before = vsctl(names, 1, &["get", "Interface", &veth1, "_uuid", "ofport"])?;
    let mut agent = lab_rovn::agent_spec(
        names,
        &RovnInstall::find(&support::bin_dir())?,
        1,
        Encap::Geneve,
    )?;
    rovn_e2e::lab::daemon::stop_pidfile(&agent.pidfile, lab_rovn::STOP_GRACE)?;
    support::delete_pod(&client, NS, "p3").await?;
    agent
        .args
        .extend(["--allocation-timeout".into(), "2s".into()]);
    let log_len = std::fs::metadata(names.agent_log(1))
        .map(|m| m.len())
        .unwrap_or(0);
    let daemon = rovn_e2e::lab::daemon::start(&agent)?;
    lab_rovn::wait_agents_ready(
        names,
        &[(1, daemon)],
        Instant::now() + Duration::from_secs(30),
    )?;
    let after = vsctl(names, 1, &["get", "Interface", &veth1, "_uuid", "ofport"])?;
    ensure!(
        before == after,
        "p1's OVS interface changed across the restart: {before} → {after}"
    );
    ensure!(
        !ctx.port_exists(&veth3)? && !ctx.veth_exists(&veth3),
        "restart left the deleted pod's port {veth3}"
    );
    let log = std::fs::read(names.agent_log(1)).unwrap_or_default();
    let restarted_log = String::from_utf8_lossy(&log[log_len as usize..]).into_owned();
    ensure!(
        restarted_log.contains("operations=0"),
        "a restart on a converged node wrote chassis settings: {restarted_log}"
    );
    let ping = on_node(names, 1, "ping", &["-c", "1", "-W", "2", &ip1]);
    ensure!(
        ping.status.success(),
        "p1 unreachable after the agent restart"
    );
    ctx.del("c3", Some(&s3.path()), "p3")?;

    // A pod the controller never allocates: the documented timeout, and an Event on the pod.
    let mut bad = BTreeMap::new();
    bad.insert(
        "rovn.io/logical_switch".to_string(),
        "no-such-subnet".to_string(),
    );
    let p4 = support::create_pod(&client, NS, "p4", NODE, bad).await?;
    let s4 = Sandbox::new(names, "s4")?;
    let netns4 = s4.path();
    let started = Instant::now();
    let (ok, out) = ctx.call(
        &CniCall {
            command: "ADD",
            container_id: "c4",
            netns: Some(&netns4),
            ifname: "eth0",
            pod: Some((NS, "p4", p4.metadata.uid.as_deref().unwrap_or(""))),
        },
        json!({}),
    )?;
    ensure!(
        !ok && out["code"] == 11,
        "ADD of an unallocated pod answered {out}"
    );
    let msg = out["msg"].as_str().unwrap_or_default();
    // The controller refused it with an Event; the timeout quotes that instead of asking
    // whether the controller runs.
    ensure!(
        msg.contains(
            "Pod/agentt/p4 has no rovn.io/allocated annotation after 2s (rovn-controller reported "
        ) && msg.contains("no-such-subnet")
            && !msg.contains("is rovn-controller running?"),
        "unexpected message {msg:?}"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "the 2s allocation timeout took {:?}",
        started.elapsed()
    );
    let events: Api<KubeEvent> = Api::namespaced(client.clone(), NS);
    let listed = events
        .list(&Default::default())
        .await
        .context("listing Events")?;
    ensure!(
        listed
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("AllocationTimeout")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("p4")),
        "no AllocationTimeout Event on p4: {:?}",
        listed
            .items
            .iter()
            .map(|e| (&e.reason, &e.note))
            .collect::<Vec<_>>()
    );

    // Bad input never reaches a panic: garbage stdin is a decode error.
    check_garbage_stdin(&ctx, &s4)?;

    // A new sandbox of p1 replaces the old one's port; the pod answers from the new one.
    let s1b = Sandbox::new(names, "s1b")?;
    ctx.add(&s1b, "c1b", "p1", &uid1)?;
    let veth1b = rovn_node::netdev::host_veth_name("c1b");
    ensure!(
        !ctx.port_exists(&veth1)? && ctx.port_exists(&veth1b)?,
        "the new sandbox did not replace the old sandbox's port"
    );
    let ping = on_node(names, 1, "ping", &["-c", "1", "-W", "2", &ip1]);
    ensure!(ping.status.success(), "p1 unreachable in its new sandbox");

    // DEL twice, then everything of p1 is gone.
    for container in ["c1", "c1b", "c1b"] {
        ctx.del(container, Some(&s1b.path()), "p1")?;
    }
    ensure!(
        !ctx.port_exists(&veth1b)? && !ctx.veth_exists(&veth1b) && !ctx.veth_exists(&veth1),
        "DEL left p1's ports or veths"
    );
    for sandbox in [&s1, &s1b] {
        let gone = sandbox.run("ip", &["link", "show", "eth0"]);
        ensure!(!gone.status.success(), "eth0 is left in {}", sandbox.name);
    }

    check_routes_follow_subnets(&ctx).await?;
    check_metrics(
        &ctx,
        &["rovn_node_cni_requests_total{command=\"ADD\",result=\"error\"} 1"],
    )?;
    Ok(())
}

/// Several ADDs at once (as a kubelet starting many pods does): each pod gets its own
/// working attachment; then their DELs run at once too.
async fn concurrent_adds(ctx: &Ctx) -> anyhow::Result<()> {
    const PODS: usize = 6;
    let mut pods = Vec::new();
    for i in 0..PODS {
        let pod = format!("q{i}");
        support::create_pod(&ctx.client, NS, &pod, NODE, BTreeMap::new()).await?;
        pods.push(pod);
    }
    let mut sandboxes = Vec::new();
    for pod in &pods {
        let (uid, ip) = pod_uid(&ctx.client, pod).await?;
        sandboxes.push((pod.clone(), uid, ip, Sandbox::new(&ctx.names, pod)?));
    }
    let started = Instant::now();
    let results: Vec<anyhow::Result<Value>> = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = sandboxes
                .iter()
                .map(|(pod, uid, _, sandbox)| {
                    scope.spawn(move || ctx.add(sandbox, &format!("cq-{pod}"), pod, uid))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("ADD thread panicked")))
                })
                .collect()
        })
    });
    eprintln!("{PODS} concurrent ADDs took {:?}", started.elapsed());
    for ((pod, _, ip, _), result) in sandboxes.iter().zip(results) {
        let result = result?;
        ensure!(
            result["ips"][0]["address"] == format!("{ip}/16"),
            "{pod}: {result}"
        );
        let ping = on_node(&ctx.names, 1, "ping", &["-c", "1", "-W", "2", ip]);
        ensure!(ping.status.success(), "node1 cannot reach {pod} at {ip}");
    }
    let dels: Vec<anyhow::Result<()>> = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = sandboxes
                .iter()
                .map(|(pod, _, _, sandbox)| {
                    let netns = sandbox.path();
                    scope.spawn(move || ctx.del(&format!("cq-{pod}"), Some(&netns), pod))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("DEL thread panicked")))
                })
                .collect()
        })
    });
    for r in dels {
        r?;
    }
    for (pod, ..) in &sandboxes {
        let veth = rovn_node::netdev::host_veth_name(&format!("cq-{pod}"));
        ensure!(!ctx.port_exists(&veth)?, "DEL left {pod}'s port {veth}");
    }
    Ok(())
}

async fn check_node_setup(ctx: &Ctx) -> anyhow::Result<()> {
    let names = &ctx.names;
    let conflist =
        std::fs::read_to_string(names.cni_conflist(1)).context("reading the conflist")?;
    let expected = json!({"cniVersion": "1.1.0", "name": "rovn", "plugins": [{"type": "rovn-cni", "socket": names.cni_socket(1)}]});
    ensure!(
        serde_json::from_str::<Value>(&conflist)? == expected,
        "conflist is {conflist}"
    );
    ensure!(
        ctx.cni.is_file(),
        "rovn-cni was not installed into {}",
        ctx.cni.display()
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&ctx.socket)?.permissions());
    ensure!(mode & 0o777 == 0o600, "CNI socket mode is {mode:o}");
    let ids = vsctl(names, 1, &["get", "Open_vSwitch", ".", "external_ids"])?;
    for want in [
        "system-id=node1",
        "ovn-encap-type=geneve",
        "ovn-encap-ip=172.30.0.11",
        "ovn-bridge-datapath-type=netdev",
    ] {
        ensure!(
            ids.contains(want),
            "Open_vSwitch external_ids lack {want}: {ids}"
        );
    }
    ensure!(
        vsctl(names, 1, &["get", "Bridge", "br-int", "fail_mode"])? == "secure",
        "br-int not secure"
    );
    let in_band = vsctl(
        names,
        1,
        &["get", "Bridge", "br-int", "other_config:disable-in-band"],
    )?;
    ensure!(in_band == "true", "br-int in-band control: {in_band}");
    let ovn0_id = vsctl(
        names,
        1,
        &["get", "Interface", "ovn0", "external_ids:iface-id"],
    )?;
    ensure!(ovn0_id == "node-node1", "ovn0 iface-id is {ovn0_id}");
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(ctx.client.clone());
    let node = nodes.get(NODE).await?;
    let ann = node.metadata.annotations.unwrap_or_default();
    ensure!(
        ann.get("rovn.io/chassis").map(String::as_str) == Some("node1"),
        "chassis annotation: {ann:?}"
    );
    let join_ip = ann.get("rovn.io/join_ip").context("no join_ip on node1")?;
    let addr = stdout(&on_node(
        names,
        1,
        "ip",
        &["-4", "-o", "addr", "show", "dev", "ovn0"],
    ));
    ensure!(
        addr.contains(&format!("{join_ip}/16")),
        "ovn0 lacks {join_ip}/16: {addr}"
    );
    Ok(())
}

fn check_add_result(result: &Value, ip: &str, sandbox: &Sandbox) -> anyhow::Result<()> {
    ensure!(result["cniVersion"] == "1.1.0", "cniVersion: {result}");
    ensure!(
        result["ips"][0]["address"] == format!("{ip}/16"),
        "ips: {result}"
    );
    ensure!(
        result["ips"][0]["gateway"] == "10.16.0.1",
        "gateway: {result}"
    );
    ensure!(
        result["ips"][0]["interface"] == 1,
        "interface index: {result}"
    );
    ensure!(
        result["interfaces"][1]["name"] == "eth0",
        "sandbox ifname: {result}"
    );
    ensure!(
        result["interfaces"][1]["sandbox"] == sandbox.path().as_str(),
        "sandbox: {result}"
    );
    ensure!(
        result["routes"][0]["dst"] == "0.0.0.0/0",
        "routes: {result}"
    );
    let addr = stdout(&sandbox.run("ip", &["-4", "-o", "addr", "show", "dev", "eth0"]));
    ensure!(
        addr.contains(&format!("{ip}/16")),
        "eth0 lacks {ip}/16: {addr}"
    );
    let mac = result["interfaces"][1]["mac"].as_str().unwrap_or_default();
    let link = stdout(&sandbox.run("ip", &["-o", "link", "show", "dev", "eth0"]));
    ensure!(
        !mac.is_empty() && link.contains(mac),
        "eth0 MAC is not {mac}: {link}"
    );
    Ok(())
}

/// CHECK of `(container, pod, uid)`: success when `difference` is `None`, else a 106 error
/// whose message mentions it.
fn check_call(
    ctx: &Ctx,
    sandbox: &Sandbox,
    (container, pod, uid): (&str, &str, &str),
    prev: &Value,
    difference: Option<&str>,
) -> anyhow::Result<()> {
    let expect_ok = difference.is_none();
    let netns = sandbox.path();
    let (ok, out) = ctx.call(
        &CniCall {
            command: "CHECK",
            container_id: container,
            netns: Some(&netns),
            ifname: "eth0",
            pod: Some((NS, pod, uid)),
        },
        json!({"prevResult": prev}),
    )?;
    ensure!(
        ok == expect_ok,
        "CHECK answered {out} (expected success: {expect_ok})"
    );
    if let Some(word) = difference {
        let msg = out["msg"].as_str().unwrap_or_default();
        ensure!(
            out["code"] == 106 && msg.contains(word),
            "CHECK error does not say {word}: {out}"
        );
    }
    Ok(())
}

/// A runtime running the conflist `[rovn-cni, tuning]` (Debian's tuning speaks up to CNI
/// 1.0.0, so the list is 1.0.0): rovn's ADD result is tuning's `prevResult`.
fn chain_tuning(ctx: &Ctx, sandbox: &Sandbox, uid: &str) -> anyhow::Result<()> {
    let tuning = Path::new("/usr/lib/cni/tuning");
    if !tuning.is_file() {
        bail!(
            "{} is missing (install containernetworking-plugins)",
            tuning.display()
        );
    }
    let netns = sandbox.path();
    let call = CniCall {
        command: "ADD",
        container_id: "c1",
        netns: Some(&netns),
        ifname: "eth0",
        pod: Some((NS, "p1", uid)),
    };
    let (ok, prev) = ctx.call(&call, json!({"cniVersion": "1.0.0"}))?;
    ensure!(
        ok && prev["cniVersion"] == "1.0.0",
        "ADD with cniVersion 1.0.0 answered {prev}"
    );
    let config = json!({
        "cniVersion": "1.0.0", "name": "rovn", "type": "tuning",
        "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"},
        "prevResult": prev,
    });
    let (ok, out) = run_plugin(tuning, &call, &config)?;
    ensure!(ok, "tuning refused rovn's prevResult: {out}");
    ensure!(
        out["ips"] == prev["ips"],
        "tuning changed the result: {out}"
    );
    let value = stdout(&sandbox.run("sysctl", &["-n", "net.ipv4.conf.eth0.arp_notify"]));
    ensure!(
        value.trim() == "1",
        "tuning did not apply its sysctl: {value}"
    );
    Ok(())
}

fn check_garbage_stdin(ctx: &Ctx, sandbox: &Sandbox) -> anyhow::Result<()> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(&ctx.cni)
        .env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", "c5")
        .env("CNI_NETNS", sandbox.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .env("CNI_ARGS", "K8S_POD_NAMESPACE=agentt;K8S_POD_NAME=p4")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(b"{not json\x00\xff")?;
    }
    let out = child.wait_with_output()?;
    ensure!(!out.status.success(), "garbage stdin was accepted");
    let value: Value = serde_json::from_slice(&out.stdout).context("error output is not JSON")?;
    ensure!(value["code"] == 6, "garbage stdin answered {value}");
    Ok(())
}

async fn check_routes_follow_subnets(ctx: &Ctx) -> anyhow::Result<()> {
    use rovn_api::subnet::{Subnet, SubnetSpec};
    let api: Api<Subnet> = Api::all(ctx.client.clone());
    let subnet = Subnet::new(
        "agent-extra",
        SubnetSpec {
            cidr_block: "10.77.0.0/24".into(),
            gateway: None,
            exclude_ips: Vec::new(),
            namespaces: Vec::new(),
            nat_outgoing: false,
            private: false,
            allow_subnets: Vec::new(),
        },
    );
    api.create(&PostParams::default(), &subnet)
        .await
        .context("creating Subnet agent-extra")?;
    let names = ctx.names.clone();
    let has_route = move || {
        stdout(&on_node(
            &names,
            1,
            "ip",
            &["route", "show", "10.77.0.0/24"],
        ))
        .contains("dev ovn0")
    };
    let appear = has_route.clone();
    support::eventually(
        Duration::from_secs(15),
        "a route for Subnet agent-extra via ovn0",
        move || {
            if appear() {
                Ok(())
            } else {
                bail!("no route 10.77.0.0/24 dev ovn0")
            }
        },
    )
    .await?;
    api.delete("agent-extra", &DeleteParams::default())
        .await
        .context("deleting Subnet agent-extra")?;
    support::eventually(
        Duration::from_secs(15),
        "the route of the deleted Subnet to go",
        move || {
            if has_route() {
                bail!("route 10.77.0.0/24 still present")
            } else {
                Ok(())
            }
        },
    )
    .await
}

fn check_metrics(ctx: &Ctx, wanted: &[&str]) -> anyhow::Result<()> {
    let addr = ctx.names.agent_listen(1);
    let out = on_node(
        &ctx.names,
        1,
        "curl",
        &["-sf", &format!("http://{addr}/metrics")],
    );
    let text = stdout(&out);
    for want in wanted {
        ensure!(text.contains(want), "metrics lack {want}:\n{text}");
    }
    let health = on_node(
        &ctx.names,
        1,
        "curl",
        &["-sf", &format!("http://{addr}/healthz")],
    );
    ensure!(health.status.success(), "/healthz is not 200");
    Ok(())
}
