//! The node's chassis settings (`Open_vSwitch.external_ids`) and `br-int`: what they should
//! be (pure) and the idempotent write that makes them so.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use rovn_ovsdb::TlsConfig;
use rovn_ovsdb::model::{self, Model};
use rovn_ovsdb::{Datum, Mutation, Operation, Row};
use rovn_ovsdb_schemas::vswitch::{Bridge, BridgeFailMode, Interface, OpenVSwitch, Port, Ssl};

use super::{Ovs, OvsError, Snapshot};
use crate::agent::config::{DatapathType, EncapType};

/// The integration bridge ovn-controller programs.
pub const INTEGRATION_BRIDGE: &str = "br-int";

/// `external_ids` keys of the `Open_vSwitch` row ovn-controller reads.
pub mod keys {
    /// The chassis name.
    pub const SYSTEM_ID: &str = "system-id";
    /// The Southbound remote.
    pub const OVN_REMOTE: &str = "ovn-remote";
    /// Tunnel type.
    pub const ENCAP_TYPE: &str = "ovn-encap-type";
    /// Tunnel endpoint.
    pub const ENCAP_IP: &str = "ovn-encap-ip";
    /// Datapath type of bridges ovn-controller creates.
    pub const BRIDGE_DATAPATH_TYPE: &str = "ovn-bridge-datapath-type";
}

/// What the chassis settings must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChassisSettings {
    /// `system-id` to use when the database has none (the node name).
    pub default_system_id: String,
    /// `ovn-remote`.
    pub ovn_remote: String,
    /// `ovn-encap-type`.
    pub encap_type: EncapType,
    /// `ovn-encap-ip`.
    pub encap_ip: Ipv4Addr,
    /// `ovn-bridge-datapath-type` and `br-int`'s datapath.
    pub datapath_type: DatapathType,
    /// The files ovn-controller's `ssl:` Southbound session uses (the database's `SSL` row,
    /// which ovn-controller reads); `None` leaves any `SSL` row as it is.
    pub tls: Option<TlsConfig>,
}

/// The `system-id` the chassis has or will have: an existing one is kept, since the
/// Southbound Chassis row is keyed by it.
pub fn system_id(current: &BTreeMap<String, String>, settings: &ChassisSettings) -> String {
    current
        .get(keys::SYSTEM_ID)
        .filter(|id| !id.is_empty())
        .cloned()
        .unwrap_or_else(|| settings.default_system_id.clone())
}

/// `current` external_ids with rovn's keys set; every other key is left as it is.
pub fn desired_external_ids(
    current: &BTreeMap<String, String>,
    settings: &ChassisSettings,
) -> BTreeMap<String, String> {
    let mut ids = current.clone();
    ids.insert(keys::SYSTEM_ID.into(), system_id(current, settings));
    ids.insert(keys::OVN_REMOTE.into(), settings.ovn_remote.clone());
    ids.insert(keys::ENCAP_TYPE.into(), settings.encap_type.as_str().into());
    ids.insert(keys::ENCAP_IP.into(), settings.encap_ip.to_string());
    ids.insert(
        keys::BRIDGE_DATAPATH_TYPE.into(),
        settings.datapath_type.as_str().into(),
    );
    ids
}

/// `br-int` as rovn wants it, starting from `current` so columns rovn does not own survive:
/// secure fail mode (no normal-switching before ovn-controller's flows), no in-band control.
pub fn desired_br_int(current: &Bridge, datapath: DatapathType) -> Bridge {
    let mut bridge = current.clone();
    bridge.name = INTEGRATION_BRIDGE.into();
    bridge.datapath_type = datapath.as_str().into();
    bridge.fail_mode = Some(BridgeFailMode::Secure);
    bridge
        .other_config
        .insert("disable-in-band".into(), "true".into());
    bridge
}

/// The operations that bring the chassis settings and `br-int` to the desired state; empty
/// on a converged node.
pub fn plan(snapshot: &Snapshot, settings: &ChassisSettings) -> Result<Vec<Operation>, OvsError> {
    let open_vswitch = snapshot
        .open_vswitch
        .as_ref()
        .ok_or_else(|| OvsError::State("the OVS database has no Open_vSwitch row".into()))?;
    let mut ops = Vec::new();
    let mut desired = open_vswitch.clone();
    desired.external_ids = desired_external_ids(&open_vswitch.external_ids, settings);
    ops.extend(model::update_elements(open_vswitch, &desired));
    match snapshot.bridge(INTEGRATION_BRIDGE) {
        Some(bridge) => {
            let want = desired_br_int(bridge, settings.datapath_type);
            ops.extend(model::update_elements(bridge, &want));
        }
        None => ops.extend(create_br_int(open_vswitch, settings.datapath_type)),
    }
    if let Some(tls) = &settings.tls {
        ops.extend(ssl_ops(snapshot, open_vswitch, tls));
    }
    Ok(ops)
}

/// The `SSL` row `Open_vSwitch` refers to, holding `tls`'s files: updated in place when it
/// exists, else created and referred to.
fn ssl_ops(snapshot: &Snapshot, open_vswitch: &OpenVSwitch, tls: &TlsConfig) -> Vec<Operation> {
    let path = |p: &std::path::Path| p.display().to_string();
    let current = open_vswitch.ssl.and_then(|uuid| snapshot.ssl.get(&uuid));
    let base = current.cloned().unwrap_or_default();
    let want = Ssl {
        private_key: path(&tls.private_key),
        certificate: path(&tls.certificate),
        ca_cert: path(&tls.ca_cert),
        ..base
    };
    match current {
        Some(current) => model::update_elements(current, &want),
        None => vec![
            Operation::insert(Ssl::TABLE, want.to_row()).with_uuid_name("ssl"),
            Operation::update(
                OpenVSwitch::TABLE,
                vec![rovn_ovsdb::Condition::uuid(open_vswitch.uuid)],
                [(OpenVSwitch::SSL.to_string(), Datum::named_uuid("ssl"))]
                    .into_iter()
                    .collect(),
            ),
        ],
    }
}

/// A new `br-int` with its local internal port, as `ovs-vsctl add-br` makes it.
fn create_br_int(open_vswitch: &OpenVSwitch, datapath: DatapathType) -> Vec<Operation> {
    let mut iface: Row = Row::new();
    iface.insert(Interface::NAME.into(), Datum::atom(INTEGRATION_BRIDGE));
    iface.insert(Interface::TYPE.into(), Datum::atom("internal"));
    let mut port: Row = Row::new();
    port.insert(Port::NAME.into(), Datum::atom(INTEGRATION_BRIDGE));
    port.insert(Port::INTERFACES.into(), Datum::named_uuid("brint_iface"));
    let bridge = desired_br_int(&Bridge::default(), datapath);
    let mut bridge_row = bridge.to_row();
    bridge_row.insert(Bridge::PORTS.into(), Datum::named_uuid("brint_port"));
    vec![
        Operation::insert(Interface::TABLE, iface).with_uuid_name("brint_iface"),
        Operation::insert(Port::TABLE, port).with_uuid_name("brint_port"),
        Operation::insert(Bridge::TABLE, bridge_row).with_uuid_name("brint"),
        Operation::mutate(
            OpenVSwitch::TABLE,
            vec![rovn_ovsdb::Condition::uuid(open_vswitch.uuid)],
            vec![Mutation::insert(
                OpenVSwitch::BRIDGES,
                Datum::named_uuid("brint"),
            )],
        ),
    ]
}

/// Writes the chassis settings and `br-int` if they differ, retrying once on a conflict with
/// another writer (ovn-controller also creates `br-int`). Returns the `system-id` and how many
/// operations were sent (0 on a converged node).
pub async fn apply(ovs: &Ovs, settings: &ChassisSettings) -> Result<(String, usize), OvsError> {
    let mut last_error = None;
    for _ in 0..3 {
        let snapshot = ovs.snapshot()?;
        let ops = plan(&snapshot, settings)?;
        let id = snapshot
            .open_vswitch
            .as_ref()
            .map(|o| system_id(&o.external_ids, settings))
            .unwrap_or_else(|| settings.default_system_id.clone());
        match ovs
            .transact(&ops, "writing the chassis settings and br-int")
            .await
        {
            Ok(_) => return Ok((id, ops.len())),
            Err(e) => {
                tracing::warn!(error = %e, "chassis settings write failed; retrying");
                last_error = Some(e);
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        }
    }
    Err(last_error.unwrap_or_else(|| OvsError::State("chassis settings not written".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ChassisSettings {
        ChassisSettings {
            default_system_id: "node1".into(),
            ovn_remote: "tcp:172.30.0.1:6642".into(),
            encap_type: EncapType::Vxlan,
            encap_ip: Ipv4Addr::new(172, 30, 0, 11),
            datapath_type: DatapathType::Netdev,
            tls: None,
        }
    }

    #[test]
    fn existing_system_id_is_kept_and_foreign_keys_survive() {
        let current = BTreeMap::from([
            ("system-id".to_string(), "chassis-7".to_string()),
            ("hostname".to_string(), "h".to_string()),
        ]);
        let ids = desired_external_ids(&current, &settings());
        assert_eq!(ids["system-id"], "chassis-7");
        assert_eq!(ids["hostname"], "h");
        assert_eq!(ids["ovn-encap-type"], "vxlan");
        assert_eq!(ids["ovn-encap-ip"], "172.30.0.11");
        assert_eq!(ids["ovn-bridge-datapath-type"], "netdev");
    }

    #[test]
    fn empty_system_id_falls_back_to_the_node_name() {
        let current = BTreeMap::from([("system-id".to_string(), String::new())]);
        assert_eq!(system_id(&current, &settings()), "node1");
    }

    /// A node whose Open_vSwitch row and `br-int` are as [`settings`] wants them.
    fn converged_node() -> Snapshot {
        let ovs = OpenVSwitch {
            uuid: rovn_ovsdb::Uuid::from_u128(1),
            external_ids: desired_external_ids(&BTreeMap::new(), &settings()),
            ..Default::default()
        };
        let bridge = desired_br_int(
            &Bridge {
                uuid: rovn_ovsdb::Uuid::from_u128(2),
                ..Default::default()
            },
            DatapathType::Netdev,
        );
        Snapshot {
            open_vswitch: Some(ovs),
            bridges: vec![bridge],
            ..Default::default()
        }
    }

    #[test]
    fn ssl_files_are_written_once_and_kept_in_place() {
        let tls = TlsConfig {
            private_key: "/pki/node-privkey.pem".into(),
            certificate: "/pki/node-cert.pem".into(),
            ca_cert: "/pki/cacert.pem".into(),
        };
        let with_tls = ChassisSettings {
            tls: Some(tls),
            ..settings()
        };
        let without_ssl = converged_node();
        let ops = plan(&without_ssl, &with_tls).unwrap_or_default();
        assert_eq!(ops.len(), 2, "insert the SSL row and refer to it: {ops:?}");
        let ssl = Ssl {
            uuid: rovn_ovsdb::Uuid::from_u128(3),
            private_key: "/pki/node-privkey.pem".into(),
            certificate: "/pki/node-cert.pem".into(),
            ca_cert: "/pki/cacert.pem".into(),
            ..Default::default()
        };
        let mut converged = without_ssl.clone();
        if let Some(ovs) = converged.open_vswitch.as_mut() {
            ovs.ssl = Some(ssl.uuid);
        }
        converged.ssl = BTreeMap::from([(ssl.uuid, ssl.clone())]);
        assert!(plan(&converged, &with_tls).unwrap_or_default().is_empty());
        let mut stale = converged.clone();
        stale.ssl.insert(
            ssl.uuid,
            Ssl {
                ca_cert: "/old/cacert.pem".into(),
                ..ssl
            },
        );
        assert_eq!(
            plan(&stale, &with_tls).unwrap_or_default().len(),
            1,
            "updated in place"
        );
        assert!(
            plan(&stale, &settings()).unwrap_or_default().is_empty(),
            "without TLS settings an SSL row is left alone"
        );
    }

    #[test]
    fn converged_node_needs_no_operation_and_missing_br_int_is_created() {
        let converged = converged_node();
        assert!(plan(&converged, &settings()).unwrap().is_empty());
        let bare = Snapshot {
            open_vswitch: converged.open_vswitch,
            ..Default::default()
        };
        let ops = plan(&bare, &settings()).unwrap();
        assert_eq!(ops.len(), 4, "{ops:?}");
    }
}
