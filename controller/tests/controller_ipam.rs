//! Allocation outcomes a user sees: static addresses honoured or refused with an Event,
//! exhaustion, excludeIps, malformed annotations, namespace → Subnet choice, Subnet overlap.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::Ovn;
use common::kube::{InProcess, Kube, allocated_ip, annotation, wait_for};
use kube::Api;
use kube::api::{Patch, PatchParams};
use rovn_api::names::annotations as keys;
use rovn_api::subnet::Subnet;

async fn wait_event(kube: &Kube, ns: &str, name: &str, reason: &str) -> Result<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let events = kube.events_about(ns, name).await?;
        if let Some((_, note)) = events.iter().find(|(r, _)| r == reason) {
            return Ok(note.clone());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no {reason} event for {ns}/{name}; events: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_allocated(kube: &Kube, ns: &str, name: &str) -> Result<Ipv4Addr> {
    wait_annotation(kube, ns, name, keys::ALLOCATED, "true").await?;
    let pod = kube.get_pod(ns, name).await?.context("pod gone")?;
    allocated_ip(&pod).with_context(|| format!("{ns}/{name} has no address"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_addresses_exhaustion_exclusions_and_bad_annotations() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let kube = Kube::start().await?;
    for ns in ["web", "tiny"] {
        kube.namespace(ns).await?;
    }
    kube.node("n1").await?;
    // 10.50.0.0/29: .1 gateway, .2-.3 excluded, so only .4 .5 .6 can be handed out.
    kube.subnet("tiny", "10.50.0.0/29", &["tiny"], &["10.50.0.2..10.50.0.3"])
        .await?;
    let controller = InProcess::start(kube.config(&ovn.nb_remote()));

    kube.pod("web", "static", "n1", &[(keys::IP_ADDRESS, "10.16.0.50")])
        .await?;
    let ip = wait_allocated(&kube, "web", "static").await?;
    ensure!(ip == Ipv4Addr::new(10, 16, 0, 50), "static pod got {ip}");

    kube.pod("web", "dup", "n1", &[(keys::IP_ADDRESS, "10.16.0.50")])
        .await?;
    kube.pod("web", "outside", "n1", &[(keys::IP_ADDRESS, "10.99.0.5")])
        .await?;
    kube.pod("web", "garbled", "n1", &[(keys::IP_ADDRESS, "10.16.0.300")])
        .await?;
    let note = wait_event(&kube, "web", "dup", "AddressInUse").await?;
    ensure!(note.contains("10.16.0.50"), "{note}");
    let note = wait_event(&kube, "web", "outside", "AddressOutsideSubnet").await?;
    ensure!(note.contains("10.99.0.5"), "{note}");
    let note = wait_event(&kube, "web", "garbled", "InvalidAnnotation").await?;
    ensure!(note.contains(keys::IP_ADDRESS), "{note}");
    for name in ["dup", "outside", "garbled"] {
        let pod = kube.get_pod("web", name).await?.context("pod gone")?;
        ensure!(
            annotation(&pod, keys::ALLOCATED).is_none(),
            "{name} was allocated: {:?}",
            pod.metadata.annotations
        );
    }

    let mut tiny_ips = Vec::new();
    for i in 0..3 {
        kube.pod("tiny", &format!("t{i}"), "n1", &[]).await?;
        tiny_ips.push(wait_allocated(&kube, "tiny", &format!("t{i}")).await?);
    }
    tiny_ips.sort();
    ensure!(
        tiny_ips
            == vec![
                Ipv4Addr::new(10, 50, 0, 4),
                Ipv4Addr::new(10, 50, 0, 5),
                Ipv4Addr::new(10, 50, 0, 6)
            ],
        "tiny handed out {tiny_ips:?} (excluded .2/.3 must never be used)"
    );
    let t0 = kube.get_pod("tiny", "t0").await?.context("t0")?;
    ensure!(annotation(&t0, keys::LOGICAL_SWITCH) == Some("tiny"));
    ensure!(annotation(&t0, keys::GATEWAY) == Some("10.50.0.1"));
    kube.pod("tiny", "t3", "n1", &[]).await?;
    wait_event(&kube, "tiny", "t3", "SubnetExhausted").await?;

    // A pod that has finished (Succeeded) gives its address back although the object stays,
    // and the freed address goes to the waiting pod; its port leaves NB.
    kube.pod_phase("tiny", "t0", "Succeeded").await?;
    let ip = wait_allocated(&kube, "tiny", "t3").await?;
    ensure!(ip == Ipv4Addr::new(10, 50, 0, 4), "t3 got {ip}");
    let gone = wait_for(Duration::from_secs(15), || async {
        Ok(!ovn
            .nbctl(&["--bare", "--columns=name", "list", "Logical_Switch_Port"])?
            .lines()
            .any(|l| l == "t0.tiny"))
    })
    .await?;
    ensure!(gone, "the finished pod's port t0.tiny is still in NB");
    // A failed pod too: t1's address goes to the next pod.
    let t1_ip = wait_allocated(&kube, "tiny", "t1").await?;
    kube.pod_phase("tiny", "t1", "Failed").await?;
    kube.pod("tiny", "t4", "n1", &[]).await?;
    let ip = wait_allocated(&kube, "tiny", "t4").await?;
    ensure!(ip == t1_ip, "t4 got {ip}, the failed t1 held {t1_ip}");
    controller.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlapping_subnet_is_rejected_and_the_older_one_untouched() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let kube = Kube::start().await?;
    kube.namespace("blue").await?;
    kube.node("n1").await?;
    kube.subnet("older", "10.60.0.0/16", &["blue"], &[]).await?;
    let controller = InProcess::start(kube.config(&ovn.nb_remote()));
    kube.pod("blue", "b0", "n1", &[]).await?;
    let ip = wait_allocated(&kube, "blue", "b0").await?;
    ensure!(ip.octets()[..2] == [10, 60], "b0 got {ip}");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    kube.subnet("newer", "10.60.128.0/17", &[], &[]).await?;
    let rejected = wait_for(Duration::from_secs(15), || async {
        let status = kube.get_subnet("newer").await?.and_then(|s| s.status);
        Ok(status.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "Overlap")
        }))
    })
    .await?;
    ensure!(
        rejected,
        "newer status: {:?}",
        kube.get_subnet("newer").await?.and_then(|s| s.status)
    );
    wait_event(&kube, "default", "newer", "Overlap").await?;
    let older = kube
        .get_subnet("older")
        .await?
        .and_then(|s| s.status)
        .context("older has no status")?;
    ensure!(
        older
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        "older: {older:?}"
    );
    let show = ovn.nbctl(&["show"])?;
    ensure!(
        show.contains("(older)") && !show.contains("(newer)"),
        "{show}"
    );
    ensure!(show.contains("b0.blue"), "{show}");

    // Editing the live Subnet into an invalid one (onto the join range) is refused in its
    // status (it stays Ready with the CIDR its pod uses: SpecChangeRefused), and its switch and
    // pod port stay as they were until the edit is fixed.
    let patch = serde_json::json!({ "spec": { "cidrBlock": "100.64.0.0/24" } });
    Api::<Subnet>::all(kube.client.clone())
        .patch("older", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .context("editing older")?;
    let refused = wait_for(Duration::from_secs(15), || async {
        let status = kube.get_subnet("older").await?.and_then(|s| s.status);
        Ok(status.is_some_and(|s| {
            s.cidr_block.as_deref() == Some("10.60.0.0/16")
                && s.conditions.iter().any(|c| {
                    c.type_ == "Ready" && c.status == "True" && c.reason == "SpecChangeRefused"
                })
        }))
    })
    .await?;
    ensure!(
        refused,
        "older after the bad edit: {:?}",
        kube.get_subnet("older").await?.and_then(|s| s.status)
    );
    // Let a few NB rounds pass: nothing of older may go.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let show = ovn.nbctl(&["show"])?;
    ensure!(
        show.contains("(older)") && show.contains("b0.blue"),
        "a bad edit tore down the live Subnet: {show}"
    );
    ensure!(
        ovn.nbctl(&["show", "ovn-cluster"])?
            .contains("ovn-cluster-older"),
        "the live Subnet lost its router port"
    );
    let b0 = kube.get_pod("blue", "b0").await?.context("b0 gone")?;
    ensure!(
        allocated_ip(&b0) == Some(ip),
        "b0's address changed: {:?}",
        b0.metadata.annotations
    );
    controller.stop().await
}

async fn annotate(kube: &Kube, ns: &str, name: &str, changes: serde_json::Value) -> Result<()> {
    let patch = serde_json::json!({"metadata": {"annotations": changes}});
    kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(kube.client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotating {ns}/{name}"))?;
    Ok(())
}

/// The NB ports holding `ip`.
fn ports_with(ovn: &Ovn, ip: Ipv4Addr) -> Result<Vec<String>> {
    let out = ovn.nbctl(&[
        "--bare",
        "--columns=name,addresses",
        "--format=csv",
        "--no-headings",
        "list",
        "Logical_Switch_Port",
    ])?;
    let ip = ip.to_string();
    Ok(out
        .lines()
        .filter(|l| l.split([' ', ',']).any(|w| w == ip))
        .map(|l| l.split(',').next().unwrap_or_default().to_string())
        .collect())
}

async fn wait_annotation(kube: &Kube, ns: &str, name: &str, key: &str, want: &str) -> Result<()> {
    let ok = wait_for(Duration::from_secs(15), || async {
        let pod = kube.get_pod(ns, name).await?.context("pod gone")?;
        Ok(annotation(&pod, key) == Some(want))
    })
    .await?;
    ensure!(ok, "{ns}/{name} never had {key}={want}");
    Ok(())
}

/// What a pod's creator writes grants nothing: an edit of a running pod's allocation is written
/// back with an Event; after a restart, rovn's NB port — not a garbled annotation — decides who
/// holds an address; `allocated=true` on a new pod is only a request, validated like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_grant_nothing_and_nb_decides_who_holds_an_address() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let kube = Kube::start().await?;
    for ns in ["web", "tiny"] {
        kube.namespace(ns).await?;
    }
    kube.node("n1").await?;
    kube.subnet("tiny", "10.50.0.0/29", &["tiny"], &["10.50.0.2..10.50.0.3"])
        .await?;
    let controller = InProcess::start(kube.config(&ovn.nb_remote()));
    kube.pod("web", "a", "n1", &[]).await?;
    let a_ip = wait_allocated(&kube, "web", "a").await?;
    wait_annotation(&kube, "web", "a", keys::ROUTED, "true").await?;

    // An edit of a running pod's address is written back, and nobody else gets the new one.
    annotate(
        &kube,
        "web",
        "a",
        serde_json::json!({keys::IP_ADDRESS: "10.16.0.77"}),
    )
    .await?;
    let note = wait_event(&kube, "web", "a", "AllocationReverted").await?;
    ensure!(
        note.contains("10.16.0.77") && note.contains("Pod/web/a"),
        "{note}"
    );
    wait_annotation(&kube, "web", "a", keys::IP_ADDRESS, &a_ip.to_string()).await?;
    ensure!(ports_with(&ovn, a_ip)? == vec!["a.web".to_string()]);

    // Garbled while the controller is down: after the restart NB's port decides, a pod asking
    // for the address is refused, and the annotations are written back.
    controller.stop().await?;
    annotate(
        &kube,
        "web",
        "a",
        serde_json::json!({keys::IP_ADDRESS: "garbage", keys::MAC_ADDRESS: null}),
    )
    .await?;
    let controller = InProcess::start(kube.config(&ovn.nb_remote()));
    kube.pod("web", "b", "n1", &[(keys::IP_ADDRESS, &a_ip.to_string())])
        .await?;
    let note = wait_event(&kube, "web", "b", "AddressInUse").await?;
    ensure!(note.contains(&a_ip.to_string()), "{note}");
    wait_annotation(&kube, "web", "a", keys::IP_ADDRESS, &a_ip.to_string()).await?;
    let a = kube.get_pod("web", "a").await?.context("a")?;
    ensure!(
        annotation(&a, keys::MAC_ADDRESS).is_some(),
        "the MAC was not written back"
    );
    ensure!(ports_with(&ovn, a_ip)? == vec!["a.web".to_string()]);

    // allocated=true on a new pod is a request: another namespace's Subnet and an excluded
    // address are refused, not restored.
    let forged = |ip: &'static str, switch: &'static str| {
        [
            (keys::IP_ADDRESS, ip),
            (keys::MAC_ADDRESS, "0a:58:0a:32:00:02"),
            (keys::CIDR, "10.50.0.0/29"),
            (keys::GATEWAY, "10.50.0.1"),
            (keys::LOGICAL_SWITCH, switch),
            (keys::ALLOCATED, "true"),
        ]
    };
    kube.pod("web", "intruder", "n1", &forged("10.50.0.4", "tiny"))
        .await?;
    let note = wait_event(&kube, "web", "intruder", "NoSubnet").await?;
    ensure!(note.contains("tiny"), "{note}");
    kube.pod("tiny", "excluded", "n1", &forged("10.50.0.2", "tiny"))
        .await?;
    let note = wait_event(&kube, "tiny", "excluded", "AddressReserved").await?;
    ensure!(note.contains("10.50.0.2"), "{note}");
    for (ns, name) in [("web", "intruder"), ("tiny", "excluded")] {
        let port = format!("{name}.{ns}");
        let listed = ovn.nbctl(&["--bare", "--columns=name", "list", "Logical_Switch_Port"])?;
        ensure!(!listed.lines().any(|l| l == port), "{port} got a port");
    }
    controller.stop().await
}
