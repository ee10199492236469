//! rovn's scenarios on a real cluster installed from `deploy/` (kind, by `e2e/kind/run.sh`),
//! through the same [`KubectlCluster`] the lab's scenario tests use. Ignored by default: it needs
//! `ROVN_KUBECONFIG` (the cluster) and `ROVN_OUTSIDE_ADDRESS` (this host's address on the
//! nodes' network); `run.sh` runs it with `--ignored`. The scenarios that stop OVN's own
//! daemons run on the lab only.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use rovn_e2e::scenario::harness::{run_on_cluster, step};
use rovn_e2e::scenario::{
    KindInfra, KubectlCluster, Result, ScenarioError, egress, ingress, netpol, pod_network,
    restarts, services,
};

fn env(name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| ScenarioError::Check(format!("{name} is not set")))
}

async fn scenarios() -> Result<()> {
    let kubeconfig = PathBuf::from(env("ROVN_KUBECONFIG")?);
    let outside: Ipv4Addr = env("ROVN_OUTSIDE_ADDRESS")?
        .parse()
        .map_err(|e| ScenarioError::Check(format!("ROVN_OUTSIDE_ADDRESS: {e}")))?;
    let infra = KindInfra::new(&kubeconfig, outside).await?;
    let cluster = KubectlCluster::connect(&kubeconfig, infra).await?;
    let namespaces = [
        "k1", "k2", "k3", "k4", "k5", "k7", "k8", "k9", "k11", "k10", "ke", "ki",
    ];
    run_on_cluster(&cluster, &namespaces, async |c| {
        step("1 pod to pod", async || {
            pod_network::pod_to_pod(c, "k1").await
        })
        .await?;
        step("2 node to pod", async || {
            pod_network::node_to_pod(c, "k2").await
        })
        .await?;
        step("3 shared sandbox", async || {
            pod_network::shared_sandbox(c, "k3").await
        })
        .await?;
        step("4 pod lifecycle", async || {
            pod_network::pod_lifecycle(c, "k4").await
        })
        .await?;
        step("5 static and subnets", async || {
            pod_network::static_and_subnets(c, "k5").await
        })
        .await?;
        step("7 cluster IP", async || services::cluster_ip(c, "k7").await).await?;
        step("8 endpoint changes", async || {
            services::endpoint_changes(c, "k8").await
        })
        .await?;
        step("9 affinity", async || services::affinity(c, "k9").await).await?;
        step("11 node-local", async || {
            services::node_local(c, "k11").await
        })
        .await?;
        step("10 service lifecycle", async || {
            services::service_lifecycle(c, "k10").await
        })
        .await?;
        step("egress masquerade", async || {
            egress::masqueraded_to_node(c, "ke").await.map(|_| ())
        })
        .await?;
        step("NodePort", async || {
            ingress::node_port_cluster(c, "ki").await
        })
        .await?;
        step("no stale ports", async || {
            restarts::check_no_stale_ports(c).await
        })
        .await?;
        Ok(())
    })
    .await?;
    let reports = netpol::run_all(&cluster).await?;
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.ok())
        .map(|r| r.name.as_str())
        .collect();
    rovn_e2e::ensure!(failed.is_empty(), "NetworkPolicy cases failed: {failed:?}");
    Ok(())
}

#[test]
#[ignore = "needs a cluster installed from deploy/: e2e/kind/run.sh runs it"]
fn scenarios_on_a_kind_cluster() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(scenarios()),
        Err(e) => panic!("starting the async runtime: {e}"),
    };
    if let Err(e) = result {
        panic!("{e}");
    }
}
