//! What the NB client must replicate for the diff to see every row it compares.

use std::collections::BTreeSet;

use rovn_api::names;
use rovn_ovsdb::{IndexSpec, Model, TableMonitor};
use rovn_ovsdb_schemas::nb::{LogicalRouter, LogicalRouterPort, LogicalSwitch, LogicalSwitchPort};

use super::managed::Managed;

/// The NB tables the reconciler must see, each with only the columns it reads: the name, the
/// managed columns (`external_ids` among them) and, for switches and routers, `ports`. Columns
/// rovn never compares (northd's `up`, `dynamic_addresses`, …) stay out of the replica, which at
/// 10,000 pods is most of the controller's memory.
pub fn monitored_tables() -> Vec<TableMonitor> {
    vec![
        columns::<LogicalRouter>(&[LogicalRouter::PORTS]),
        columns::<LogicalRouterPort>(&[]),
        columns::<LogicalSwitch>(&[LogicalSwitch::PORTS]),
        columns::<LogicalSwitchPort>(&[]),
    ]
}

/// `M`'s table with `name`, `M`'s managed columns and `extra`. The managed columns are read off
/// [`Managed::managed`] itself, so a column added there is replicated without a second list.
fn columns<M: Managed + Default>(extra: &[&'static str]) -> TableMonitor {
    let mut wanted: BTreeSet<&'static str> = M::default()
        .managed()
        .into_iter()
        .map(|(column, _, _)| column)
        .collect();
    wanted.insert("name");
    wanted.extend(extra);
    TableMonitor::all(M::TABLE).with_columns(wanted)
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
