//! The OVSDB schema files tests use.
//!
//! Servers are made from the *installed* schemas: they are what the installed `ovsdb-server`,
//! `ovn-northd` and `ovn-controller` speak. `rovn-ovsdb-schemas` generates its typed models
//! from the *vendored* copies under `ovsdb-schemas/schemas/`; its tests check the two agree.

/// The OVN Northbound schema shipped by Debian's `ovn-common`.
pub const NB: &str = "/usr/share/ovn/ovn-nb.ovsschema";
/// The OVN Southbound schema shipped by `ovn-common`.
pub const SB: &str = "/usr/share/ovn/ovn-sb.ovsschema";
/// The Open_vSwitch schema shipped by `openvswitch-common`.
pub const VSWITCH: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// The Northbound database's name.
pub const NB_DB: &str = "OVN_Northbound";
/// The Southbound database's name.
pub const SB_DB: &str = "OVN_Southbound";
/// The Open_vSwitch database's name.
pub const VSWITCH_DB: &str = "Open_vSwitch";

/// The vendored Northbound schema, `ovsdb-schemas/schemas/ovn-nb.ovsschema`.
pub const VENDORED_NB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../ovsdb-schemas/schemas/ovn-nb.ovsschema"
);
/// The vendored Southbound schema.
pub const VENDORED_SB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../ovsdb-schemas/schemas/ovn-sb.ovsschema"
);
/// The vendored Open_vSwitch schema.
pub const VENDORED_VSWITCH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../ovsdb-schemas/schemas/vswitch.ovsschema"
);

/// Each database: its name, installed schema and vendored schema.
pub const ALL: [(&str, &str, &str); 3] = [
    (NB_DB, NB, VENDORED_NB),
    (SB_DB, SB, VENDORED_SB),
    (VSWITCH_DB, VSWITCH, VENDORED_VSWITCH),
];
