//! Waiting for ovn-controller to mark an interface `ovn-installed`, driven by the replica's
//! change events (the OVSDB monitor), never by polling.

use std::time::Duration;

use rovn_ovsdb::{Change, Event, Model};
use rovn_ovsdb_schemas::vswitch::Interface;
use tokio::sync::broadcast;

use super::Ovs;
use super::pod_port::is_installed;

/// Why the wait ended without the mark.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstalledError {
    /// The deadline passed.
    #[error(
        "OVS interface {iface} was not marked ovn-installed within {timeout:?} (is ovn-controller running and connected to the Southbound DB? does the logical switch port exist?)"
    )]
    Timeout {
        /// The interface.
        iface: String,
        /// The wait.
        timeout: Duration,
    },
    /// The client stopped.
    #[error("the OVS database client stopped while waiting for {iface}")]
    Closed {
        /// The interface.
        iface: String,
    },
}

fn installed_now(ovs: &Ovs, name: &str) -> bool {
    ovs.client()
        .read(|replica| {
            replica.table(Interface::TABLE).is_some_and(|t| {
                t.iter().any(|(uuid, row)| {
                    Interface::from_row(*uuid, row)
                        .is_ok_and(|i| i.name == name && is_installed(&i))
                })
            })
        })
        .unwrap_or(false)
}

fn change_installs(change: &Change, name: &str) -> bool {
    let (uuid, row) = match change {
        Change::Insert { uuid, new, .. } | Change::Modify { uuid, new, .. } => (uuid, new),
        Change::Delete { .. } => return false,
    };
    change.table() == Interface::TABLE
        && Interface::from_row(*uuid, row).is_ok_and(|i| i.name == name && is_installed(&i))
}

/// Waits until interface `name` carries `external_ids:ovn-installed=true`. `events` must have
/// been subscribed before the port was written, so no change is missed.
pub async fn wait_installed(
    ovs: &Ovs,
    mut events: broadcast::Receiver<Event>,
    name: &str,
    timeout: Duration,
) -> Result<(), InstalledError> {
    let wait = async {
        if installed_now(ovs, name) {
            return Ok(());
        }
        loop {
            match events.recv().await {
                Ok(Event::Change(change)) if change_installs(&change, name) => return Ok(()),
                Ok(Event::Synced) if installed_now(ovs, name) => return Ok(()),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if installed_now(ovs, name) {
                        return Ok(());
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(InstalledError::Closed {
                        iface: name.to_string(),
                    });
                }
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or_else(|_| {
            Err(InstalledError::Timeout {
                iface: name.to_string(),
                timeout,
            })
        })
}
