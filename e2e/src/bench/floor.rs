//! The OVN floor of pod network-ready latency: what plugging a pod costs when only the kernel,
//! OVS and ovn-controller work, measured under the same conditions as CNI ADD.
//!
//! A floor port is set up like a pod's before its timing starts: its logical switch port is in
//! NB with the pod's `addresses`, `port_security` (`"<mac> <ip>"`) and
//! `options:requested-chassis` of its node, exactly as the controller renders a pod port, and
//! ovn-northd has made its SB `Port_Binding`, which no chassis has claimed yet
//! ([`wait_for_unclaimed_bindings`] checks both, for the pods' ports too); its sandbox namespace
//! exists. Timed ([`FloorNode::plug`]): a veth pair created over rtnetlink with the host end
//! up in the node's namespace and the peer (the port's MAC) in the sandbox, the host end added to
//! `br-int` with its `iface-id`, until ovn-controller claims the binding, installs the flows and
//! marks the interface `external_ids:ovn-installed=true`. No CNI plugin, no agent, no
//! addresses or routes in the sandbox: what a pod cannot be plugged faster than.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rovn_api::{MacAddr, names};
use rovn_ovsdb::{
    Atom, Change, Client, Condition, Datum, Event, Mutation, Operation, Row, TableMonitor,
};
use rovn_ovsdb_schemas::{nb, sb, vswitch};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::error::BenchError;
use super::ovsdb_util::{map_value, start_client, string_column};
use super::veth::{NodeNetlink, VethSpec};

/// `external_ids` key ovn-controller sets on an interface once its flows are installed.
const OVN_INSTALLED: &str = "ovn-installed";
/// The OVS bridge ovn-controller manages on every node.
const INTEGRATION_BRIDGE: &str = "br-int";
/// `external_ids` key marking the floor's NB ports, so nobody mistakes them for pods'.
const FLOOR_MARK: &str = "rovn.io/bench";
/// The name of the veth's peer in the sandbox, as a runtime's `CNI_IFNAME`.
const SANDBOX_IFNAME: &str = "eth0";
/// The floor veth's MTU: the lab's pod MTU (1500 minus Geneve's overhead) rounded down; the
/// MTU changes nothing OVS or ovn-controller do.
const FLOOR_MTU: u32 = 1400;

/// One floor port: its NB port, its veth and its sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorPort {
    /// The logical switch port (and OVS `iface-id`).
    pub lsp: String,
    /// The host veth, OVS interface and port name on the node.
    pub iface: String,
    /// The port's address.
    pub ip: Ipv4Addr,
    /// The port's MAC, derived from `ip` as rovn derives pods' MACs.
    pub mac: MacAddr,
    /// The sandbox's network namespace name (under `/run/netns`).
    pub sandbox: String,
}

impl FloorPort {
    /// `"<mac> <ip>"`, the port's NB `addresses` and `port_security`, as a pod port's.
    pub fn address(&self) -> String {
        format!("{} {}", self.mac, self.ip)
    }
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

/// Floor port number `k` with address `ip`, bound to `node`; its sandbox is named with the
/// lab's namespace prefix so that tearing the lab down removes it.
pub fn plan_port(node: &str, ip: Ipv4Addr, k: usize, netns_prefix: &str) -> FloorPort {
    FloorPort {
        lsp: format!("bench-floor-{k}.{node}"),
        iface: format!("bfl{k}"),
        ip,
        mac: MacAddr::derived_from(ip),
        sandbox: format!("{netns_prefix}floor{k}"),
    }
}

/// Creates the NB ports of `ports` on switch `switch`, each bound to its chassis, in one
/// transaction: `addresses`, `port_security` and `options:requested-chassis` as the controller
/// writes a pod's port (`render_pod`), so ovn-northd and ovn-controller do the same work for
/// them (port security flows included).
pub async fn create_lsps(
    nb_client: &Client,
    switch: &str,
    ports: &[(FloorPort, String)],
) -> Result<(), BenchError> {
    let mut ops = Vec::with_capacity(ports.len() + 1);
    let mut named = BTreeSet::new();
    for (i, (port, chassis)) in ports.iter().enumerate() {
        let name = format!("lsp{i}");
        ops.push(
            Operation::insert("Logical_Switch_Port", lsp_row(port, chassis)).with_uuid_name(&name),
        );
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

/// The NB row of a floor port bound to `chassis`. Pure.
fn lsp_row(port: &FloorPort, chassis: &str) -> Row {
    let address = port.address();
    [
        ("name".to_string(), Datum::atom(port.lsp.as_str())),
        ("addresses".to_string(), Datum::set([address.as_str()])),
        ("port_security".to_string(), Datum::set([address.as_str()])),
        (
            "options".to_string(),
            Datum::map([(names::REQUESTED_CHASSIS, chassis)]),
        ),
        (
            "external_ids".to_string(),
            Datum::map([(FLOOR_MARK, "floor")]),
        ),
    ]
    .into_iter()
    .collect()
}

/// A started NB client, for creating the floor ports.
pub async fn nb_client(remote: &str, timeout: Duration) -> Result<Client, BenchError> {
    let table = TableMonitor::all("Logical_Switch").with_columns(["name"]);
    start_client(nb::DATABASE, remote, vec![table], timeout)
        .await
        .map(|(c, _)| c)
}

/// Waits until ovn-northd has made a SB `Port_Binding` for every name of `lsps`, and checks
/// that no chassis has claimed any of them: the state both a pod's port and a floor port are in
/// when their timing starts (the controller creates a pod's port before CNI ADD; ovn-controller
/// claims it only once an interface with its `iface-id` appears on the node).
pub async fn wait_for_unclaimed_bindings(
    sb_remote: &str,
    lsps: &BTreeSet<String>,
    timeout: Duration,
) -> Result<(), BenchError> {
    let table = TableMonitor::all("Port_Binding").with_columns(["logical_port", "chassis"]);
    let (client, mut events) = start_client(sb::DATABASE, sb_remote, vec![table], timeout).await?;
    let deadline = Instant::now() + timeout;
    loop {
        let (bound, claimed) = client
            .read(|r| {
                r.table("Port_Binding")
                    .map(|t| {
                        t.iter()
                            .filter(|(_, row)| {
                                string_column(row, "logical_port").is_some_and(|p| lsps.contains(p))
                            })
                            .fold((0, Vec::new()), |(bound, mut claimed), (_, row)| {
                                if is_claimed(row) {
                                    claimed.extend(
                                        string_column(row, "logical_port").map(str::to_string),
                                    );
                                }
                                (bound + 1, claimed)
                            })
                    })
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        if !claimed.is_empty() {
            return Err(BenchError::protocol(
                "SB port bindings before timing",
                format!("already claimed by a chassis: {}", claimed.join(", ")),
            ));
        }
        if bound == lsps.len() {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => {
                return Err(BenchError::Timeout {
                    what: format!("SB port bindings of {} ports", lsps.len()),
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

/// Whether a `Port_Binding` row names a chassis. Pure.
fn is_claimed(row: &Row) -> bool {
    row.get("chassis").is_some_and(|d| !d.is_empty())
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Instant>>>>;

/// One lab node as the floor plugs into it: its Open_vSwitch database, watched for
/// `ovn-installed`, and an rtnetlink socket in its namespace.
pub struct FloorNode {
    client: Arc<Client>,
    pending: Pending,
    dispatcher: JoinHandle<()>,
    netlink: NodeNetlink,
    /// The node's chassis name (OVS `system-id`).
    pub chassis: String,
}

impl Drop for FloorNode {
    fn drop(&mut self) {
        self.dispatcher.abort();
    }
}

impl FloorNode {
    /// Connects to the node's database at `remote`, reads its chassis name and opens the
    /// netlink socket in its namespace `netns`.
    pub async fn connect(
        remote: &str,
        netns: &str,
        timeout: Duration,
    ) -> Result<FloorNode, BenchError> {
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
        let netlink = NodeNetlink::open(netns).await?;
        let client = Arc::new(client);
        let pending: Pending = Arc::default();
        let dispatcher = tokio::spawn(dispatch(client.clone(), events, pending.clone()));
        Ok(FloorNode {
            client,
            pending,
            dispatcher,
            netlink,
            chassis,
        })
    }

    /// Plugs `port` into the node whose sandbox namespace is open as `sandbox`: creates the
    /// veth (peer in the sandbox), adds the host end to `br-int` with the port's `iface-id`
    /// and waits for `ovn-installed`; returns the time from the veth request to the mark.
    pub async fn plug(
        &self,
        port: &FloorPort,
        sandbox: &std::fs::File,
        timeout: Duration,
    ) -> Result<Duration, BenchError> {
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(port.iface.clone(), tx);
        let veth = VethSpec {
            host: port.iface.clone(),
            peer: SANDBOX_IFNAME.to_string(),
            mac: port.mac,
            mtu: FLOOR_MTU,
        };
        let ops = plug_ops(port);
        let started = Instant::now();
        let plugged = async {
            self.netlink.create_veth(&veth, sandbox).await?;
            self.client.transact(&ops).await.map_err(|e| {
                BenchError::transact(format!("add OVS port {} for {}", port.iface, port.lsp), e)
            })
        };
        if let Err(e) = plugged.await {
            self.lock_pending().remove(&port.iface);
            return Err(e);
        }
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

/// The OVS transaction adding `port`'s host veth to `br-int` as a system interface with the
/// `iface-id` (and `attached-mac`) rovn-node gives a pod's. Pure.
fn plug_ops(port: &FloorPort) -> [Operation; 3] {
    let mac = port.mac.to_string();
    let iface: Row = [
        ("name".to_string(), Datum::atom(port.iface.as_str())),
        (
            "external_ids".to_string(),
            Datum::map([
                ("iface-id", port.lsp.as_str()),
                ("attached-mac", mac.as_str()),
            ]),
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
    [
        Operation::insert("Interface", iface).with_uuid_name("iface"),
        Operation::insert("Port", ovs_port).with_uuid_name("port"),
        Operation::Mutate {
            table: "Bridge".into(),
            conditions: vec![Condition::eq("name", Datum::atom(INTEGRATION_BRIDGE))],
            mutations: vec![Mutation::insert("ports", Datum::named_uuid("port"))],
        },
    ]
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
    }

    #[test]
    fn floor_ports_have_short_names_and_pod_like_addresses() {
        let port = plan_port("node1", Ipv4Addr::new(10, 16, 255, 254), 59, "rl-bp1-");
        assert_eq!(port.lsp, "bench-floor-59.node1");
        assert_eq!(port.iface, "bfl59");
        assert_eq!(port.sandbox, "rl-bp1-floor59");
        assert_eq!(port.address(), "0a:58:0a:10:ff:fe 10.16.255.254");
    }

    #[test]
    fn floor_lsps_are_rendered_like_pod_ports() {
        let port = plan_port("node1", Ipv4Addr::new(10, 16, 255, 254), 0, "rl-bp1-");
        let row = lsp_row(&port, "chassis-1");
        let address = Datum::set(["0a:58:0a:10:ff:fe 10.16.255.254"]);
        assert_eq!(row.get("addresses"), Some(&address));
        assert_eq!(row.get("port_security"), Some(&address));
        assert_eq!(
            row.get("options"),
            Some(&Datum::map([(names::REQUESTED_CHASSIS, "chassis-1")]))
        );
    }

    #[test]
    fn floor_interfaces_are_system_ports_with_the_iface_id() {
        let port = plan_port("node1", Ipv4Addr::new(10, 16, 255, 254), 3, "rl-bp1-");
        let [Operation::Insert { row, .. }, ..] = plug_ops(&port) else {
            panic!("the interface is inserted first");
        };
        assert_eq!(row.get("type"), None, "a veth is a system interface");
        assert_eq!(
            map_value(&row, "external_ids", "iface-id"),
            Some("bench-floor-3.node1")
        );
    }

    #[test]
    fn only_bindings_with_a_chassis_are_claimed() {
        let row = |chassis: Datum| -> Row {
            [
                ("logical_port".to_string(), Datum::atom("p")),
                ("chassis".to_string(), chassis),
            ]
            .into_iter()
            .collect()
        };
        assert!(!is_claimed(&row(Datum::default())));
        assert!(is_claimed(&row(Datum::atom(Atom::Uuid(
            rovn_ovsdb::Uuid::from_u128(1)
        )))));
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
