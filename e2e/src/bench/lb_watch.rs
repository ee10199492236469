//! Following, through an NB monitor, the backends of rovn's Service load balancers: the NB
//! half of the Services benchmark.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rovn_ovsdb::{Change, Client, Datum, Event, Replica, Row, TableMonitor};
use rovn_ovsdb_schemas::nb::{self, LoadBalancer};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::error::BenchError;
use super::ovsdb_util::{start_client, string_column};

const LB_TABLE: &str = "Load_Balancer";

/// Each VIP's backends, as a set of `ip:port`.
pub type Vips = BTreeMap<String, BTreeSet<String>>;

/// A synced NB monitor of load balancer names and VIPs.
pub struct LbWatch {
    client: Client,
    events: broadcast::Receiver<Event>,
    /// Load balancer name → its VIPs.
    balancers: BTreeMap<String, Vips>,
}

impl LbWatch {
    /// Connects to NB at `remote` and syncs.
    pub async fn start(remote: &str, timeout: Duration) -> Result<LbWatch, BenchError> {
        let table =
            TableMonitor::all(LB_TABLE).with_columns([LoadBalancer::NAME, LoadBalancer::VIPS]);
        let (client, events) = start_client(nb::DATABASE, remote, vec![table], timeout).await?;
        let mut watch = LbWatch {
            client,
            events,
            balancers: BTreeMap::new(),
        };
        watch.reread();
        Ok(watch)
    }

    /// Waits until every balancer named in `want` has exactly its VIPs; returns when.
    pub async fn wait_for(
        &mut self,
        want: &BTreeMap<String, Vips>,
        timeout: Duration,
    ) -> Result<Instant, BenchError> {
        let deadline = Instant::now() + timeout;
        loop {
            let missing = want
                .iter()
                .filter(|(name, vips)| self.balancers.get(*name) != Some(vips))
                .count();
            if missing == 0 {
                return Ok(Instant::now());
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => {
                    return Err(BenchError::Timeout {
                        what: format!("{} load balancers with their backends", want.len()),
                        detail: format!("{missing} not there yet"),
                    });
                }
                Ok(Err(RecvError::Lagged(_))) => self.reread(),
                Ok(Err(RecvError::Closed)) => {
                    return Err(BenchError::protocol("the NB monitor", "its client stopped"));
                }
                Ok(Ok(Event::Change(change))) if change.table() == LB_TABLE => self.apply(&change),
                Ok(Ok(_)) => {}
            }
        }
    }

    fn reread(&mut self) {
        self.balancers = self.client.read(balancers).unwrap_or_default();
    }

    fn apply(&mut self, change: &Change) {
        match change {
            Change::Insert { new, .. } | Change::Modify { new, .. } => {
                if let Some((name, vips)) = balancer(new) {
                    self.balancers.insert(name, vips);
                }
            }
            Change::Delete { old, .. } => {
                if let Some(name) = string_column(old, LoadBalancer::NAME) {
                    self.balancers.remove(name);
                }
            }
        }
    }
}

fn balancers(replica: &Replica) -> BTreeMap<String, Vips> {
    replica
        .table(LB_TABLE)
        .map(|t| t.iter().filter_map(|(_, row)| balancer(row)).collect())
        .unwrap_or_default()
}

/// A balancer's name and VIPs, backends split into a set. Pure.
fn balancer(row: &Row) -> Option<(String, Vips)> {
    let name = string_column(row, LoadBalancer::NAME)?.to_string();
    let vips = row
        .get(LoadBalancer::VIPS)
        .and_then(Datum::as_map)
        .map(|map| {
            map.iter()
                .filter_map(|(vip, backends)| {
                    Some((vip.as_str()?.to_string(), backend_set(backends.as_str()?)))
                })
                .collect()
        })
        .unwrap_or_default();
    Some((name, vips))
}

/// `ip:port,ip:port` as a set (empty for no backend). Pure.
pub fn backend_set(text: &str) -> BTreeSet<String> {
    text.split(',')
        .filter(|b| !b.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vips_are_read_as_backend_sets() {
        let row: Row = [
            ("name".to_string(), Datum::atom("svc.a.b.tcp")),
            (
                "vips".to_string(),
                Datum::map([
                    ("10.96.0.1:80", "10.0.0.2:8080,10.0.0.1:8080"),
                    ("10.96.0.1:81", ""),
                ]),
            ),
        ]
        .into_iter()
        .collect();
        let (name, vips) = balancer(&row).unwrap_or_default();
        assert_eq!(name, "svc.a.b.tcp");
        assert_eq!(
            vips["10.96.0.1:80"],
            backend_set("10.0.0.1:8080,10.0.0.2:8080")
        );
        assert!(vips["10.96.0.1:81"].is_empty());
    }
}
