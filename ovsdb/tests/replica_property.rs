//! Property: whatever sequence of inserts, updates, mutations and deletes goes through the
//! client, its replica equals what the server holds afterwards (every column of every row,
//! read back with a fresh `select`). Runs against a real ovsdb-server on the NB schema, on
//! tables with scalar, optional, set, map and reference columns.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, anyhow};
use proptest::prelude::*;
use rovn_ovsdb::client::{Client, ClientConfig, TransactError};
use rovn_ovsdb::monitor::TableMonitor;
use rovn_ovsdb::operation::{Condition, Mutation, Operation};
use rovn_ovsdb::replica::IndexSpec;
use rovn_ovsdb::{Atom, Datum, Row, Uuid};
use support::{ServerExt, TestServer};

const NB: &str = "OVN_Northbound";
const TABLES: [&str; 3] = ["Logical_Switch", "Logical_Switch_Port", "Address_Set"];

/// One client action, with rows named from small pools so actions collide often.
#[derive(Debug, Clone)]
enum Action {
    AddSwitch(u8),
    AddPort {
        switch: u8,
        port: u8,
        addresses: Vec<u8>,
        tag: Option<u16>,
        owner: Option<u8>,
    },
    SetPort {
        port: u8,
        tag: Option<u16>,
        enabled: Option<bool>,
        external_ids: Vec<(u8, u8)>,
    },
    MutatePortIds {
        port: u8,
        insert: Vec<(u8, u8)>,
        delete_keys: Vec<u8>,
    },
    MutatePortAddresses {
        port: u8,
        insert: Vec<u8>,
        delete: Vec<u8>,
    },
    RemovePort(u8),
    DeleteSwitch(u8),
    AddAddressSet(u8, Vec<u8>),
    SetAddressSet(u8, Vec<u8>),
    DeleteAddressSet(u8),
}

fn pairs() -> impl Strategy<Value = Vec<(u8, u8)>> {
    prop::collection::vec((0u8..4, 0u8..3), 0..4)
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (0u8..3).prop_map(Action::AddSwitch),
        (
            0u8..3,
            0u8..6,
            prop::collection::vec(0u8..5, 0..3),
            prop::option::of(0u16..4096),
            prop::option::of(0u8..3)
        )
            .prop_map(|(switch, port, addresses, tag, owner)| Action::AddPort {
                switch,
                port,
                addresses,
                tag,
                owner
            }),
        (
            0u8..6,
            prop::option::of(0u16..4096),
            prop::option::of(any::<bool>()),
            pairs()
        )
            .prop_map(|(port, tag, enabled, external_ids)| Action::SetPort {
                port,
                tag,
                enabled,
                external_ids
            }),
        (0u8..6, pairs(), prop::collection::vec(0u8..4, 0..3)).prop_map(
            |(port, insert, delete_keys)| Action::MutatePortIds {
                port,
                insert,
                delete_keys
            }
        ),
        (
            0u8..6,
            prop::collection::vec(0u8..5, 0..3),
            prop::collection::vec(0u8..5, 0..3)
        )
            .prop_map(|(port, insert, delete)| Action::MutatePortAddresses {
                port,
                insert,
                delete
            }),
        (0u8..6).prop_map(Action::RemovePort),
        (0u8..3).prop_map(Action::DeleteSwitch),
        (0u8..3, prop::collection::vec(0u8..8, 0..4))
            .prop_map(|(n, a)| Action::AddAddressSet(n, a)),
        (0u8..3, prop::collection::vec(0u8..8, 0..4))
            .prop_map(|(n, a)| Action::SetAddressSet(n, a)),
        (0u8..3).prop_map(Action::DeleteAddressSet),
    ]
}

fn name_is(kind: &str, n: u8) -> Vec<Condition> {
    vec![Condition::eq("name", Datum::atom(format!("{kind}{n}")))]
}

fn ids(pairs: &[(u8, u8)]) -> Datum {
    Datum::map(
        pairs
            .iter()
            .map(|(k, v)| (format!("k{k}"), format!("v{v}"))),
    )
}

fn addrs(list: &[u8]) -> Datum {
    Datum::set(
        list.iter()
            .map(|a| format!("0a:00:00:00:00:0{a} 10.0.0.{a}")),
    )
}

fn ips(list: &[u8]) -> Datum {
    Datum::set(list.iter().map(|a| format!("192.0.2.{a}")))
}

/// The operations for an action, given what the replica holds (for UUIDs).
fn operations(client: &Client, action: &Action) -> Vec<Operation> {
    match action {
        Action::AddSwitch(n) => vec![Operation::insert(
            "Logical_Switch",
            Row::from([("name".to_string(), Datum::atom(format!("ls{n}")))]),
        )],
        Action::AddPort {
            switch,
            port,
            addresses,
            tag,
            owner,
        } => {
            let mut row = Row::from([
                ("name".to_string(), Datum::atom(format!("lsp{port}"))),
                ("addresses".to_string(), addrs(addresses)),
            ]);
            if let Some(t) = tag {
                row.insert("tag".into(), Datum::atom(i64::from(*t)));
            }
            if let Some(o) = owner {
                row.insert(
                    "external_ids".into(),
                    Datum::map([("rovn.io/owner", format!("Pod/default/p{o}"))]),
                );
            }
            vec![
                Operation::insert("Logical_Switch_Port", row).with_uuid_name("p"),
                Operation::mutate(
                    "Logical_Switch",
                    name_is("ls", *switch),
                    vec![Mutation::insert("ports", Datum::named_uuid("p"))],
                ),
            ]
        }
        Action::SetPort {
            port,
            tag,
            enabled,
            external_ids,
        } => {
            let row = Row::from([
                (
                    "tag".to_string(),
                    Datum::set(tag.iter().map(|t| i64::from(*t))),
                ),
                ("enabled".to_string(), Datum::set(enabled.iter().copied())),
                ("external_ids".to_string(), ids(external_ids)),
            ]);
            vec![Operation::update(
                "Logical_Switch_Port",
                name_is("lsp", *port),
                row,
            )]
        }
        Action::MutatePortIds {
            port,
            insert,
            delete_keys,
        } => vec![Operation::mutate(
            "Logical_Switch_Port",
            name_is("lsp", *port),
            vec![
                Mutation::delete(
                    "external_ids",
                    Datum::set(delete_keys.iter().map(|k| format!("k{k}"))),
                ),
                Mutation::insert("external_ids", ids(insert)),
            ],
        )],
        Action::MutatePortAddresses {
            port,
            insert,
            delete,
        } => vec![Operation::mutate(
            "Logical_Switch_Port",
            name_is("lsp", *port),
            vec![
                Mutation::delete("addresses", addrs(delete)),
                Mutation::insert("addresses", addrs(insert)),
            ],
        )],
        Action::RemovePort(port) => {
            let uuid = client
                .read(|r| {
                    r.find_by_columns(
                        "Logical_Switch_Port",
                        &[("name", Datum::atom(format!("lsp{port}")))],
                    )
                    .first()
                    .map(|(u, _)| *u)
                })
                .flatten();
            match uuid {
                Some(u) => vec![Operation::mutate(
                    "Logical_Switch",
                    vec![],
                    vec![Mutation::delete("ports", Datum::atom(u))],
                )],
                None => vec![],
            }
        }
        Action::DeleteSwitch(n) => vec![Operation::delete("Logical_Switch", name_is("ls", *n))],
        Action::AddAddressSet(n, a) => vec![Operation::insert(
            "Address_Set",
            Row::from([
                ("name".to_string(), Datum::atom(format!("as{n}"))),
                ("addresses".to_string(), ips(a)),
            ]),
        )],
        Action::SetAddressSet(n, a) => vec![Operation::update(
            "Address_Set",
            name_is("as", *n),
            Row::from([("addresses".to_string(), ips(a))]),
        )],
        Action::DeleteAddressSet(n) => vec![Operation::delete("Address_Set", name_is("as", *n))],
    }
}

/// Every column of every row of the tested tables, as the server has them.
async fn server_contents(client: &Client) -> Result<BTreeMap<String, BTreeMap<Uuid, Row>>> {
    let schema = client
        .read(|r| r.schema().clone())
        .ok_or_else(|| anyhow!("no schema"))?;
    let ops: Vec<Operation> = TABLES
        .iter()
        .map(|t| {
            let cols: Vec<String> = schema
                .table(t)
                .map(|ts| ts.columns.keys().cloned().collect())
                .unwrap_or_default();
            Operation::select(*t, vec![]).with_columns(cols.into_iter().chain(["_uuid".into()]))
        })
        .collect();
    let results = client.transact(&ops).await?;
    let mut out = BTreeMap::new();
    for (t, res) in TABLES.iter().zip(results) {
        let ts = schema.table(t).ok_or_else(|| anyhow!("no table {t}"))?;
        let rows = res
            .rows_decoded(ts)?
            .into_iter()
            .map(|(u, r)| Ok((u.ok_or_else(|| anyhow!("no _uuid"))?, r)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        out.insert(t.to_string(), rows);
    }
    Ok(out)
}

async fn run_case(actions: Vec<Action>) -> Result<()> {
    let server = TestServer::nb()?;
    let mut config = ClientConfig::new(NB, vec![server.remote()]);
    config.tables = TABLES.iter().map(|t| TableMonitor::all(*t)).collect();
    let owner = IndexSpec::map_key("Logical_Switch_Port", "external_ids", "rovn.io/owner");
    config.indexes = vec![owner.clone(), IndexSpec::column("Logical_Switch", "ports")];
    let client = Client::start(config)?;
    client.wait_synced(Duration::from_secs(10)).await?;
    for action in &actions {
        let ops = operations(&client, action);
        if ops.is_empty() {
            continue;
        }
        match client.transact(&ops).await {
            Ok(_) | Err(TransactError::Rejected { .. }) => {}
            Err(e) => return Err(anyhow!("{action:?}: {e}")),
        }
    }
    let server_rows = server_contents(&client).await?;
    let replica_rows = client
        .read(|r| r.contents())
        .ok_or_else(|| anyhow!("no replica"))?;
    if server_rows != replica_rows {
        return Err(anyhow!(
            "replica differs from the server after {actions:?}\nserver:  {server_rows:?}\nreplica: {replica_rows:?}"
        ));
    }
    // The declared indexes agree with a scan of the replica.
    let consistent = client
        .read(|r| {
            let Some(ports) = r.table("Logical_Switch_Port") else {
                return false;
            };
            (0..3).all(|o| {
                let key = Atom::from(format!("Pod/default/p{o}"));
                let mut by_index: Vec<Uuid> = r
                    .find(&owner, &key)
                    .map(|v| v.into_iter().map(|(u, _)| u).collect())
                    .unwrap_or_default();
                let mut by_scan: Vec<Uuid> = ports
                    .iter()
                    .filter(|(_, row)| {
                        row.get("external_ids")
                            .and_then(Datum::as_map)
                            .and_then(|m| m.get(&Atom::from("rovn.io/owner")))
                            == Some(&key)
                    })
                    .map(|(u, _)| *u)
                    .collect();
                by_index.sort();
                by_scan.sort();
                by_index == by_scan
            })
        })
        .unwrap_or(false);
    if !consistent {
        return Err(anyhow!(
            "owner index disagrees with a scan after {actions:?}"
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn replica_equals_server_after_random_changes(actions in prop::collection::vec(action(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| TestCaseError::fail(format!("runtime: {e}")))?;
        rt.block_on(run_case(actions)).map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
    }
}

/// The row `name` of Logical_Switch_Port as the server has it, every column.
async fn server_port(client: &Client, name: &str) -> Result<Row> {
    let schema = client
        .read(|r| r.schema().clone())
        .ok_or_else(|| anyhow!("no schema"))?;
    let ts = schema
        .table("Logical_Switch_Port")
        .ok_or_else(|| anyhow!("no Logical_Switch_Port"))?;
    let res = client
        .transact(&[Operation::select(
            "Logical_Switch_Port",
            vec![Condition::eq("name", Datum::atom(name))],
        )
        .with_columns(ts.columns.keys().cloned())])
        .await?;
    let mut rows = res
        .first()
        .ok_or_else(|| anyhow!("empty select"))?
        .rows_decoded(ts)?;
    rows.pop()
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("no port {name}"))
}

/// Each kind of `update2` difference, one at a time, against the real server: map pairs
/// added, replaced and removed; set elements toggled; optional columns set and cleared;
/// scalars replaced. After each, the replica's row equals the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_difference_is_applied_like_the_server() -> Result<()> {
    let server = TestServer::nb()?;
    let mut config = ClientConfig::new(NB, vec![server.remote()]);
    config.tables = vec![
        TableMonitor::all("Logical_Switch"),
        TableMonitor::all("Logical_Switch_Port"),
    ];
    let client = Client::start(config)?;
    client.wait_synced(Duration::from_secs(10)).await?;
    let mut events = client.subscribe();
    client
        .transact(&[
            Operation::insert(
                "Logical_Switch_Port",
                Row::from([
                    ("name".to_string(), Datum::atom("p")),
                    ("addresses".to_string(), Datum::set(["a", "b"])),
                    (
                        "external_ids".to_string(),
                        Datum::map([("k1", "v1"), ("k2", "v2")]),
                    ),
                ]),
            )
            .with_uuid_name("p"),
            Operation::insert(
                "Logical_Switch",
                Row::from([
                    ("name".to_string(), Datum::atom("s")),
                    ("ports".to_string(), Datum::named_uuid("p")),
                ]),
            ),
        ])
        .await?;
    let steps: Vec<(&str, Datum)> = vec![
        (
            "external_ids",
            Datum::map([("k1", "v1"), ("k2", "changed"), ("k3", "new")]),
        ),
        ("external_ids", Datum::map([("k3", "new")])),
        ("external_ids", Datum::map(Vec::<(String, String)>::new())),
        ("addresses", Datum::set(["b", "c"])),
        ("addresses", Datum::set(Vec::<String>::new())),
        ("tag", Datum::atom(42i64)),
        ("tag", Datum::atom(7i64)),
        ("tag", Datum::set(Vec::<i64>::new())),
        ("enabled", Datum::atom(false)),
        ("type", Datum::atom("router")),
        ("options", Datum::map([("router-port", "lrp0")])),
    ];
    for (column, value) in steps {
        let before = client
            .read(|r| {
                r.find_by_columns("Logical_Switch_Port", &[("name", Datum::atom("p"))])
                    .pop()
            })
            .flatten()
            .ok_or_else(|| anyhow!("port missing from the replica"))?;
        client
            .transact(&[Operation::update(
                "Logical_Switch_Port",
                vec![Condition::eq("name", Datum::atom("p"))],
                Row::from([(column.to_string(), value.clone())]),
            )])
            .await?;
        let after = client
            .read(|r| r.get("Logical_Switch_Port", &before.0).cloned())
            .flatten()
            .ok_or_else(|| anyhow!("port missing from the replica"))?;
        let server_row = server_port(&client, "p").await?;
        if *after != server_row || after[column] != value {
            return Err(anyhow!(
                "after setting {column} to {value}: replica {after:?}, server {server_row:?}"
            ));
        }
        // The event carries the row before and after.
        loop {
            match events.try_recv() {
                Ok(rovn_ovsdb::client::Event::Change(rovn_ovsdb::replica::Change::Modify {
                    old,
                    new,
                    ..
                })) if new == after => {
                    if old != before.1 {
                        return Err(anyhow!("modify event for {column} has the wrong old row"));
                    }
                    break;
                }
                Ok(_) => continue,
                Err(e) => return Err(anyhow!("no modify event for {column}: {e}")),
            }
        }
    }
    Ok(())
}
