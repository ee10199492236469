//! `rovn-bench services`: Service load balancers on top of a loaded cluster. Services and
//! their EndpointSlices exist before the controller starts; the benchmark measures the time
//! until every VIP is in NB with its backends, then EndpointSlice changes one at a time (a
//! slice patched → the balancer's backends in NB), the NB and SB sizes that result, and a
//! restart on the converged cluster.
//!
//! Services are selector-less with slices the benchmark writes, as a user (or an external
//! controller) would: their backends need not be pods, so the figures measure rovn alone.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::time::Instant;

use rovn_api::names;

use super::controller_proc::ControllerRun;
use super::error::BenchError;
use super::figures::Figures;
use super::lb_watch::{LbWatch, Vips, backend_set};
use super::load;
use super::nb_log::RecordCounter;
use super::nb_rows::{row_count, settled_flow_count};
use super::stage::{NAMESPACE, Stage, StageSpec, restart, wait_for_quiet_nb, while_alive};

/// The Service port and the backends' port.
const PORT: u16 = 80;
const TARGET_PORT: u16 = 8080;

/// What to run.
#[derive(Debug, Clone)]
pub struct ServicesBench {
    /// The cluster under the Services.
    pub stage: StageSpec,
    /// Services to create.
    pub services: usize,
    /// Endpoints per Service.
    pub endpoints: usize,
    /// EndpointSlice changes measured one at a time after convergence.
    pub updates: usize,
    /// The time between two of them.
    pub update_gap: Duration,
    /// Bound on each wait.
    pub timeout: Duration,
}

/// The backend address `index` (10.17.0.0/16 and up: not pods, nothing answers them).
fn backend_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 17, 0, 0)).wrapping_add(index as u32))
}

fn service_name(index: usize) -> String {
    format!("svc-{index:05}")
}

fn slice_endpoints(ips: &[Ipv4Addr]) -> serde_json::Value {
    ips.iter()
        .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}}))
        .collect()
}

/// The VIPs rovn should program for a Service at `cluster_ip` with `backends`. Pure.
fn expected_vips(cluster_ip: Ipv4Addr, backends: &[Ipv4Addr]) -> Vips {
    let list: Vec<String> = backends
        .iter()
        .map(|ip| format!("{ip}:{TARGET_PORT}"))
        .collect();
    BTreeMap::from([(format!("{cluster_ip}:{PORT}"), backend_set(&list.join(",")))])
}

/// Runs the benchmark and returns its figures.
pub async fn run(bench: &ServicesBench) -> Result<Figures, BenchError> {
    if bench.services == 0 || bench.endpoints == 0 {
        return Err(BenchError::InvalidArgs(
            "--services and --endpoints must be at least 1".into(),
        ));
    }
    let stage = Stage::start(&bench.stage).await?;
    let Stage {
        ovn,
        api,
        client,
        launch,
        ..
    } = &stage;

    let services: Vec<Service> = (0..bench.services)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": {"name": service_name(i), "namespace": NAMESPACE},
                "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": PORT,
                                    "targetPort": TARGET_PORT}]},
            }))
            .map_err(|e| BenchError::InvalidArgs(format!("Service manifest: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let created_started = Instant::now();
    let created = load::create_all(
        &Api::namespaced(client.clone(), NAMESPACE),
        services,
        bench.stage.in_flight,
    )
    .await?;
    let mut backends: Vec<Vec<Ipv4Addr>> = (0..bench.services)
        .map(|i| {
            (0..bench.endpoints)
                .map(|j| backend_ip(i * bench.endpoints + j))
                .collect()
        })
        .collect();
    let slices: Vec<EndpointSlice> = (0..bench.services)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("{}-0", service_name(i)), "namespace": NAMESPACE,
                             "labels": {"kubernetes.io/service-name": service_name(i)}},
                "addressType": "IPv4",
                "endpoints": slice_endpoints(&backends[i]),
                "ports": [{"name": "http", "protocol": "TCP", "port": TARGET_PORT}],
            }))
            .map_err(|e| BenchError::InvalidArgs(format!("EndpointSlice manifest: {e}")))
        })
        .collect::<Result<_, _>>()?;
    load::create_all(
        &Api::namespaced(client.clone(), NAMESPACE),
        slices,
        bench.stage.in_flight,
    )
    .await?;
    let create_services_time = created_started.elapsed();
    let cluster_ips: Vec<Ipv4Addr> = created
        .iter()
        .map(|s| {
            s.spec
                .as_ref()
                .and_then(|spec| spec.cluster_ip.as_deref())
                .and_then(|ip| ip.parse().ok())
                .ok_or_else(|| BenchError::protocol("the API server", "a Service got no ClusterIP"))
        })
        .collect::<Result<_, _>>()?;
    let lb_name = |i: usize| names::service_load_balancer(NAMESPACE, &service_name(i), "tcp");
    let want: BTreeMap<String, Vips> = (0..bench.services)
        .map(|i| (lb_name(i), expected_vips(cluster_ips[i], &backends[i])))
        .collect();

    let mut balancers = LbWatch::start(&ovn.nb_remote(), bench.timeout).await?;
    let mut nb_records = RecordCounter::new(&ovn.nb_db);
    wait_for_quiet_nb(ovn, &mut nb_records, bench.timeout).await?;
    let first = ControllerRun::start(launch)?;
    let alive = || {
        first.ensure_alive()?;
        api.ensure_alive()?;
        ovn.ensure_alive()
    };
    let converged_at = while_alive(balancers.wait_for(&want, bench.timeout), alive).await?;
    let converge = converged_at - first.started;
    wait_for_quiet_nb(ovn, &mut nb_records, bench.timeout).await?;

    // One slice change at a time: its first endpoint moves to a fresh address.
    let slices_api: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let mut latencies = Vec::with_capacity(bench.updates);
    for update in 0..bench.updates {
        let i = update % bench.services;
        backends[i][0] = backend_ip(bench.services * bench.endpoints + update);
        let patch = json!({ "endpoints": slice_endpoints(&backends[i]) });
        let one = BTreeMap::from([(lb_name(i), expected_vips(cluster_ips[i], &backends[i]))]);
        let sent = Instant::now();
        slices_api
            .patch(
                &format!("{}-0", service_name(i)),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| BenchError::kube(format!("patch slice of {}", service_name(i)), e))?;
        let seen = while_alive(balancers.wait_for(&one, bench.timeout), alive).await?;
        latencies.push(seen - sent);
        tokio::time::sleep(bench.update_gap).await;
    }
    wait_for_quiet_nb(ovn, &mut nb_records, bench.timeout).await?;
    let nb_rows = row_count(&ovn.nb_sock, "OVN_Northbound", None)?;
    let sb_flows = settled_flow_count(ovn, bench.timeout).await?;

    let restarted = restart(first, launch, ovn, &mut nb_records, bench.timeout).await?;

    let mut f = Figures::new();
    f.put("nodes", bench.stage.nodes);
    f.put("pods", bench.stage.pods);
    f.put("services", bench.services);
    f.put("endpoints_per_service", bench.endpoints);
    f.seconds("create_services_s", create_services_time);
    f.seconds("converge_s", converge);
    f.put("updates", latencies.len());
    f.p50_p99("endpoint_update", &latencies);
    f.put("nb_rows", nb_rows);
    f.put("sb_logical_flows", sb_flows);
    restarted.put_into(&mut f);
    if stage.keep {
        f.put("dir", stage.dir.display());
    }
    drop(balancers);
    drop(stage);
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_vips_list_every_backend_on_the_target_port() {
        let vips = expected_vips(
            Ipv4Addr::new(10, 96, 0, 10),
            &[backend_ip(1), backend_ip(0)],
        );
        assert_eq!(
            vips.get("10.96.0.10:80"),
            Some(&backend_set("10.17.0.0:8080,10.17.0.1:8080"))
        );
    }
}
