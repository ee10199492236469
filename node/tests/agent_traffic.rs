//! rovn-node plugging real kubelet pods on a VXLAN lab: a node and a hostNetwork pod reach
//! pods through `ovn0`; pods on one node and across nodes talk TCP and UDP with their own
//! addresses; and restarting the agent keeps an established TCP connection flowing while a
//! pod created afterwards works. (Geneve is the lab default and is covered by
//! `agent_cni_contract` and e2e's scenarios.)
//!
//! Needs root and the workspace's binaries built (`cargo build --workspace`).

#[path = "agent_support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddrV4};

use k8s_openapi::api::core::v1::Pod;
use rovn_e2e::ensure;
use rovn_e2e::lab::{Encap, LabSpec};
use rovn_e2e::scenario::api;
use rovn_e2e::scenario::cluster::{Cluster, Component, PodRef};
use rovn_e2e::scenario::error::{Result, ScenarioError};
use rovn_e2e::scenario::harness::{run_on_lab, step};
use rovn_e2e::scenario::pod_network;
use rovn_e2e::scenario::pods::{self, PodSpec, TCP_PORT, UDP_PORT};
use rovn_e2e::scenario::traffic::{From, LongConnection, Proto, expect_exchange};

const NS: &str = "agtraffic";

#[test]
fn agent_plugs_pods_that_talk_on_vxlan_and_survive_its_restart() {
    let name = support::unique_name("at");
    let spec = LabSpec {
        encap: Encap::Vxlan,
        ..LabSpec::with_rovn(name.clone(), 2)
    };
    let result = run_on_lab(&spec, &[NS, "agnode"], async |cluster| {
        step("node and hostNetwork pod to pods via ovn0", async || {
            pod_network::node_to_pod(cluster, "agnode").await
        })
        .await?;
        step("pod traffic across an agent restart", async || {
            traffic_across_agent_restart(cluster).await
        })
        .await
    });
    if let Err(e) = result {
        panic!("lab {name}: {e}");
    }
}

fn ip_of(pod: &Pod) -> Result<Ipv4Addr> {
    pods::pod_ip(pod)
        .ok_or_else(|| ScenarioError::Check(format!("pod {:?} has no podIP", pod.metadata.name)))
}

async fn traffic_across_agent_restart(cluster: &impl Cluster) -> Result<()> {
    let client = cluster.client();
    let tool = cluster.podtool();
    api::ensure_namespace(&client, NS).await?;
    let running = api::create_and_wait(
        &client,
        &[
            PodSpec::server(NS, "far", &tool).on("node2"),
            PodSpec::server(NS, "near", &tool).on("node1"),
            PodSpec::server(NS, "client", &tool).on("node1"),
        ],
    )
    .await?;
    let (far, near, me) = (
        ip_of(&running[0])?,
        ip_of(&running[1])?,
        ip_of(&running[2])?,
    );
    let from = From::Pod(PodRef::new(NS, "client"));
    for (server, ip) in [("far", far), ("near", near)] {
        for (proto, port) in [(Proto::Tcp, TCP_PORT), (Proto::Udp, UDP_PORT)] {
            expect_exchange(
                cluster,
                &from,
                proto,
                SocketAddrV4::new(ip, port),
                server,
                me,
            )
            .await?;
        }
    }

    let (mut conn, greeting) = LongConnection::open(
        cluster,
        &PodRef::new(NS, "client"),
        SocketAddrV4::new(far, TCP_PORT),
    )
    .await?;
    ensure!(
        greeting.client == me,
        "the far server saw {} instead of {me}",
        greeting.client
    );
    conn.round_trip("before-agent-restart").await?;
    cluster.restart(&Component::Agent("node1".into())).await?;
    conn.round_trip("after-agent-restart").await.map_err(|e| {
        ScenarioError::Check(format!(
            "the connection broke when rovn-node restarted: {e}"
        ))
    })?;

    let late =
        api::create_and_wait(&client, &[PodSpec::server(NS, "late", &tool).on("node1")]).await?;
    let late_ip = ip_of(&late[0])?;
    expect_exchange(
        cluster,
        &From::Pod(PodRef::new(NS, "late")),
        Proto::Tcp,
        SocketAddrV4::new(far, TCP_PORT),
        "far",
        late_ip,
    )
    .await?;
    expect_exchange(
        cluster,
        &from,
        Proto::Udp,
        SocketAddrV4::new(late_ip, UDP_PORT),
        "late",
        me,
    )
    .await?;
    conn.round_trip("after-new-pod").await?;
    Ok(())
}
