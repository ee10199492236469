//! Reading NB and SB: one synced `rovn-ovsdb` replica of the tables that matter, taken as a
//! snapshot, and single `select`s for rows too many to replicate (logical flows, when a
//! dropped packet names one).
//!
//! Chosen over `ovn-nbctl --format=json`: the client is the one the controller writes NB with,
//! its typed models (`rovn-ovsdb-schemas`) parse rows the way rovn wrote them, TLS is handled
//! in-process, and `rows`, `topology` and `diagnose` then need no OVN tool installed; only the
//! passthrough and `trace` run OVN's programs.

use std::collections::BTreeMap;
use std::time::Duration;

use rovn_ovsdb::model::Model;
use rovn_ovsdb::{
    Client, ClientConfig, Condition, Datum, Operation, Remote, Row, TableMonitor, Uuid,
};
use rovn_ovsdb_schemas::{nb, sb};

use crate::remotes::Tls;
use crate::snapshot::{NbSnapshot, SbSnapshot};

/// Every NB table rovn writes (the controller's `tables::specs`), in parent-first order.
pub const ROVN_NB_TABLES: &[&str] = &[
    "Logical_Router",
    "Logical_Router_Port",
    "Logical_Router_Policy",
    "Logical_Router_Static_Route",
    "NAT",
    "Logical_Switch",
    "Logical_Switch_Port",
    "Load_Balancer",
    "Load_Balancer_Group",
    "Port_Group",
    "Address_Set",
    "ACL",
    "Meter",
    "Meter_Band",
];

/// Reading NB or SB failed.
#[derive(Debug, thiserror::Error)]
pub enum OvnIoError {
    /// The client could not be started or did not sync.
    #[error("{database} at {remote}: {source}")]
    Client {
        /// The database.
        database: String,
        /// The remote.
        remote: String,
        /// The client's error (boxed: it is large, and errors travel up every call).
        #[source]
        source: Box<rovn_ovsdb::Error>,
    },
    /// A transaction failed.
    #[error("{database} at {remote}: {what}: {detail}")]
    Transact {
        /// The database.
        database: String,
        /// The remote.
        remote: String,
        /// What was asked.
        what: String,
        /// The error.
        detail: String,
    },
    /// A row did not decode into its model.
    #[error("{database}: {source}")]
    Model {
        /// The database.
        database: String,
        /// The decoding error (boxed, as it is large).
        #[source]
        source: Box<rovn_ovsdb::ModelError>,
    },
}

/// A synced client of one database.
pub struct Db {
    client: Client,
    database: String,
    remote: String,
}

/// Every row of every monitored table, raw, by table and UUID.
pub type Contents = BTreeMap<String, BTreeMap<Uuid, Row>>;

impl Db {
    /// Connects to `database` at `remote`, monitoring `tables`, and waits for the first sync.
    pub async fn connect(
        database: &str,
        remote: &str,
        tls: Option<&Tls>,
        tables: Vec<TableMonitor>,
        timeout: Duration,
    ) -> Result<Db, OvnIoError> {
        let client_err = |source| OvnIoError::Client {
            database: database.to_string(),
            remote: remote.to_string(),
            source: Box::new(source),
        };
        let parsed: Remote = remote.parse().map_err(client_err)?;
        let mut config = ClientConfig::new(database, vec![parsed]);
        config.tables = tables;
        config.tls = tls.cloned();
        config.connect_timeout = timeout;
        let client = Client::start(config).map_err(client_err)?;
        client.wait_synced(timeout).await.map_err(client_err)?;
        Ok(Db {
            client,
            database: database.to_string(),
            remote: remote.to_string(),
        })
    }

    /// The replica's rows.
    pub fn contents(&self) -> Contents {
        self.client.read(|r| r.contents()).unwrap_or_default()
    }

    /// Rows of `table` matching `conditions`, read with one `select`.
    pub async fn select(
        &self,
        table: &str,
        conditions: Vec<Condition>,
    ) -> Result<Vec<(Uuid, Row)>, OvnIoError> {
        let what = format!("select {table}");
        let transact_err = |detail: String| OvnIoError::Transact {
            database: self.database.clone(),
            remote: self.remote.clone(),
            what: what.clone(),
            detail,
        };
        let results = self
            .client
            .transact(&[Operation::select(table, conditions)])
            .await
            .map_err(|e| transact_err(e.to_string()))?;
        let schema = self
            .client
            .read(|r| r.schema().table(table).cloned())
            .flatten()
            .ok_or_else(|| transact_err("no such table in the schema".into()))?;
        let first = results
            .first()
            .ok_or_else(|| transact_err("no result".into()))?;
        let rows = first
            .rows_decoded(&schema)
            .map_err(|e| transact_err(e.to_string()))?;
        Ok(rows
            .into_iter()
            .filter_map(|(uuid, row)| Some((uuid?, row)))
            .collect())
    }
}

fn typed<M: Model>(contents: &Contents, database: &str) -> Result<Vec<M>, OvnIoError> {
    contents
        .get(M::TABLE)
        .map(|rows| {
            rows.iter()
                .map(|(uuid, row)| M::from_row(*uuid, row))
                .collect::<Result<Vec<M>, _>>()
        })
        .transpose()
        .map_err(|source| OvnIoError::Model {
            database: database.to_string(),
            source: Box::new(source),
        })
        .map(Option::unwrap_or_default)
}

/// Connects to NB, monitoring every table rovn writes.
pub async fn connect_nb(
    remote: &str,
    tls: Option<&Tls>,
    timeout: Duration,
) -> Result<Db, OvnIoError> {
    let tables = ROVN_NB_TABLES
        .iter()
        .map(|t| TableMonitor::all(*t))
        .collect();
    Db::connect(nb::DATABASE, remote, tls, tables, timeout).await
}

/// The typed NB snapshot out of a replica's rows.
pub fn nb_snapshot(contents: &Contents) -> Result<NbSnapshot, OvnIoError> {
    let db = nb::DATABASE;
    Ok(NbSnapshot {
        switches: typed(contents, db)?,
        ports: typed::<nb::LogicalSwitchPort>(contents, db)?
            .into_iter()
            .map(|p| (p.uuid, p))
            .collect(),
        routers: typed(contents, db)?,
        router_ports: typed(contents, db)?,
        load_balancers: typed(contents, db)?,
        acls: typed(contents, db)?,
    })
}

/// Connects to SB, monitoring the chassis and the port bindings (only the columns read).
pub async fn connect_sb(
    remote: &str,
    tls: Option<&Tls>,
    timeout: Duration,
) -> Result<Db, OvnIoError> {
    let tables = vec![
        TableMonitor::all(sb::Chassis::TABLE)
            .with_columns([sb::Chassis::NAME, sb::Chassis::HOSTNAME]),
        TableMonitor::all(sb::PortBinding::TABLE).with_columns([
            sb::PortBinding::LOGICAL_PORT,
            sb::PortBinding::CHASSIS,
            sb::PortBinding::UP,
            sb::PortBinding::TYPE,
        ]),
    ];
    Db::connect(sb::DATABASE, remote, tls, tables, timeout).await
}

/// The typed SB snapshot out of a replica's rows.
pub fn sb_snapshot(contents: &Contents) -> Result<SbSnapshot, OvnIoError> {
    let db = sb::DATABASE;
    Ok(SbSnapshot {
        chassis: typed(contents, db)?,
        bindings: typed(contents, db)?,
    })
}

/// The `stage-hint` of the SB logical flow a trace printed (stage, priority, match and the
/// UUID's first 8 hex digits): northd puts the first 8 hex digits of the NB row (an ACL) the
/// flow was made from there.
pub async fn stage_hint(
    sb_db: &Db,
    stage: &str,
    priority: u32,
    match_: &str,
    uuid_prefix: &str,
) -> Result<Option<String>, OvnIoError> {
    let rows = sb_db
        .select(
            sb::LogicalFlow::TABLE,
            vec![
                Condition::eq(sb::LogicalFlow::PRIORITY, Datum::atom(i64::from(priority))),
                Condition::eq(sb::LogicalFlow::MATCH, Datum::atom(match_)),
                Condition::includes(
                    sb::LogicalFlow::EXTERNAL_IDS,
                    Datum::map([("stage-name", stage)]),
                ),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .filter(|(uuid, _)| uuid.to_string().starts_with(uuid_prefix))
        .find_map(|(_, row)| {
            row.get(sb::LogicalFlow::EXTERNAL_IDS)
                .and_then(Datum::as_map)
                .and_then(|m| m.get(&rovn_ovsdb::Atom::String("stage-hint".into())))
                .and_then(|a| a.as_str())
                .map(str::to_string)
        }))
}
