//! What OVN and OVS hold for pods: rovn's pod ports in NB and the pod interfaces on each node's
//! switch, read as JSON tables so the scenarios can compare them with the pods that exist.

use std::collections::BTreeMap;

use rovn_api::names::{NODE_PORT_PREFIX, VENDOR, VENDOR_KEY};
use serde_json::Value;

use super::cluster::{Cluster, argv};
use super::error::{Result, ScenarioError};

/// The rows of a `--format=json` table as (heading → cell) pairs. Pure.
pub fn json_rows(text: &str, what: &str) -> Result<Vec<Vec<(String, Value)>>> {
    let table: Value = serde_json::from_str(text)
        .map_err(|e| ScenarioError::Check(format!("{what}: not a JSON table ({e}): {text}")))?;
    let headings: Vec<String> = table["headings"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let rows = table["data"].as_array().cloned().unwrap_or_default();
    Ok(rows
        .into_iter()
        .map(|row| {
            headings
                .iter()
                .cloned()
                .zip(row.as_array().cloned().unwrap_or_default())
                .collect()
        })
        .collect())
}

/// The value of `key` in an OVSDB JSON map cell `["map", [[k, v], ...]]`. Pure.
pub fn map_get<'a>(cell: &'a Value, key: &str) -> Option<&'a str> {
    cell.get(1)?
        .as_array()?
        .iter()
        .find(|pair| pair.get(0).and_then(Value::as_str) == Some(key))?
        .get(1)?
        .as_str()
}

/// The cell under `heading` of a [`json_rows`] row. Pure.
pub fn cell<'a>(row: &'a [(String, Value)], heading: &str) -> Option<&'a Value> {
    row.iter().find(|(h, _)| h == heading).map(|(_, v)| v)
}

/// Row UUIDs by name: a restart that re-created a row keeps the name but not the UUID.
pub type RowsByName = BTreeMap<String, String>;

fn uuid_of(row: &[(String, Value)]) -> String {
    // `--format=json` prints a UUID cell as ["uuid", "…"].
    cell(row, "_uuid")
        .and_then(|c| c.get(1))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// rovn's pod ports in NB (rovn-owned logical switch ports of type "" except the nodes'
/// `node-*` ports), name → row UUID.
pub async fn pod_lsps(cluster: &impl Cluster) -> Result<RowsByName> {
    let text = cluster
        .nbctl(&[
            "--format=json",
            "--columns=_uuid,name,type,external_ids",
            "list",
            "Logical_Switch_Port",
        ])
        .await?;
    Ok(json_rows(&text, "NB Logical_Switch_Port")?
        .iter()
        .filter(|row| {
            cell(row, "external_ids").and_then(|c| map_get(c, VENDOR_KEY)) == Some(VENDOR)
                && cell(row, "type").and_then(Value::as_str) == Some("")
        })
        .filter_map(|row| {
            let name = cell(row, "name").and_then(Value::as_str)?;
            (!name.starts_with(NODE_PORT_PREFIX)).then(|| (name.to_string(), uuid_of(row)))
        })
        .collect())
}

/// The pod interfaces on `node`'s switch (every interface with an `iface-id` except `ovn0`'s
/// `node-*`), iface-id → Interface row UUID.
pub async fn node_pod_ports(cluster: &impl Cluster, node: &str) -> Result<RowsByName> {
    let text = cluster
        .exec_on_node(
            node,
            &argv([
                "ovs-vsctl",
                "--timeout=10",
                "--format=json",
                "--columns=_uuid,name,external_ids",
                "list",
                "Interface",
            ]),
        )
        .await?
        .ok(&format!("listing OVS interfaces on {node}"))?;
    Ok(json_rows(&text, &format!("OVS Interface table of {node}"))?
        .iter()
        .filter_map(|row| {
            let id = cell(row, "external_ids").and_then(|c| map_get(c, "iface-id"))?;
            (!id.starts_with(NODE_PORT_PREFIX)).then(|| (id.to_string(), uuid_of(row)))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_tables_give_named_cells() {
        let text = r#"{"data":[[["uuid","5f1c"],"a.ns","",["map",[["rovn.io/vendor","rovn"]]]]],"headings":["_uuid","name","type","external_ids"]}"#;
        let rows = json_rows(text, "t").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(uuid_of(&rows[0]), "5f1c");
        assert_eq!(cell(&rows[0], "name").and_then(Value::as_str), Some("a.ns"));
        let ext = cell(&rows[0], "external_ids").unwrap();
        assert_eq!(map_get(ext, VENDOR_KEY), Some(VENDOR));
        assert_eq!(map_get(ext, "iface-id"), None);
        assert!(json_rows("nope", "t").is_err());
    }
}
