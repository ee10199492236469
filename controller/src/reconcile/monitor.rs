//! What the NB client must replicate for the diff to see every row it compares.

use std::collections::BTreeSet;

use rovn_ovsdb::{IndexSpec, TableMonitor};

use crate::names;
use crate::tables::{Identity, specs};

/// The NB tables the reconciler writes, each with only the columns it reads: the name, the
/// managed columns and references, `external_ids`, and the parent columns that hold child
/// rows. Columns rovn never compares (northd's `up`, `dynamic_addresses`, …) stay out of the
/// replica, which at 10,000 pods is most of the controller's memory.
pub fn monitored_tables() -> Vec<TableMonitor> {
    let specs = specs();
    specs
        .iter()
        .map(|spec| {
            let mut wanted: BTreeSet<&'static str> = spec.columns.iter().copied().collect();
            wanted.extend(spec.refs.iter().map(|(column, _)| *column));
            if spec.identity == Identity::Name {
                wanted.insert("name");
            }
            if spec.has_external_ids {
                wanted.insert("external_ids");
            }
            wanted.extend(
                specs
                    .iter()
                    .filter_map(|child| child.parent)
                    .filter(|p| p.table == spec.table)
                    .map(|p| p.column),
            );
            TableMonitor::all(spec.table).with_columns(wanted)
        })
        .collect()
}

/// Indexes on `external_ids:rovn.io/owner` of those tables, so the controller and tools can
/// find an object's rows without a scan.
pub fn owner_indexes() -> Vec<IndexSpec> {
    specs()
        .into_iter()
        .filter(|spec| spec.has_external_ids)
        .map(|spec| IndexSpec::map_key(spec.table, "external_ids", names::OWNER_KEY))
        .collect()
}
