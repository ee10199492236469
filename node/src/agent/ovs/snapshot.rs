//! A decoded copy of the OVS tables the agent reads, taken under the replica's lock and then
//! used without it.

use std::collections::BTreeMap;

use rovn_ovsdb::{Model, Replica, Uuid};
use rovn_ovsdb_schemas::vswitch::{Bridge, Interface, OpenVSwitch, Port, Ssl};

use super::OvsError;

/// The rows of `Open_vSwitch`, `Bridge`, `Port` and `Interface`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The single `Open_vSwitch` row, when the database has one.
    pub open_vswitch: Option<OpenVSwitch>,
    /// Every bridge.
    pub bridges: Vec<Bridge>,
    /// Every port, by UUID.
    pub ports: BTreeMap<Uuid, Port>,
    /// Every interface, by UUID.
    pub interfaces: BTreeMap<Uuid, Interface>,
    /// The SSL rows (ovn-controller's `ssl:` files come from the one `Open_vSwitch` refers to).
    pub ssl: BTreeMap<Uuid, Ssl>,
}

/// A port with its interfaces and the bridge holding it.
#[derive(Debug, Clone)]
pub struct PortEntry<'a> {
    /// The bridge whose `ports` lists it, if any.
    pub bridge: Option<&'a Bridge>,
    /// The port.
    pub port: &'a Port,
    /// Its interfaces.
    pub interfaces: Vec<&'a Interface>,
}

fn decode<M: Model>(replica: &Replica) -> Result<Vec<M>, OvsError> {
    let Some(table) = replica.table(M::TABLE) else {
        return Ok(Vec::new());
    };
    table
        .iter()
        .map(|(uuid, row)| {
            M::from_row(*uuid, row)
                .map_err(|e| OvsError::State(format!("decoding {} row {uuid}: {e}", M::TABLE)))
        })
        .collect()
}

impl Snapshot {
    /// Decodes the replica's current content.
    pub fn from_replica(replica: &Replica) -> Result<Snapshot, OvsError> {
        let open_vswitch = decode::<OpenVSwitch>(replica)?.into_iter().next();
        Ok(Snapshot {
            open_vswitch,
            bridges: decode(replica)?,
            ports: decode::<Port>(replica)?
                .into_iter()
                .map(|p| (p.uuid, p))
                .collect(),
            interfaces: decode::<Interface>(replica)?
                .into_iter()
                .map(|i| (i.uuid, i))
                .collect(),
            ssl: decode::<Ssl>(replica)?
                .into_iter()
                .map(|s| (s.uuid, s))
                .collect(),
        })
    }

    /// The bridge called `name`.
    pub fn bridge(&self, name: &str) -> Option<&Bridge> {
        self.bridges.iter().find(|b| b.name == name)
    }

    /// Every port with its interfaces and bridge.
    pub fn port_entries(&self) -> Vec<PortEntry<'_>> {
        self.ports
            .values()
            .map(|port| PortEntry {
                bridge: self.bridges.iter().find(|b| b.ports.contains(&port.uuid)),
                port,
                interfaces: port
                    .interfaces
                    .iter()
                    .filter_map(|u| self.interfaces.get(u))
                    .collect(),
            })
            .collect()
    }

    /// The port called `name`.
    pub fn port_named(&self, name: &str) -> Option<PortEntry<'_>> {
        self.port_entries()
            .into_iter()
            .find(|e| e.port.name == name)
    }

    /// The interface called `name`.
    pub fn interface_named(&self, name: &str) -> Option<&Interface> {
        self.interfaces.values().find(|i| i.name == name)
    }
}
