//! What rovn's own NB rows say each pod holds. Only the controller writes them, while anyone
//! who can edit a pod can write its annotations: at start-up these rows, not the annotations,
//! decide who holds an address.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use rovn_api::names::{OWNER_KEY, POD_UID_KEY, VENDOR, VENDOR_KEY};
use rovn_api::{MacAddr, Owner, OwnerKind};
use rovn_ovsdb::{Atom, Datum, Model, Replica, Uuid};
use rovn_ovsdb_schemas::nb::{LogicalSwitch, LogicalSwitchPort};

use super::watch::Key;
use crate::reconcile::{external_id, name_of, parents_of};

/// A pod's address as its NB port records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The pod incarnation the port was written for.
    pub uid: String,
    /// The switch (Subnet) holding the port.
    pub switch: String,
    /// The address.
    pub ip: Ipv4Addr,
    /// The MAC.
    pub mac: MacAddr,
}

/// Every pod port rovn wrote, by pod. A port whose address or switch cannot be read is left
/// out: the pod then goes through allocation like a new one, where its annotations grant
/// nothing a fresh request would not get.
pub fn recorded_pods(replica: &Replica) -> HashMap<Key, Recorded> {
    let switch_of =
        parents_of(replica, LogicalSwitch::TABLE, LogicalSwitch::PORTS).unwrap_or_default();
    let switch_name = |port: &Uuid| {
        let switch = switch_of.get(port)?;
        name_of(replica.get(LogicalSwitch::TABLE, switch)?)
    };
    let mut out = HashMap::new();
    for (uuid, row) in replica
        .table(LogicalSwitchPort::TABLE)
        .into_iter()
        .flat_map(|t| t.iter())
    {
        if external_id(row, VENDOR_KEY) != Some(VENDOR) {
            continue;
        }
        let Some(owner) = external_id(row, OWNER_KEY).and_then(|o| o.parse::<Owner>().ok()) else {
            continue;
        };
        let (OwnerKind::Pod, Some(namespace)) = (owner.kind(), owner.namespace()) else {
            continue;
        };
        let address = row
            .get("addresses")
            .and_then(Datum::as_set)
            .and_then(|set| set.iter().next())
            .and_then(Atom::as_str)
            .and_then(|a| a.split_once(' '));
        let Some((mac, ip)) = address else { continue };
        let (Ok(mac), Ok(ip)) = (mac.parse::<MacAddr>(), ip.parse::<Ipv4Addr>()) else {
            continue;
        };
        let (Some(switch), Some(uid)) = (switch_name(uuid), external_id(row, POD_UID_KEY)) else {
            continue;
        };
        out.insert(
            Key {
                namespace: namespace.to_string(),
                name: owner.name().to_string(),
            },
            Recorded {
                uid: uid.to_string(),
                switch: switch.to_string(),
                ip,
                mac,
            },
        );
    }
    out
}
