//! Random pairs of row states: the operations `diff`/`changes` produce turn the first into the
//! second, checked against a model of OVSDB's `update`/`mutate` semantics and against a real
//! ovsdb-server.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, anyhow, ensure};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rovn_ovsdb::model::{self, Model};
use rovn_ovsdb::operation::Mutator;
use rovn_ovsdb::{Condition, Connection, Datum, Operation, OperationResult, Row};
use rovn_ovsdb_schemas::nb::{self, LogicalSwitch, LogicalSwitchPort};
use rovn_testkit::OvsdbServer;

fn strings(pool: &'static [&'static str]) -> impl Strategy<Value = BTreeSet<String>> {
    proptest::collection::btree_set(proptest::sample::select(pool).prop_map(String::from), 0..4)
}

fn string_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map(
        proptest::sample::select(&["rovn.io/vendor", "rovn.io/owner", "iface-id", "k"][..])
            .prop_map(String::from),
        proptest::sample::select(&["a", "b", "rovn"][..]).prop_map(String::from),
        0..4,
    )
}

/// A port whose every field varies over a small domain, so pairs share and differ in parts.
fn port() -> impl Strategy<Value = LogicalSwitchPort> {
    (
        strings(&[
            "0a:58:0a:10:00:05 10.16.0.5",
            "dynamic",
            "router",
            "unknown",
        ]),
        string_map(),
        string_map(),
        proptest::option::of(0i64..4096),
        proptest::option::of(any::<bool>()),
        proptest::sample::select(&["", "router", "localnet"][..]),
    )
        .prop_map(
            |(addresses, external_ids, options, tag_request, enabled, type_)| LogicalSwitchPort {
                name: "p.ns".into(),
                addresses,
                external_ids,
                options,
                tag_request,
                enabled,
                type_: type_.into(),
                ..Default::default()
            },
        )
}

/// OVSDB's semantics for the operations on one row, as RFC 7047 §5.1 defines them.
fn apply(row: &mut Row, ops: &[Operation]) -> Result<(), String> {
    for op in ops {
        match op {
            Operation::Update { row: columns, .. } => row.extend(columns.clone()),
            Operation::Mutate { mutations, .. } => {
                for m in mutations {
                    let datum = row
                        .get_mut(&m.column)
                        .ok_or_else(|| format!("no column {}", m.column))?;
                    match (datum, m.mutator, &m.value) {
                        (Datum::Set(set), Mutator::Insert, Datum::Set(v)) => set.extend(v.clone()),
                        (Datum::Set(set), Mutator::Delete, Datum::Set(v)) => {
                            set.retain(|a| !v.contains(a))
                        }
                        (Datum::Map(map), Mutator::Insert, Datum::Map(v)) => {
                            for (k, val) in v {
                                map.entry(k.clone()).or_insert_with(|| val.clone());
                            }
                        }
                        (Datum::Map(map), Mutator::Delete, Datum::Set(keys)) => {
                            map.retain(|k, _| !keys.contains(k))
                        }
                        other => return Err(format!("unexpected mutation {other:?}")),
                    }
                }
            }
            other => return Err(format!("unexpected operation {other:?}")),
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn changes_and_diff_turn_current_into_desired(current in port(), desired in port()) {
        let mut by_elements = current.to_row();
        apply(&mut by_elements, &model::update_elements(&current, &desired))
            .map_err(TestCaseError::fail)?;
        prop_assert_eq!(&by_elements, &desired.to_row());

        let mut by_columns = current.to_row();
        let update: Vec<Operation> = model::update(&current, &desired).into_iter().collect();
        apply(&mut by_columns, &update).map_err(TestCaseError::fail)?;
        prop_assert_eq!(&by_columns, &desired.to_row());

        prop_assert_eq!(current == desired, current.changes(&desired).is_empty());
        prop_assert_eq!(current == desired, current.diff(&desired).is_empty());
    }
}

/// Inserts `port` on a fresh switch and returns it as stored.
async fn insert_port(conn: &Connection, port: &LogicalSwitchPort) -> Result<LogicalSwitchPort> {
    let mut switch = LogicalSwitch {
        name: "ls".into(),
        ..Default::default()
    }
    .to_row();
    switch.insert(LogicalSwitch::PORTS.into(), Datum::named_uuid("p"));
    let results = conn
        .transact(
            nb::DATABASE,
            &[
                model::insert(port).with_uuid_name("p"),
                Operation::insert(LogicalSwitch::TABLE, switch),
            ],
        )
        .await?;
    let uuid = results
        .first()
        .and_then(OperationResult::uuid)
        .ok_or_else(|| anyhow!("no uuid for the inserted port: {results:?}"))?;
    read_port(conn, uuid).await
}

async fn read_port(conn: &Connection, uuid: rovn_ovsdb::Uuid) -> Result<LogicalSwitchPort> {
    let schema = nb::schema();
    let table = schema
        .table(LogicalSwitchPort::TABLE)
        .ok_or_else(|| anyhow!("no Logical_Switch_Port table"))?;
    let results = conn
        .transact(
            nb::DATABASE,
            &[Operation::select(
                LogicalSwitchPort::TABLE,
                vec![Condition::uuid(uuid)],
            )],
        )
        .await?;
    let rows = results
        .first()
        .ok_or_else(|| anyhow!("select returned nothing"))?
        .rows_decoded(table)?;
    let mut ports: Vec<LogicalSwitchPort> = model::from_rows(&rows)?;
    ensure!(ports.len() == 1, "port {uuid} found {} times", ports.len());
    ports.pop().ok_or_else(|| anyhow!("no port"))
}

async fn server_case(
    conn: &Connection,
    current: &LogicalSwitchPort,
    desired: &LogicalSwitchPort,
) -> Result<()> {
    // Cleared first, not last: a failed case (and proptest's shrinking reruns) starts clean.
    conn.transact(
        nb::DATABASE,
        &[Operation::delete(LogicalSwitch::TABLE, vec![])],
    )
    .await?;
    let stored = insert_port(conn, current).await?;
    let ops = model::update_elements(
        &stored,
        &LogicalSwitchPort {
            uuid: stored.uuid,
            ..desired.clone()
        },
    );
    if !ops.is_empty() {
        conn.transact(nb::DATABASE, &ops)
            .await
            .with_context(|| format!("applying {ops:?}"))?;
    }
    let after = read_port(conn, stored.uuid).await?;
    ensure!(
        after
            == LogicalSwitchPort {
                uuid: stored.uuid,
                ..desired.clone()
            },
        "ovsdb-server made {after:?} of {ops:?}"
    );
    Ok(())
}

#[test]
fn element_changes_apply_on_a_real_server() -> Result<()> {
    let server = OvsdbServer::nb()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let (conn, _notifications) = runtime.block_on(support::connect(&server))?;
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(port(), port()), |(current, desired)| {
            runtime
                .block_on(server_case(&conn, &current, &desired))
                .map_err(|e| TestCaseError::fail(format!("{e:#}")))
        })
        .map_err(|e| anyhow!("{e}"))?;
    conn.close();
    Ok(())
}
