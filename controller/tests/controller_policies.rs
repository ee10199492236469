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
    Ok(format!("{stderr}{}", if output.status.success() { "" } else { &stdout }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_become_acls_ovn_reads_and_follow_changes_in_place() -> Result<()> {
    let ovn = common::Ovn::with_northd()?;
    let client = ovn.client().await?;
    let mut cluster = cluster();
    common::reconcile(&client, &cluster).await?;

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
    assert!(plan.is_empty(), "converged, yet: {:?}", plan.steps().map(|s| &s.what).collect::<Vec<_>>());

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
                step.ops().iter().all(|op| matches!(op, Operation::Mutate { .. })),
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
    let late = ovn.nbctl(&["--bare", "--columns=_uuid", "find", "Logical_Switch_Port", "name=late.ns0"])?;
    assert!(
        !late.trim().is_empty() && members.contains(late.trim()),
        "late.ns0 ({late}) is not in the group: {members}"
    );

    // Deleting the policies takes every row they own, and the deny groups with them.
    cluster.policies.clear();
    common::reconcile(&client, &cluster).await?;
    let left = ovn.nbctl(&["--bare", "--columns=name", "find", "ACL"])?;
    assert!(
        left.lines().all(|l| l.trim().is_empty() || l.starts_with("node/")),
        "only the nodes' ACLs stay: {left}"
    );
    let sets = ovn.nbctl(&["--bare", "--columns=name", "list", "Address_Set"])?;
    assert!(sets.trim().is_empty(), "address sets left: {sets}");
    assert!(desired_state(&cluster).row_count() > 0);
    Ok(())
}
