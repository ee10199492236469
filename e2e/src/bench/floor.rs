//! The OVN floor of pod network-ready latency: for a logical switch port that already exists
//! in NB (bound to the node by `requested-chassis`), the time from adding an OVS internal port
//! with its `iface-id` to the node's `br-int` until ovn-controller marks the interface
//! `external_ids:ovn-installed=true`. No CNI, no agent, no veth: what OVN alone needs.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rovn_api::names;
use rovn_ovsdb::{
    Atom, Change, Client, Condition, Datum, Event, Mutation, Operation, Row, TableMonitor,
};
use rovn_ovsdb_schemas::{nb, sb, vswitch};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::error::BenchError;
use super::ovsdb_util::{map_value, start_client, string_column};

/// `external_ids` key ovn-controller sets on an interface once its flows are installed.
const OVN_INSTALLED: &str = "ovn-installed";
/// The OVS bridge ovn-controller manages on every node.
const INTEGRATION_BRIDGE: &str = "br-int";
/// `external_ids` key marking the floor's NB ports, so nobody mistakes them for pods'.
const FLOOR_MARK: &str = "rovn.io/bench";

/// One floor port: its NB port and where it is plugged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorPort {
    /// The logical switch port (and OVS `iface-id`).
    pub lsp: String,
    /// The OVS interface (and port) name on the node.
    pub iface: String,
    /// `mac ip`, the port's NB addresses.
    pub address: String,
}

/// The last `count` host addresses of `cidr` (`a.b.c.d/len`): far from where a next-fit IPAM
/// hands out pod addresses, so floor ports and pods never collide.
pub fn top_addresses(cidr: &str, count: usize) -> Result<Vec<Ipv4Addr>, String> {
    let (ip, len) = cidr
        .split_once('/')
        .ok_or_else(|| format!("{cidr:?} is not a CIDR"))?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| format!("{cidr:?} is not a CIDR"))?;
    let len: u32 = len
        .parse()
        .ok()
        .filter(|l| *l <= 30)
        .ok_or_else(|| format!("{cidr:?}: prefix length must be 0-30"))?;
    let host_bits = 32 - len;
    let hosts = (1u64 << host_bits) - 2;
    if (count as u64) * 4 > hosts {
        return Err(format!(
            "{cidr} is too small for {count} floor ports beside the pods"
        ));
    }
    let broadcast = u32::from(ip) | (((1u64 << host_bits) - 1) as u32);
    Ok((1..=count as u32)
        .map(|i| Ipv4Addr::from(broadcast - i))
        .collect())
}

/// The MAC rovn derives from an IPv4 address (`0a:58:` + its octets).
pub fn mac_of(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("0a:58:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// The floor ports of one node.
pub fn plan_ports(node: &str, addresses: &[Ipv4Addr], first_index: usize) -> Vec<FloorPort> {
    addresses
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let k = first_index + i;
            FloorPort {
                lsp: format!("bench-floor-{k}.{node}"),
                iface: format!("bfl{k}"),
                address: format!("{} {ip}", mac_of(*ip)),
            }
        })
        .collect()
}

/// Creates the NB ports of `ports` (bound to `chassis`) on switch `switch`, in one transaction.
pub async fn create_lsps(
    nb_client: &Client,
    switch: &str,
    ports: &[(FloorPort, String)],
) -> Result<(), BenchError> {
    let mut ops = Vec::with_capacity(ports.len() + 1);
    let mut named = BTreeSet::new();
    for (i, (port, chassis)) in ports.iter().enumerate() {
        let name = format!("lsp{i}");
        let row: Row = [
            ("name".to_string(), Datum::atom(port.lsp.as_str())),
            ("addresses".to_string(), Datum::set([port.address.as_str()])),
            (
                "options".to_string(),
                Datum::map([(names::REQUESTED_CHASSIS, chassis.as_str())]),
            ),
            (
                "external_ids".to_string(),
                Datum::map([(FLOOR_MARK, "floor")]),
            ),
        ]
        .into_iter()
        .collect();
        ops.push(Operation::insert("Logical_Switch_Port", row).with_uuid_name(&name));
        named.insert(Atom::NamedUuid(name));
    }
    ops.push(Operation::Mutate {
        table: "Logical_Switch".into(),
        conditions: vec![Condition::eq("name", Datum::atom(switch))],
        mutations: vec![Mutation::insert("ports", Datum::Set(named))],
    });
    let results = nb_client.transact(&ops).await.map_err(|e| {
        BenchError::transact(
            format!("create {} floor ports on switch {switch}", ports.len()),
            e,
        )
    })?;
    let mutated = results.last().and_then(|r| r.count());
    if mutated != Some(1) {
        return Err(BenchError::protocol(
            format!("add the floor ports to switch {switch}"),
            format!("{mutated:?} switches matched"),
        ));
    }
    Ok(())
}

/// A started NB client, for creating the floor ports.
pub async fn nb_client(remote: &str, timeout: Duration) -> Result<Client, BenchError> {
    let table = TableMonitor::all("Logical_Switch").with_columns(["name"]);
    start_client(nb::DATABASE, remote, vec![table], timeout)
        .await
        .map(|(c, _)| c)
}

/// Waits until ovn-northd has made a SB port binding for every name of `lsps`.
pub async fn wait_for_bindings(
    sb_remote: &str,
    lsps: &BTreeSet<String>,
    timeout: Duration,
) -> Result<(), BenchError> {
    let table = TableMonitor::all("Port_Binding").with_columns(["logical_port"]);
    let (client, mut events) = start_client(sb::DATABASE, sb_remote, vec![table], timeout).await?;
    let deadline = Instant::now() + timeout;
    loop {
        let bound = client
            .read(|r| {
                r.table("Port_Binding")
                    .map(|t| {
                        t.iter()
                            .filter_map(|(_, row)| string_column(row, "logical_port"))
                            .filter(|p| lsps.contains(*p))
                            .count()
                    })
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        if bound == lsps.len() {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => {
                return Err(BenchError::Timeout {
                    what: format!("SB port bindings of {} floor ports", lsps.len()),
                    detail: format!("{bound} bound"),
                });
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                return Err(BenchError::protocol("the SB monitor", "its client stopped"));
            }
            Ok(_) => {}
        }
    }
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Instant>>>>;

/// One node's Open_vSwitch database, watched for `ovn-installed`.
pub struct NodeSwitch {
    client: Arc<Client>,
    pending: Pending,
    dispatcher: JoinHandle<()>,
    /// The node's chassis name (OVS `system-id`).
    pub chassis: String,
}

impl Drop for NodeSwitch {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}

impl NodeSwitch {
    /// Connects to the node's database at `remote` and reads its chassis name.
    pub async fn connect(remote: &str, timeout: Duration) -> Result<NodeSwitch, BenchError> {
        let tables = vec![
            TableMonitor::all("Open_vSwitch").with_columns(["external_ids"]),
            TableMonitor::all("Interface").with_columns(["name", "external_ids"]),
        ];
        let (client, events) = start_client(vswitch::DATABASE, remote, tables, timeout).await?;
        let chassis = client
            .read(|r| {
                r.table("Open_vSwitch").and_then(|t| {
                    t.iter()
                        .find_map(|(_, row)| map_value(row, "external_ids", "system-id"))
                        .map(str::to_string)
                })
            })
            .flatten()
            .ok_or_else(|| {
                BenchError::protocol(format!("Open_vSwitch at {remote}"), "no system-id yet")
            })?;
        let client = Arc::new(client);
        let pending: Pending = Arc::default();
        let dispatcher = tokio::spawn(dispatch(client.clone(), events, pending.clone()));
        Ok(NodeSwitch {
            client,
            pending,
            dispatcher,
            chassis,
        })
    }

    /// Adds `port` to `br-int` and waits for `ovn-installed`; returns the time between.
    pub async fn plug(&self, port: &FloorPort, timeout: Duration) -> Result<Duration, BenchError> {
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(port.iface.clone(), tx);
        let iface: Row = [
            ("name".to_string(), Datum::atom(port.iface.as_str())),
            ("type".to_string(), Datum::atom("internal")),
            (
                "external_ids".to_string(),
                Datum::map([("iface-id", port.lsp.as_str())]),
            ),
        ]
        .into_iter()
        .collect();
        let ovs_port: Row = [
            ("name".to_string(), Datum::atom(port.iface.as_str())),
            ("interfaces".to_string(), Datum::named_uuid("iface")),
        ]
        .into_iter()
        .collect();
        let ops = [
            Operation::insert("Interface", iface).with_uuid_name("iface"),
            Operation::insert("Port", ovs_port).with_uuid_name("port"),
            Operation::Mutate {
                table: "Bridge".into(),
                conditions: vec![Condition::eq("name", Datum::atom(INTEGRATION_BRIDGE))],
                mutations: vec![Mutation::insert("ports", Datum::named_uuid("port"))],
            },
        ];
        let started = Instant::now();
        self.client.transact(&ops).await.map_err(|e| {
            BenchError::transact(format!("add OVS port {} for {}", port.iface, port.lsp), e)
        })?;
        // A port installed before the dispatcher saw it registered is found by a rescan.
        self.rescan();
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(at)) => Ok(at.saturating_duration_since(started)),
            _ => {
                self.lock_pending().remove(&port.iface);
                Err(BenchError::Timeout {
                    what: format!("ovn-installed on {} ({})", port.iface, port.lsp),
                    detail: format!("after {timeout:?}"),
                })
            }
        }
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Instant>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rescan(&self) {
        rescan(&self.client, &self.pending);
    }
}

/// Answers waiters as their interfaces become installed.
async fn dispatch(client: Arc<Client>, mut events: broadcast::Receiver<Event>, pending: Pending) {
    loop {
        match events.recv().await {
            Ok(Event::Change(Change::Insert { new, .. } | Change::Modify { new, .. })) => {
                if let Some(name) = installed_iface(&new) {
                    answer(&pending, name, Instant::now());
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => rescan(&client, &pending),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn rescan(client: &Client, pending: &Pending) {
    let installed: Vec<String> = client
        .read(|r| {
            r.table("Interface")
                .map(|t| {
                    t.iter()
                        .filter_map(|(_, row)| installed_iface(row))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let now = Instant::now();
    for name in installed {
        answer(pending, &name, now);
    }
}

fn answer(pending: &Pending, iface: &str, at: Instant) {
    let waiter = pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(iface);
    if let Some(tx) = waiter {
        let _ = tx.send(at);
    }
}

/// The interface's name if ovn-controller has marked it installed.
fn installed_iface(row: &Row) -> Option<&str> {
    (map_value(row, "external_ids", OVN_INSTALLED) == Some("true"))
        .then(|| string_column(row, "name"))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_addresses_come_from_the_top_of_the_subnet() {
        let ips = top_addresses("10.16.0.0/16", 3).unwrap();
        assert_eq!(
            ips,
            [
                Ipv4Addr::new(10, 16, 255, 254),
                Ipv4Addr::new(10, 16, 255, 253),
                Ipv4Addr::new(10, 16, 255, 252)
            ]
        );
        assert!(top_addresses("10.16.0.0/28", 60).is_err());
        assert!(top_addresses("10.16.0.0", 1).is_err());
        assert_eq!(mac_of(Ipv4Addr::new(10, 16, 255, 254)), "0a:58:0a:10:ff:fe");
    }

    #[test]
    fn floor_ports_have_short_interface_names() {
        let ports = plan_ports("node1", &[Ipv4Addr::new(10, 16, 255, 254)], 59);
        assert_eq!(ports[0].lsp, "bench-floor-59.node1");
        assert_eq!(ports[0].iface, "bfl59");
        assert_eq!(ports[0].address, "0a:58:0a:10:ff:fe 10.16.255.254");
    }

    #[test]
    fn only_installed_interfaces_answer() {
        let row = |ids: Vec<(&str, &str)>| -> Row {
            [
                ("name".to_string(), Datum::atom("bfl1")),
                ("external_ids".to_string(), Datum::map(ids)),
            ]
            .into_iter()
            .collect()
        };
        assert_eq!(
            installed_iface(&row(vec![(OVN_INSTALLED, "true")])),
            Some("bfl1")
        );
        assert_eq!(installed_iface(&row(vec![("iface-id", "x")])), None);
    }
}
