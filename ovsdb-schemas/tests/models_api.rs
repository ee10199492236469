//! The generated models' API: names, enums, decoding errors, diffs, schema metadata.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use rovn_ovsdb::model::{DatabaseModel, DatumError, Model, ModelError};
use rovn_ovsdb::{Atom, DatabaseSchema, Datum, Row, Uuid};
use rovn_ovsdb_schemas::nb::{self, AclAction, LogicalSwitchPort};
use rovn_ovsdb_schemas::{sb, vswitch};

#[test]
fn enums_convert_to_and_from_their_database_strings() {
    assert_eq!(AclAction::AllowRelated.as_str(), "allow-related");
    assert_eq!(
        "allow-related".parse::<AclAction>(),
        Ok(AclAction::AllowRelated)
    );
    assert_eq!(AclAction::AllowStateless.to_string(), "allow-stateless");
    assert_eq!(nb::NatType::DnatAndSnat.as_str(), "dnat_and_snat");
    assert_eq!(vswitch::BridgeProtocols::OpenFlow13.as_str(), "OpenFlow13");
    assert_eq!(
        vswitch::PortVlanMode::NativeTagged.as_str(),
        "native-tagged"
    );
    assert_eq!(sb::EncapType::Geneve.as_str(), "geneve");
    for action in AclAction::ALL {
        assert_eq!(action.as_str().parse::<AclAction>(), Ok(*action));
    }
    let err = "permit".parse::<AclAction>().err();
    assert!(
        err.as_ref().is_some_and(|e| e.to_string()
            == "\"permit\" is not a valid AclAction (one of allow, allow-related, allow-stateless, drop, reject)"),
        "{err:?}"
    );
}

#[test]
fn every_enum_value_of_every_schema_parses_back() {
    for schema in [nb::schema(), sb::schema(), vswitch::schema()] {
        for (table, ts) in &schema.tables {
            for column in ts.columns.values() {
                let bases = [Some(&column.ty.key), column.ty.value.as_ref()];
                for base in bases.into_iter().flatten() {
                    let Some(values) = &base.enumeration else {
                        continue;
                    };
                    // A row holding each value must decode: the generated FromStr knows it.
                    for value in values {
                        let datum = if column.ty.is_map() {
                            map_holding(&column.ty, value)
                        } else {
                            Datum::Set(BTreeSet::from([value.clone()]))
                        };
                        let row = Row::from([(column.name.clone(), datum)]);
                        let decoded = decode(&schema.name, table, &row);
                        assert!(
                            decoded.is_ok(),
                            "{table}.{} = {value}: {decoded:?}",
                            column.name
                        );
                    }
                }
            }
        }
    }
}

/// A one-pair map with `value` as key or value, the other side a valid atom.
fn map_holding(ty: &rovn_ovsdb::ColumnType, value: &Atom) -> Datum {
    let key_is_enum = ty
        .key
        .enumeration
        .as_ref()
        .is_some_and(|e| e.contains(value));
    let filler = |base: &rovn_ovsdb::BaseType| match base.atomic {
        rovn_ovsdb::AtomicType::Integer => Atom::Integer(base.min_integer.unwrap_or(0).max(0)),
        rovn_ovsdb::AtomicType::Real => Atom::Real(0.0),
        rovn_ovsdb::AtomicType::Boolean => Atom::Boolean(true),
        rovn_ovsdb::AtomicType::String => Atom::String("x".into()),
        rovn_ovsdb::AtomicType::Uuid => Atom::Uuid(Uuid::from_u128(1)),
    };
    let pair = match (&ty.value, key_is_enum) {
        (Some(v), true) => (value.clone(), filler(v)),
        _ => (filler(&ty.key), value.clone()),
    };
    Datum::Map(BTreeMap::from([pair]))
}

fn decode(db: &str, table: &str, row: &Row) -> Result<(), ModelError> {
    let uuid = Uuid::from_u128(7);
    match db {
        "OVN_Northbound" => nb::AnyModel::from_row(table, uuid, row).map(drop),
        "OVN_Southbound" => sb::AnyModel::from_row(table, uuid, row).map(drop),
        _ => vswitch::AnyModel::from_row(table, uuid, row).map(drop),
    }
}

#[test]
fn names_are_rust_safe_and_keep_the_schema_names() {
    assert_eq!(LogicalSwitchPort::TABLE, "Logical_Switch_Port");
    assert_eq!(LogicalSwitchPort::TYPE, "type");
    assert_eq!(nb::Acl::TABLE, "ACL");
    assert_eq!(nb::Acl::MATCH, "match");
    assert_eq!(vswitch::OpenVSwitch::TABLE, "Open_vSwitch");
    assert_eq!(vswitch::SFlow::TABLE, "sFlow");
    assert_eq!(sb::Dhcpv6Options::TABLE, "DHCPv6_Options");
    let lsp = LogicalSwitchPort {
        type_: "router".into(),
        ..Default::default()
    };
    assert_eq!(lsp.to_row().get("type"), Some(&Datum::atom("router")));
}

#[test]
fn columns_constants_and_tables_match_the_schemas() {
    fn check<M: DatabaseModel>() {
        let schema = M::schema();
        assert!(
            M::TABLES
                .iter()
                .copied()
                .eq(schema.tables.keys().map(String::as_str))
        );
        for (table, ts) in &schema.tables {
            let empty = M::from_row(table, Uuid::nil(), &Row::new())
                .unwrap_or_else(|e| panic!("{table}: {e}"));
            let columns: Vec<String> = empty.to_row().into_keys().collect();
            let expected: Vec<String> = ts.columns.keys().cloned().collect();
            assert_eq!(columns, expected, "{table}");
        }
    }
    check::<nb::AnyModel>();
    check::<sb::AnyModel>();
    check::<vswitch::AnyModel>();
    let schema = nb::schema();
    let from_schema: Vec<&str> = schema.tables["Logical_Switch_Port"]
        .columns
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(LogicalSwitchPort::COLUMNS, from_schema.as_slice());
    assert_eq!(LogicalSwitchPort::INDEXES, &[&["name"]]);
    assert_eq!(sb::Encap::INDEXES, &[&["type", "ip"]]);
    assert!(nb::Acl::INDEXES.is_empty());
}

#[test]
fn embedded_schemas_parse_and_carry_their_versions() {
    assert_eq!(nb::schema().name, nb::DATABASE);
    assert_eq!(nb::schema().version, nb::VERSION);
    assert_eq!(sb::schema().version, sb::VERSION);
    assert_eq!(vswitch::schema().version, vswitch::VERSION);
    assert_eq!(nb::DATABASE, "OVN_Northbound");
    assert_eq!(sb::DATABASE, "OVN_Southbound");
    assert_eq!(vswitch::DATABASE, "Open_vSwitch");
}

#[test]
fn the_committed_schemas_are_the_installed_ones() {
    let committed = [nb::SCHEMA, sb::SCHEMA, vswitch::SCHEMA];
    for ((_, installed, _), committed) in rovn_testkit::schema::ALL.into_iter().zip(committed) {
        let Ok(text) = std::fs::read_to_string(installed) else {
            panic!("{installed} is missing: run scripts/setup.sh");
        };
        let installed_schema = DatabaseSchema::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        let committed_schema =
            DatabaseSchema::from_str(committed).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            installed_schema.version, committed_schema.version,
            "{installed} has another version than the committed copy: copy it into \
             ovsdb-schemas/schemas/, update schemas/README.md and regenerate"
        );
    }
}

#[test]
fn a_malformed_row_names_its_table_and_column() {
    let uuid = Uuid::from_u128(1);
    let cases = [
        (
            "name",
            Datum::atom(5),
            "Logical_Switch_Port.name: expected string, got 5",
        ),
        (
            "tag",
            Datum::set([1i64, 2]),
            "Logical_Switch_Port.tag: expected at most 1 atom(s), got 2",
        ),
        (
            "options",
            Datum::set(["a"]),
            "Logical_Switch_Port.options: expected a map, got \"a\"",
        ),
        (
            "enabled",
            Datum::atom("yes"),
            "Logical_Switch_Port.enabled: expected boolean, got \"yes\"",
        ),
        (
            "ha_chassis_group",
            Datum::named_uuid("hcg"),
            "Logical_Switch_Port.ha_chassis_group: expected uuid, got [\"named-uuid\",\"hcg\"]",
        ),
    ];
    for (column, datum, message) in cases {
        let row = Row::from([(column.to_string(), datum)]);
        let err = LogicalSwitchPort::from_row(uuid, &row).err();
        assert_eq!(err.map(|e| e.to_string()).as_deref(), Some(message));
    }
    let row = Row::from([("action".to_string(), Datum::atom("permit"))]);
    assert!(matches!(
        nb::Acl::from_row(uuid, &row),
        Err(ModelError::Column { ref table, ref column, reason: DatumError::Enum(_) })
            if table == "ACL" && column == "action"
    ));
    assert!(matches!(
        nb::AnyModel::from_row("No_Such_Table", uuid, &Row::new()),
        Err(ModelError::UnknownTable { .. })
    ));
}

#[test]
fn diff_holds_only_the_changed_columns_with_their_desired_values() {
    let current = LogicalSwitchPort {
        uuid: Uuid::from_u128(3),
        name: "pod.ns".into(),
        addresses: BTreeSet::from(["0a:58:0a:10:00:05 10.16.0.5".to_string()]),
        tag: Some(10),
        external_ids: BTreeMap::from([("rovn.io/vendor".into(), "rovn".into())]),
        ..Default::default()
    };
    assert!(current.diff(&current.clone()).is_empty());
    let mut desired = current.clone();
    desired.tag = None;
    desired
        .external_ids
        .insert("rovn.io/owner".into(), "Pod/ns/pod".into());
    let update = current.diff(&desired);
    assert_eq!(
        update,
        Row::from([
            (
                "external_ids".to_string(),
                Datum::map([("rovn.io/owner", "Pod/ns/pod"), ("rovn.io/vendor", "rovn")])
            ),
            ("tag".to_string(), Datum::Set(BTreeSet::new())),
        ])
    );
}

#[test]
fn a_missing_column_decodes_as_its_empty_value() {
    let row = Row::from([("name".to_string(), Datum::atom("sw0"))]);
    let ls = nb::LogicalSwitch::from_row(Uuid::from_u128(9), &row);
    assert_eq!(
        ls,
        Ok(nb::LogicalSwitch {
            uuid: Uuid::from_u128(9),
            name: "sw0".into(),
            ..Default::default()
        })
    );
}
