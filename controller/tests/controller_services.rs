//! Services and EndpointSlices become OVN load balancers, through the real binary, a real NB
//! and ovn-northd: one per Service and protocol in the `cluster-lbs` group every switch
//! carries; backends follow the slices' conditions; no endpoint means reject; affinity comes
//! and goes; garbage in a user's slice is named in an Event and the rest still served; a
//! deleted Service leaves no row; a converged restart writes nothing.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::Ovn;
use common::kube::{Kube, restart_writing_nothing, wait_for};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "shop";

fn slice(endpoints: Value) -> Result<EndpointSlice> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": "web-manual", "namespace": NS,
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                  {"name": "dns", "port": 5353, "protocol": "UDP"}],
    }))?)
}

fn endpoint(ip: &str, ready: bool, terminating: bool) -> Value {
    json!({"addresses": [ip], "conditions": {"ready": ready, "serving": ready || terminating,
           "terminating": terminating}, "nodeName": "n1"})
}

/// `ovn-nbctl get` of one column of one row, trimmed; `None` when the row is missing.
fn nb_get(ovn: &Ovn, table: &str, row: &str, column: &str) -> Option<String> {
    ovn.nbctl(&["get", table, row, column])
        .ok()
        .map(|s| s.trim().to_string())
}

fn group_members(ovn: &Ovn) -> Result<Vec<String>> {
    let text = ovn.nbctl(&[
        "--bare",
        "--columns=load_balancer",
        "find",
        "Load_Balancer_Group",
        "name=cluster-lbs",
    ])?;
    let mut members: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    members.sort();
    Ok(members)
}

fn lb_uuid(ovn: &Ovn, protocol: &str) -> Result<String> {
    let name = format!("name=svc.shop.web.{protocol}");
    Ok(ovn
        .nbctl(&["--bare", "--columns=_uuid", "find", "Load_Balancer", &name])?
        .trim()
        .to_string())
}

async fn until(what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    let ok = wait_for(Duration::from_secs(20), || {
        let ok = check();
        async move { Ok(ok) }
    })
    .await?;
    ensure!(ok, "timed out waiting until {what}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_become_load_balancers_that_follow_their_slices() -> Result<()> {
    let ovn = Ovn::with_northd()?;
    let kube = Kube::start().await?;
    kube.namespace(NS).await?;
    kube.node("n1").await?;
    let services: Api<Service> = Api::namespaced(kube.client.clone(), NS);
    let slices: Api<EndpointSlice> = Api::namespaced(kube.client.clone(), NS);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                           {"name": "dns", "port": 53, "protocol": "UDP"}]},
    }))?;
    let service = services.create(&PostParams::default(), &service).await?;
    let vip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the API server allocates a ClusterIP")?;
    slices
        .create(
            &PostParams::default(),
            &slice(json!([
                endpoint("10.16.0.5", true, false),
                endpoint("10.16.0.6", true, false)
            ]))?,
        )
        .await?;

    let mut first = kube.spawn_binary(&ovn.nb_remote(), "first.log", &[])?;
    first.wait_ready(Duration::from_secs(20)).await?;
    let tcp_vips = |backends: &str| format!("{{\"{vip}:80\"=\"{backends}\"}}");
    let udp_vips = |backends: &str| format!("{{\"{vip}:53\"=\"{backends}\"}}");
    until("both balancers carry both endpoints", || {
        nb_get(&ovn, "Load_Balancer", "svc.shop.web.tcp", "vips")
            == Some(tcp_vips("10.16.0.5:8080,10.16.0.6:8080"))
            && nb_get(&ovn, "Load_Balancer", "svc.shop.web.udp", "vips")
                == Some(udp_vips("10.16.0.5:5353,10.16.0.6:5353"))
    })
    .await?;
    let group = group_members(&ovn)?;
    for protocol in ["tcp", "udp"] {
        let uuid = lb_uuid(&ovn, protocol)?;
        ensure!(
            group.contains(&uuid),
            "{protocol} balancer {uuid} not in {group:?}"
        );
    }
    for switch in ["join", "ovn-default"] {
        let groups = nb_get(&ovn, "Logical_Switch", switch, "load_balancer_group");
        ensure!(
            groups.as_deref().is_some_and(|g| g != "[]"),
            "{switch} lacks the group: {groups:?}"
        );
    }
    ensure!(
        nb_get(&ovn, "Load_Balancer", "svc.shop.web.tcp", "options").as_deref()
            == Some("{reject=\"true\"}"),
        "options"
    );
    let owner = nb_get(
        &ovn,
        "Load_Balancer",
        "svc.shop.web.tcp",
        "external_ids:\"rovn.io/owner\"",
    );
    ensure!(
        owner.as_deref() == Some("\"Service/shop/web\""),
        "owner {owner:?}"
    );
    until("northd programs the VIP", || {
        ovn.sbctl(&["--bare", "--columns=match", "find", "Logical_Flow"])
            .is_ok_and(|flows| flows.contains(&format!("ip4.dst == {vip}")))
    })
    .await?;

    // Not ready: left out; terminating and serving: used only once nothing is ready.
    let patch = |endpoints: Value| {
        let slices = slices.clone();
        async move {
            slices
                .patch(
                    "web-manual",
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "endpoints": endpoints })),
                )
                .await
                .context("patching the slice")
        }
    };
    patch(json!([
        endpoint("10.16.0.5", true, false),
        endpoint("10.16.0.6", false, true)
    ]))
    .await?;
    until("the not-ready endpoint leaves", || {
        nb_get(&ovn, "Load_Balancer", "svc.shop.web.tcp", "vips")
            == Some(tcp_vips("10.16.0.5:8080"))
    })
    .await?;
    patch(json!([
        endpoint("10.16.0.5", false, false),
        endpoint("10.16.0.6", false, true)
    ]))
    .await?;
    until("the terminating endpoint is the fallback", || {
        nb_get(&ovn, "Load_Balancer", "svc.shop.web.tcp", "vips")
            == Some(tcp_vips("10.16.0.6:8080"))
    })
    .await?;
    patch(json!([])).await?;
    until("no endpoint leaves the VIP without backends", || {
        nb_get(&ovn, "Load_Balancer", "svc.shop.web.tcp", "vips") == Some(tcp_vips(""))
    })
    .await?;

    // Garbage in a user's slice is named; the good endpoint still serves.
    patch(json!([endpoint("10.16.0.7", true, false), {"addresses": ["not-an-ip"]}])).await?;
    until("the good endpoint serves beside the garbage", || {
        nb_get(&ovn, "Load_Balancer", "svc.shop.web.tcp", "vips")
            == Some(tcp_vips("10.16.0.7:8080"))
    })
    .await?;
    let named = wait_for(Duration::from_secs(10), || async {
        let events = kube.events_about(NS, "web").await?;
        Ok(events
            .iter()
            .any(|(reason, note)| reason == "EndpointIgnored" && note.contains("not-an-ip")))
    })
    .await?;
    ensure!(named, "no EndpointIgnored Event on the Service");

    // ClientIP affinity comes and goes.
    let affinity = |on: bool| {
        let services = services.clone();
        async move {
            let spec = if on {
                json!({"sessionAffinity": "ClientIP",
                       "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}})
            } else {
                json!({"sessionAffinity": "None", "sessionAffinityConfig": null})
            };
            services
                .patch(
                    "web",
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "spec": spec })),
                )
                .await
                .context("patching the Service")
        }
    };
    affinity(true).await?;
    until("affinity is set", || {
        nb_get(&ovn, "Load_Balancer", "svc.shop.web.tcp", "options").as_deref()
            == Some("{affinity_timeout=\"30\", reject=\"true\"}")
            && nb_get(
                &ovn,
                "Load_Balancer",
                "svc.shop.web.tcp",
                "selection_fields",
            )
            .as_deref()
                == Some("[ip_src]")
    })
    .await?;
    affinity(false).await?;
    until("affinity is gone again", || {
        nb_get(&ovn, "Load_Balancer", "svc.shop.web.tcp", "options").as_deref()
            == Some("{reject=\"true\"}")
    })
    .await?;

    // A converged restart writes nothing.
    let _second = restart_writing_nothing(&kube, &ovn, first).await?;

    // Deleted: no row left, the group empty.
    services.delete("web", &DeleteParams::default()).await?;
    until("the balancers are gone", || {
        nb_get(&ovn, "Load_Balancer", "svc.shop.web.tcp", "vips").is_none()
            && nb_get(&ovn, "Load_Balancer", "svc.shop.web.udp", "vips").is_none()
    })
    .await?;
    let group = group_members(&ovn)?;
    let balancers = ovn.nbctl(&["--bare", "--columns=_uuid", "list", "Load_Balancer"])?;
    let mut balancers: Vec<String> = balancers.split_whitespace().map(str::to_string).collect();
    balancers.sort();
    ensure!(
        group == balancers,
        "group {group:?} != balancers {balancers:?}"
    );
    Ok(())
}

/// `variables` of the chassis's template row, as `ovn-nbctl` prints it.
fn chassis_values(ovn: &Ovn, chassis: &str) -> Option<String> {
    let condition = format!("chassis={chassis}");
    ovn.nbctl(&[
        "--bare",
        "--columns=variables",
        "find",
        "Chassis_Template_Var",
        &condition,
    ])
    .ok()
    .map(|s| s.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_local_service_gives_each_chassis_its_own_endpoints() -> Result<()> {
    let ovn = Ovn::with_northd()?;
    let kube = Kube::start().await?;
    kube.namespace(NS).await?;
    let nodes: Api<Node> = Api::all(kube.client.clone());
    for node in ["n1", "n2"] {
        kube.node(node).await?;
        let chassis =
            json!({"metadata": {"annotations": {"rovn.io/chassis": format!("ch-{node}")}}});
        nodes
            .patch(node, &PatchParams::default(), &Patch::Merge(&chassis))
            .await?;
    }
    let services: Api<Service> = Api::namespaced(kube.client.clone(), NS);
    let slices: Api<EndpointSlice> = Api::namespaced(kube.client.clone(), NS);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"internalTrafficPolicy": "Local",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    }))?;
    let vip = services
        .create(&PostParams::default(), &service)
        .await?
        .spec
        .and_then(|s| s.cluster_ip)
        .context("a ClusterIP")?;
    let on = |ip: &str, node: &str| json!({"addresses": [ip], "conditions": {"ready": true}, "nodeName": node});
    slices
        .create(
            &PostParams::default(),
            &slice(json!([
                on("10.16.0.5", "n1"),
                on("10.16.0.6", "n2"),
                on("10.16.0.7", "n1")
            ]))?,
        )
        .await?;
    let _controller = {
        let mut binary = kube.spawn_binary(&ovn.nb_remote(), "local.log", &[])?;
        binary.wait_ready(Duration::from_secs(20)).await?;
        binary
    };
    let variable = rovn_api::names::local_backends_variable(NS, "web", "tcp", &format!("{vip}:80"));
    until("each chassis has its own endpoints", || {
        chassis_values(&ovn, "ch-n1") == Some(format!("{variable}=10.16.0.5:8080,10.16.0.7:8080"))
            && chassis_values(&ovn, "ch-n2") == Some(format!("{variable}=10.16.0.6:8080"))
    })
    .await?;
    ensure!(
        nb_get(&ovn, "Load_Balancer", "svc.shop.web.tcp", "vips")
            == Some(format!("{{\"{vip}:80\"=\"^{variable}\"}}")),
        "vips {:?}",
        nb_get(&ovn, "Load_Balancer", "svc.shop.web.tcp", "vips")
    );
    until("northd takes the template", || {
        ovn.sbctl(&["--bare", "--columns=actions", "find", "Logical_Flow"])
            .is_ok_and(|flows| flows.contains(&format!("backends=^{variable}")))
    })
    .await?;

    // The endpoint on n2 moves to n1: n2 is left with nothing of its own.
    slices
        .patch(
            "web-manual",
            &PatchParams::default(),
            &Patch::Merge(json!({"endpoints": [on("10.16.0.5", "n1"), on("10.16.0.6", "n1")]})),
        )
        .await?;
    until("n2's value empties", || {
        chassis_values(&ovn, "ch-n2") == Some(format!("{variable}="))
    })
    .await?;

    // Back to cluster-wide: plain backends, no variable left on any chassis.
    services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"internalTrafficPolicy": "Cluster"}})),
        )
        .await?;
    until("the balancer is plain again", || {
        nb_get(&ovn, "Load_Balancer", "svc.shop.web.tcp", "vips")
            == Some(format!(
                "{{\"{vip}:80\"=\"10.16.0.5:8080,10.16.0.6:8080\"}}"
            ))
            && nb_get(&ovn, "Load_Balancer", "svc.shop.web.tcp", "options").as_deref()
                == Some("{reject=\"true\"}")
            && chassis_values(&ovn, "ch-n1").as_deref() == Some("")
    })
    .await?;
    Ok(())
}
