//! Issue #12 items 4–6 against the real NB and the in-process API server: no Subnet edit or
//! delete cuts running pods off. A deleted Subnet in use keeps its switch and pod ports (the
//! finalizer `rovn.io/subnet-protection` holds the object) and takes no new pods; `ovn-default`
//! is held the same way and re-created from the flags once gone; an edit that would move
//! running pods is refused until they are gone; a namespace whose Subnet is not ready waits for
//! it rather than taking `ovn-default` addresses. After every step the audit checks that no two
//! live pods share an IP or MAC, that NB holds exactly the live pods' ports, and that every
//! Subnet's usage equals its pods.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::Ovn;
use common::kube::{InProcess, Kube, allocated_ip, annotation};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use rovn_api::names::annotations as keys;
use rovn_api::subnet::{FINALIZER, Subnet};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// Waits until `check` gives a value, failing with what it said last.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<std::result::Result<T, String>>>,
{
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let last = match check().await? {
            Ok(value) => return Ok(value),
            Err(why) => why,
        };
        if std::time::Instant::now() > deadline {
            bail!("{what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_event(kube: &Kube, ns: &str, name: &str, reason: &str) -> Result<String> {
    eventually(&format!("a {reason} Event on {ns}/{name}"), || async {
        let events = kube.events_about(ns, name).await?;
        Ok(match events.iter().find(|(r, _)| r == reason) {
            Some((_, n)) => Ok(n.clone()),
            None => Err(format!("events: {events:?}")),
        })
    })
    .await
}

async fn wait_allocated(kube: &Kube, ns: &str, name: &str) -> Result<Ipv4Addr> {
    eventually(&format!("{ns}/{name} allocated"), || async {
        let pod = kube.get_pod(ns, name).await?;
        Ok(match pod.as_ref().and_then(allocated_ip) {
            Some(ip) => Ok(ip),
            None => Err(format!("{:?}", pod.map(|p| p.metadata.annotations))),
        })
    })
    .await
}

/// The Ready condition's (status, reason, message) and the CIDR in effect.
async fn condition(kube: &Kube, name: &str) -> Result<Option<(String, String, String, String)>> {
    Ok(kube.get_subnet(name).await?.and_then(|s| {
        let status = s.status?;
        let c = status.conditions.first()?;
        Some((
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
            status.cidr_block.clone().unwrap_or_default(),
        ))
    }))
}

async fn wait_reason(kube: &Kube, name: &str, reason: &str) -> Result<(String, String)> {
    eventually(&format!("Subnet {name} Ready=True {reason}"), || async {
        Ok(match condition(kube, name).await? {
            Some((status, r, message, cidr)) if status == "True" && r == reason => {
                Ok((message, cidr))
            }
            other => Err(format!("{other:?}")),
        })
    })
    .await
}

fn lsp_names(ovn: &Ovn) -> Result<BTreeSet<String>> {
    Ok(ovn
        .nbctl(&["--bare", "--columns=name", "list", "Logical_Switch_Port"])?
        .lines()
        .filter(|l| l.contains('.'))
        .map(str::to_string)
        .collect())
}

fn switch_exists(ovn: &Ovn, name: &str) -> Result<bool> {
    Ok(ovn
        .nbctl(&["--bare", "--columns=name", "list", "Logical_Switch"])?
        .lines()
        .any(|l| l == name))
}

fn router_port_networks(ovn: &Ovn, switch: &str) -> Result<String> {
    Ok(ovn
        .nbctl(&[
            "--bare",
            "--columns=networks",
            "find",
            "Logical_Router_Port",
            &format!("name=ovn-cluster-{switch}"),
        ])?
        .trim()
        .to_string())
}

/// One pass of the audit; `Err(why)` while it does not hold.
async fn audit_once(kube: &Kube, ovn: &Ovn) -> Result<std::result::Result<(), String>> {
    let pods = kube.pods().await?;
    let mut ips = BTreeMap::new();
    let mut macs = BTreeMap::new();
    let mut live = BTreeSet::new();
    let mut per_subnet: BTreeMap<String, u64> = BTreeMap::new();
    for pod in &pods {
        let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
            continue;
        };
        let Some(ip) = allocated_ip(pod) else {
            continue;
        };
        let who = format!("{ns}/{name}");
        if let Some(other) = ips.insert(ip, who.clone()) {
            return Ok(Err(format!("{ip} held by {other} and {who}")));
        }
        let mac = annotation(pod, keys::MAC_ADDRESS)
            .unwrap_or_default()
            .to_string();
        if let Some(other) = macs.insert(mac.clone(), who.clone()) {
            return Ok(Err(format!("MAC {mac} held by {other} and {who}")));
        }
        live.insert(format!("{name}.{ns}"));
        let switch = annotation(pod, keys::LOGICAL_SWITCH).unwrap_or_default();
        *per_subnet.entry(switch.to_string()).or_default() += 1;
    }
    let ports = lsp_names(ovn)?;
    if ports != live {
        return Ok(Err(format!("NB pod ports {ports:?} != live pods {live:?}")));
    }
    let addresses = ovn.nbctl(&[
        "--bare",
        "--columns=addresses",
        "list",
        "Logical_Switch_Port",
    ])?;
    let mut seen = BTreeSet::new();
    for line in addresses.lines().filter(|l| l.contains('.')) {
        if !seen.insert(line.to_string()) {
            return Ok(Err(format!("NB address {line} twice")));
        }
    }
    for subnet in Api::<Subnet>::all(kube.client.clone())
        .list(&Default::default())
        .await?
        .items
    {
        let name = subnet.metadata.name.clone().unwrap_or_default();
        let Some(status) = subnet.status.filter(|s| s.cidr_block.is_some()) else {
            continue;
        };
        let pods = per_subnet.get(&name).copied().unwrap_or(0);
        if status.used_ips != pods {
            return Ok(Err(format!(
                "Subnet {name} says {} used, {pods} pods hold addresses on it",
                status.used_ips
            )));
        }
    }
    Ok(Ok(()))
}

async fn audit(kube: &Kube, ovn: &Ovn, step: &str) -> Result<()> {
    eventually(&format!("audit after {step}"), || audit_once(kube, ovn)).await
}

async fn delete_subnet(kube: &Kube, name: &str) -> Result<()> {
    Api::<Subnet>::all(kube.client.clone())
        .delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("deleting Subnet {name}"))?;
    Ok(())
}

async fn patch_subnet(kube: &Kube, name: &str, spec: serde_json::Value) -> Result<()> {
    Api::<Subnet>::all(kube.client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .with_context(|| format!("editing Subnet {name}"))?;
    Ok(())
}

async fn wait_finalizer(kube: &Kube, name: &str) -> Result<()> {
    eventually(&format!("the finalizer on Subnet {name}"), || async {
        let s = kube.get_subnet(name).await?;
        let finalizers = s.and_then(|s| s.metadata.finalizers).unwrap_or_default();
        Ok(if finalizers.iter().any(|f| f == FINALIZER) {
            Ok(())
        } else {
            Err(format!("{finalizers:?}"))
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_subnets_are_held_while_in_use_and_ovn_default_comes_back() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let kube = Kube::start().await?;
    for ns in ["team", "web"] {
        kube.namespace(ns).await?;
    }
    kube.node("n1").await?;
    kube.subnet("team", "10.50.0.0/24", &["team"], &[]).await?;
    let controller = InProcess::start(kube.config(&ovn.nb_remote()));

    kube.pod("team", "a", "n1", &[]).await?;
    let a = wait_allocated(&kube, "team", "a").await?;
    ensure!(a.octets()[..3] == [10, 50, 0], "team/a got {a}");
    wait_finalizer(&kube, "team").await?;
    wait_finalizer(&kube, "ovn-default").await?;
    audit(&kube, &ovn, "start").await?;

    // Deleted while a pod uses it: the object stays (finalizer), so do its switch and the
    // pod's port; the status and an Event say why; a new pod of the namespace waits.
    delete_subnet(&kube, "team").await?;
    let (message, _) = wait_reason(&kube, "team", "Terminating").await?;
    ensure!(message.contains("1 pod still use"), "{message}");
    let note = wait_event(&kube, "default", "team", "Terminating").await?;
    ensure!(note.contains("1 pod"), "{note}");
    let object = kube
        .get_subnet("team")
        .await?
        .context("held by its finalizer")?;
    ensure!(object.metadata.deletion_timestamp.is_some());
    ensure!(
        switch_exists(&ovn, "team")?,
        "the switch of the deleted Subnet went"
    );
    ensure!(lsp_names(&ovn)?.contains("a.team"), "a.team went");
    kube.pod("team", "b", "n1", &[]).await?;
    let note = wait_event(&kube, "team", "b", "SubnetNotReady").await?;
    ensure!(
        note.contains("team") && note.contains("terminating"),
        "{note}"
    );
    let b = kube.get_pod("team", "b").await?.context("b")?;
    ensure!(
        allocated_ip(&b).is_none(),
        "b got an address: {:?}",
        b.metadata.annotations
    );
    audit(&kube, &ovn, "deleting team").await?;

    // Its last pod gone: its rows go, then the finalizer, then the object; the namespace is
    // no longer listed by any Subnet, so b now gets ovn-default.
    kube.delete_pod("team", "a").await?;
    eventually("Subnet team gone with its switch", || async {
        let object = kube.get_subnet("team").await?;
        let switch = switch_exists(&ovn, "team")?;
        Ok(if object.is_none() && !switch {
            Ok(())
        } else {
            Err(format!(
                "object {:?}, switch {switch}",
                object.map(|o| o.metadata)
            ))
        })
    })
    .await?;
    let b = wait_allocated(&kube, "team", "b").await?;
    ensure!(b.octets()[..2] == [10, 16], "team/b got {b}");
    audit(&kube, &ovn, "team gone").await?;

    // ovn-default deleted while b uses it: held the same way; new pods wait for it.
    let before = kube
        .get_subnet("ovn-default")
        .await?
        .context("ovn-default")?;
    delete_subnet(&kube, "ovn-default").await?;
    wait_reason(&kube, "ovn-default", "Terminating").await?;
    kube.pod("web", "c", "n1", &[]).await?;
    let note = wait_event(&kube, "web", "c", "SubnetNotReady").await?;
    ensure!(note.contains("ovn-default"), "{note}");
    ensure!(switch_exists(&ovn, "ovn-default")?);
    ensure!(lsp_names(&ovn)?.contains("b.team"), "b.team went");
    audit(&kube, &ovn, "deleting ovn-default").await?;

    // b gone: ovn-default goes and comes back from the flags (a new object), c gets it.
    kube.delete_pod("team", "b").await?;
    eventually("ovn-default re-created", || async {
        let now = kube.get_subnet("ovn-default").await?;
        Ok(match now {
            Some(s) if s.metadata.uid != before.metadata.uid && s.is_ready() => Ok(()),
            other => Err(format!("{:?}", other.map(|s| (s.metadata, s.status)))),
        })
    })
    .await?;
    let c = wait_allocated(&kube, "web", "c").await?;
    ensure!(c.octets()[..2] == [10, 16], "web/c got {c}");
    wait_finalizer(&kube, "ovn-default").await?;
    audit(&kube, &ovn, "ovn-default back").await?;
    controller.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_that_would_move_pods_wait_until_they_are_gone() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let kube = Kube::start().await?;
    kube.namespace("blue").await?;
    kube.node("n1").await?;
    kube.subnet("blue", "10.60.0.0/24", &["blue"], &[]).await?;
    let controller = InProcess::start(kube.config(&ovn.nb_remote()));
    kube.pod("blue", "p", "n1", &[]).await?;
    let p = wait_allocated(&kube, "blue", "p").await?;
    wait_reason(&kube, "blue", "Accepted").await?;
    let networks = router_port_networks(&ovn, "blue")?;
    ensure!(networks == "10.60.0.1/24", "{networks}");
    audit(&kube, &ovn, "start").await?;

    // cidrBlock edited under the pod: refused, NB unchanged, status and Event say so.
    patch_subnet(&kube, "blue", json!({ "cidrBlock": "10.61.0.0/24" })).await?;
    let (message, cidr) = wait_reason(&kube, "blue", "SpecChangeRefused").await?;
    ensure!(cidr == "10.60.0.0/24", "cidr in effect {cidr}");
    ensure!(
        message.contains("cidrBlock") && message.contains("1 pod"),
        "{message}"
    );
    let note = wait_event(&kube, "default", "blue", "SpecChangeRefused").await?;
    ensure!(note.contains("cidrBlock"), "{note}");
    ensure!(router_port_networks(&ovn, "blue")? == "10.60.0.1/24");
    // A new pod still lands on the addressing in effect.
    kube.pod("blue", "q", "n1", &[]).await?;
    let q = wait_allocated(&kube, "blue", "q").await?;
    ensure!(q.octets()[..3] == [10, 60, 0], "blue/q got {q}");
    audit(&kube, &ovn, "cidr edit").await?;

    // The gateway set to the pod's address: refused, naming the pod.
    patch_subnet(
        &kube,
        "blue",
        json!({ "cidrBlock": "10.60.0.0/24", "gateway": p.to_string() }),
    )
    .await?;
    eventually("the gateway edit refused, naming the pod", || async {
        Ok(match condition(&kube, "blue").await? {
            Some((_, r, m, _)) if r == "SpecChangeRefused" && m.contains("blue/p") => Ok(()),
            other => Err(format!("{other:?}")),
        })
    })
    .await?;
    ensure!(router_port_networks(&ovn, "blue")? == "10.60.0.1/24");

    // Reverted: accepted again, nothing moved.
    patch_subnet(&kube, "blue", json!({ "gateway": null })).await?;
    wait_reason(&kube, "blue", "Accepted").await?;
    audit(&kube, &ovn, "revert").await?;

    // Edited again, then its pods go: the edit takes effect.
    patch_subnet(&kube, "blue", json!({ "cidrBlock": "10.61.0.0/24" })).await?;
    wait_reason(&kube, "blue", "SpecChangeRefused").await?;
    kube.delete_pod("blue", "p").await?;
    kube.delete_pod("blue", "q").await?;
    let (_, cidr) = wait_reason(&kube, "blue", "Accepted").await?;
    ensure!(cidr == "10.61.0.0/24", "cidr in effect {cidr}");
    eventually("the router port follows", || async {
        let n = router_port_networks(&ovn, "blue")?;
        Ok(if n == "10.61.0.1/24" { Ok(()) } else { Err(n) })
    })
    .await?;
    kube.pod("blue", "r", "n1", &[]).await?;
    let r = wait_allocated(&kube, "blue", "r").await?;
    ensure!(r.octets()[..3] == [10, 61, 0], "blue/r got {r}");
    audit(&kube, &ovn, "edit in effect").await?;
    controller.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_wait_for_their_namespaces_subnet_instead_of_ovn_default() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let kube = Kube::start().await?;
    kube.namespace("fixme").await?;
    kube.node("n1").await?;
    let controller = InProcess::start(kube.config(&ovn.nb_remote()));
    // Running on ovn-default before its namespace gets a Subnet: it keeps its address.
    kube.pod("fixme", "old", "n1", &[]).await?;
    let old = wait_allocated(&kube, "fixme", "old").await?;
    // Overlaps ovn-default: rejected (named to sort after ovn-default, which may have been
    // created in the same second: age ties are broken by name).
    kube.subnet("wrong", "10.16.5.0/24", &["fixme"], &[])
        .await?;
    eventually("wrong rejected", || async {
        Ok(match condition(&kube, "wrong").await? {
            Some((s, r, _, _)) if s == "False" && r == "Overlap" => Ok(()),
            other => Err(format!("{other:?}")),
        })
    })
    .await?;
    kube.pod("fixme", "x", "n1", &[]).await?;
    let note = wait_event(&kube, "fixme", "x", "SubnetNotReady").await?;
    ensure!(note.contains("wrong") && note.contains("Overlap"), "{note}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let x = kube.get_pod("fixme", "x").await?.context("x")?;
    if let Some(ip) = allocated_ip(&x) {
        bail!("x got {ip} although its namespace's Subnet is not ready");
    }
    audit(&kube, &ovn, "rejected").await?;

    // Fixed: x is allocated from it; old keeps its ovn-default address.
    patch_subnet(&kube, "wrong", json!({ "cidrBlock": "10.72.0.0/24" })).await?;
    let x = wait_allocated(&kube, "fixme", "x").await?;
    ensure!(x.octets()[..3] == [10, 72, 0], "fixme/x got {x}");
    let now = kube.get_pod("fixme", "old").await?.context("old")?;
    ensure!(
        allocated_ip(&now) == Some(old),
        "old moved: {:?}",
        now.metadata.annotations
    );
    audit(&kube, &ovn, "fixed").await?;
    controller.stop().await
}
