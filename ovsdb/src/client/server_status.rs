//! The state of the replicated database on one server, from that server's `_Server`
//! database: whether it may be used at all, and with `leader_only` whether it leads.

use serde_json::{Value as Json, json};

use crate::connection::Connection;
use crate::error::Error;
use crate::operation::Condition;
use crate::value::Datum;

/// The monitor id of the `_Server.Database` monitor.
pub(super) const SERVER_MONITOR_ID: &str = "rovn-_Server";

/// The state of our database on one server, from its `_Server.Database` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseStatus {
    /// `standalone`, `clustered`, `relay` or `active-backup`... as the server says.
    pub model: String,
    /// Whether the server is connected to the database (for a cluster: to a quorum).
    pub connected: bool,
    /// Whether the server is the leader (always true for a standalone database).
    pub leader: bool,
}

impl DatabaseStatus {
    /// Applies the columns of an `initial`, `insert` or `modify` row of `_Server.Database`
    /// (all single-valued, so a modify carries new values).
    fn merge(&mut self, row: &serde_json::Map<String, Json>) {
        if let Some(m) = row.get("model").and_then(Json::as_str) {
            self.model = m.to_string();
        }
        if let Some(c) = row.get("connected").and_then(Json::as_bool) {
            self.connected = c;
        }
        if let Some(l) = row.get("leader").and_then(Json::as_bool) {
            self.leader = l;
        }
    }

    /// Why this server must not be used, if it must not.
    pub fn unusable(&self, leader_only: bool) -> Option<&'static str> {
        if !self.connected {
            Some("the database is not connected (no cluster quorum?)")
        } else if leader_only && !self.leader {
            Some("the server is not the cluster leader")
        } else {
            None
        }
    }

    /// Folds a `_Server` `<table-updates2>` into the status of database `db`; `None` once
    /// the row is deleted (the database was removed).
    pub(super) fn apply_updates(
        status: Option<DatabaseStatus>,
        updates: &Json,
        db: &str,
    ) -> Option<DatabaseStatus> {
        let mut status = status;
        let Some(rows) = updates.get("Database").and_then(Json::as_object) else {
            return status;
        };
        for update in rows.values() {
            let Some(obj) = update.as_object() else {
                continue;
            };
            for (kind, row) in obj {
                match (kind.as_str(), row.as_object()) {
                    ("delete", _) => status = None,
                    (_, Some(row)) => {
                        if row
                            .get("name")
                            .and_then(Json::as_str)
                            .is_some_and(|n| n != db)
                        {
                            continue;
                        }
                        status
                            .get_or_insert_with(DatabaseStatus::default)
                            .merge(row);
                    }
                    _ => {}
                }
            }
        }
        status
    }
}

/// Starts monitoring the `_Server.Database` row of `db`. `Ok(None)` when the server has no
/// `_Server` database or no `monitor_cond` (old servers); `Ok(Some(None))` when it does not
/// hold `db`.
pub(super) async fn monitor_database_status(
    conn: &Connection,
    db: &str,
) -> Result<Option<Option<DatabaseStatus>>, Error> {
    let params = json!(["_Server", SERVER_MONITOR_ID, {
        "Database": [{
            "columns": ["name", "model", "connected", "leader"],
            "where": [Condition::eq("name", Datum::atom(db)).to_json()],
        }]
    }]);
    match conn.call("monitor_cond", params).await {
        Ok(reply) => Ok(Some(DatabaseStatus::apply_updates(None, &reply, db))),
        Err(Error::Rpc { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_status_follows_server_updates() {
        let initial = json!({"Database": {"a": {"initial": {"name": "OVN_Northbound", "model": "clustered", "connected": true, "leader": true}}}});
        let s = DatabaseStatus::apply_updates(None, &initial, "OVN_Northbound");
        assert_eq!(s.as_ref().and_then(|s| s.unusable(true)), None);
        let demoted = json!({"Database": {"a": {"modify": {"leader": false}}}});
        let s = DatabaseStatus::apply_updates(s, &demoted, "OVN_Northbound");
        assert!(s.as_ref().and_then(|s| s.unusable(true)).is_some());
        assert_eq!(s.as_ref().and_then(|s| s.unusable(false)), None);
        let gone = json!({"Database": {"a": {"delete": null}}});
        assert_eq!(
            DatabaseStatus::apply_updates(s, &gone, "OVN_Northbound"),
            None
        );
        let other = json!({"Database": {"b": {"initial": {"name": "_Server", "connected": true, "leader": true}}}});
        assert_eq!(
            DatabaseStatus::apply_updates(None, &other, "OVN_Northbound"),
            None
        );
    }
}
