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
    Client, ClientConfig, Condition, Datum, Mutation, Mutator, Operation, Remote, Row,
    TableMonitor, Uuid,
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
        self.transact_then_select(&format!("select {table}"), Vec::new(), table, conditions)
            .await
    }

    /// Runs `before`, then a `select` of `table`, in one transaction, and returns the rows
    /// selected (so a write and what it left are read together).
    async fn transact_then_select(
        &self,
        what: &str,
        before: Vec<Operation>,
        table: &str,
        conditions: Vec<Condition>,
    ) -> Result<Vec<(Uuid, Row)>, OvnIoError> {
        let transact_err = |detail: String| OvnIoError::Transact {
            database: self.database.clone(),
            remote: self.remote.clone(),
            what: what.to_string(),
            detail,
        };
        let mut operations = before;
        operations.push(Operation::select(table, conditions));
        let selected = operations.len() - 1;
        let results = self
            .client
            .transact(&operations)
            .await
            .map_err(|e| transact_err(e.to_string()))?;
        let schema = self
            .client
            .read(|r| r.schema().table(table).cloned())
            .flatten()
            .ok_or_else(|| transact_err("no such table in the schema".into()))?;
        let first = results
            .get(selected)
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

/// The rows of `M`'s table in `contents`, typed.
pub(crate) fn typed<M: Model>(contents: &Contents, database: &str) -> Result<Vec<M>, OvnIoError> {
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

/// Asks every ovn-controller to report back, as `ovn-nbctl --wait=hv sync` does: adds 1 to
/// `NB_Global.nb_cfg` (the only write the plugin makes) and returns the new value. ovn-northd
/// copies it to `SB_Global.nb_cfg`, and each ovn-controller to its `Chassis_Private.nb_cfg`
/// once it has processed everything up to it.
pub async fn bump_nb_cfg(nb_db: &Db) -> Result<i64, OvnIoError> {
    let table = nb::NbGlobal::TABLE;
    let what = format!("{table}.nb_cfg += 1");
    let rows = nb_db
        .transact_then_select(
            &what,
            vec![
                Operation::mutate(
                    table,
                    Vec::new(),
                    vec![Mutation::new(
                        nb::NbGlobal::NB_CFG,
                        Mutator::Add,
                        Datum::atom(1i64),
                    )],
                ),
                Operation::Comment(
                    "kubectl rovn diagnose: nb_cfg += 1 to hear from every chassis".into(),
                ),
            ],
            table,
            Vec::new(),
        )
        .await?;
    rows.iter()
        .filter_map(|(_, row)| row.get(nb::NbGlobal::NB_CFG)?.as_atom()?.as_integer())
        .max()
        .ok_or_else(|| OvnIoError::Transact {
            database: nb_db.database.clone(),
            remote: nb_db.remote.clone(),
            what,
            detail: "NB has no NB_Global row (has ovn-northd or ovn-nbctl init ever run?)".into(),
        })
}

/// Waits, up to `timeout`, until SB's `SB_Global.nb_cfg` and every `Chassis_Private.nb_cfg`
/// reach `target`, on the replica's change events (no polling); returns the SB snapshot as it
/// stands then, caught up or not, for [`crate::liveness`] to judge.
pub async fn wait_nb_cfg(
    sb_db: &Db,
    target: i64,
    timeout: Duration,
) -> Result<SbSnapshot, OvnIoError> {
    let mut events = sb_db.client.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let snapshot = sb_snapshot(&sb_db.contents())?;
        if crate::liveness::caught_up(&snapshot, target) {
            return Ok(snapshot);
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            // Any change (or lag, or a resync) may be the one: look again.
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) | Err(_) => {
                return sb_snapshot(&sb_db.contents());
            }
        }
    }
}

/// Connects to SB, monitoring the chassis and the port bindings (only the columns read).
pub async fn connect_sb(
    remote: &str,
    tls: Option<&Tls>,
    timeout: Duration,
) -> Result<Db, OvnIoError> {
    let tables = vec![
        TableMonitor::all(sb::Chassis::TABLE).with_columns([
            sb::Chassis::NAME,
            sb::Chassis::HOSTNAME,
            sb::Chassis::ENCAPS,
            sb::Chassis::OTHER_CONFIG,
        ]),
        TableMonitor::all(sb::ChassisPrivate::TABLE)
            .with_columns([sb::ChassisPrivate::NAME, sb::ChassisPrivate::NB_CFG]),
        TableMonitor::all(sb::SbGlobal::TABLE).with_columns([sb::SbGlobal::NB_CFG]),
        TableMonitor::all(sb::Encap::TABLE).with_columns([
            sb::Encap::TYPE,
            sb::Encap::IP,
            sb::Encap::CHASSIS_NAME,
        ]),
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
        chassis_private: typed(contents, db)?,
        encaps: typed(contents, db)?,
        nb_cfg: typed::<sb::SbGlobal>(contents, db)?
            .iter()
            .map(|g| g.nb_cfg)
            .max(),
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

/// The NB ACL behind each ACL-stage flow of a trace, by the flow's UUID prefix: each flow's
/// `stage-hint` ([`stage_hint`]) is the first 8 hex digits of the ACL's UUID. Flows northd
/// made on its own (no hint) and hints no ACL has are left out.
pub async fn flow_acls(
    sb_db: &Db,
    hits: &[crate::verdict::FlowHit],
    acls: &[nb::Acl],
) -> Result<crate::trace::FlowAcls, OvnIoError> {
    let mut found = crate::trace::FlowAcls::new();
    for hit in hits {
        if found.contains_key(&hit.uuid_prefix) {
            continue;
        }
        let hint = stage_hint(
            sb_db,
            &hit.stage,
            hit.priority,
            &hit.match_,
            &hit.uuid_prefix,
        )
        .await?;
        if let Some(acl) = hint
            .filter(|h| !h.is_empty())
            .and_then(|h| acls.iter().find(|a| a.uuid.to_string().starts_with(&h)))
        {
            found.insert(hit.uuid_prefix.clone(), acl.clone());
        }
    }
    Ok(found)
}
