//! The reconciler against a real NB `ovsdb-server`, with a real `ovn-northd` and SB where
//! northd's acceptance matters.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Ovn, cluster, plan, reconcile, wait_until};
use rovn_api::{MacAddr, names};
use rovn_controller::desired::desired_state;
use rovn_controller::reconcile::{self as rec, Action, ApplyOptions};
use rovn_ovsdb::{Client, Model, Uuid};
use rovn_ovsdb_schemas::nb::LogicalSwitchPort;

/// `ovn-nbctl show` parsed: switch name → port names, router name → port names.
#[derive(Debug, Default)]
struct Show {
    switches: BTreeMap<String, BTreeSet<String>>,
    routers: BTreeMap<String, BTreeSet<String>>,
}

fn parse_show(text: &str) -> Show {
    let mut show = Show::default();
    let mut current: Option<(bool, String)> = None;
    for line in text.lines() {
        let name_in_parens = || {
            line.rsplit_once('(')
                .and_then(|(_, rest)| rest.strip_suffix(')'))
                .map(str::to_string)
        };
        if line.starts_with("switch ") {
            current = name_in_parens().map(|n| (true, n));
            if let Some((_, n)) = &current {
                show.switches.entry(n.clone()).or_default();
            }
        } else if line.starts_with("router ") {
            current = name_in_parens().map(|n| (false, n));
            if let Some((_, n)) = &current {
                show.routers.entry(n.clone()).or_default();
            }
        } else if let (Some(port), Some((is_switch, parent))) =
            (line.strip_prefix("    port "), &current)
        {
            let map = if *is_switch {
                &mut show.switches
            } else {
                &mut show.routers
            };
            map.entry(parent.clone())
                .or_default()
                .insert(port.trim().to_string());
        }
    }
    show
}

/// Every LSP of the replica: name → (uuid, row).
fn switch_ports(client: &Client) -> Result<BTreeMap<String, LogicalSwitchPort>> {
    client
        .read(|r| {
            let table = r.table(LogicalSwitchPort::TABLE)?;
            Some(
                table
                    .iter()
                    .filter_map(|(u, row)| LogicalSwitchPort::from_row(*u, row).ok())
                    .map(|p| (p.name.clone(), p))
                    .collect(),
            )
        })
        .flatten()
        .context("no LSP table in the replica")
}

fn uuid_of(ports: &BTreeMap<String, LogicalSwitchPort>, name: &str) -> Result<Uuid> {
    ports
        .get(name)
        .map(|p| p.uuid)
        .with_context(|| format!("no LSP {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_converges_survives_restarts_and_collects_garbage() -> Result<()> {
    let ovn = Ovn::with_northd()?;
    let client = ovn.client().await?;
    let mut state = cluster(3, 50);

    let (first, applied) = reconcile(&client, &state).await?;
    ensure!(first.conflicts.is_empty(), "{:?}", first.conflicts);
    // router + LB group + 3 switches, 3 router ports, 3 peer ports + 3 node ports + 50 pod
    // ports, each node's port group with its two ACLs, and the ACL log meter (its band is
    // inserted in the meter's step), the cluster's egress policy and default route, and each
    // node's egress reroute.
    assert_eq!(first.count(Action::Insert), 5 + 3 + 56 + 3 * 3 + 1 + 2 + 3);
    assert_eq!(
        applied.transactions, 1,
        "a plan that fits one transaction is sent as one: {applied:?}"
    );

    let show = parse_show(&ovn.nbctl(&["show"])?);
    assert_eq!(
        show.routers["ovn-cluster"],
        BTreeSet::from(
            [
                "ovn-cluster-join",
                "ovn-cluster-ovn-default",
                "ovn-cluster-blue"
            ]
            .map(String::from)
        )
    );
    assert_eq!(show.switches.len(), 3, "{show:?}");
    let mut expected_join: BTreeSet<String> = (0..3).map(|i| format!("node-node{i}")).collect();
    expected_join.insert("join-ovn-cluster".into());
    assert_eq!(show.switches["join"], expected_join);
    for (switch, parity) in [("ovn-default", 0), ("blue", 1)] {
        let mut expected: BTreeSet<String> = (0..50)
            .filter(|i| i % 2 == parity)
            .map(|i| format!("pod{i}.ns{}", i % 5))
            .collect();
        expected.insert(format!("{switch}-ovn-cluster"));
        assert_eq!(show.switches[switch], expected, "ports of {switch}");
    }
    let lsp_names: BTreeSet<String> = switch_ports(&client)?.into_keys().collect();
    assert_eq!(lsp_names.len(), 3 + 3 + 50);
    let ports = switch_ports(&client)?;
    let pod0 = &ports["pod0.ns0"];
    assert_eq!(pod0.options["requested-chassis"], "node0");
    assert_eq!(pod0.external_ids["rovn.io/owner"], "Pod/ns0/pod0");
    assert!(pod0.addresses.contains("0a:58:0a:10:00:02 10.16.0.2"));

    // northd accepted every port: SB has a Port_Binding for each LSP.
    let bound = wait_until(Duration::from_secs(30), || {
        let out = ovn.sbctl(&["--bare", "--columns=logical_port", "list", "Port_Binding"])?;
        let sb: BTreeSet<String> = out.split_whitespace().map(String::from).collect();
        Ok(lsp_names.is_subset(&sb))
    })?;
    assert!(bound, "SB lacks Port_Bindings for some LSPs");

    // Converged: nothing to write, now and after a controller restart.
    let again = plan(&client, &state)?;
    assert!(again.is_empty(), "{:?}", again.steps().collect::<Vec<_>>());
    let applied = rec::apply(&client, &again, &ApplyOptions::default()).await?;
    assert_eq!((applied.transactions, applied.operations), (0, 0));
    drop(client);
    let client = ovn.client().await?;
    let (restart, applied) = reconcile(&client, &state).await?;
    assert!(restart.is_empty());
    assert_eq!(applied.transactions, 0);
    assert_eq!(client.stats().transactions_sent, 0);

    // Other writers: a hand-made port on a rovn switch, a foreign key on a rovn row.
    ovn.nbctl(&["lsp-add", "ovn-default", "manual"])?;
    ovn.nbctl(&[
        "set",
        "Logical_Switch_Port",
        "pod2.ns2",
        "external_ids:team=blue",
    ])?;
    ovn.nbctl(&[
        "set",
        "Logical_Switch",
        "ovn-default",
        "other_config:mcast_snoop=true",
    ])?;
    client.wait_synced(Duration::from_secs(5)).await?;
    let settled = wait_until(Duration::from_secs(5), || {
        Ok(switch_ports(&client)?.contains_key("manual"))
    })?;
    assert!(settled, "the replica never saw the manual port");
    let (foreign, _) = reconcile(&client, &state).await?;
    assert!(
        foreign.is_empty(),
        "{:?}",
        foreign.steps().collect::<Vec<_>>()
    );

    // A pod's address changes: same row, new addresses. A pod re-created: a new row.
    let before = switch_ports(&client)?;
    let new_ip = std::net::Ipv4Addr::new(10, 16, 200, 9);
    state.pods[0].ip = new_ip;
    state.pods[0].mac = MacAddr::derived_from(new_ip);
    state.pods[4].uid = "uid-4-again".into();
    let (changed, _) = reconcile(&client, &state).await?;
    assert_eq!(changed.count(Action::Update), 1);
    assert_eq!(changed.count(Action::Replace), 1);
    let after = switch_ports(&client)?;
    assert_eq!(uuid_of(&after, "pod0.ns0")?, uuid_of(&before, "pod0.ns0")?);
    assert_eq!(
        after["pod0.ns0"].addresses,
        BTreeSet::from(["0a:58:0a:10:c8:09 10.16.200.9".to_string()])
    );
    assert_ne!(uuid_of(&after, "pod4.ns4")?, uuid_of(&before, "pod4.ns4")?);
    assert_eq!(after["pod4.ns4"].external_ids["pod-uid"], "uid-4-again");

    // Pods and a node go away: exactly their ports go.
    let before = switch_ports(&client)?;
    let removed_pods: Vec<String> = state
        .pods
        .drain(40..)
        .map(|p| format!("{}.{}", p.name, p.namespace))
        .collect();
    state.nodes.pop();
    let (gone, _) = reconcile(&client, &state).await?;
    // 10 pod ports, the node's port, its port group (whose ACLs go with it) and its egress
    // reroute.
    assert_eq!(gone.count(Action::Delete), 13);
    assert_eq!(gone.steps().count(), 13);
    assert!(
        gone.steps()
            .any(|s| s.what == format!("Port_Group {}", names::node_port_group("node2"))),
        "{:?}",
        gone.steps().map(|s| &s.what).collect::<Vec<_>>()
    );
    let after = switch_ports(&client)?;
    for name in removed_pods.iter().chain([&"node-node2".to_string()]) {
        assert!(!after.contains_key(name), "{name} survived");
    }
    // `up` is ovn-northd's column; everything rovn or the operator wrote must be unchanged.
    let without_up = |p: &LogicalSwitchPort| LogicalSwitchPort {
        up: None,
        ..p.clone()
    };
    for (name, port) in &after {
        assert_eq!(
            before.get(name).map(without_up),
            Some(without_up(port)),
            "{name} changed"
        );
    }
    assert_eq!(after.len(), before.len() - 11);
    assert_eq!(after["pod2.ns2"].external_ids["team"], "blue");
    assert!(after.contains_key("manual"));
    let show = parse_show(&ovn.nbctl(&["show"])?);
    assert!(show.switches["ovn-default"].contains("manual"));
    let mcast = ovn.nbctl(&[
        "get",
        "Logical_Switch",
        "ovn-default",
        "other_config:mcast_snoop",
    ])?;
    assert_eq!(mcast.trim(), "\"true\"");

    let (last, _) = reconcile(&client, &state).await?;
    assert!(last.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_rows_with_rovn_names_are_conflicts_not_overwritten() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    ovn.nbctl(&["ls-add", "blue"])?;
    ovn.nbctl(&["lsp-add", "blue", "mine"])?;
    ovn.nbctl(&[
        "ls-add",
        "elsewhere",
        "--",
        "lsp-add",
        "elsewhere",
        "pod0.ns0",
    ])?;
    let client = ovn.client().await?;
    let state = cluster(1, 4);
    let (plan, applied) = reconcile(&client, &state).await?;
    let conflicts: Vec<String> = plan.conflicts.iter().map(ToString::to_string).collect();
    assert_eq!(conflicts.len(), 2, "{conflicts:?}");
    assert!(
        conflicts
            .iter()
            .any(|c| c.starts_with("Logical_Switch blue (")
                && c.ends_with("not overwriting it for Subnet/blue")),
        "{conflicts:?}"
    );
    assert!(
        conflicts
            .iter()
            .any(|c| c.starts_with("Logical_Switch_Port pod0.ns0 (") && c.contains("Pod/ns0/pod0")),
        "{conflicts:?}"
    );
    assert!(applied.transactions > 0);
    // The foreign rows are untouched, the rest converged.
    let blue = ovn.nbctl(&[
        "--bare",
        "--columns=external_ids,ports",
        "list",
        "Logical_Switch",
        "blue",
    ])?;
    let ports = ovn.nbctl(&["lsp-list", "blue"])?;
    assert!(
        ports.contains("(mine)") && ports.lines().count() == 1,
        "{ports}"
    );
    assert!(!blue.contains("rovn"), "{blue}");
    let ext = ovn.nbctl(&["get", "Logical_Switch_Port", "pod0.ns0", "external_ids"])?;
    assert_eq!(ext.trim(), "{}");
    assert!(
        ovn.nbctl(&["lsp-list", "ovn-default"])?
            .contains("(pod2.ns2)")
    );
    let (again, _) = reconcile(&client, &state).await?;
    assert!(again.is_empty());
    assert_eq!(again.conflicts.len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pods_apply_once_then_diff_to_nothing() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let client = ovn.client().await?;
    let state = cluster(100, 10_000);
    let desired = desired_state(&state);
    ensure!(desired.problems.is_empty(), "{:?}", desired.problems);

    let started = Instant::now();
    let first = client
        .read(|r| rec::diff(&desired, r))
        .context("no replica")??;
    let diff_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let applied = rec::apply(&client, &first, &ApplyOptions::default()).await?;
    let apply_s = started.elapsed().as_secs_f64();
    println!(
        "first:  diff_ms={diff_ms:.1} apply_s={apply_s:.2} ops={} transactions={}",
        applied.operations, applied.transactions
    );

    let client = ovn.client().await?;
    let started = Instant::now();
    let desired = desired_state(&state);
    let render_ms = started.elapsed().as_secs_f64() * 1e3;
    // The best of three runs: the machine is shared, and the figure is the diff's own cost.
    let mut diff_ms = f64::INFINITY;
    let mut second = None;
    for _ in 0..3 {
        let started = Instant::now();
        let plan = client
            .read(|r| rec::diff(&desired, r))
            .context("no replica")??;
        diff_ms = diff_ms.min(started.elapsed().as_secs_f64() * 1e3);
        second = Some(plan);
    }
    let second = second.context("no diff ran")?;
    let ops: usize = second
        .transactions(ApplyOptions::default().max_ops_per_transaction)
        .iter()
        .flatten()
        .map(|t| t.ops.len())
        .sum();
    println!("second (fresh client): render_ms={render_ms:.1} diff_ms={diff_ms:.1} ops={ops}");
    assert_eq!(ops, 0);
    assert!(second.is_empty());
    let lsps = switch_ports(&client)?;
    assert_eq!(lsps.len(), 10_000 + 100 + 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_transactions_name_the_objects_they_were_for() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let client = ovn.client().await?;
    reconcile(&client, &cluster(1, 4)).await?;
    let state = cluster(1, 6);
    let stale = plan(&client, &state)?;
    assert_eq!(stale.count(Action::Insert), 2, "pod4 and pod5");

    // Between the diff and the apply, another writer takes pod4's name and deletes blue.
    ovn.nbctl(&["ls-add", "other", "--", "lsp-add", "other", "pod4.ns4"])?;
    ovn.nbctl(&["ls-del", "blue"])?;
    let options = ApplyOptions {
        max_ops_per_transaction: 2,
        max_in_flight: 4,
    };
    let err = match rec::apply(&client, &stale, &options).await {
        Ok(applied) => anyhow::bail!("the stale plan applied: {applied:?}"),
        Err(e) => e,
    };
    let messages: Vec<String> = err.failures.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Pod/ns4/pod4") && m.contains("pod4.ns4")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("Pod/ns0/pod5")
            && m.contains("parent row Logical_Switch blue was not found")),
        "{messages:?}"
    );

    // The next reconcile repairs what it may and reports the name it may not take.
    let (repair, _) = reconcile(&client, &state).await?;
    assert_eq!(repair.conflicts.len(), 1, "{:?}", repair.conflicts);
    assert!(ovn.nbctl(&["lsp-list", "blue"])?.contains("(pod5.ns0)"));
    let (last, _) = reconcile(&client, &state).await?;
    assert!(last.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_bad_objects_and_removed_subnets() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let client = ovn.client().await?;
    let mut state = cluster(2, 10);
    reconcile(&client, &state).await?;
    let before = switch_ports(&client)?;

    // A pod whose address no longer fits its subnet cannot be rendered: its port is held.
    state.pods[2].ip = std::net::Ipv4Addr::new(192, 168, 0, 9);
    // A pod moved to the other subnet: a new port there, none left on the old switch.
    state.pods[4].switch = "blue".into();
    state.pods[4].ip = std::net::Ipv4Addr::new(10, 17, 9, 9);
    let (moved, _) = reconcile(&client, &state).await?;
    assert_eq!(
        moved.count(Action::Replace),
        1,
        "{:?}",
        moved.steps().collect::<Vec<_>>()
    );
    assert_eq!(moved.steps().count(), 1);
    let after = switch_ports(&client)?;
    assert_eq!(
        after["pod2.ns2"], before["pod2.ns2"],
        "a held port must not change"
    );
    assert_ne!(uuid_of(&after, "pod4.ns4")?, uuid_of(&before, "pod4.ns4")?);
    assert!(ovn.nbctl(&["lsp-list", "blue"])?.contains("(pod4.ns4)"));
    assert!(
        !ovn.nbctl(&["lsp-list", "ovn-default"])?
            .contains("(pod4.ns4)")
    );

    // Subnet blue and its pods are deleted: the switch, its router port and its ports go.
    state.subnets.retain(|s| s.name != "blue");
    state.pods.retain(|p| p.switch != "blue");
    let (removed, _) = reconcile(&client, &state).await?;
    assert!(removed.conflicts.is_empty());
    let show = parse_show(&ovn.nbctl(&["show"])?);
    assert!(!show.switches.contains_key("blue"), "{show:?}");
    assert!(!show.routers["ovn-cluster"].contains("ovn-cluster-blue"));
    let lsps = switch_ports(&client)?;
    assert!(lsps.keys().all(|n| !n.starts_with("blue-")));
    assert!(!lsps.contains_key("pod1.ns1") && !lsps.contains_key("pod4.ns4"));
    assert!(lsps.contains_key("pod2.ns2") && lsps.contains_key("pod0.ns0"));
    let outcome = rec::reconcile_once(
        &client,
        &desired_state(&state),
        None,
        &ApplyOptions::default(),
    )
    .await?;
    assert_eq!(outcome, rec::Outcome::default());
    Ok(())
}

/// One step the server refuses must not stall the steps batched with it: the transaction is
/// split until the culprit stands alone, the rest lands, and the failure names only the culprit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_step_is_bisected_out_of_its_batch() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let client = ovn.client().await?;
    reconcile(&client, &cluster(1, 0)).await?;
    let state = cluster(1, 40);
    let stale = plan(&client, &state)?;
    assert_eq!(stale.count(Action::Insert), 40);
    assert_eq!(
        stale.transactions(2000).iter().map(Vec::len).sum::<usize>(),
        1,
        "all 40 ports in one transaction"
    );
    // Between the diff and the apply, another writer takes pod17's name.
    ovn.nbctl(&["ls-add", "other", "--", "lsp-add", "other", "pod17.ns2"])?;
    let err = match rec::apply(&client, &stale, &ApplyOptions::default()).await {
        Ok(applied) => anyhow::bail!("the stale plan applied: {applied:?}"),
        Err(e) => e,
    };
    let owners: Vec<String> = err
        .failures
        .iter()
        .flat_map(|f| f.owners().iter().map(ToString::to_string))
        .collect();
    assert_eq!(owners, ["Pod/ns2/pod17"], "{:?}", err.failures);
    let ports = switch_ports(&client)?;
    let routed = (0..40)
        .filter(|i| *i != 17)
        .filter(|i| ports.contains_key(&format!("pod{i}.ns{}", i % 5)))
        .count();
    assert_eq!(routed, 39, "the other 39 ports landed");
    Ok(())
}
