//! Egress through the pod's own node, against a real NB, SB and ovn-northd: `ovn-trace` shows
//! a pod's packet to the outside rerouted to its node's `join` port, in-cluster destinations
//! routed as before, and the node's port letting in sources other than its join IP (replies
//! the node de-masquerades back to a pod).

mod common;

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use rovn_controller::desired::{ClusterState, PodPort, PolicyPod};

/// `common::cluster(2, 4)` with every pod known to policies, so each node's port group (whose
/// address set the reroute matches) holds its pods.
fn cluster() -> ClusterState {
    let mut cluster = common::cluster(2, 4);
    let pods: Vec<PodPort> = cluster.pods.clone();
    for port in pods {
        let pod = PolicyPod {
            namespace: port.namespace.clone(),
            name: port.name.clone(),
            uid: port.uid.clone(),
            node: port.node.clone(),
            ip: port.ip,
            labels: Default::default(),
            named_ports: Vec::new(),
        };
        cluster
            .policy_pods
            .set_pod(&port.namespace, &port.name, Some(pod));
    }
    cluster
}

/// `ovn-trace` of a TCP packet from `port` (a pod port: its own MAC and IP as source, its
/// gateway's MAC as destination) to `dst`; the full output.
fn trace_from_pod(
    ovn: &common::Ovn,
    pod: &PodPort,
    gateway_mac: &str,
    dst: &str,
) -> Result<String> {
    let flow = format!(
        "inport == \"{}.{}\" && eth.src == {} && eth.dst == {gateway_mac} && ip4.src == {} \
         && ip4.dst == {dst} && ip.ttl == 64 && tcp && tcp.dst == 80",
        pod.name, pod.namespace, pod.mac, pod.ip
    );
    trace(ovn, &pod.switch, &flow)
}

fn trace(ovn: &common::Ovn, datapath: &str, flow: &str) -> Result<String> {
    let Some(sb) = &ovn.sb else {
        bail!("no SB");
    };
    let output = Command::new("ovn-trace")
        .arg(format!("--db=unix:{}", sb.sock().display()))
        .arg(datapath)
        .arg(flow)
        .output()
        .context("ovn-trace")?;
    ensure!(
        output.status.success(),
        "ovn-trace {flow}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}

/// The ports the traced packet was output to, in order.
fn outputs(trace: &str) -> Vec<String> {
    trace
        .lines()
        .filter_map(|l| l.trim().strip_prefix("/* output to \""))
        .filter_map(|l| l.split('"').next())
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_traffic_leaves_through_the_pods_own_node() -> Result<()> {
    let ovn = common::Ovn::with_northd()?;
    let client = ovn.client().await?;
    let cluster = cluster();
    let (plan, _) = common::reconcile(&client, &cluster).await?;
    ensure!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    let flows_ready = common::wait_until(Duration::from_secs(20), || {
        let flows = ovn.sbctl(&["--bare", "--columns=match", "find", "Logical_Flow"])?;
        Ok(flows.contains("ip4.src == $") && flows.contains("10.16.0.0/15"))
    })?;
    ensure!(flows_ready, "northd made no flows of the egress policies");

    // pod0 (node0, ovn-default) and pod1 (node1, blue).
    let (pod0, pod1) = (&cluster.pods[0], &cluster.pods[1]);
    let (gw16, gw17) = ("0a:58:0a:10:00:01", "0a:58:0a:11:00:01");
    let outside = trace_from_pod(&ovn, pod0, gw16, "172.30.0.254")?;
    assert_eq!(
        outputs(&outside).last().map(String::as_str),
        Some("node-node0"),
        "pod0 → outside leaves through node0:\n{outside}"
    );
    assert!(outside.contains("reg0 = 100.64.0.2"), "{outside}");
    let outside = trace_from_pod(&ovn, pod1, gw17, "8.8.8.8")?;
    assert_eq!(
        outputs(&outside).last().map(String::as_str),
        Some("node-node1"),
        "pod1 → outside leaves through node1:\n{outside}"
    );

    // In the cluster: another pod, another node's join IP (not the pod's own node).
    let to_pod = trace_from_pod(&ovn, pod0, gw16, &pod1.ip.to_string())?;
    assert_eq!(
        outputs(&to_pod).last().map(String::as_str),
        Some("pod1.ns1"),
        "pod0 → pod1 is routed, not rerouted:\n{to_pod}"
    );
    let to_join = trace_from_pod(&ovn, pod0, gw16, "100.64.0.3")?;
    assert_eq!(
        outputs(&to_join).last().map(String::as_str),
        Some("node-node1"),
        "pod0 → node1's join IP goes to node1, not through node0:\n{to_join}"
    );

    // A reply node0 de-masquerades back to pod0 enters OVN with the outside's source.
    let reply = trace(
        &ovn,
        "join",
        &format!(
            "inport == \"node-node0\" && eth.src == 0a:58:64:40:00:02 && \
             eth.dst == 0a:58:64:40:00:01 && ip4.src == 172.30.0.254 && ip4.dst == {} \
             && ip.ttl == 64 && tcp && tcp.src == 80",
            pod0.ip
        ),
    )?;
    assert_eq!(
        outputs(&reply).last().map(String::as_str),
        Some("pod0.ns0"),
        "the node's port accepts foreign sources:\n{reply}"
    );
    Ok(())
}

/// A private `blue`: another Subnet's pod is dropped on the way in, a pod of its own and a node
/// are not, and replies to what blue's pods open are not affected (`ovn-trace` starts every
/// packet as a new connection, so only the drop itself is seen here; the lab proves the rest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_subnet_refuses_other_subnets_only() -> Result<()> {
    let ovn = common::Ovn::with_northd()?;
    let client = ovn.client().await?;
    let mut cluster = cluster();
    let blue = cluster
        .subnets
        .iter_mut()
        .find(|s| s.name == "blue")
        .context("blue")?;
    blue.private = true;
    let (plan, _) = common::reconcile(&client, &cluster).await?;
    ensure!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    let flows_ready = common::wait_until(Duration::from_secs(20), || {
        let flows = ovn.sbctl(&["--bare", "--columns=match", "find", "Logical_Flow"])?;
        Ok(flows.contains("ip4.src != {10.17.0.0/16, 100.64.0.0/16}"))
    })?;
    ensure!(
        flows_ready,
        "northd made no flows of the private Subnet's ACL"
    );

    // pod0 (ovn-default, node0), pod1 and pod3 (blue, node1).
    let (pod0, pod1, pod3) = (&cluster.pods[0], &cluster.pods[1], &cluster.pods[3]);
    let from_other = trace_from_pod(&ovn, pod0, "0a:58:0a:10:00:01", &pod1.ip.to_string())?;
    assert!(
        outputs(&from_other).last().map(String::as_str) != Some("pod1.ns1"),
        "another Subnet's pod is refused:\n{from_other}"
    );
    let from_own = trace_from_pod(&ovn, pod3, &pod1.mac.to_string(), &pod1.ip.to_string())?;
    assert_eq!(
        outputs(&from_own).last().map(String::as_str),
        Some("pod1.ns1"),
        "a pod of its own Subnet is accepted:\n{from_own}"
    );
    let from_node = trace(
        &ovn,
        "join",
        &format!(
            "inport == \"node-node1\" && eth.src == 0a:58:64:40:00:03 && \
             eth.dst == 0a:58:64:40:00:01 && ip4.src == 100.64.0.3 && ip4.dst == {} \
             && ip.ttl == 64 && tcp && tcp.dst == 80",
            pod1.ip
        ),
    )?;
    assert_eq!(
        outputs(&from_node).last().map(String::as_str),
        Some("pod1.ns1"),
        "the node (kubelet probes) is accepted:\n{from_node}"
    );
    Ok(())
}
