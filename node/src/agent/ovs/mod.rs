//! The agent's view of the local Open_vSwitch database: one replicated client, typed reads
//! of the few tables it uses, and the writes it makes (node settings, `br-int`, ports).

pub mod installed;
pub mod pod_port;
pub mod settings;
pub mod snapshot;

use std::time::Duration;

use rovn_ovsdb::Model;
use rovn_ovsdb::{Client, ClientConfig, Operation, OperationResult, Remote, TableMonitor};
use rovn_ovsdb_schemas::vswitch::{self, Bridge, Interface, OpenVSwitch, Port, Ssl};

pub use snapshot::Snapshot;

/// Why talking to the local OVS database failed.
#[derive(Debug, thiserror::Error)]
pub enum OvsError {
    /// The remote string is not a valid OVSDB remote.
    #[error("bad OVS database remote {remote:?}: {source}")]
    BadRemote {
        /// What was given.
        remote: String,
        /// Why it is bad.
        #[source]
        source: rovn_ovsdb::Error,
    },
    /// The client could not start or sync.
    #[error("connecting to the OVS database at {remote}: {source}")]
    Connect {
        /// The remote.
        remote: String,
        /// Why.
        #[source]
        source: rovn_ovsdb::Error,
    },
    /// A transaction failed.
    #[error("{what}: {source}")]
    Transact {
        /// What the transaction was for.
        what: String,
        /// Why.
        #[source]
        source: Box<rovn_ovsdb::TransactError>,
    },
    /// The replica holds a row rovn cannot decode, or lacks an expected row.
    #[error("{0}")]
    State(String),
}

impl OvsError {
    /// Whether retrying later may succeed: the database was unreachable and nothing was
    /// written (as opposed to a write the server refused).
    pub fn is_transient(&self) -> bool {
        match self {
            OvsError::Transact { source, .. } => {
                matches!(**source, rovn_ovsdb::TransactError::NotSent { .. })
            }
            OvsError::Connect { .. } => true,
            OvsError::BadRemote { .. } | OvsError::State(_) => false,
        }
    }
}

/// The replicated client of the node's Open_vSwitch database.
pub struct Ovs {
    client: Client,
    remote: String,
}

impl Ovs {
    /// Connects to `remote` and waits up to `timeout` for the first sync.
    pub async fn connect(remote: &str, timeout: Duration) -> Result<Ovs, OvsError> {
        let parsed: Remote = remote.parse().map_err(|source| OvsError::BadRemote {
            remote: remote.to_string(),
            source,
        })?;
        let mut config = ClientConfig::new(vswitch::DATABASE, vec![parsed]);
        config.tables = monitored_tables();
        let client = Client::start(config).map_err(|source| OvsError::Connect {
            remote: remote.to_string(),
            source,
        })?;
        client
            .wait_synced(timeout)
            .await
            .map_err(|source| OvsError::Connect {
                remote: remote.to_string(),
                source,
            })?;
        Ok(Ovs {
            client,
            remote: remote.to_string(),
        })
    }

    /// The underlying client (for event subscriptions).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The remote this agent writes to, for messages.
    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// Whether a session is up now (STATUS and `/healthz`).
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// The current content of the tables the agent uses, decoded.
    pub fn snapshot(&self) -> Result<Snapshot, OvsError> {
        self.client.read(Snapshot::from_replica).ok_or_else(|| {
            OvsError::State(format!(
                "the OVS database at {} is not synced yet",
                self.remote
            ))
        })?
    }

    /// Sends `ops` as one transaction; `what` names its purpose in errors.
    pub async fn transact(
        &self,
        ops: &[Operation],
        what: &str,
    ) -> Result<Vec<OperationResult>, OvsError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        self.client
            .transact(ops)
            .await
            .map_err(|source| OvsError::Transact {
                what: what.to_string(),
                source: Box::new(source),
            })
    }
}

/// Only the columns the agent reads: statistics and status columns change all the time and
/// would flood the change stream ADD waits on.
fn monitored_tables() -> Vec<TableMonitor> {
    vec![
        TableMonitor::all(OpenVSwitch::TABLE).with_columns([
            OpenVSwitch::EXTERNAL_IDS,
            OpenVSwitch::BRIDGES,
            OpenVSwitch::SSL,
        ]),
        TableMonitor::all(Ssl::TABLE).with_columns([
            Ssl::PRIVATE_KEY,
            Ssl::CERTIFICATE,
            Ssl::CA_CERT,
        ]),
        TableMonitor::all(Bridge::TABLE).with_columns([
            Bridge::NAME,
            Bridge::PORTS,
            Bridge::DATAPATH_TYPE,
            Bridge::FAIL_MODE,
            Bridge::OTHER_CONFIG,
        ]),
        TableMonitor::all(Port::TABLE).with_columns([
            Port::NAME,
            Port::INTERFACES,
            Port::EXTERNAL_IDS,
        ]),
        TableMonitor::all(Interface::TABLE).with_columns([
            Interface::NAME,
            Interface::TYPE,
            Interface::EXTERNAL_IDS,
            Interface::OFPORT,
            Interface::ERROR,
        ]),
    ]
}
