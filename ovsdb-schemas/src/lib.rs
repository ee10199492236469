//! The OVSDB schemas rovn talks to, and typed row models generated from them.
//!
//! `OVN_Northbound` is what the controller writes, `Open_vSwitch` what the node agent writes,
//! `OVN_Southbound` what tests read to see ovn-northd's result. The schema files are Debian's
//! (see `schemas/README.md`); [`nb`], [`sb`] and [`vswitch`] are generated from them by
//! `rovn-modelgen` ([`modelgen`]) and committed, so a schema upgrade shows up as a reviewable
//! diff of Rust types.
//!
//! Writing a row: `rovn_ovsdb::model::insert` for new rows; for existing ones
//! `model::update` (changed columns replaced whole) or `model::update_elements` (sets and
//! maps changed element by element, keeping keys other writers such as ovn-controller add).
//!
//! ```
//! use rovn_ovsdb::model::{self, Model};
//! use rovn_ovsdb_schemas::nb::{LogicalSwitchPort, NbGlobal};
//!
//! let current = LogicalSwitchPort {
//!     name: "web-0.default".into(),
//!     type_: String::new(),
//!     ..Default::default()
//! };
//! let mut desired = current.clone();
//! desired.addresses.insert("0a:58:0a:10:00:05 10.16.0.5".into());
//! // Only the changed column goes into the update; converged rows need none.
//! let update = current.diff(&desired);
//! assert_eq!(update.keys().collect::<Vec<_>>(), [LogicalSwitchPort::ADDRESSES]);
//! assert!(model::update(&desired, &desired).is_none());
//! assert_eq!(NbGlobal::TABLE, "NB_Global");
//! ```

#[path = "generated/nb.rs"]
pub mod nb;
#[path = "generated/sb.rs"]
pub mod sb;
#[path = "generated/vswitch.rs"]
pub mod vswitch;

pub mod modelgen;
