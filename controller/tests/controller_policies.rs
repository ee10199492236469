//! NetworkPolicies against a real NB, SB and ovn-northd: the ACLs' matches parse as OVN reads
//! them, a converged cluster plans nothing, a label change moves addresses element by
//! element, and a new pod selected by an existing policy gets its port and its places in the
//! policy's groups in one transaction.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rovn_api::names;
use rovn_controller::desired::{
    AclLog, ClusterState, Peer, PodPort, Policy, PolicyPod, PolicyPort, PolicyRule, Protocol,
    Selector, desired_state,
};
use rovn_controller::reconcile::{self, Action, ApplyOptions};
use rovn_ovsdb::Operation;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `port` as policies see it: even pods are `app=web` and name port 80 `http`, odd ones
/// `app=db` and name 5432 `http` (one name, two numbers).
fn policy_pod(port: &PodPort, app: &str) -> PolicyPod {
    let number = if app == "web" { 80 } else { 5432 };
    PolicyPod {
        namespace: port.namespace.clone(),
        name: port.name.clone(),
        uid: port.uid.clone(),
        node: port.node.clone(),
        ip: port.ip,
        labels: labels(&[("app", app)]),
        named_ports: vec![("http".into(), Protocol::Tcp, number)],
    }
}

fn app_of(index: usize) -> &'static str {
    if index.is_multiple_of(2) { "web" } else { "db" }
}

/// Two nodes, 20 pods in ns0..ns4, and three policies in ns0 and ns1.
fn cluster() -> ClusterState {
    let mut cluster = common::cluster(2, 20);
    for i in 0..5 {
        let namespace = format!("ns{i}");
        let team = if i < 2 { "a" } else { "b" };
        cluster
            .policy_pods
            .set_namespace(&namespace, Some(labels(&[("team", team)])));
    }
    for (i, port) in cluster.pods.iter().enumerate() {
        cluster.policy_pods.set_pod(
            &port.namespace,
            &port.name,
            Some(policy_pod(port, app_of(i))),
        );
    }
    let web = Selector {
        labels: labels(&[("app", "web")]),
        requirements: Vec::new(),
    };
    cluster.policies = vec![
        Policy {
            namespace: "ns0".into(),
            name: "from-team-b".into(),
            subject: web.clone(),
            ingress: Some(vec![PolicyRule {
                peers: Some(vec![Peer::Pods {
                    namespaces: Some(Selector {
                        labels: labels(&[("team", "b")]),
                        requirements: Vec::new(),
                    }),
                    pods: Selector::everything(),
                }]),
                ports: Some(vec![PolicyPort::Range {
                    protocol: Protocol::Tcp,
                    start: 80,
                    end: 90,
                }]),
            }]),
            egress: None,
            log: AclLog::default(),
        },
        Policy {
            namespace: "ns1".into(),
            name: "named".into(),
            subject: Selector::everything(),
            ingress: Some(vec![PolicyRule {
                peers: None,
                ports: Some(vec![PolicyPort::Named {
                    protocol: Protocol::Tcp,
                    name: "http".into(),
                }]),
            }]),
            egress: Some(vec![PolicyRule {
                peers: Some(vec![
                    Peer::Block {
                        cidr: "10.16.0.0/16".parse().unwrap_or_default(),
                        except: vec!["10.16.0.2/32".parse().unwrap_or_default()],
                    },
                    Peer::Pods {
                        namespaces: None,
                        pods: web,
                    },
                ]),
                ports: Some(vec![
                    PolicyPort::Any(Protocol::Udp),
                    PolicyPort::Named {
                        protocol: Protocol::Tcp,
                        name: "http".into(),
                    },
                ]),
            }]),
            log: AclLog {
                allow: true,
                deny: true,
            },
        },
        Policy {
            namespace: "ns1".into(),
            name: "deny-all".into(),
            subject: Selector::everything(),
            ingress: Some(Vec::new()),
            egress: Some(Vec::new()),
            log: AclLog::default(),
        },
    ];
    cluster
}

/// What `ovn-trace` says while loading every logical flow of `datapath`: it parses each
/// flow's match, so a match OVN cannot read shows up here.
fn trace_errors(ovn: &common::Ovn, datapath: &str) -> Result<String> {
    let Some(sb) = &ovn.sb else {
        bail!("no SB");
    };
    let output = Command::new("ovn-trace")
        .arg(format!("--db=unix:{}", sb.sock().display()))
        .arg(datapath)
        .arg("inport == \"pod0.ns0\" && eth.src == 0a:58:0a:10:00:02 && ip4.src == 10.16.0.2 && ip4.dst == 10.16.0.3 && ip.ttl == 64 && tcp.dst == 80")
        .output()
        .context("ovn-trace")?;
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    Ok(format!(
        "{stderr}{}",
        if output.status.success() { "" } else { &stdout }
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_become_acls_ovn_reads_and_follow_changes_in_place() -> Result<()> {
    let ovn = common::Ovn::with_northd()?;
    let client = ovn.client().await?;
    let mut cluster = cluster();
    // Phase by phase (small transactions): the log meter still gets its band with it.
    let plan = common::plan(&client, &cluster)?;
    let small = ApplyOptions {
        max_ops_per_transaction: 16,
        ..ApplyOptions::default()
    };
    let applied = reconcile::apply(&client, &plan, &small).await?;
    assert!(applied.transactions > 2, "{applied:?}");
    let bands = ovn.nbctl(&[
        "--bare",
        "--columns=bands",
        "find",
        "Meter",
        "name=rovn-acl-log",
    ])?;
    assert_eq!(
        bands.split_whitespace().count(),
        1,
        "the meter's band: {bands:?}"
    );
    let metered = ovn.nbctl(&["--bare", "--columns=meter", "find", "ACL", "log=true"])?;
    assert!(
        !metered.trim().is_empty()
            && metered
                .lines()
                .filter(|l| !l.trim().is_empty())
                .all(|l| l.trim() == "rovn-acl-log"),
        "logging ACLs are rate-limited by the meter: {metered:?}"
    );

    let acls = ovn.nbctl(&["--bare", "--columns=match", "find", "ACL"])?;
    for needle in [
        "tcp.dst >= 80 && tcp.dst <= 90",
        "tcp.dst == 80)",
        "tcp.dst == 5432)",
        "ip4.dst != {10.16.0.2/32}",
        "udp",
    ] {
        assert!(acls.contains(needle), "no ACL matches {needle:?}:\n{acls}");
    }
    let logged = ovn.nbctl(&["--bare", "--columns=name", "find", "ACL", "log=true"])?;
    assert!(
        logged.contains("ns1/named:ingress.0") && logged.contains("ns1:deny-ingress"),
        "the logging policy's allows and its namespace's deny log:\n{logged}"
    );

    // northd turns every ACL into flows, and OVN parses each of their matches.
    let flows_ready = common::wait_until(Duration::from_secs(20), || {
        let flows = ovn.sbctl(&["--bare", "--columns=match", "find", "Logical_Flow"])?;
        Ok(flows.contains("tcp.dst == 5432") && flows.contains("ip4.dst != {10.16.0.2/32}"))
    })?;
    assert!(flows_ready, "northd made no flows of the ACLs");
    for datapath in ["ovn-default", "blue"] {
        let errors = trace_errors(&ovn, datapath)?;
        assert!(
            !errors.to_lowercase().contains("error") && !errors.contains("Syntax"),
            "{datapath}: {errors}"
        );
    }

    // A fresh client on the converged NB plans nothing.
    let fresh = ovn.client().await?;
    let plan = common::plan(&fresh, &cluster)?;
    assert!(
        plan.is_empty(),
        "converged, yet: {:?}",
        plan.steps().map(|s| &s.what).collect::<Vec<_>>()
    );

    // pod6 (ns1) turns from `web` to `db`: it leaves ns1's egress peers and its `http` port
    // now means 5432, so addresses move between sets element by element (a set for a number
    // no pod had before is new, and the rule's match names it); nothing else is touched.
    let moved = cluster
        .pods
        .iter()
        .position(|p| p.name == "pod6")
        .context("pod6")?;
    let port = cluster.pods[moved].clone();
    cluster
        .policy_pods
        .set_pod(&port.namespace, &port.name, Some(policy_pod(&port, "db")));
    let plan = common::plan(&client, &cluster)?;
    let steps: Vec<_> = plan.steps().collect();
    assert!(!steps.is_empty(), "the label change changed nothing");
    for step in &steps {
        let set = step.what.starts_with("Address_Set");
        match step.action {
            Action::Update if set => assert!(
                step.ops()
                    .iter()
                    .all(|op| matches!(op, Operation::Mutate { .. })),
                "{}: addresses change element by element, got {:?}",
                step.what,
                step.ops()
            ),
            Action::Insert if set => {}
            Action::Update if step.what.starts_with("ACL") => {}
            other => panic!("{other:?} {} for a label change", step.what),
        }
    }
    assert!(
        steps
            .iter()
            .any(|s| s.what.starts_with("Address_Set") && s.action == Action::Update),
        "pod6 left a set"
    );
    common::reconcile(&client, &cluster).await?;

    // A new web pod in ns0 is selected by an existing policy: its port, its place in the
    // policy's group, its namespace's deny group and its node's group go in one transaction.
    let mut new = common::pod(40, 2);
    new.namespace = "ns0".into();
    new.name = "late".into();
    cluster.pods.push(new.clone());
    cluster
        .policy_pods
        .set_pod("ns0", "late", Some(policy_pod(&new, "web")));
    let plan = common::plan(&client, &cluster)?;
    let txns = plan.transactions(ApplyOptions::default().max_ops_per_transaction);
    assert_eq!(
        txns.iter().map(Vec::len).sum::<usize>(),
        1,
        "one transaction for the port and its groups"
    );
    let txn = &txns[0][0];
    let groups: Vec<String> = txn
        .labels
        .iter()
        .filter(|l| l.what.starts_with("Port_Group"))
        .map(|l| l.what.clone())
        .collect();
    for group in [
        names::policy_port_group("ns0", "from-team-b"),
        names::default_deny_port_group("ns0", "ingress"),
        names::node_port_group(&new.node),
    ] {
        assert!(
            groups.iter().any(|g| g.contains(&group)),
            "{group} is not in the port's transaction: {groups:?}"
        );
    }
    assert!(
        txn.labels
            .iter()
            .any(|l| l.what == "Logical_Switch_Port late.ns0"),
        "the port itself: {:?}",
        txn.labels.iter().map(|l| &l.what).collect::<Vec<_>>()
    );
    reconcile::apply(&client, &plan, &ApplyOptions::default()).await?;
    let members = ovn.nbctl(&[
        "--bare",
        "--columns=ports",
        "find",
        "Port_Group",
        &format!("name={}", names::policy_port_group("ns0", "from-team-b")),
    ])?;
    let late = ovn.nbctl(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "Logical_Switch_Port",
        "name=late.ns0",
    ])?;
    assert!(
        !late.trim().is_empty() && members.contains(late.trim()),
        "late.ns0 ({late}) is not in the group: {members}"
    );

    // Deleting the policies takes every row they own, and the deny groups with them.
    cluster.policies.clear();
    common::reconcile(&client, &cluster).await?;
    let left = ovn.nbctl(&["--bare", "--columns=name", "find", "ACL"])?;
    assert!(
        left.lines()
            .all(|l| l.trim().is_empty() || l.starts_with("node/")),
        "only the nodes' ACLs stay: {left}"
    );
    let sets = ovn.nbctl(&["--bare", "--columns=name", "list", "Address_Set"])?;
    assert!(sets.trim().is_empty(), "address sets left: {sets}");
    assert!(desired_state(&cluster).row_count() > 0);
    Ok(())
}

/// `ovn-nbctl --bare --columns=<column> find <table> <condition>`, trimmed.
fn nb_find(ovn: &common::Ovn, table: &str, column: &str, condition: &str) -> String {
    ovn.nbctl(&[
        "--bare",
        &format!("--columns={column}"),
        "find",
        table,
        condition,
    ])
    .map(|s| s.trim().to_string())
    .unwrap_or_default()
}

/// Through the real binary and the lab's API server: a policy's named port is resolved from the
/// pod spec, a label change moves a pod into a peer set, a policy with a part OVN cannot enforce
/// gets an Event naming it and the rest of it still applies, a deleted policy leaves no row,
/// and a converged restart writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_follow_the_api_through_the_binary() -> Result<()> {
    use common::kube::{Kube, restart_writing_nothing, wait_for};
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use kube::Api;
    use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
    use serde_json::json;

    const NS: &str = "shop";
    let ovn = common::Ovn::with_northd()?;
    let kube = Kube::start().await?;
    kube.namespace(NS).await?;
    kube.node("n1").await?;
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), NS);
    for (name, app) in [("web", "web"), ("client", "other")] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "pause",
                     "ports": [{"name": "http", "containerPort": 8080}]}]},
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(kube.client.clone(), NS);
    let policy: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": "web-from-clients", "namespace": NS},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}},
                                       {"ipBlock": {"cidr": "fd00::/64"}}],
                              "ports": [{"port": "http"}]}]},
    }))?;
    policies.create(&PostParams::default(), &policy).await?;

    let mut first = kube.spawn_binary(&ovn.nb_remote(), "first.log", &[])?;
    first.wait_ready(Duration::from_secs(20)).await?;
    let set = names::policy_address_set(NS, "web-from-clients", "ingress.0");
    let named = names::policy_address_set(NS, "web-from-clients", "ingress.0.http.tcp.8080");
    until("the rule's ACL resolves http to 8080 on web", || {
        let acl = nb_find(
            &ovn,
            "ACL",
            "match",
            "name=\"shop/web-from-clients:ingress.0\"",
        );
        acl.contains(&format!("ip4.src == ${set}"))
            && acl.contains(&format!("(ip4.dst == ${named} && tcp.dst == 8080)"))
    })
    .await?;
    let web_ip = kube
        .get_pod(NS, "web")
        .await?
        .as_ref()
        .and_then(common::kube::allocated_ip)
        .context("web has no address")?;
    ensure_eq(
        nb_find(&ovn, "Address_Set", "addresses", &format!("name={named}")),
        web_ip.to_string(),
        "the named-port set holds web",
    )?;
    ensure_eq(
        nb_find(&ovn, "Address_Set", "addresses", &format!("name={set}")),
        String::new(),
        "no pod is a client yet",
    )?;
    let warned = wait_for(Duration::from_secs(10), || async {
        let events = kube.events_about(NS, "web-from-clients").await?;
        Ok(events
            .iter()
            .any(|(reason, note)| reason == "PolicyNotEnforced" && note.contains("IPv6")))
    })
    .await?;
    anyhow::ensure!(warned, "no PolicyNotEnforced Event naming the IPv6 block");

    // The other pod becomes a client: its address joins the peer set, nothing is re-created.
    let acl_before = nb_find(
        &ovn,
        "ACL",
        "_uuid",
        "name=\"shop/web-from-clients:ingress.0\"",
    );
    pods.patch(
        "client",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "client"}}})),
    )
    .await?;
    let client_ip = kube
        .get_pod(NS, "client")
        .await?
        .as_ref()
        .and_then(common::kube::allocated_ip)
        .context("client has no address")?;
    until("client joins the peer set", || {
        nb_find(&ovn, "Address_Set", "addresses", &format!("name={set}")) == client_ip.to_string()
    })
    .await?;
    ensure_eq(
        nb_find(
            &ovn,
            "ACL",
            "_uuid",
            "name=\"shop/web-from-clients:ingress.0\"",
        ),
        acl_before,
        "the ACL is the same row",
    )?;

    let mut second = restart_writing_nothing(&kube, &ovn, first).await?;
    // The dry run of the converged controller plans nothing.
    let plan = second.http_get("/debug/plan").await?;
    anyhow::ensure!(
        plan.starts_with("HTTP/1.0 200") || plan.starts_with("HTTP/1.1 200"),
        "{plan}"
    );
    anyhow::ensure!(plan.contains("\r\n\r\n0 steps, 0 conflicts\n"), "{plan}");

    policies
        .delete("web-from-clients", &DeleteParams::default())
        .await?;
    let gone = wait_for(Duration::from_secs(20), || {
        let acls = nb_find(&ovn, "ACL", "name", "direction=to-lport");
        let sets = ovn
            .nbctl(&["--bare", "--columns=name", "list", "Address_Set"])
            .unwrap_or_default();
        async move {
            Ok(acls
                .lines()
                .all(|l| l.trim().is_empty() || l.starts_with("node/"))
                && sets.trim().is_empty())
        }
    })
    .await?;
    anyhow::ensure!(
        gone,
        "the policy's rows outlived it:\n{}",
        second.log_text()
    );
    second.kill();
    Ok(())
}

async fn until(what: &str, check: impl Fn() -> bool) -> Result<()> {
    let ok = common::kube::wait_for(Duration::from_secs(20), || {
        let ok = check();
        async move { Ok(ok) }
    })
    .await?;
    anyhow::ensure!(ok, "timed out waiting until {what}");
    Ok(())
}

fn ensure_eq(got: String, want: String, what: &str) -> Result<()> {
    anyhow::ensure!(got == want, "{what}: got {got:?}, want {want:?}");
    Ok(())
}
