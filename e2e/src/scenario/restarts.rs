//! Scenario 6: restarting rovn's parts (the controller, one agent, the NB database) disturbs
//! nothing: an established TCP connection keeps flowing while each is down and after it is
//! back, pods keep their addresses and their very NB and OVS rows, a pod deleted and one
//! created while the controller is down are caught up, new pods work, and after every restart
//! NB and OVS hold exactly the ports of the pods that exist.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use rovn_api::names::annotations;

use super::api::{self, Stage, stage};
use super::cluster::{Cluster, Component, PodRef};
use super::error::{Result, ScenarioError};
use super::ovn_state::{node_pod_ports, pod_lsps};
use super::pods::{self, PodSpec, TCP_PORT, pod_ref};
use super::traffic::{From, LongConnection, Proto, expect_exchange};

/// The address annotations of the pods, to compare before and after.
async fn addresses(
    cluster: &impl Cluster,
    refs: &[PodRef],
) -> Result<BTreeMap<PodRef, (String, String)>> {
    let mut out = BTreeMap::new();
    for r in refs {
        let p = api::must_get_pod(cluster, r).await?;
        let ip = pods::annotation(&p, annotations::IP_ADDRESS).unwrap_or_default();
        let mac = pods::annotation(&p, annotations::MAC_ADDRESS).unwrap_or_default();
        out.insert(r.clone(), (ip.to_string(), mac.to_string()));
    }
    Ok(out)
}

/// The NB port and the OVS interface row UUIDs of `refs`, by port name.
async fn pod_rows(
    cluster: &impl Cluster,
    refs: &[PodRef],
) -> Result<BTreeMap<String, (Option<String>, Option<String>)>> {
    let lsps = pod_lsps(cluster).await?;
    let mut interfaces = BTreeMap::new();
    for node in cluster.nodes() {
        interfaces.extend(node_pod_ports(cluster, &node).await?);
    }
    Ok(refs
        .iter()
        .map(|r| {
            let name = r.lsp_name();
            let rows = (lsps.get(&name).cloned(), interfaces.get(&name).cloned());
            (name, rows)
        })
        .collect())
}

/// While the controller is down: deletes `doomed` (its kubelet and agent finish it; its NB port
/// stays behind until the controller is back) and creates a pod on `node` that cannot get an
/// address yet. Returns the new pod.
async fn change_while_controller_down(
    cluster: &impl Cluster,
    doomed: &PodRef,
    node: &str,
) -> Result<PodRef> {
    let client = cluster.client();
    api::delete_pod(&client, doomed).await?;
    let born = PodSpec::server(&doomed.namespace, "born-while-down", &cluster.podtool()).on(node);
    api::create_pod(&client, &born).await
}

/// A server pod on the second node and a client pod on the first, with an established TCP
/// connection between them: what the restart scenarios keep alive.
struct Connected {
    stage: Stage,
    /// The server and the client.
    refs: [PodRef; 2],
    server_ip: std::net::Ipv4Addr,
    /// The server's TCP port.
    target: SocketAddrV4,
    conn: LongConnection,
    /// The pods of `extra`, running.
    extra: Vec<Pod>,
}

/// Starts the server and client of [`Connected`] (and `extra`, made by `extra(ns, tool, n1,
/// n2)`) in namespace `ns`, checks one exchange and opens the long-lived connection.
async fn serve_and_connect(
    cluster: &impl Cluster,
    ns: &str,
    extra: impl FnOnce(&str, &str, &str) -> Vec<PodSpec>,
) -> Result<Connected> {
    let stage = stage(cluster, ns).await?;
    let (n1, n2, tool) = (&stage.n1, &stage.n2, &stage.tool);
    let mut specs = vec![
        PodSpec::server(ns, "server", tool).on(n2),
        PodSpec::idle(ns, "client", tool).on(n1),
    ];
    specs.extend(extra(tool, n1, n2));
    let mut running = api::create_and_wait(&stage.client, &specs).await?;
    let extra = running.split_off(2);
    let refs = [pod_ref(&running[0]), pod_ref(&running[1])];
    let server_ip = pods::pod_ip(&running[0])
        .ok_or_else(|| ScenarioError::Check("server without podIP".into()))?;
    let client_ip = pods::pod_ip(&running[1])
        .ok_or_else(|| ScenarioError::Check("client without podIP".into()))?;
    let target = SocketAddrV4::new(server_ip, TCP_PORT);
    // The server may still be binding although Running: a first exchange waits for it.
    expect_exchange(
        cluster,
        &From::Pod(refs[1].clone()),
        Proto::Tcp,
        target,
        "server",
        client_ip,
    )
    .await?;
    let (conn, greeting) = LongConnection::open(cluster, &refs[1], target).await?;
    crate::ensure!(
        greeting.server == "server" && greeting.client == client_ip,
        "long-lived connection greeted by {greeting:?}, expected server seeing {client_ip}"
    );
    Ok(Connected {
        stage,
        refs,
        server_ip,
        target,
        conn,
        extra,
    })
}

/// Runs scenario 6 in namespace `ns` (the cluster should hold no other pods' ports than the
/// ones it can list, as the stale-port check compares NB and OVS with every pod).
pub async fn survive_restarts(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let Connected {
        stage:
            Stage {
                client,
                n1,
                n2,
                tool,
            },
        refs,
        server_ip,
        target,
        mut conn,
        extra,
    } = serve_and_connect(cluster, ns, |tool, _, n2| {
        vec![PodSpec::idle(ns, "doomed", tool).on(n2)]
    })
    .await?;
    let doomed = pod_ref(&extra[0]);
    let before = addresses(cluster, &refs).await?;
    conn.round_trip("before-restarts").await?;

    // The pods' rows as they are: a restart must leave them as they are, not re-create them.
    let rows_before = pod_rows(cluster, &refs).await?;
    for component in [
        Component::Controller,
        Component::Agent(n1.clone()),
        Component::NbDatabase,
    ] {
        cluster.stop(&component).await?;
        // The data plane is OVN's: traffic flows while rovn's part is down.
        conn.round_trip(&format!("while-{component:?}-is-down"))
            .await
            .map_err(|e| {
                ScenarioError::Check(format!(
                    "the established connection broke while {component:?} was down: {e}"
                ))
            })?;
        let born = match component {
            // What happens while the controller is down is caught up when it is back: a pod
            // deleted in between loses its port, a pod created in between gets its address.
            Component::Controller => {
                Some(change_while_controller_down(cluster, &doomed, &n2).await?)
            }
            _ => None,
        };
        cluster.start(&component).await?;
        conn.round_trip(&format!("after-restart-of-{component:?}"))
            .await
            .map_err(|e| {
                ScenarioError::Check(format!(
                    "the established connection broke after restarting {component:?}: {e}"
                ))
            })?;
        let now = addresses(cluster, &refs).await?;
        crate::ensure!(
            now == before,
            "pod addresses changed after restarting {component:?}: {before:?} → {now:?}"
        );
        if let Some(born) = born {
            let running = api::wait_running(&client, &born).await?;
            let ip = pods::pod_ip(&running)
                .ok_or_else(|| ScenarioError::Check(format!("{born} without podIP")))?;
            expect_exchange(
                cluster,
                &From::Pod(born.clone()),
                Proto::Tcp,
                target,
                "server",
                ip,
            )
            .await?;
        }
        super::wait::until(
            api::POD_TIMEOUT,
            &format!("NB and OVS to match the pods after restarting {component:?}"),
            async || check_no_stale_ports(cluster).await.map(Some),
        )
        .await?;
        let rows = pod_rows(cluster, &refs).await?;
        crate::ensure!(
            rows == rows_before,
            "restarting {component:?} re-created pod rows (NB port / OVS interface UUIDs): \
             {rows_before:?} → {rows:?}"
        );
    }

    let late_ip =
        late_pod_reaches(cluster, PodSpec::server(ns, "late", &tool).on(&n1), target).await?;
    expect_exchange(
        cluster,
        &From::Pod(refs[0].clone()),
        Proto::Udp,
        SocketAddrV4::new(late_ip, pods::UDP_PORT),
        "late",
        server_ip,
    )
    .await?;
    conn.round_trip("after-new-pod").await?;
    drop(conn);

    api::delete_pod(&client, &refs[1]).await?;
    super::wait::until(
        api::POD_TIMEOUT,
        "NB and OVS to match the remaining pods",
        async || check_no_stale_ports(cluster).await.map(Some),
    )
    .await
}

/// A rolling update of rovn as `deploy/` installs it (the `rovn-node` DaemonSet one node at a
/// time, `maxUnavailable: 1`; then the controller's replicas): every agent and then the
/// controller restarted in turn under an established cross-node TCP connection, which must
/// carry data after each, with pods keeping their addresses and rows and nothing left stale.
pub async fn rolling_update(cluster: &impl Cluster, ns: &str) -> Result<()> {
    let Connected {
        stage: Stage { n1, tool, .. },
        refs,
        target,
        mut conn,
        ..
    } = serve_and_connect(cluster, ns, |_, _, _| Vec::new()).await?;
    let before = addresses(cluster, &refs).await?;
    let rows_before = pod_rows(cluster, &refs).await?;
    let mut order: Vec<Component> = cluster.nodes().into_iter().map(Component::Agent).collect();
    order.push(Component::Controller);
    for component in &order {
        cluster.restart(component).await?;
        conn.round_trip(&format!("after-rolling-{component:?}"))
            .await
            .map_err(|e| {
                ScenarioError::Check(format!(
                    "the established connection broke when {component:?} was replaced: {e}"
                ))
            })?;
    }
    let now = addresses(cluster, &refs).await?;
    crate::ensure!(
        now == before,
        "pod addresses changed in the rolling update: {before:?} → {now:?}"
    );
    super::wait::until(
        api::POD_TIMEOUT,
        "NB and OVS to match the pods after the rolling update",
        async || check_no_stale_ports(cluster).await.map(Some),
    )
    .await?;
    let rows = pod_rows(cluster, &refs).await?;
    crate::ensure!(
        rows == rows_before,
        "the rolling update re-created pod rows: {rows_before:?} → {rows:?}"
    );
    late_pod_reaches(cluster, PodSpec::idle(ns, "late", &tool).on(&n1), target).await?;
    conn.round_trip("after-rolling-update").await.map(|_| ())
}

/// A pod made from `late` after the restarts reaches the server at `target`, which sees its
/// address. Returns that address.
async fn late_pod_reaches(
    cluster: &impl Cluster,
    late: PodSpec,
    target: SocketAddrV4,
) -> Result<std::net::Ipv4Addr> {
    let running = api::create_and_wait(&cluster.client(), &[late]).await?;
    let late_ip = pods::pod_ip(&running[0])
        .ok_or_else(|| ScenarioError::Check("late pod without podIP".into()))?;
    expect_exchange(
        cluster,
        &From::Pod(pod_ref(&running[0])),
        Proto::Tcp,
        target,
        "server",
        late_ip,
    )
    .await?;
    Ok(late_ip)
}

/// NB's pod ports are exactly the pods on the pod network, and each node's switch has exactly
/// the ports of its pods.
pub async fn check_no_stale_ports(cluster: &impl Cluster) -> Result<()> {
    let all: Api<Pod> = Api::all(cluster.client());
    let list = all
        .list(&Default::default())
        .await
        .map_err(|e| ScenarioError::kube("listing every pod", e))?;
    let on_pod_network: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| !pods::is_host_network(p))
        .collect();
    let mut expected: Vec<String> = on_pod_network
        .iter()
        .map(|p| pod_ref(p).lsp_name())
        .collect();
    expected.sort();
    let in_nb: Vec<String> = pod_lsps(cluster).await?.into_keys().collect();
    crate::ensure!(
        in_nb == expected,
        "NB pod ports {in_nb:?}, pods {expected:?}"
    );
    for node in cluster.nodes() {
        let mut wanted: Vec<String> = on_pod_network
            .iter()
            .filter(|p| pods::node_name(p) == Some(node.as_str()))
            .map(|p| pod_ref(p).lsp_name())
            .collect();
        wanted.sort();
        let ports: Vec<String> = node_pod_ports(cluster, &node).await?.into_keys().collect();
        crate::ensure!(
            ports == wanted,
            "OVS pod ports on {node} {ports:?}, pods there {wanted:?}"
        );
    }
    Ok(())
}
