//! Every operation kind against a real OVN Northbound ovsdb-server, including the errors the
//! server reports and the reference semantics (weak references, garbage collection) it applies.

mod support;

use anyhow::{Context, Result, bail};
use rovn_ovsdb::connection::Connection;
use rovn_ovsdb::error::Error;
use rovn_ovsdb::operation::{
    Condition, Function, Mutation, Mutator, Operation, OperationResult, WaitUntil,
};
use rovn_ovsdb::{DatabaseSchema, Datum, Row, Uuid};
use support::{ServerExt, TestServer};

const NB: &str = "OVN_Northbound";

fn row<const N: usize>(cols: [(&str, Datum); N]) -> Row {
    cols.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn by_name(name: &str) -> Vec<Condition> {
    vec![Condition::eq("name", Datum::atom(name))]
}

async fn select_one(
    conn: &Connection,
    schema: &DatabaseSchema,
    table: &str,
    conditions: Vec<Condition>,
) -> Result<Option<(Option<Uuid>, Row)>> {
    let results = conn
        .transact(NB, &[Operation::select(table, conditions)])
        .await?;
    let table_schema = schema.table(table).context("table not in schema")?;
    let mut rows = results
        .first()
        .context("no result")?
        .rows_decoded(table_schema)?;
    if rows.len() > 1 {
        bail!("{} rows in {table}", rows.len());
    }
    Ok(rows.pop())
}

async fn count_rows(conn: &Connection, table: &str) -> Result<usize> {
    let results = conn
        .transact(
            NB,
            &[Operation::select(table, vec![]).with_columns(["_uuid"])],
        )
        .await?;
    match results.first() {
        Some(OperationResult::Rows(rows)) => Ok(rows.len()),
        other => bail!("select gave {other:?}"),
    }
}

/// Unwraps a transaction error into (index, error, details, op).
fn txn_error(
    result: Result<Vec<OperationResult>, Error>,
) -> Result<(usize, String, Option<String>, String)> {
    match result {
        Err(Error::Transaction {
            index,
            error,
            details,
            op,
        }) => Ok((index, error, details, op)),
        other => bail!("expected a transaction error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_select_update_mutate_delete_round_trip() -> Result<()> {
    let server = TestServer::nb()?;
    let (conn, _updates) = server.connect().await?;
    let schema = conn.get_schema(NB).await?;

    let results = conn
        .transact(
            NB,
            &[
                Operation::insert(
                    "Logical_Switch_Port",
                    row([
                        ("name", Datum::atom("p1")),
                        ("addresses", Datum::set(["0a:58:0a:10:00:05 10.16.0.5"])),
                        ("external_ids", Datum::map([("pod", "ns/p1")])),
                    ]),
                )
                .with_uuid_name("p1"),
                Operation::insert(
                    "Logical_Switch",
                    row([
                        ("name", Datum::atom("sw0")),
                        ("ports", Datum::named_uuid("p1")),
                    ]),
                )
                .with_uuid_name("sw"),
                Operation::Comment("rovn round trip test".into()),
                Operation::Commit { durable: false },
            ],
        )
        .await?;
    assert_eq!(results.len(), 4);
    let lsp_uuid = results[0].uuid().context("insert gave no uuid")?;
    let ls_uuid = results[1].uuid().context("insert gave no uuid")?;
    assert_eq!(results[2], OperationResult::Empty);

    let (uuid, sw) = select_one(&conn, &schema, "Logical_Switch", by_name("sw0"))
        .await?
        .context("switch not found")?;
    assert_eq!(uuid, Some(ls_uuid));
    assert_eq!(sw["ports"], Datum::set([lsp_uuid]));
    assert!(sw.contains_key("_version"));

    let updated = conn
        .transact(
            NB,
            &[Operation::update(
                "Logical_Switch_Port",
                vec![Condition::uuid(lsp_uuid)],
                row([("enabled", Datum::atom(false))]),
            )],
        )
        .await?;
    assert_eq!(updated[0].count(), Some(1));

    let mutated = conn
        .transact(
            NB,
            &[Operation::mutate(
                "Logical_Switch_Port",
                by_name("p1"),
                vec![
                    Mutation::insert("external_ids", Datum::map([("owner", "Pod/ns/p1")])),
                    Mutation::delete("external_ids", Datum::set(["pod"])),
                    Mutation::new("tag_request", Mutator::Insert, Datum::atom(7)),
                ],
            )],
        )
        .await?;
    assert_eq!(mutated[0].count(), Some(1));
    let (_, lsp) = select_one(&conn, &schema, "Logical_Switch_Port", by_name("p1"))
        .await?
        .context("port not found")?;
    assert_eq!(lsp["enabled"], Datum::atom(false));
    assert_eq!(lsp["external_ids"], Datum::map([("owner", "Pod/ns/p1")]));
    assert_eq!(lsp["tag_request"], Datum::atom(7));

    // includes / excludes and a non-matching condition.
    let includes = conn
        .transact(
            NB,
            &[
                Operation::select(
                    "Logical_Switch",
                    vec![Condition::includes("ports", Datum::set([lsp_uuid]))],
                ),
                Operation::select(
                    "Logical_Switch",
                    vec![Condition::new("name", Function::Ne, Datum::atom("sw0"))],
                ),
            ],
        )
        .await?;
    assert!(matches!(&includes[0], OperationResult::Rows(r) if r.len() == 1));
    assert!(matches!(&includes[1], OperationResult::Rows(r) if r.is_empty()));

    let deleted = conn
        .transact(NB, &[Operation::delete("Logical_Switch", by_name("sw0"))])
        .await?;
    assert_eq!(deleted[0].count(), Some(1));
    assert_eq!(count_rows(&conn, "Logical_Switch").await?, 0);
    // The port was only referenced by the switch: the server collected it.
    assert_eq!(count_rows(&conn, "Logical_Switch_Port").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraint_violation_reports_the_operation() -> Result<()> {
    let server = TestServer::nb()?;
    let (conn, _updates) = server.connect().await?;
    let result = conn
        .transact(
            NB,
            &[
                Operation::Comment("first".into()),
                Operation::insert(
                    "Logical_Switch_Port",
                    row([
                        ("name", Datum::atom("bad")),
                        ("tag_request", Datum::atom(5000)),
                    ]),
                ),
            ],
        )
        .await;
    let (index, error, details, op) = txn_error(result)?;
    assert_eq!(index, 1);
    assert_eq!(op, "insert Logical_Switch_Port");
    assert_eq!(error, "constraint violation");
    assert!(details.is_some_and(|d| d.contains("5000")), "no details");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_index_is_a_commit_error_after_the_op_results() -> Result<()> {
    let server = TestServer::nb()?;
    let (conn, _updates) = server.connect().await?;
    let ops = [
        Operation::insert("Address_Set", row([("name", Datum::atom("dup"))])),
        Operation::insert("Address_Set", row([("name", Datum::atom("dup"))])),
    ];
    let (index, error, details, op) = txn_error(conn.transact(NB, &ops).await)?;
    assert_eq!(index, 2, "the commit error follows the two op results");
    assert_eq!(op, "commit");
    assert_eq!(error, "constraint violation");
    let details = details.unwrap_or_default();
    assert!(
        details.contains("Address_Set") && details.contains("dup"),
        "{details}"
    );
    assert_eq!(count_rows(&conn, "Address_Set").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangling_strong_reference_is_a_referential_integrity_error() -> Result<()> {
    let server = TestServer::nb()?;
    let (conn, _updates) = server.connect().await?;
    let ops = [Operation::insert(
        "Logical_Switch",
        row([
            ("name", Datum::atom("sw")),
            ("ports", Datum::set([Uuid::new_v4()])),
        ]),
    )];
    let (index, error, _details, op) = txn_error(conn.transact(NB, &ops).await)?;
    assert_eq!((index, op.as_str()), (1, "commit"));
    assert_eq!(error, "referential integrity violation");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_times_out_and_succeeds_when_true() -> Result<()> {
    let server = TestServer::nb()?;
    let (conn, _updates) = server.connect().await?;
    conn.transact(
        NB,
        &[Operation::insert(
            "Logical_Switch",
            row([("name", Datum::atom("w"))]),
        )],
    )
    .await?;
    let wait = |until, timeout_ms| {
        Operation::wait(
            "Logical_Switch",
            by_name("w"),
            vec!["name".into()],
            until,
            vec![row([("name", Datum::atom("w"))])],
            Some(timeout_ms),
        )
    };
    conn.transact(NB, &[wait(WaitUntil::Equal, 0)]).await?;
    let started = std::time::Instant::now();
    let (index, error, _details, op) =
        txn_error(conn.transact(NB, &[wait(WaitUntil::NotEqual, 200)]).await)?;
    assert_eq!(
        (index, op.as_str(), error.as_str()),
        (0, "wait Logical_Switch", "timed out")
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_and_assert_without_the_lock_fail_with_their_index() -> Result<()> {
    let server = TestServer::nb()?;
    let (conn, _updates) = server.connect().await?;
    let ops = [
        Operation::insert("Logical_Switch", row([("name", Datum::atom("never"))])),
        Operation::Abort,
    ];
    let (index, error, _, op) = txn_error(conn.transact(NB, &ops).await)?;
    assert_eq!(
        (index, error.as_str(), op.as_str()),
        (1, "aborted", "abort")
    );
    assert_eq!(count_rows(&conn, "Logical_Switch").await?, 0);

    let ops = [Operation::Assert {
        lock: "rovn_test_lock".into(),
    }];
    let (index, error, _, op) = txn_error(conn.transact(NB, &ops).await)?;
    assert_eq!(index, 0);
    assert_eq!(error, "not owner");
    assert_eq!(op, "assert lock rovn_test_lock");

    // With the lock held, the same assert passes.
    let locked = conn
        .call("lock", serde_json::json!(["rovn_test_lock"]))
        .await?;
    assert_eq!(locked["locked"], serde_json::json!(true), "{locked}");
    conn.transact(NB, &ops).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_references_drop_and_unreferenced_rows_are_collected() -> Result<()> {
    let server = TestServer::nb()?;
    let (conn, _updates) = server.connect().await?;
    let schema = conn.get_schema(NB).await?;
    let results = conn
        .transact(
            NB,
            &[
                Operation::insert("Logical_Switch_Port", row([("name", Datum::atom("a"))]))
                    .with_uuid_name("a"),
                Operation::insert("Logical_Switch_Port", row([("name", Datum::atom("b"))]))
                    .with_uuid_name("b"),
                Operation::insert(
                    "Load_Balancer",
                    row([
                        ("name", Datum::atom("lb")),
                        ("protocol", Datum::atom("tcp")),
                    ]),
                )
                .with_uuid_name("lb"),
                Operation::insert(
                    "Logical_Switch",
                    row([
                        ("name", Datum::atom("sw")),
                        (
                            "ports",
                            Datum::set([
                                rovn_ovsdb::Atom::NamedUuid("a".into()),
                                rovn_ovsdb::Atom::NamedUuid("b".into()),
                            ]),
                        ),
                        ("load_balancer", Datum::named_uuid("lb")),
                    ]),
                ),
                Operation::insert(
                    "Port_Group",
                    row([
                        ("name", Datum::atom("pg")),
                        (
                            "ports",
                            Datum::set([
                                rovn_ovsdb::Atom::NamedUuid("a".into()),
                                rovn_ovsdb::Atom::NamedUuid("b".into()),
                            ]),
                        ),
                    ]),
                ),
                // Not referenced by anything: a non-root row is collected at commit.
                Operation::insert(
                    "ACL",
                    row([
                        ("priority", Datum::atom(1000)),
                        ("direction", Datum::atom("to-lport")),
                        ("match", Datum::atom("ip4")),
                        ("action", Datum::atom("allow")),
                    ]),
                ),
            ],
        )
        .await?;
    let a = results[0].uuid().context("no uuid for a")?;
    let b = results[1].uuid().context("no uuid for b")?;
    assert!(results[5].uuid().is_some());
    assert_eq!(count_rows(&conn, "ACL").await?, 0, "orphan ACL was kept");

    // Removing port a from the switch leaves it unreferenced by any strong reference: the
    // server deletes it, and the Port_Group's weak reference to it disappears.
    conn.transact(
        NB,
        &[Operation::mutate(
            "Logical_Switch",
            by_name("sw"),
            vec![Mutation::delete("ports", Datum::set([a]))],
        )],
    )
    .await?;
    let (_, pg) = select_one(&conn, &schema, "Port_Group", by_name("pg"))
        .await?
        .context("port group gone")?;
    assert_eq!(pg["ports"], Datum::set([b]));
    assert!(
        select_one(&conn, &schema, "Logical_Switch_Port", by_name("a"))
            .await?
            .is_none(),
        "port a was not garbage-collected"
    );

    // Deleting a root row that is only weakly referenced works and clears the reference.
    conn.transact(NB, &[Operation::delete("Load_Balancer", by_name("lb"))])
        .await?;
    let (_, sw) = select_one(&conn, &schema, "Logical_Switch", by_name("sw"))
        .await?
        .context("switch gone")?;
    assert!(sw["load_balancer"].is_empty(), "{}", sw["load_balancer"]);
    assert_eq!(sw["ports"], Datum::set([b]));
    Ok(())
}
