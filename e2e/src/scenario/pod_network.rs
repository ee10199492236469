//! Scenarios 1–5: what the Kubernetes network model promises pods, checked with real traffic.
//! Each works in its own namespace, so they can share one cluster in any order.

use std::net::{Ipv4Addr, SocketAddrV4};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use rovn_api::names::{self, annotations};

use super::api::{self, Stage, stage};
use super::cluster::{Cluster, PodRef, argv, two_nodes};
use super::error::{Result, ScenarioError};
use super::pods::{self, HOST_TCP_PORT, PodSpec, TCP_PORT, UDP_PORT, pod_ref};
use super::traffic::{From, Proto, expect_exchange};

/// A running pod's `podIP`, or an error naming the pod.
pub(crate) fn ip_of(pod: &Pod) -> Result<Ipv4Addr> {
    pods::pod_ip(pod)
        .ok_or_else(|| ScenarioError::Check(format!("pod {:?} has no podIP", pod.metadata.name)))
}

/// Scenario 1: pod ↔ pod on one node and across nodes, TCP and UDP; every server sees the
/// client's own pod IP.
pub async fn pod_to_pod(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let Stage {
        client,
        n1,
        n2,
        tool,
    } = stage(cluster, ns).await?;
    let running = api::create_and_wait(
        &client,
        &[
            PodSpec::server(ns, "server-a", &tool).on(&n1),
            PodSpec::server(ns, "server-b", &tool).on(&n2),
            PodSpec::server(ns, "client", &tool).on(&n1),
        ],
    )
    .await?;
    let [a, b, c] = [&running[0], &running[1], &running[2]];
    let (ip_a, ip_b, ip_c) = (ip_of(a)?, ip_of(b)?, ip_of(c)?);
    crate::ensure!(
        ip_a != ip_b && ip_b != ip_c && ip_a != ip_c,
        "pods share addresses: {ip_a} {ip_b} {ip_c}"
    );
    let checks = [
        (c, a, ip_a, "server-a", Proto::Tcp, TCP_PORT),
        (c, a, ip_a, "server-a", Proto::Udp, UDP_PORT),
        (c, b, ip_b, "server-b", Proto::Tcp, TCP_PORT),
        (c, b, ip_b, "server-b", Proto::Udp, UDP_PORT),
        (b, a, ip_a, "server-a", Proto::Tcp, TCP_PORT),
        (a, b, ip_b, "server-b", Proto::Udp, UDP_PORT),
    ];
    for (from, _, target_ip, server, proto, port) in checks {
        expect_exchange(
            cluster,
            &From::Pod(pod_ref(from)),
            proto,
            SocketAddrV4::new(target_ip, port),
            server,
            ip_of(from)?,
        )
        .await?;
    }
    Ok(())
}

/// The node's join address as rovn annotated it.
pub(crate) async fn join_ip(cluster: &impl Cluster, node: &str) -> Result<Ipv4Addr> {
    let api: Api<Node> = Api::all(cluster.client());
    let n = api
        .get(node)
        .await
        .map_err(|e| ScenarioError::kube(format!("reading node {node}"), e))?;
    n.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::JOIN_IP))
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| {
            ScenarioError::Check(format!(
                "node {node} has no {} annotation",
                annotations::JOIN_IP
            ))
        })
}

/// Scenario 2: a node reaches pods through `ovn0` (the pod sees the node's join address), on
/// its own node and on another; a hostNetwork pod reaches a pod on another node the same way.
pub async fn node_to_pod(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let Stage {
        client,
        n1,
        n2,
        tool,
    } = stage(cluster, ns).await?;
    let mut host = PodSpec::idle(ns, "host-client", &tool).on(&n1);
    host.host_network = true;
    host.containers = vec![(
        "serve".into(),
        argv([tool.as_str(), "serve", "--tcp", &HOST_TCP_PORT.to_string()]),
    )];
    let running = api::create_and_wait(
        &client,
        &[
            PodSpec::server(ns, "local", &tool).on(&n1),
            PodSpec::server(ns, "remote", &tool).on(&n2),
            host,
        ],
    )
    .await?;
    let (local, remote, host) = (&running[0], &running[1], &running[2]);
    let join1 = join_ip(cluster, &n1).await?;
    let route = cluster
        .exec_on_node(
            &n1,
            &argv(["ip", "-4", "route", "get", &ip_of(remote)?.to_string()]),
        )
        .await?
        .ok(&format!("ip route get on {n1}"))?;
    crate::ensure!(
        route.contains("dev ovn0"),
        "{n1} does not route pod {} via ovn0: {route}",
        ip_of(remote)?
    );
    for (pod, server) in [(local, "local"), (remote, "remote")] {
        expect_exchange(
            cluster,
            &From::Node(n1.clone()),
            Proto::Tcp,
            SocketAddrV4::new(ip_of(pod)?, TCP_PORT),
            server,
            join1,
        )
        .await?;
    }
    expect_exchange(
        cluster,
        &From::Pod(pod_ref(host)),
        Proto::Tcp,
        SocketAddrV4::new(ip_of(remote)?, TCP_PORT),
        "remote",
        join1,
    )
    .await?;
    Ok(())
}

/// Scenario 3: two containers of one pod share its network: each serves on its own port and
/// both answer on localhost, seeing 127.0.0.1; both ports are also reachable on the pod IP.
pub async fn shared_sandbox(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let Stage {
        client,
        n1,
        n2: _,
        tool,
    } = stage(cluster, ns).await?;
    let mut duo = PodSpec::idle(ns, "duo", &tool).on(&n1);
    duo.containers = vec![
        (
            "first".into(),
            argv([tool.as_str(), "serve", "--tcp", "9001"]),
        ),
        (
            "second".into(),
            argv([tool.as_str(), "serve", "--tcp", "9002"]),
        ),
    ];
    let running =
        api::create_and_wait(&client, &[duo, PodSpec::server(ns, "peer", &tool).on(&n1)]).await?;
    let duo = pod_ref(&running[0]);
    let duo_ip = ip_of(&running[0])?;
    for port in [9001, 9002] {
        expect_exchange(
            cluster,
            &From::Pod(duo.clone()),
            Proto::Tcp,
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
            "duo",
            Ipv4Addr::LOCALHOST,
        )
        .await?;
        expect_exchange(
            cluster,
            &From::Pod(pod_ref(&running[1])),
            Proto::Tcp,
            SocketAddrV4::new(duo_ip, port),
            "duo",
            ip_of(&running[1])?,
        )
        .await?;
    }
    Ok(())
}

/// Every rovn-owned logical switch port name in NB.
pub async fn rovn_lsp_names(cluster: &impl Cluster) -> Result<Vec<String>> {
    let out = cluster
        .nbctl(&[
            "--bare",
            "--columns=name",
            "find",
            "Logical_Switch_Port",
            &format!("external_ids:\"{}\"={}", names::VENDOR_KEY, names::VENDOR),
        ])
        .await?;
    let mut names: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    names.sort();
    Ok(names)
}

/// The addresses of the logical switch port `name`, `None` if it does not exist.
pub async fn lsp_addresses(cluster: &impl Cluster, name: &str) -> Result<Option<String>> {
    let out = cluster
        .nbctl(&[
            "--bare",
            "--columns=addresses",
            "find",
            "Logical_Switch_Port",
            &format!("name=\"{name}\""),
        ])
        .await?;
    let text = out.trim();
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// Scenario 4: a deleted pod's port and address are gone (NB and annotations), and a new pod
/// reuses the address: a Subnet with a single free address makes reuse deterministic.
pub async fn pod_lifecycle(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let client = cluster.client();
    let tool = cluster.podtool();
    api::ensure_namespace(&client, ns).await?;
    let subnet_name = format!("{ns}-tiny");
    // 10.20.0.0/29: gateway .1, .3–.6 excluded, so .2 is the only address to give.
    api::create_subnet(
        &client,
        &api::subnet_object(
            &subnet_name,
            "10.20.0.0/29",
            &["10.20.0.3..10.20.0.6"],
            &[ns],
        )?,
    )
    .await?;
    let only = Ipv4Addr::new(10, 20, 0, 2);
    let first = api::create_and_wait(&client, &[PodSpec::server(ns, "first", &tool)]).await?;
    let first_pod = pod_ref(&first[0]);
    crate::ensure!(
        ip_of(&first[0])? == only,
        "pod {first_pod} got {}, the tiny subnet's only address is {only}",
        ip_of(&first[0])?
    );
    crate::ensure!(
        pods::annotation(&first[0], annotations::LOGICAL_SWITCH) == Some(subnet_name.as_str()),
        "pod {first_pod} is on switch {:?}, expected {subnet_name}",
        pods::annotation(&first[0], annotations::LOGICAL_SWITCH)
    );
    let lsp = first_pod.lsp_name();
    let addresses = lsp_addresses(cluster, &lsp).await?;
    crate::ensure!(
        addresses
            .as_deref()
            .is_some_and(|a| a.contains(&only.to_string())),
        "LSP {lsp} has addresses {addresses:?}, expected {only}"
    );

    api::delete_pod(&client, &first_pod).await?;
    super::wait::until(
        api::POD_TIMEOUT,
        &format!("LSP {lsp} to leave NB"),
        async || Ok(lsp_addresses(cluster, &lsp).await?.is_none().then_some(())),
    )
    .await?;
    // Its OVS port is gone from its node too: every switch holds exactly the existing pods.
    super::wait::until(
        api::POD_TIMEOUT,
        &format!("the OVS port of {first_pod} to be removed"),
        async || {
            super::restarts::check_no_stale_ports(cluster)
                .await
                .map(Some)
        },
    )
    .await?;
    // IPAM took the address back: the Subnet's status counts it free again.
    super::wait::until(
        api::POD_TIMEOUT,
        &format!("Subnet {subnet_name} to count {only} free after deleting {first_pod}"),
        async || {
            Ok((api::subnet_usage(&client, &subnet_name).await? == Some((0, 1))).then_some(()))
        },
    )
    .await?;

    let second = api::create_and_wait(&client, &[PodSpec::server(ns, "second", &tool)]).await?;
    crate::ensure!(
        ip_of(&second[0])? == only,
        "the new pod got {}, expected the released {only}",
        ip_of(&second[0])?
    );
    // The tiny subnet is full now: the peer lives in ovn-default, and must reach the new pod.
    let peer_ns = format!("{ns}-peer");
    api::ensure_namespace(&client, &peer_ns).await?;
    let peer = api::create_and_wait(&client, &[PodSpec::idle(&peer_ns, "peer", &tool)]).await?;
    expect_exchange(
        cluster,
        &From::Pod(pod_ref(&peer[0])),
        Proto::Tcp,
        SocketAddrV4::new(only, TCP_PORT),
        "second",
        ip_of(&peer[0])?,
    )
    .await?;
    api::delete_pod(&client, &pod_ref(&peer[0])).await?;
    Ok(())
}

/// The MAC and IPv4 address of `eth0` as seen inside the pod.
async fn pod_eth0(cluster: &impl Cluster, pod: &PodRef) -> Result<(String, String)> {
    let link = cluster
        .exec_in_pod(pod, &argv(["ip", "-o", "link", "show", "dev", "eth0"]))
        .await?
        .ok(&format!("ip link in pod {pod}"))?;
    let addr = cluster
        .exec_in_pod(
            pod,
            &argv(["ip", "-o", "-4", "addr", "show", "dev", "eth0"]),
        )
        .await?
        .ok(&format!("ip addr in pod {pod}"))?;
    Ok((link, addr))
}

/// Scenario 5: a pod's static IP and MAC requests are honoured (annotations, NB, its eth0); a
/// second Subnet bound to a namespace gives that namespace's pods its addresses; pods of the
/// two subnets talk to each other both ways.
pub async fn static_and_subnets(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let client = cluster.client();
    let (n1, n2) = two_nodes(cluster)?;
    let tool = cluster.podtool();
    let other_ns = format!("{ns}-b");
    api::ensure_namespace(&client, ns).await?;
    api::ensure_namespace(&client, &other_ns).await?;
    let subnet_name = format!("{ns}-second");
    api::create_subnet(
        &client,
        &api::subnet_object(&subnet_name, "10.21.0.0/24", &[], &[&other_ns])?,
    )
    .await?;
    let static_ip = Ipv4Addr::new(10, 16, 200, 7);
    let static_mac = "0e:00:00:c8:00:07";
    let running = api::create_and_wait(
        &client,
        &[
            PodSpec::server(ns, "fixed", &tool)
                .on(&n1)
                .annotate(annotations::IP_ADDRESS, &static_ip.to_string())
                .annotate(annotations::MAC_ADDRESS, static_mac),
            PodSpec::server(&other_ns, "second", &tool).on(&n2),
        ],
    )
    .await?;
    let (fixed, second) = (&running[0], &running[1]);
    let fixed_ref = pod_ref(fixed);
    crate::ensure!(
        ip_of(fixed)? == static_ip,
        "pod {fixed_ref} asked for {static_ip}, got {}",
        ip_of(fixed)?
    );
    crate::ensure!(
        pods::annotation(fixed, annotations::MAC_ADDRESS) == Some(static_mac),
        "pod {fixed_ref} asked for MAC {static_mac}, annotated {:?}",
        pods::annotation(fixed, annotations::MAC_ADDRESS)
    );
    let (link, addr) = pod_eth0(cluster, &fixed_ref).await?;
    crate::ensure!(
        link.contains(static_mac),
        "eth0 of {fixed_ref} lacks MAC {static_mac}: {link}"
    );
    crate::ensure!(
        addr.contains(&format!("inet {static_ip}/")),
        "eth0 of {fixed_ref} lacks {static_ip}: {addr}"
    );
    let nb = lsp_addresses(cluster, &fixed_ref.lsp_name()).await?;
    crate::ensure!(
        nb.as_deref() == Some(format!("\"{static_mac} {static_ip}\"").as_str())
            || nb.as_deref() == Some(format!("{static_mac} {static_ip}").as_str()),
        "LSP {} has addresses {nb:?}, expected {static_mac} {static_ip}",
        fixed_ref.lsp_name()
    );

    let second_ip = ip_of(second)?;
    crate::ensure!(
        second_ip.octets()[..3] == [10, 21, 0],
        "pod {} in namespace {other_ns} got {second_ip}, outside Subnet {subnet_name} 10.21.0.0/24",
        pod_ref(second)
    );
    crate::ensure!(
        pods::annotation(second, annotations::LOGICAL_SWITCH) == Some(subnet_name.as_str()),
        "pod {} is on switch {:?}, expected {subnet_name}",
        pod_ref(second),
        pods::annotation(second, annotations::LOGICAL_SWITCH)
    );
    for (from, to, server) in [(fixed, second, "second"), (second, fixed, "fixed")] {
        for (proto, port) in [(Proto::Tcp, TCP_PORT), (Proto::Udp, UDP_PORT)] {
            expect_exchange(
                cluster,
                &From::Pod(pod_ref(from)),
                proto,
                SocketAddrV4::new(ip_of(to)?, port),
                server,
                ip_of(from)?,
            )
            .await?;
        }
    }
    Ok(())
}
