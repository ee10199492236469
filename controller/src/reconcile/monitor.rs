//! What the NB client must replicate for the diff to see every row it compares.

use rovn_ovsdb::{IndexSpec, Model, TableMonitor};
use rovn_ovsdb_schemas::nb::{LogicalRouter, LogicalRouterPort, LogicalSwitch, LogicalSwitchPort};

use crate::names;

/// The NB tables the reconciler must see, all columns (add them to the client's monitor).
pub fn monitored_tables() -> Vec<TableMonitor> {
    [
        LogicalRouter::TABLE,
        LogicalRouterPort::TABLE,
        LogicalSwitch::TABLE,
        LogicalSwitchPort::TABLE,
    ]
    .into_iter()
    .map(TableMonitor::all)
    .collect()
}

/// Indexes on `external_ids:rovn.io/owner` of those tables, so the controller can find an
/// object's rows (e.g. to report a pod's port) without a scan.
pub fn owner_indexes() -> Vec<IndexSpec> {
    [
        LogicalRouter::TABLE,
        LogicalRouterPort::TABLE,
        LogicalSwitch::TABLE,
        LogicalSwitchPort::TABLE,
    ]
    .into_iter()
    .map(|t| IndexSpec::map_key(t, "external_ids", names::OWNER_KEY))
    .collect()
}
