//! The rendered rows, keyed by their stable identity (table + name).

use std::collections::{BTreeMap, BTreeSet};

use rovn_ovsdb_schemas::nb::{LogicalRouter, LogicalRouterPort, LogicalSwitch, LogicalSwitchPort};

/// A non-root row together with the name of the row whose `ports` hold it: OVN ports exist
/// only while their switch or router refers to them, so the parent is part of the identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Attached<M> {
    /// The parent switch's or router's name.
    pub parent: String,
    /// The row rovn wants (uuid nil, `ports`-like reference columns empty).
    pub row: M,
}

/// The NB rows rovn wants, by table and name. Only the columns rovn manages are meaningful;
/// the reconciler leaves every other column and every foreign map key alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    /// Logical routers by name.
    pub routers: BTreeMap<String, LogicalRouter>,
    /// Logical switches by name.
    pub switches: BTreeMap<String, LogicalSwitch>,
    /// Logical router ports by name, with their router.
    pub router_ports: BTreeMap<String, Attached<LogicalRouterPort>>,
    /// Logical switch ports by name, with their switch.
    pub switch_ports: BTreeMap<String, Attached<LogicalSwitchPort>>,
    /// Owners whose objects could not be rendered ([`DesiredState::problems`]): their
    /// existing rows are kept as they are instead of being collected as garbage, so a typo in
    /// one object never tears down its running network.
    pub held_owners: BTreeSet<String>,
    /// Why some objects were left out.
    pub problems: Vec<DesiredError>,
}

impl DesiredState {
    /// How many rows are desired, for logs and metrics.
    pub fn row_count(&self) -> usize {
        self.routers.len() + self.switches.len() + self.router_ports.len() + self.switch_ports.len()
    }
}

/// An object of the cluster snapshot that cannot become NB rows. Each names the object and
/// what a user would fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesiredError {
    /// A gateway outside its subnet, or a CIDR that cannot hold ports.
    #[error("{owner}: {reason}")]
    BadSubnet {
        /// The subnet's owner value (`Subnet/<name>` or `Cluster/ovn-cluster` for join).
        owner: String,
        /// What is wrong.
        reason: String,
    },
    /// Two objects want the same row name.
    #[error("{owner}: row {name} is already wanted by {other}")]
    Duplicate {
        /// The object left out.
        owner: String,
        /// The contested name.
        name: String,
        /// The object that keeps it.
        other: String,
    },
    /// A pod on a switch that is not desired.
    #[error("{owner}: logical switch {switch} does not exist")]
    UnknownSwitch {
        /// The pod's owner value.
        owner: String,
        /// The switch it names.
        switch: String,
    },
    /// An address outside the switch's CIDR.
    #[error("{owner}: address {ip} is outside {switch} ({cidr})")]
    OutsideSubnet {
        /// The pod's or node's owner value.
        owner: String,
        /// The address.
        ip: std::net::Ipv4Addr,
        /// The switch.
        switch: String,
        /// Its CIDR.
        cidr: ipnet::Ipv4Net,
    },
}
