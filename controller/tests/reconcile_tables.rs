//! The reconciler on every NB table the coming features write — Load_Balancer,
//! Load_Balancer_Group, Port_Group, Address_Set, ACL, Logical_Router_Policy,
//! Logical_Router_Static_Route and NAT — against a real NB, before any feature uses them:
//! create, update in place, foreign rows, keys and references survive, garbage goes with its
//! owner (and stays while the owner is held), and a restart writes nothing.
//!
//! What NB holds is read back with `select` on a session of its own, not from the reconciler's
//! replica, so a replica that agreed with a wrong diff would not hide it.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail, ensure};
use common::{Ovn, cluster};
use rovn_api::{Owner, OwnerKind};
use rovn_controller::desired::{DesiredState, RowKey, desired_state};
use rovn_controller::reconcile::{self, ApplyOptions, Plan};
use rovn_controller::tables::Managed;
use rovn_ovsdb::model::from_rows;
use rovn_ovsdb::{Client, DatabaseModel, Model, Operation, Uuid};
use rovn_ovsdb_schemas::nb::{
    Acl, AclAction, AclDirection, AddressSet, AnyModel, LoadBalancer, LoadBalancerGroup,
    LoadBalancerProtocol, LogicalRouter, LogicalRouterPolicy, LogicalRouterPolicyAction,
    LogicalRouterStaticRoute, LogicalSwitch, Nat, NatType, PortGroup,
};

const LB: &str = "svc.ns.web.tcp";
const LB_GROUP: &str = "cluster-lbs";
const ADDRESS_SET: &str = "ns_web.0badf00d";
const PORT_GROUP: &str = "ns_allow.0badcafe";

fn service() -> Owner {
    Owner::namespaced(OwnerKind::Service, "ns", "web")
}

fn policy() -> Owner {
    Owner::namespaced(OwnerKind::NetworkPolicy, "ns", "allow")
}

/// The owner of the router feature rows: not a node of the topology, whose own rows (its
/// egress reroute) would share the tables.
fn node() -> Owner {
    Owner::node("feature-node")
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The base topology (router, switches, two pods) plus one row of every feature table;
/// `version` changes a managed column of each.
fn with_features(version: u8) -> DesiredState {
    let mut state = desired_state(&cluster(1, 2));
    let backend = format!("10.16.0.{}:8080", 10 + version);
    let lb = LoadBalancer {
        name: LB.into(),
        protocol: Some(LoadBalancerProtocol::Tcp),
        vips: map(&[("10.96.0.10:80", &backend)]),
        options: map(&[("reject", "true")]),
        ..Default::default()
    };
    state.add(&service(), &lb, "", None);
    // The topology's group, which every switch carries.
    if let Some(row) = state.row_mut::<LoadBalancerGroup>(&RowKey::name(LB_GROUP)) {
        row.refer(
            LoadBalancerGroup::LOAD_BALANCER,
            LoadBalancer::TABLE,
            [RowKey::name(LB)],
        );
    }
    let address = format!("10.16.0.{}", 10 + version);
    let addresses = AddressSet {
        name: ADDRESS_SET.into(),
        addresses: set(&["10.16.0.2", &address]),
        ..Default::default()
    };
    state.add(&policy(), &addresses, "", None);
    let group = PortGroup {
        name: PORT_GROUP.into(),
        ..Default::default()
    };
    if let Some(row) = state.add(&policy(), &group, "", None) {
        let ports = ["pod0.ns0", "pod1.ns1"][..usize::from(version.min(1)) + 1]
            .iter()
            .map(|p| RowKey::name(*p));
        row.refer(PortGroup::PORTS, "Logical_Switch_Port", ports);
    }
    let acl = Acl {
        name: Some("ns/allow ingress 0".into()),
        direction: AclDirection::ToLport,
        priority: 2000 + i64::from(version),
        match_: format!("outport == @{PORT_GROUP} && ip4.src == ${ADDRESS_SET}"),
        action: AclAction::AllowRelated,
        ..Default::default()
    };
    state.add(&policy(), &acl, "ingress/0", Some(RowKey::name(PORT_GROUP)));
    let reroute = LogicalRouterPolicy {
        priority: 31000 + i64::from(version),
        match_: "ip4.src == 10.16.0.2".into(),
        action: LogicalRouterPolicyAction::Reroute,
        nexthops: set(&["100.64.0.2"]),
        ..Default::default()
    };
    let router = Some(RowKey::name("ovn-cluster"));
    state.add(&node(), &reroute, "reroute", router.clone());
    let route = LogicalRouterStaticRoute {
        ip_prefix: "172.30.0.0/24".into(),
        nexthop: format!("100.64.0.{}", 2 + version),
        ..Default::default()
    };
    state.add(&node(), &route, "underlay", router.clone());
    let nat = Nat {
        type_: NatType::Snat,
        external_ip: format!("172.30.0.{}", 11 + version),
        logical_ip: "10.16.0.0/16".into(),
        ..Default::default()
    };
    state.add(&node(), &nat, "snat", router);
    assert!(state.problems.is_empty(), "{:?}", state.problems);
    state
}

fn plan(client: &Client, desired: &DesiredState) -> Result<Plan> {
    client
        .read(|replica| reconcile::diff(desired, replica))
        .context("no replica")?
        .context("diff")
}

async fn reconcile(client: &Client, desired: &DesiredState) -> Result<Plan> {
    let plan = plan(client, desired)?;
    reconcile::apply(client, &plan, &ApplyOptions::default()).await?;
    Ok(plan)
}

/// Every row of `M`'s table as the server holds it now.
async fn select<M: Model>(client: &Client) -> Result<Vec<M>> {
    let schema = AnyModel::schema();
    let table = schema.table(M::TABLE).context("no such table")?;
    let results = client
        .transact(&[Operation::select(M::TABLE, Vec::new())])
        .await?;
    let rows = results.first().context("no result")?.rows_decoded(table)?;
    Ok(from_rows(&rows)?)
}

async fn one<M: Model>(client: &Client, pick: impl Fn(&M) -> bool) -> Result<M> {
    let mut rows: Vec<M> = select(client).await?.into_iter().filter(pick).collect();
    match rows.len() {
        1 => Ok(rows.remove(0)),
        n => bail!("{n} rows of {} match", M::TABLE),
    }
}

fn owned_by<M: Managed>(owner: &Owner) -> impl Fn(&M) -> bool + '_ {
    let owner = owner.to_string();
    move |row: &M| {
        row.external_ids().get("rovn.io/owner") == Some(&owner)
            && row.external_ids().get("rovn.io/vendor").map(String::as_str) == Some("rovn")
    }
}

/// The UUID of every feature row, by table.
async fn feature_rows(client: &Client) -> Result<BTreeMap<&'static str, Uuid>> {
    let router = one::<LogicalRouter>(client, |r| r.name == "ovn-cluster").await?;
    let mut out = BTreeMap::new();
    out.insert(
        LoadBalancer::TABLE,
        one::<LoadBalancer>(client, |r| r.name == LB).await?.uuid,
    );
    out.insert(
        LoadBalancerGroup::TABLE,
        one::<LoadBalancerGroup>(client, |r| r.name == LB_GROUP)
            .await?
            .uuid,
    );
    out.insert(
        AddressSet::TABLE,
        one::<AddressSet>(client, |r| r.name == ADDRESS_SET)
            .await?
            .uuid,
    );
    let group = one::<PortGroup>(client, |r| r.name == PORT_GROUP).await?;
    out.insert(PortGroup::TABLE, group.uuid);
    let acl = one::<Acl>(client, owned_by(&policy())).await?;
    ensure!(
        group.acls.contains(&acl.uuid),
        "the ACL is not in its port group"
    );
    out.insert(Acl::TABLE, acl.uuid);
    for (table, uuid, held) in [
        (
            LogicalRouterPolicy::TABLE,
            one::<LogicalRouterPolicy>(client, owned_by(&node()))
                .await?
                .uuid,
            &router.policies,
        ),
        (
            LogicalRouterStaticRoute::TABLE,
            one::<LogicalRouterStaticRoute>(client, owned_by(&node()))
                .await?
                .uuid,
            &router.static_routes,
        ),
        (
            Nat::TABLE,
            one::<Nat>(client, owned_by(&node())).await?.uuid,
            &router.nat,
        ),
    ] {
        ensure!(held.contains(&uuid), "{table} row is not on the router");
        out.insert(table, uuid);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_is_created_updated_in_place_and_restarts_to_nothing() -> Result<()> {
    let ovn = Ovn::with_northd()?;
    let client = ovn.client().await?;
    let first = reconcile(&client, &with_features(0)).await?;
    ensure!(first.conflicts.is_empty(), "{:?}", first.conflicts);
    let created = feature_rows(&client).await?;

    let lb = one::<LoadBalancer>(&client, |r| r.name == LB).await?;
    assert_eq!(lb.vips, map(&[("10.96.0.10:80", "10.16.0.10:8080")]));
    assert_eq!(lb.options.get("reject").map(String::as_str), Some("true"));
    let lb_group = one::<LoadBalancerGroup>(&client, |r| r.name == LB_GROUP).await?;
    assert_eq!(lb_group.load_balancer, BTreeSet::from([lb.uuid]));
    for switch in select::<LogicalSwitch>(&client).await? {
        assert!(
            switch.load_balancer_group.contains(&lb_group.uuid),
            "{} lacks the group",
            switch.name
        );
    }
    let group = one::<PortGroup>(&client, |r| r.name == PORT_GROUP).await?;
    assert_eq!(group.ports.len(), 1);
    let acl = one::<Acl>(&client, owned_by(&policy())).await?;
    assert_eq!(
        acl.external_ids.get("rovn.io/id").map(String::as_str),
        Some("ingress/0")
    );
    assert_eq!(acl.priority, 2000);
    // ovn-northd accepted all of it: the ACL and the load balancer reached SB's flows.
    let wanted = |flows: &str| {
        flows.contains("10.96.0.10") && flows.contains(&format!("outport == @{PORT_GROUP}"))
    };
    let flows_seen = common::wait_until(std::time::Duration::from_secs(10), || {
        Ok(wanted(&ovn.sbctl(&["lflow-list"])?))
    })?;
    ensure!(flows_seen, "northd made no flows for the LB and the ACL");

    let second = reconcile(&client, &with_features(1)).await?;
    let deletes = second
        .steps()
        .filter(|s| s.action != reconcile::Action::Update)
        .map(|s| s.what.clone())
        .collect::<Vec<_>>();
    ensure!(
        deletes.is_empty(),
        "changed rows were not updated in place: {deletes:?}"
    );
    ensure!(feature_rows(&client).await? == created, "row UUIDs changed");
    let lb = one::<LoadBalancer>(&client, |r| r.name == LB).await?;
    assert_eq!(lb.vips, map(&[("10.96.0.10:80", "10.16.0.11:8080")]));
    let addresses = one::<AddressSet>(&client, |r| r.name == ADDRESS_SET).await?;
    assert_eq!(addresses.addresses, set(&["10.16.0.2", "10.16.0.11"]));
    let group = one::<PortGroup>(&client, |r| r.name == PORT_GROUP).await?;
    assert_eq!(group.ports.len(), 2);
    assert_eq!(
        one::<Acl>(&client, owned_by(&policy())).await?.priority,
        2001
    );
    let reroute = one::<LogicalRouterPolicy>(&client, owned_by(&node())).await?;
    assert_eq!(reroute.priority, 31001);
    let route = one::<LogicalRouterStaticRoute>(&client, owned_by(&node())).await?;
    assert_eq!(route.nexthop, "100.64.0.3");
    assert_eq!(
        one::<Nat>(&client, owned_by(&node())).await?.external_ip,
        "172.30.0.12"
    );

    let restarted = ovn.client().await?;
    let again = plan(&restarted, &with_features(1))?;
    ensure!(
        again.is_empty(),
        "a converged restart would write: {:?}",
        again.steps().map(|s| &s.what).collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_rows_keys_and_references_survive_and_garbage_goes_with_its_owner() -> Result<()> {
    let ovn = Ovn::nb_only()?;
    let client = ovn.client().await?;
    reconcile(&client, &with_features(0)).await?;
    let ours = feature_rows(&client).await?;

    // Another writer: keys on rovn's rows, rows of its own on rovn's parents, a reference in
    // rovn's reference columns, and a row holding a name rovn wants.
    for (table, uuid) in &ours {
        if *table != LoadBalancerGroup::TABLE {
            ovn.nbctl(&["set", table, &uuid.to_string(), "external_ids:team=blue"])?;
        }
    }
    ovn.nbctl(&["lb-add", "theirs", "10.96.0.99:80", "10.16.0.99:80"])?;
    let lb_theirs = one::<LoadBalancer>(&client, |r| r.name == "theirs").await?;
    let theirs_uuid = lb_theirs.uuid.to_string();
    ovn.nbctl(&[
        "add",
        "Load_Balancer_Group",
        LB_GROUP,
        "load_balancer",
        &theirs_uuid,
    ])?;
    ovn.nbctl(&[
        "lr-policy-add",
        "ovn-cluster",
        "100",
        "ip4.src == 10.16.0.99",
        "drop",
    ])?;
    ovn.nbctl(&[
        "lr-route-add",
        "ovn-cluster",
        "192.168.0.0/24",
        "100.64.0.99",
    ])?;
    ovn.nbctl(&[
        "lr-nat-add",
        "ovn-cluster",
        "dnat",
        "172.30.0.99",
        "10.16.0.99",
    ])?;
    ovn.nbctl(&["pg-add", "theirs_pg"])?;
    ovn.nbctl(&["acl-add", "theirs_pg", "to-lport", "100", "ip4", "drop"])?;
    ovn.nbctl(&["acl-add", PORT_GROUP, "to-lport", "1", "ip6", "drop"])?;
    ovn.nbctl(&[
        "create",
        "Address_Set",
        "name=taken.0000beef",
        "addresses=\"1.2.3.4\"",
    ])?;
    let mut desired = with_features(0);
    desired.add(
        &policy(),
        &AddressSet {
            name: "taken.0000beef".into(),
            ..Default::default()
        },
        "",
        None,
    );
    let untouched = plan(&client, &desired)?;
    ensure!(
        untouched.is_empty(),
        "foreign keys, rows and references made writes: {:?}",
        untouched.steps().map(|s| &s.what).collect::<Vec<_>>()
    );
    ensure!(
        untouched.conflicts.len() == 1 && untouched.conflicts[0].name == "taken.0000beef",
        "{:?}",
        untouched.conflicts
    );

    // The policy's owner is held (its object cannot be rendered): its rows stay.
    let mut held = with_features(0);
    for owner in [policy(), service(), node()] {
        held.remove_owner(&owner);
    }
    held.held_owners.insert(policy());
    reconcile(&client, &held).await?;
    one::<AddressSet>(&client, |r| r.name == ADDRESS_SET).await?;
    one::<PortGroup>(&client, |r| r.name == PORT_GROUP).await?;
    let gone = select::<LoadBalancer>(&client).await?;
    ensure!(
        !gone.iter().any(|r| r.name == LB),
        "the Service's LB outlived it"
    );

    // Not held any more: the policy's rows go, the other writer's stay.
    held.held_owners.clear();
    reconcile(&client, &held).await?;
    for (table, uuid) in &ours {
        if *table == LoadBalancerGroup::TABLE {
            continue;
        }
        let left: Vec<Uuid> = match *table {
            "Load_Balancer" => select::<LoadBalancer>(&client)
                .await?
                .iter()
                .map(|r| r.uuid)
                .collect(),
            "Address_Set" => select::<AddressSet>(&client)
                .await?
                .iter()
                .map(|r| r.uuid)
                .collect(),
            "Port_Group" => select::<PortGroup>(&client)
                .await?
                .iter()
                .map(|r| r.uuid)
                .collect(),
            "ACL" => select::<Acl>(&client)
                .await?
                .iter()
                .map(|r| r.uuid)
                .collect(),
            "Logical_Router_Policy" => select::<LogicalRouterPolicy>(&client)
                .await?
                .iter()
                .map(|r| r.uuid)
                .collect(),
            "Logical_Router_Static_Route" => select::<LogicalRouterStaticRoute>(&client)
                .await?
                .iter()
                .map(|r| r.uuid)
                .collect(),
            "NAT" => select::<Nat>(&client)
                .await?
                .iter()
                .map(|r| r.uuid)
                .collect(),
            other => bail!("unexpected table {other}"),
        };
        ensure!(
            !left.contains(uuid),
            "{table} row {uuid} outlived its owner"
        );
    }
    let router = one::<LogicalRouter>(&client, |r| r.name == "ovn-cluster").await?;
    // The foreign rows, besides rovn's own egress rows of the topology.
    ensure!(
        router.policies.len() == 1 + held.rows::<LogicalRouterPolicy>().count(),
        "the foreign policy: {:?}",
        router.policies
    );
    ensure!(
        router.static_routes.len() == 1 + held.rows::<LogicalRouterStaticRoute>().count(),
        "the foreign route"
    );
    ensure!(router.nat.len() == 1, "the foreign NAT");
    let group = one::<LoadBalancerGroup>(&client, |r| r.name == LB_GROUP).await?;
    ensure!(
        group.load_balancer == BTreeSet::from([lb_theirs.uuid]),
        "the foreign LB left the group or rovn's stayed: {:?}",
        group.load_balancer
    );
    one::<PortGroup>(&client, |r| r.name == "theirs_pg").await?;
    ensure!(
        select::<Acl>(&client).await?.len() == 1 + held.rows::<Acl>().count(),
        "only the ACL of the foreign port group is left, besides the topology's node ACLs"
    );
    one::<AddressSet>(&client, |r| r.name == "taken.0000beef").await?;

    let restarted = ovn.client().await?;
    ensure!(
        plan(&restarted, &held)?.is_empty(),
        "a restart after GC writes"
    );
    Ok(())
}
