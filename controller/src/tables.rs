//! The NB tables rovn writes: how each row is identified, where it lives, and which columns
//! are rovn's. Everything else about a row (other columns, other writers' map keys and
//! references) belongs to someone else and is never written.
//!
//! The renderers ([`crate::desired`]) build typed rows and the reconciler ([`crate::reconcile`])
//! reads only [`TableSpec`]s, so a new table is one `impl Managed` and one line in [`specs`].

use std::collections::BTreeMap;

use rovn_ovsdb::model::ToDatum;
use rovn_ovsdb::{Datum, Model};
use rovn_ovsdb_schemas::nb::{
    Acl, AddressSet, ChassisTemplateVar, LoadBalancer, LoadBalancerGroup, LogicalRouter,
    LogicalRouterPolicy, LogicalRouterPort, LogicalRouterStaticRoute, LogicalSwitch,
    LogicalSwitchPort, Meter, MeterBand, Nat, PortGroup,
};

/// How rovn owns one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// A scalar or small set rovn sets whole (`update`).
    Whole,
    /// A set rovn owns entirely, changed element by element (`mutate`), so a change to one
    /// element of a large set (an address set, a load balancer's VIPs) stays small.
    Elements,
    /// A map where rovn owns only its own keys: other writers' keys are never removed.
    OwnKeys,
    /// A map where rovn owns exactly these keys: one rovn stops wanting is removed, every
    /// other key is left to other writers. For options rovn sets only sometimes (a load
    /// balancer's `affinity_timeout`), which [`Ownership::OwnKeys`] would leave behind.
    Keys(&'static [&'static str]),
}

/// What identifies a row of a table, so the desired and the current row can be paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The `name` column.
    Name,
    /// `external_ids:rovn.io/owner` plus a stable `external_ids:rovn.io/id`: for tables whose
    /// rows have no name (ACL, NAT, router policies and static routes).
    OwnerId,
}

/// The column of a parent table that holds a table's rows: OVN keeps non-root rows only while
/// a parent refers to them, so the parent is part of where a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// The parent table.
    pub table: &'static str,
    /// Its column of references to the child rows.
    pub column: &'static str,
    /// The parent cannot exist without a child (`Meter.bands` holds at least one band): a
    /// new child of a new parent is inserted in the parent's own step, so both always land in
    /// one transaction.
    pub required: bool,
}

/// A table rovn writes, as the reconciler sees it.
pub trait Managed: Model {
    /// How rows are identified.
    const IDENTITY: Identity;
    /// Where rows live, for non-root tables.
    const PARENT: Option<Parent>;
    /// Reference columns rovn manages (column, referenced table). Their values are set through
    /// [`crate::desired::DesiredRow::refer`], by key, and only references to rovn's own rows are
    /// ever removed.
    const REFS: &'static [(&'static str, &'static str)] = &[];
    /// Whether the table has `external_ids`. A table without it cannot mark rows as rovn's:
    /// rovn then owns exactly the rows it names and never collects one as garbage.
    const HAS_EXTERNAL_IDS: bool = true;
    /// The column that names a row of an [`Identity::Name`] table: `name`, except where the
    /// schema names rows otherwise (a Chassis_Template_Var row by its `chassis`).
    const NAME_COLUMN: &'static str = "name";

    /// The row's name, for [`Identity::Name`] tables.
    fn name(&self) -> Option<&str>;

    /// The row's `external_ids` (empty for tables without the column).
    fn external_ids(&self) -> &BTreeMap<String, String>;

    /// rovn's plain columns with their desired values; `external_ids`, reference and parent
    /// columns are handled by the reconciler itself.
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)>;
}

/// A table as the reconciler sees it: [`Managed`] without the row type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// The table.
    pub table: &'static str,
    /// How its rows are identified.
    pub identity: Identity,
    /// Where its rows live.
    pub parent: Option<Parent>,
    /// Its managed reference columns.
    pub refs: &'static [(&'static str, &'static str)],
    /// Whether it has `external_ids`.
    pub has_external_ids: bool,
    /// The column naming its rows ([`Managed::NAME_COLUMN`]).
    pub name_column: &'static str,
    /// Its managed plain columns.
    pub columns: Vec<&'static str>,
}

impl TableSpec {
    /// The spec of `M`'s table.
    pub fn of<M: Managed>() -> TableSpec {
        TableSpec {
            table: M::TABLE,
            identity: M::IDENTITY,
            parent: M::PARENT,
            refs: M::REFS,
            has_external_ids: M::HAS_EXTERNAL_IDS,
            name_column: M::NAME_COLUMN,
            columns: M::default()
                .managed()
                .into_iter()
                .map(|(c, _, _)| c)
                .collect(),
        }
    }

    /// The tables this one's rows refer to: its parent table (a child is inserted under an
    /// existing parent) and its reference columns' tables.
    pub fn depends_on(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.parent
            .map(|p| p.table)
            .into_iter()
            .chain(self.refs.iter().map(|(_, t)| *t))
    }
}

/// Every table rovn writes.
pub fn specs() -> Vec<TableSpec> {
    vec![
        TableSpec::of::<LogicalRouter>(),
        TableSpec::of::<LogicalRouterPort>(),
        TableSpec::of::<LogicalRouterPolicy>(),
        TableSpec::of::<LogicalRouterStaticRoute>(),
        TableSpec::of::<Nat>(),
        TableSpec::of::<LogicalSwitch>(),
        TableSpec::of::<LogicalSwitchPort>(),
        TableSpec::of::<LoadBalancer>(),
        TableSpec::of::<LoadBalancerGroup>(),
        TableSpec::of::<ChassisTemplateVar>(),
        TableSpec::of::<PortGroup>(),
        TableSpec::of::<AddressSet>(),
        TableSpec::of::<Acl>(),
        TableSpec::of::<Meter>(),
        TableSpec::of::<MeterBand>(),
    ]
}

fn column(
    name: &'static str,
    value: &impl ToDatum,
    ownership: Ownership,
) -> (&'static str, Datum, Ownership) {
    (name, value.to_datum(), ownership)
}

/// The identity half of a [`Managed`] impl for a table with `external_ids`: by `name`
/// ([`Identity::Name`]) or by owner and id ([`Identity::OwnerId`]).
macro_rules! identity {
    (Name) => {
        const IDENTITY: Identity = Identity::Name;
        fn name(&self) -> Option<&str> {
            Some(&self.name)
        }
        fn external_ids(&self) -> &BTreeMap<String, String> {
            &self.external_ids
        }
    };
    (OwnerId) => {
        const IDENTITY: Identity = Identity::OwnerId;
        fn name(&self) -> Option<&str> {
            None
        }
        fn external_ids(&self) -> &BTreeMap<String, String> {
            &self.external_ids
        }
    };
}

const LR_PARENT: Option<Parent> = Some(Parent {
    table: LogicalRouter::TABLE,
    column: LogicalRouter::PORTS,
    required: false,
});

impl Managed for LogicalRouter {
    const PARENT: Option<Parent> = None;
    const REFS: &'static [(&'static str, &'static str)] =
        &[(LogicalRouter::LOAD_BALANCER_GROUP, LoadBalancerGroup::TABLE)];
    identity!(Name);
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        vec![column(Self::OPTIONS, &self.options, Ownership::OwnKeys)]
    }
}

impl Managed for LogicalRouterPort {
    const PARENT: Option<Parent> = LR_PARENT;
    identity!(Name);
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        vec![
            column(Self::MAC, &self.mac, Ownership::Whole),
            column(Self::NETWORKS, &self.networks, Ownership::Elements),
        ]
    }
}

impl Managed for LogicalRouterPolicy {
    const PARENT: Option<Parent> = Some(Parent {
        table: LogicalRouter::TABLE,
        column: LogicalRouter::POLICIES,
        required: false,
    });
    identity!(OwnerId);
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        vec![
            column(Self::PRIORITY, &self.priority, Ownership::Whole),
            column(Self::MATCH, &self.match_, Ownership::Whole),
            column(Self::ACTION, &self.action, Ownership::Whole),
            column(Self::NEXTHOPS, &self.nexthops, Ownership::Whole),
            column(Self::OPTIONS, &self.options, Ownership::OwnKeys),
        ]
    }
}

impl Managed for LogicalRouterStaticRoute {
    const PARENT: Option<Parent> = Some(Parent {
        table: LogicalRouter::TABLE,
        column: LogicalRouter::STATIC_ROUTES,
        required: false,
    });
    identity!(OwnerId);
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        vec![
            column(Self::IP_PREFIX, &self.ip_prefix, Ownership::Whole),
            column(Self::NEXTHOP, &self.nexthop, Ownership::Whole),
            column(Self::POLICY, &self.policy, Ownership::Whole),
            column(Self::OUTPUT_PORT, &self.output_port, Ownership::Whole),
            column(Self::ROUTE_TABLE, &self.route_table, Ownership::Whole),
            column(Self::OPTIONS, &self.options, Ownership::OwnKeys),
        ]
    }
}

impl Managed for Nat {
    const PARENT: Option<Parent> = Some(Parent {
        table: LogicalRouter::TABLE,
        column: LogicalRouter::NAT,
        required: false,
    });
    identity!(OwnerId);
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        vec![
            column(Self::TYPE, &self.type_, Ownership::Whole),
            column(Self::EXTERNAL_IP, &self.external_ip, Ownership::Whole),
            column(Self::LOGICAL_IP, &self.logical_ip, Ownership::Whole),
            column(Self::LOGICAL_PORT, &self.logical_port, Ownership::Whole),
            column(Self::EXTERNAL_MAC, &self.external_mac, Ownership::Whole),
            column(
                Self::EXTERNAL_PORT_RANGE,
                &self.external_port_range,
                Ownership::Whole,
            ),
            column(Self::OPTIONS, &self.options, Ownership::OwnKeys),
        ]
    }
}

impl Managed for LogicalSwitch {
    const PARENT: Option<Parent> = None;
    const REFS: &'static [(&'static str, &'static str)] =
        &[(LogicalSwitch::LOAD_BALANCER_GROUP, LoadBalancerGroup::TABLE)];
    identity!(Name);
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        vec![column(
            Self::OTHER_CONFIG,
            &self.other_config,
            Ownership::OwnKeys,
        )]
    }
}

impl Managed for LogicalSwitchPort {
    const PARENT: Option<Parent> = Some(Parent {
        table: LogicalSwitch::TABLE,
        column: LogicalSwitch::PORTS,
        required: false,
    });
    identity!(Name);
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        vec![
            column(Self::TYPE, &self.type_, Ownership::Whole),
            column(Self::ADDRESSES, &self.addresses, Ownership::Elements),
            column(
                Self::PORT_SECURITY,
                &self.port_security,
                Ownership::Elements,
            ),
            column(Self::OPTIONS, &self.options, Ownership::OwnKeys),
        ]
    }
}

impl Managed for LoadBalancer {
    const PARENT: Option<Parent> = None;
    identity!(Name);
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        vec![
            column(Self::PROTOCOL, &self.protocol, Ownership::Whole),
            column(Self::VIPS, &self.vips, Ownership::Elements),
            column(
                Self::SELECTION_FIELDS,
                &self.selection_fields,
                Ownership::Whole,
            ),
            column(Self::OPTIONS, &self.options, Ownership::Keys(LB_OPTIONS)),
        ]
    }
}

/// The load balancer options rovn writes (`man ovn-nb`, Load_Balancer): set or removed with
/// the Service, while options other writers add stay.
const LB_OPTIONS: &[&str] = &["reject", "affinity_timeout", "template", "address-family"];

/// One row per chassis (named by its `chassis`), holding the values its template load
/// balancers take there. rovn writes the whole `variables` map of the rows it owns.
impl Managed for ChassisTemplateVar {
    const PARENT: Option<Parent> = None;
    const IDENTITY: Identity = Identity::Name;
    const NAME_COLUMN: &'static str = ChassisTemplateVar::CHASSIS;
    fn name(&self) -> Option<&str> {
        Some(&self.chassis)
    }
    fn external_ids(&self) -> &BTreeMap<String, String> {
        &self.external_ids
    }
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        vec![column(Self::VARIABLES, &self.variables, Ownership::Whole)]
    }
}

static NO_EXTERNAL_IDS: BTreeMap<String, String> = BTreeMap::new();

impl Managed for LoadBalancerGroup {
    const PARENT: Option<Parent> = None;
    const REFS: &'static [(&'static str, &'static str)] =
        &[(LoadBalancerGroup::LOAD_BALANCER, LoadBalancer::TABLE)];
    const HAS_EXTERNAL_IDS: bool = false;
    const IDENTITY: Identity = Identity::Name;
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn external_ids(&self) -> &BTreeMap<String, String> {
        &NO_EXTERNAL_IDS
    }
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        Vec::new()
    }
}

impl Managed for PortGroup {
    const PARENT: Option<Parent> = None;
    const REFS: &'static [(&'static str, &'static str)] =
        &[(PortGroup::PORTS, LogicalSwitchPort::TABLE)];
    identity!(Name);
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        Vec::new()
    }
}

impl Managed for AddressSet {
    const PARENT: Option<Parent> = None;
    identity!(Name);
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        vec![column(
            Self::ADDRESSES,
            &self.addresses,
            Ownership::Elements,
        )]
    }
}

impl Managed for Acl {
    const PARENT: Option<Parent> = Some(Parent {
        table: PortGroup::TABLE,
        column: PortGroup::ACLS,
        required: false,
    });
    identity!(OwnerId);
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        vec![
            column(Self::NAME, &self.name, Ownership::Whole),
            column(Self::DIRECTION, &self.direction, Ownership::Whole),
            column(Self::PRIORITY, &self.priority, Ownership::Whole),
            column(Self::MATCH, &self.match_, Ownership::Whole),
            column(Self::ACTION, &self.action, Ownership::Whole),
            column(Self::LOG, &self.log, Ownership::Whole),
            column(Self::SEVERITY, &self.severity, Ownership::Whole),
            column(Self::METER, &self.meter, Ownership::Whole),
            column(Self::OPTIONS, &self.options, Ownership::OwnKeys),
        ]
    }
}

impl Managed for Meter {
    const PARENT: Option<Parent> = None;
    identity!(Name);
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        vec![
            column(Self::UNIT, &self.unit, Ownership::Whole),
            column(Self::FAIR, &self.fair, Ownership::Whole),
        ]
    }
}

impl Managed for MeterBand {
    const PARENT: Option<Parent> = Some(Parent {
        table: Meter::TABLE,
        column: Meter::BANDS,
        required: true,
    });
    identity!(OwnerId);
    fn managed(&self) -> Vec<(&'static str, Datum, Ownership)> {
        vec![
            column(Self::ACTION, &self.action, Ownership::Whole),
            column(Self::RATE, &self.rate, Ownership::Whole),
            column(Self::BURST_SIZE, &self.burst_size, Ownership::Whole),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dependency_is_a_managed_table() {
        let specs = specs();
        for spec in &specs {
            for table in spec.depends_on() {
                assert!(
                    specs.iter().any(|s| s.table == table),
                    "{} depends on unmanaged {table}",
                    spec.table
                );
            }
        }
    }
}
