//! The OVS Port+Interface that connects a pod's host veth to `br-int`, and the node's own
//! internal port `ovn0`: their `external_ids` (pure), and the operations that add, update and
//! remove them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use rovn_api::MacAddr;
use rovn_api::names::{VENDOR, VENDOR_KEY};
use rovn_ovsdb::{Condition, Datum, Model, Mutation, Operation, Row, Uuid};
use rovn_ovsdb_schemas::vswitch::{Bridge, Interface, Port};

use super::snapshot::{PortEntry, Snapshot};

/// `external_ids` keys of a pod's Interface (contracts.md).
pub mod keys {
    /// The logical switch port ovn-controller binds to this interface.
    pub const IFACE_ID: &str = "iface-id";
    /// The pod's MAC.
    pub const ATTACHED_MAC: &str = "attached-mac";
    /// The pod's IP.
    pub const IP_ADDRESS: &str = "ip_address";
    /// The pod's name.
    pub const POD_NAME: &str = "pod_name";
    /// The pod's namespace.
    pub const POD_NAMESPACE: &str = "pod_namespace";
    /// The pod's UID: restart cleanup removes ports whose pod no longer exists.
    pub const POD_UID: &str = "pod_uid";
    /// The sandbox container: DEL and GC find ports by it.
    pub const CONTAINER_ID: &str = "container_id";
    /// Set by ovn-controller once the port's flows are installed.
    pub const OVN_INSTALLED: &str = "ovn-installed";
}

/// The name of the node's internal port on `br-int`.
pub const NODE_PORT: &str = "ovn0";

/// Everything the pod's OVS port records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPort {
    /// Port and Interface name: the host veth.
    pub name: String,
    /// The pod's name.
    pub pod_name: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's UID (empty when unknown).
    pub pod_uid: String,
    /// The sandbox container ID.
    pub container_id: String,
    /// The pod's MAC.
    pub mac: MacAddr,
    /// The pod's IP.
    pub ip: Ipv4Addr,
}

/// The Interface's `external_ids`.
pub fn pod_external_ids(port: &PodPort) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            keys::IFACE_ID.to_string(),
            rovn_api::names::pod_port(&port.namespace, &port.pod_name),
        ),
        (keys::ATTACHED_MAC.to_string(), port.mac.to_string()),
        (keys::IP_ADDRESS.to_string(), port.ip.to_string()),
        (keys::POD_NAME.to_string(), port.pod_name.clone()),
        (keys::POD_NAMESPACE.to_string(), port.namespace.clone()),
        (keys::POD_UID.to_string(), port.pod_uid.clone()),
        (keys::CONTAINER_ID.to_string(), port.container_id.clone()),
        (VENDOR_KEY.to_string(), VENDOR.to_string()),
    ])
}

/// Whether an Interface is a pod port rovn made.
pub fn is_rovn_pod_interface(iface: &Interface) -> bool {
    iface.external_ids.get(VENDOR_KEY).map(String::as_str) == Some(VENDOR)
        && iface.external_ids.contains_key(keys::CONTAINER_ID)
}

/// Whether ovn-controller has installed the interface's flows.
pub fn is_installed(iface: &Interface) -> bool {
    iface
        .external_ids
        .get(keys::OVN_INSTALLED)
        .map(String::as_str)
        == Some("true")
}

fn map_datum(map: &BTreeMap<String, String>) -> Datum {
    Datum::map(map.iter().map(|(k, v)| (k.clone(), v.clone())))
}

/// Operations that add an interface called `name` with `iface` columns on `bridge` (plus
/// `port_ids` on the Port).
fn add_port_ops(bridge: &Bridge, name: &str, iface: Row) -> Vec<Operation> {
    let mut port: Row = Row::new();
    port.insert(Port::NAME.into(), Datum::atom(name));
    port.insert(Port::INTERFACES.into(), Datum::named_uuid("iface"));
    vec![
        Operation::insert(Interface::TABLE, iface).with_uuid_name("iface"),
        Operation::insert(Port::TABLE, port).with_uuid_name("port"),
        Operation::mutate(
            Bridge::TABLE,
            vec![Condition::uuid(bridge.uuid)],
            vec![Mutation::insert(Bridge::PORTS, Datum::named_uuid("port"))],
        ),
    ]
}

/// The operations that make the pod's port exist on `bridge` with the right `external_ids`:
/// an insert when absent, an element-wise update when a repeated ADD finds it (keys
/// ovn-controller added survive), nothing when it already matches.
pub fn ensure_pod_port_ops(snapshot: &Snapshot, bridge: &Bridge, port: &PodPort) -> Vec<Operation> {
    let wanted = pod_external_ids(port);
    match snapshot.interface_named(&port.name) {
        Some(existing) => {
            let mut desired = existing.clone();
            for (k, v) in &wanted {
                desired.external_ids.insert(k.clone(), v.clone());
            }
            rovn_ovsdb::model::update_elements(existing, &desired)
        }
        None => {
            let mut iface: Row = Row::new();
            iface.insert(Interface::NAME.into(), Datum::atom(port.name.as_str()));
            iface.insert(Interface::EXTERNAL_IDS.into(), map_datum(&wanted));
            add_port_ops(bridge, &port.name, iface)
        }
    }
}

/// The operations that make `ovn0` exist as an internal port bound to `node-<node>` with `mac`.
pub fn ensure_node_port_ops(
    snapshot: &Snapshot,
    bridge: &Bridge,
    node: &str,
    mac: MacAddr,
) -> Vec<Operation> {
    let iface_id = rovn_api::names::node_port(node);
    match snapshot.interface_named(NODE_PORT) {
        Some(existing) => {
            let mut desired = existing.clone();
            desired.type_ = "internal".into();
            desired.external_ids.insert(keys::IFACE_ID.into(), iface_id);
            desired
                .external_ids
                .insert(VENDOR_KEY.into(), VENDOR.into());
            rovn_ovsdb::model::update_elements(existing, &desired)
        }
        None => {
            let mut iface: Row = Row::new();
            iface.insert(Interface::NAME.into(), Datum::atom(NODE_PORT));
            iface.insert(Interface::TYPE.into(), Datum::atom("internal"));
            iface.insert(Interface::MAC.into(), Datum::atom(mac.to_string()));
            iface.insert(
                Interface::EXTERNAL_IDS.into(),
                Datum::map([
                    (keys::IFACE_ID.to_string(), iface_id),
                    (VENDOR_KEY.to_string(), VENDOR.to_string()),
                ]),
            );
            add_port_ops(bridge, NODE_PORT, iface)
        }
    }
}

/// Removes a port from its bridge; OVS garbage-collects the unreferenced Port and Interface.
pub fn remove_port_ops(entry: &PortEntry<'_>) -> Vec<Operation> {
    match entry.bridge {
        Some(bridge) => vec![Operation::mutate(
            Bridge::TABLE,
            vec![Condition::uuid(bridge.uuid)],
            vec![Mutation::delete(
                Bridge::PORTS,
                Datum::set([rovn_ovsdb::Atom::Uuid(entry.port.uuid)]),
            )],
        )],
        None => Vec::new(),
    }
}

/// A rovn pod port found in OVS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundPodPort {
    /// Port (and host veth) name.
    pub name: String,
    /// The Port row.
    pub port_uuid: Uuid,
    /// `container_id`.
    pub container_id: String,
    /// `pod_uid`.
    pub pod_uid: String,
    /// `pod_namespace`/`pod_name`.
    pub pod: (String, String),
}

/// Every pod port rovn made.
pub fn rovn_pod_ports(snapshot: &Snapshot) -> Vec<FoundPodPort> {
    snapshot
        .port_entries()
        .into_iter()
        .filter_map(|entry| {
            let iface = entry.interfaces.iter().find(|i| is_rovn_pod_interface(i))?;
            let get = |k: &str| iface.external_ids.get(k).cloned().unwrap_or_default();
            Some(FoundPodPort {
                name: entry.port.name.clone(),
                port_uuid: entry.port.uuid,
                container_id: get(keys::CONTAINER_ID),
                pod_uid: get(keys::POD_UID),
                pod: (get(keys::POD_NAMESPACE), get(keys::POD_NAME)),
            })
        })
        .collect()
}

/// Operations removing the given rovn ports (by Port UUID).
pub fn remove_ports_ops(snapshot: &Snapshot, ports: &[Uuid]) -> Vec<Operation> {
    snapshot
        .port_entries()
        .iter()
        .filter(|e| ports.contains(&e.port.uuid))
        .flat_map(remove_port_ops)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PodPort {
        PodPort {
            name: "rovn0123456789a".into(),
            pod_name: "web".into(),
            namespace: "default".into(),
            pod_uid: "u-1".into(),
            container_id: "c1".into(),
            mac: MacAddr([0x0a, 0x58, 10, 16, 0, 5]),
            ip: Ipv4Addr::new(10, 16, 0, 5),
        }
    }

    fn snapshot_with(iface: Interface) -> (Snapshot, Bridge) {
        let port = Port {
            uuid: Uuid::from_u128(2),
            name: iface.name.clone(),
            interfaces: [iface.uuid].into(),
            ..Default::default()
        };
        let bridge = Bridge {
            uuid: Uuid::from_u128(3),
            name: "br-int".into(),
            ports: [port.uuid].into(),
            ..Default::default()
        };
        let snapshot = Snapshot {
            open_vswitch: None,
            bridges: vec![bridge.clone()],
            ports: [(port.uuid, port)].into(),
            interfaces: [(iface.uuid, iface)].into(),
            ..Default::default()
        };
        (snapshot, bridge)
    }

    #[test]
    fn external_ids_follow_the_contract() {
        let ids = pod_external_ids(&sample());
        assert_eq!(ids["iface-id"], "web.default");
        assert_eq!(ids["attached-mac"], "0a:58:0a:10:00:05");
        assert_eq!(ids["ip_address"], "10.16.0.5");
        assert_eq!(ids[VENDOR_KEY], VENDOR);
        assert_eq!(ids["container_id"], "c1");
        assert_eq!(ids["pod_uid"], "u-1");
    }

    #[test]
    fn repeated_add_keeps_ovn_installed_and_writes_nothing_when_converged() {
        let mut ids = pod_external_ids(&sample());
        ids.insert("ovn-installed".into(), "true".into());
        let iface = Interface {
            uuid: Uuid::from_u128(1),
            name: sample().name,
            external_ids: ids,
            ..Default::default()
        };
        let (snapshot, bridge) = snapshot_with(iface);
        assert!(ensure_pod_port_ops(&snapshot, &bridge, &sample()).is_empty());
        let found = rovn_pod_ports(&snapshot);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].container_id, "c1");
        assert_eq!(remove_ports_ops(&snapshot, &[found[0].port_uuid]).len(), 1);
    }

    #[test]
    fn foreign_ports_are_not_rovn_pods() {
        let iface = Interface {
            uuid: Uuid::from_u128(1),
            name: "ovn0".into(),
            external_ids: [("iface-id".to_string(), "node-n1".to_string())].into(),
            ..Default::default()
        };
        let (snapshot, _) = snapshot_with(iface);
        assert!(rovn_pod_ports(&snapshot).is_empty());
    }
}
