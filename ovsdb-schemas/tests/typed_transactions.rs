//! Typed models through `rovn_ovsdb::Connection` against a real ovsdb-server: insert, read
//! back, update only what changed, send nothing when converged, delete.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, anyhow, ensure};
use rovn_ovsdb::model::{self, Model};
use rovn_ovsdb::{Condition, Connection, DatabaseSchema, Datum, Operation, OperationResult, Uuid};
use rovn_ovsdb_schemas::nb::{
    self, Acl, AclAction, AclDirection, LogicalSwitch, LogicalSwitchPort,
};
use rovn_ovsdb_schemas::vswitch;
use rovn_testkit::{OvsdbServer, schema};

/// Selects every row of `M`'s table in database `schema` and decodes it.
async fn select_all<M: Model>(conn: &Connection, schema: &DatabaseSchema) -> Result<Vec<M>> {
    let table = schema
        .table(M::TABLE)
        .ok_or_else(|| anyhow!("no table {}", M::TABLE))?;
    let results = conn
        .transact(&schema.name, &[Operation::select(M::TABLE, vec![])])
        .await?;
    let rows = results
        .first()
        .ok_or_else(|| anyhow!("select {} returned nothing", M::TABLE))?
        .rows_decoded(table)?;
    Ok(model::from_rows(&rows)?)
}

fn one<M>(mut rows: Vec<M>, what: &str) -> Result<M> {
    ensure!(rows.len() == 1, "expected one {what}, found {}", rows.len());
    rows.pop().ok_or_else(|| anyhow!("no {what}"))
}

fn owned(owner: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("rovn.io/vendor".to_string(), "rovn".to_string()),
        ("rovn.io/owner".to_string(), owner.to_string()),
    ])
}

#[tokio::test]
async fn typed_rows_insert_update_and_delete_through_a_connection() -> Result<()> {
    let server = OvsdbServer::nb()?;
    let (conn, _notifications) = support::connect(&server).await?;
    let nb_schema = nb::schema();

    let port = LogicalSwitchPort {
        name: "web-0.default".into(),
        addresses: BTreeSet::from(["0a:58:0a:10:00:05 10.16.0.5".to_string()]),
        port_security: BTreeSet::from(["0a:58:0a:10:00:05 10.16.0.5".to_string()]),
        external_ids: owned("Pod/default/web-0"),
        ..Default::default()
    };
    let acl = Acl {
        action: AclAction::AllowRelated,
        direction: AclDirection::ToLport,
        match_: "outport == \"web-0.default\" && tcp.dst == 80".into(),
        priority: 1001,
        name: Some("allow-web".into()),
        log: true,
        external_ids: owned("NetworkPolicy/default/web"),
        ..Default::default()
    };
    let mut switch = LogicalSwitch {
        name: "ovn-default".into(),
        external_ids: owned("Subnet/ovn-default"),
        other_config: BTreeMap::from([("subnet".to_string(), "10.16.0.0/16".to_string())]),
        ..Default::default()
    };
    let mut switch_row = switch.to_row();
    switch_row.insert(LogicalSwitch::PORTS.into(), Datum::named_uuid("port"));
    switch_row.insert(LogicalSwitch::ACLS.into(), Datum::named_uuid("acl"));
    let results = conn
        .transact(
            nb::DATABASE,
            &[
                model::insert(&port).with_uuid_name("port"),
                model::insert(&acl).with_uuid_name("acl"),
                Operation::insert(LogicalSwitch::TABLE, switch_row),
            ],
        )
        .await
        .context("inserting the typed rows")?;
    let uuids: Vec<Uuid> = results.iter().filter_map(OperationResult::uuid).collect();
    ensure!(uuids.len() == 3, "expected three inserts, got {results:?}");

    let stored_port: LogicalSwitchPort = one(select_all(&conn, &nb_schema).await?, "port")?;
    let stored_acl: Acl = one(select_all(&conn, &nb_schema).await?, "ACL")?;
    let stored_switch: LogicalSwitch = one(select_all(&conn, &nb_schema).await?, "switch")?;
    ensure!(stored_port.uuid == uuids[0] && stored_acl.uuid == uuids[1]);
    ensure!(
        stored_port
            == LogicalSwitchPort {
                uuid: uuids[0],
                ..port.clone()
            },
        "port read back differs: {stored_port:?}"
    );
    ensure!(
        stored_acl
            == Acl {
                uuid: uuids[1],
                ..acl.clone()
            },
        "ACL read back differs: {stored_acl:?}"
    );
    switch.uuid = uuids[2];
    switch.ports = BTreeSet::from([uuids[0]]);
    switch.acls = BTreeSet::from([uuids[1]]);
    ensure!(
        stored_switch == switch,
        "switch read back differs: {stored_switch:?}"
    );

    // Converged: nothing to send.
    ensure!(model::update(&stored_port, &stored_port.clone()).is_none());

    let mut desired = stored_port.clone();
    desired.tag_request = Some(7);
    desired
        .external_ids
        .insert("rovn.io/node".into(), "node-1".into());
    let Some(update) = model::update(&stored_port, &desired) else {
        anyhow::bail!("a changed port produced no update");
    };
    let Operation::Update {
        row, conditions, ..
    } = &update
    else {
        anyhow::bail!("model::update built {update:?}");
    };
    ensure!(
        row.keys().map(String::as_str).eq([
            LogicalSwitchPort::EXTERNAL_IDS,
            LogicalSwitchPort::TAG_REQUEST
        ]),
        "the update carries unchanged columns: {row:?}"
    );
    ensure!(conditions == &vec![Condition::uuid(stored_port.uuid)]);
    let results = conn.transact(nb::DATABASE, &[update]).await?;
    ensure!(
        results.first().and_then(OperationResult::count) == Some(1),
        "{results:?}"
    );
    let updated: LogicalSwitchPort = one(select_all(&conn, &nb_schema).await?, "port")?;
    ensure!(updated == desired, "updated port differs: {updated:?}");

    let results = conn
        .transact(nb::DATABASE, &[model::delete(&stored_switch)])
        .await?;
    ensure!(
        results.first().and_then(OperationResult::count) == Some(1),
        "{results:?}"
    );
    // The port and the ACL are not root rows: deleting their switch collects them.
    ensure!(
        select_all::<LogicalSwitchPort>(&conn, &nb_schema)
            .await?
            .is_empty()
    );
    ensure!(select_all::<Acl>(&conn, &nb_schema).await?.is_empty());
    conn.close();
    Ok(())
}

#[tokio::test]
async fn element_changes_keep_what_another_writer_added() -> Result<()> {
    let server = OvsdbServer::start(schema::VSWITCH)?;
    let (conn, _notifications) = support::connect(&server).await?;
    let ovs = vswitch::schema();

    // br-int with one pod port, as the node agent plugs it.
    let iface = vswitch::Interface {
        name: "veth1a2b3c".into(),
        external_ids: BTreeMap::from([
            ("iface-id".to_string(), "web-0.default".to_string()),
            ("rovn.io/vendor".to_string(), "rovn".to_string()),
        ]),
        ..Default::default()
    };
    let mut port_row = vswitch::Port {
        name: "veth1a2b3c".into(),
        ..Default::default()
    }
    .to_row();
    port_row.insert(vswitch::Port::INTERFACES.into(), Datum::named_uuid("iface"));
    let mut bridge_row = vswitch::Bridge {
        name: "br-int".into(),
        ..Default::default()
    }
    .to_row();
    bridge_row.insert(vswitch::Bridge::PORTS.into(), Datum::named_uuid("port"));
    let mut ovs_row = vswitch::OpenVSwitch::default().to_row();
    ovs_row.insert(
        vswitch::OpenVSwitch::BRIDGES.into(),
        Datum::named_uuid("bridge"),
    );
    conn.transact(
        vswitch::DATABASE,
        &[
            model::insert(&iface).with_uuid_name("iface"),
            Operation::insert(vswitch::Port::TABLE, port_row).with_uuid_name("port"),
            Operation::insert(vswitch::Bridge::TABLE, bridge_row).with_uuid_name("bridge"),
            Operation::insert(vswitch::OpenVSwitch::TABLE, ovs_row),
        ],
    )
    .await
    .context("plugging the port")?;
    let current: vswitch::Interface = one(select_all(&conn, &ovs).await?, "interface")?;

    // ovn-controller marks the port installed while the agent holds its stale copy.
    let installed = rovn_ovsdb::Mutation::insert(
        vswitch::Interface::EXTERNAL_IDS,
        Datum::map([("ovn-installed", "true")]),
    );
    conn.transact(
        vswitch::DATABASE,
        &[Operation::mutate(
            vswitch::Interface::TABLE,
            vec![Condition::uuid(current.uuid)],
            vec![installed],
        )],
    )
    .await?;

    let mut desired = current.clone();
    desired
        .external_ids
        .insert("iface-id".into(), "web-1.default".into());
    desired
        .external_ids
        .insert("rovn.io/owner".into(), "Pod/default/web-1".into());
    desired.mtu_request = Some(1400);
    let ops = model::update_elements(&current, &desired);
    ensure!(
        matches!(
            ops.as_slice(),
            [Operation::Update { .. }, Operation::Mutate { .. }]
        ),
        "expected an update of mtu_request and a mutate of external_ids: {ops:?}"
    );
    conn.transact(vswitch::DATABASE, &ops).await?;
    let after: vswitch::Interface = one(select_all(&conn, &ovs).await?, "interface")?;
    let mut expected = desired.clone();
    expected
        .external_ids
        .insert("ovn-installed".into(), "true".into());
    ensure!(after == expected, "element changes lost a key: {after:?}");
    ensure!(model::update_elements(&after, &after.clone()).is_empty());

    // Replacing the whole map, as `diff` does, would have dropped ovn-installed.
    let mut replaced = after.clone();
    replaced.external_ids.remove("ovn-installed");
    let Some(update) = model::update(&after, &replaced) else {
        anyhow::bail!("no update for a changed map");
    };
    conn.transact(vswitch::DATABASE, &[update]).await?;
    let last: vswitch::Interface = one(select_all(&conn, &ovs).await?, "interface")?;
    ensure!(!last.external_ids.contains_key("ovn-installed"));
    conn.close();
    Ok(())
}
