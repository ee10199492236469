//! `kubectl rovn rows`: every NB row a Kubernetes object owns (`external_ids:rovn.io/owner`),
//! in every table rovn writes, with the columns that say what the row does. Pure over the
//! replica's raw rows, so a table rovn starts writing later is listed without a change here.

use std::collections::BTreeMap;
use std::fmt::Write;

use rovn_api::names::OWNER_KEY;
use rovn_api::{Owner, OwnerKind};
use rovn_ovsdb::{Atom, Datum, Row, Uuid};

use crate::ovn_io::{Contents, ROVN_NB_TABLES};

/// Why an owner argument is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?}: expected <Kind>/<namespace>/<name> (Pod, Service, NetworkPolicy) or <Kind>/<name> (Node, Subnet, Namespace, Cluster)"
)]
pub struct OwnerArgError(pub String);

/// Parses `pod/ns/name`, `Pod/ns/name`, `subnet/ovn-default`, …: the kind in any case, as
/// kubectl takes kinds.
pub fn parse_owner(text: &str) -> Result<Owner, OwnerArgError> {
    let (kind, rest) = text
        .split_once('/')
        .ok_or_else(|| OwnerArgError(text.to_string()))?;
    let kind = match kind.to_ascii_lowercase().as_str() {
        "po" | "pods" => OwnerKind::Pod,
        "svc" | "services" => OwnerKind::Service,
        "no" | "nodes" => OwnerKind::Node,
        "subnets" => OwnerKind::Subnet,
        "ns" | "namespaces" => OwnerKind::Namespace,
        "netpol" | "networkpolicies" => OwnerKind::NetworkPolicy,
        lower => OwnerKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(lower))
            .ok_or_else(|| OwnerArgError(text.to_string()))?,
    };
    format!("{kind}/{rest}")
        .parse()
        .map_err(|_| OwnerArgError(text.to_string()))
}

/// The columns worth printing per table (besides `name` and `external_ids`).
fn columns_of(table: &str) -> &'static [&'static str] {
    match table {
        "Logical_Switch" => &["other_config", "load_balancer_group"],
        "Logical_Switch_Port" => &["type", "addresses", "port_security", "options", "up"],
        "Logical_Router" => &["options", "load_balancer_group"],
        "Logical_Router_Port" => &["mac", "networks"],
        "Logical_Router_Policy" => &["priority", "match", "action", "nexthops"],
        "Logical_Router_Static_Route" => &["ip_prefix", "nexthop", "policy"],
        "NAT" => &["type", "external_ip", "logical_ip"],
        "Load_Balancer" => &["protocol", "vips", "options", "selection_fields"],
        "Load_Balancer_Group" => &["load_balancer"],
        "Port_Group" => &["ports", "acls"],
        "Address_Set" => &["addresses"],
        "ACL" => &["direction", "priority", "match", "action", "name"],
        "Meter" => &["unit", "bands"],
        "Meter_Band" => &["action", "rate"],
        _ => &[],
    }
}

/// One row an owner has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRow {
    /// Its table.
    pub table: String,
    /// Its UUID.
    pub uuid: Uuid,
    /// Its name, for tables with one.
    pub name: Option<String>,
    /// The columns that matter, rendered.
    pub columns: Vec<(String, String)>,
}

fn owner_value(row: &Row) -> Option<&str> {
    row.get("external_ids")
        .and_then(Datum::as_map)
        .and_then(|m| m.get(&Atom::String(OWNER_KEY.into())))
        .and_then(Atom::as_str)
}

/// Every row of `contents` whose `rovn.io/owner` is `owner`, tables in rovn's order.
pub fn owned_rows(contents: &Contents, owner: &Owner) -> Vec<OwnedRow> {
    let owner = owner.to_string();
    let mut tables: Vec<&String> = contents.keys().collect();
    tables.sort_by_key(|t| {
        ROVN_NB_TABLES
            .iter()
            .position(|r| r == t)
            .unwrap_or(usize::MAX)
    });
    let mut found = Vec::new();
    for table in tables {
        let Some(rows) = contents.get(table) else {
            continue;
        };
        for (uuid, row) in rows {
            if owner_value(row) != Some(owner.as_str()) {
                continue;
            }
            let name = row
                .get("name")
                .and_then(Datum::as_atom)
                .and_then(Atom::as_str)
                .map(str::to_string);
            let mut columns: Vec<(String, String)> = columns_of(table)
                .iter()
                .filter_map(|c| Some((c.to_string(), row.get(*c)?.to_string())))
                .collect();
            if let Some(ids) = row.get("external_ids") {
                columns.push(("external_ids".into(), ids.to_string()));
            }
            found.push(OwnedRow {
                table: table.clone(),
                uuid: *uuid,
                name,
                columns,
            });
        }
    }
    found
}

/// The rows as text: a header per row, then its columns indented.
pub fn render(owner: &Owner, rows: &[OwnedRow]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        let _ = writeln!(out, "no NB row has rovn.io/owner={owner}");
        return out;
    }
    let _ = writeln!(out, "NB rows owned by {owner}:");
    for row in rows {
        let _ = writeln!(
            out,
            "{} {} ({})",
            row.table,
            row.name.as_deref().unwrap_or("-"),
            row.uuid
        );
        for (column, value) in &row.columns {
            let _ = writeln!(out, "    {column:<16} {value}");
        }
    }
    out
}

/// The row counts per table, for a one-line summary.
pub fn count_by_table(rows: &[OwnedRow]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in rows {
        *counts.entry(row.table.clone()).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, owner: Option<&str>) -> Row {
        let mut ids = vec![("rovn.io/vendor", "rovn")];
        if let Some(o) = owner {
            ids.push(("rovn.io/owner", o));
        }
        [
            ("name".to_string(), Datum::atom(name)),
            ("external_ids".to_string(), Datum::map(ids)),
            ("mac".to_string(), Datum::atom("0a:58:0a:10:00:01")),
            (
                "addresses".to_string(),
                Datum::set([Atom::from("0a:58:0a:10:00:07 10.16.0.7")]),
            ),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn owners_parse_in_kubectl_spellings() {
        assert_eq!(parse_owner("pod/demo/a").unwrap(), Owner::pod("demo", "a"));
        assert_eq!(parse_owner("Pod/demo/a").unwrap(), Owner::pod("demo", "a"));
        assert_eq!(
            parse_owner("svc/demo/web").unwrap(),
            Owner::service("demo", "web")
        );
        assert_eq!(
            parse_owner("subnet/ovn-default").unwrap(),
            Owner::subnet("ovn-default")
        );
        assert_eq!(parse_owner("Node/node1").unwrap(), Owner::node("node1"));
        for bad in ["pod/a", "node/a/b", "deployment/a/b", "x"] {
            assert!(parse_owner(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_the_owners_rows_in_rovns_table_order() {
        let mut contents = Contents::new();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        contents.insert(
            "Logical_Switch_Port".into(),
            BTreeMap::from([
                (a, row("a.demo", Some("Pod/demo/a"))),
                (b, row("ab.demo", Some("Pod/demo/ab"))),
            ]),
        );
        contents.insert(
            "Logical_Router_Port".into(),
            BTreeMap::from([(c, row("ovn-cluster-x", Some("Pod/demo/a")))]),
        );
        let rows = owned_rows(&contents, &Owner::pod("demo", "a"));
        let names: Vec<(&str, Option<&str>)> = rows
            .iter()
            .map(|r| (r.table.as_str(), r.name.as_deref()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("Logical_Router_Port", Some("ovn-cluster-x")),
                ("Logical_Switch_Port", Some("a.demo"))
            ]
        );
        let text = render(&Owner::pod("demo", "a"), &rows);
        assert!(text.contains("Logical_Switch_Port a.demo"), "{text}");
        assert!(text.contains("10.16.0.7"), "{text}");
        assert!(render(&Owner::pod("demo", "zz"), &[]).contains("no NB row"));
        assert_eq!(count_by_table(&rows).get("Logical_Switch_Port"), Some(&1));
    }
}
