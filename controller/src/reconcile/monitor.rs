//! What the NB client must replicate for the diff to see every row it compares.

use std::collections::BTreeSet;

use rovn_ovsdb::{IndexSpec, TableMonitor};

use super::current::{name_index, owner_index, parent_index};
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
                wanted.insert(spec.name_column);
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

/// The replica indexes the reconciler looks rows up by: `external_ids:rovn.io/owner` (an
/// object's rows, without a scan), `name` (a wanted row, or a parent or referenced row whose
/// owner a scoped diff is not looking at) and every parent column (the parent holding a child).
pub fn indexes() -> Vec<IndexSpec> {
    let specs = specs();
    let mut out = Vec::new();
    for spec in &specs {
        if spec.has_external_ids {
            out.push(owner_index(spec.table));
        }
        if spec.identity == Identity::Name {
            out.push(name_index(spec));
        }
        if let Some(parent) = spec.parent {
            out.push(parent_index(parent.table, parent.column));
        }
    }
    out
}
