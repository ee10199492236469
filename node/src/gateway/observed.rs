//! What the `rovn` table holds, in a form that reads the same whether it comes from the batch the
//! agent would send or from `nft -j list table ip rovn` (pure). nft prints objects in its own
//! normal form (prefixes as ranges or plain addresses, protocols as names or numbers, elements
//! in its own order, elements inside their set); [`TableView`] keeps only what identifies the
//! content: set and map declarations with their elements, chains with their hooks, and each
//! rule by the fingerprint in its comment ([`super::render::rule_comment`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde_json::Value;

/// A set or map: its declaration and its elements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetView {
    /// `type`, `map` and `flags`, as compact text.
    pub declaration: String,
    /// Map elements as `key : data`, single values of plain sets.
    pub elements: BTreeSet<String>,
    /// Interval elements, merged: nft may store adjacent prefixes as one range.
    pub intervals: Vec<(u32, u32)>,
}

/// A chain: its hook (empty for a regular chain) and its rules' comments, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainView {
    /// `type/hook/prio/policy`.
    pub hook: String,
    /// The comments of its rules, which end in the rule's fingerprint.
    pub rules: Vec<String>,
}

/// The comparable content of the table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableView {
    /// Sets and maps by name.
    pub sets: BTreeMap<String, SetView>,
    /// Chains by name.
    pub chains: BTreeMap<String, ChainView>,
}

impl TableView {
    /// Builds the view from a list of nftables JSON objects: either `nft -j list table`'s
    /// output objects or the `add` commands of a batch (other commands are ignored, as are
    /// objects of other tables).
    pub fn from_objects<'a>(
        objects: impl IntoIterator<Item = &'a Value>,
        table: &str,
    ) -> TableView {
        let mut view = TableView::default();
        for object in objects {
            let object = object.get("add").unwrap_or(object);
            let Some((kind, body)) = object.as_object().and_then(|o| o.iter().next()) else {
                continue;
            };
            if body.get("table").and_then(Value::as_str) != Some(table)
                && !(kind == "table" && body.get("name").and_then(Value::as_str) == Some(table))
            {
                continue;
            }
            let name = body
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            match kind.as_str() {
                "set" | "map" => {
                    let set = view.sets.entry(name).or_default();
                    set.declaration = declaration(kind, body);
                    add_elements(set, body.get("elem"));
                }
                "element" => {
                    let set = view.sets.entry(name).or_default();
                    add_elements(set, body.get("elem"));
                }
                "chain" => {
                    view.chains.entry(name).or_default().hook = hook(body);
                }
                "rule" => {
                    let chain = body.get("chain").and_then(Value::as_str).unwrap_or("");
                    let comment = body.get("comment").and_then(Value::as_str).unwrap_or("");
                    view.chains
                        .entry(chain.to_string())
                        .or_default()
                        .rules
                        .push(comment.to_string());
                }
                _ => {}
            }
        }
        for set in view.sets.values_mut() {
            set.intervals = merge(std::mem::take(&mut set.intervals));
        }
        view
    }

    /// The view of a whole document (`{"nftables": [...]}`).
    pub fn from_document(document: &Value, table: &str) -> TableView {
        let objects = document
            .get("nftables")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        TableView::from_objects(objects, table)
    }

    /// How many elements the table's sets and maps hold (interval sets count their merged
    /// intervals): the ruleset size a benchmark reports.
    pub fn element_count(&self) -> usize {
        self.sets
            .values()
            .map(|s| s.elements.len() + s.intervals.len())
            .sum()
    }
}

fn declaration(kind: &str, body: &Value) -> String {
    let mut flags: Vec<String> = body
        .get("flags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    flags.sort();
    format!(
        "{kind} type={} map={} flags={}",
        body.get("type").unwrap_or(&Value::Null),
        body.get("map").unwrap_or(&Value::Null),
        flags.join(",")
    )
}

fn hook(body: &Value) -> String {
    let field = |k: &str| body.get(k).map(|v| v.to_string()).unwrap_or_default();
    format!(
        "{}/{}/{}/{}",
        field("type"),
        field("hook"),
        field("prio"),
        field("policy")
    )
}

fn add_elements(set: &mut SetView, elem: Option<&Value>) {
    for element in elem.and_then(Value::as_array).into_iter().flatten() {
        let element = unwrap_elem(element);
        if let Some(interval) = interval(element) {
            set.intervals.push(interval);
        } else {
            set.elements.insert(canonical(element));
        }
    }
}

/// `{"elem": {"val": X, ...}}` (an element with a comment or timeout) → `X`.
fn unwrap_elem(value: &Value) -> &Value {
    value
        .get("elem")
        .and_then(|e| e.get("val"))
        .unwrap_or(value)
}

/// An address, prefix or range as an inclusive interval of IPv4 addresses.
fn interval(value: &Value) -> Option<(u32, u32)> {
    if let Some(text) = value.as_str() {
        let addr: Ipv4Addr = text.parse().ok()?;
        return Some((u32::from(addr), u32::from(addr)));
    }
    if let Some(prefix) = value.get("prefix") {
        let addr: Ipv4Addr = prefix.get("addr")?.as_str()?.parse().ok()?;
        let len = u32::try_from(prefix.get("len")?.as_u64()?).ok()?;
        let net = ipnet::Ipv4Net::new(addr, u8::try_from(len).ok()?).ok()?;
        return Some((u32::from(net.network()), u32::from(net.broadcast())));
    }
    if let Some(range) = value.get("range").and_then(Value::as_array) {
        let start: Ipv4Addr = range.first()?.as_str()?.parse().ok()?;
        let end: Ipv4Addr = range.get(1)?.as_str()?.parse().ok()?;
        return Some((u32::from(start), u32::from(end)));
    }
    None
}

fn merge(mut intervals: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    intervals.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(intervals.len());
    for (start, end) in intervals {
        match merged.last_mut() {
            Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// One element (or part of one) as text: protocol names become their numbers, concatenations
/// are joined with ` . `, a map entry is `key : data`, verdicts read as in nft's syntax.
fn canonical(value: &Value) -> String {
    match value {
        Value::String(text) => match text.as_str() {
            "tcp" => "6".to_string(),
            "udp" => "17".to_string(),
            "sctp" => "132".to_string(),
            other => other.to_string(),
        },
        Value::Number(n) => n.to_string(),
        Value::Array(pair) if pair.len() == 2 => {
            format!("{} : {}", canonical(&pair[0]), canonical(&pair[1]))
        }
        Value::Object(map) => match map.iter().next() {
            Some((key, inner)) if key == "concat" => inner
                .as_array()
                .into_iter()
                .flatten()
                .map(canonical)
                .collect::<Vec<_>>()
                .join(" . "),
            Some((key, inner)) if key == "goto" || key == "jump" => format!(
                "{key} {}",
                inner.get("target").and_then(Value::as_str).unwrap_or("")
            ),
            Some((key, Value::Null)) => key.clone(),
            _ => value.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nft_normal_forms_and_the_batch_forms_compare_equal() {
        let sent = [
            json!({"add": {"set": {"family": "ip", "table": "rovn", "name": "r", "type": "ipv4_addr",
                "flags": ["interval"], "elem": [{"prefix": {"addr": "10.0.0.0", "len": 24}},
                {"prefix": {"addr": "10.0.1.0", "len": 25}}, {"prefix": {"addr": "10.9.0.1", "len": 32}}]}}}),
            json!({"add": {"map": {"family": "ip", "table": "rovn", "name": "m",
                "type": ["ipv4_addr", "inet_proto", "inet_service"], "map": "verdict"}}}),
            json!({"add": {"element": {"family": "ip", "table": "rovn", "name": "m", "elem": [
                [{"concat": ["1.2.3.4", "tcp", 80]}, {"goto": {"target": "c"}}],
                [{"concat": ["1.2.3.4", "udp", 81]}, {"drop": null}]]}}}),
            json!({"add": {"rule": {"family": "ip", "table": "rovn", "chain": "c", "comment": "x #1", "expr": []}}}),
        ];
        let listed = [
            json!({"table": {"family": "ip", "name": "rovn", "handle": 3}}),
            json!({"set": {"family": "ip", "table": "rovn", "name": "r", "type": "ipv4_addr", "handle": 4,
                "flags": ["interval"], "elem": [{"range": ["10.0.0.0", "10.0.1.127"]}, "10.9.0.1"]}}),
            json!({"map": {"family": "ip", "table": "rovn", "name": "m", "handle": 5,
                "type": ["ipv4_addr", "inet_proto", "inet_service"], "map": "verdict", "elem": [
                [{"concat": ["1.2.3.4", 17, 81]}, {"drop": null}],
                [{"concat": ["1.2.3.4", "tcp", 80]}, {"goto": {"target": "c"}}]]}}),
            json!({"rule": {"family": "ip", "table": "rovn", "chain": "c", "handle": 9, "comment": "x #1",
                "expr": [{"something": "nft rewrote"}]}}),
            json!({"rule": {"family": "ip", "table": "other", "chain": "c", "comment": "y"}}),
        ];
        let a = TableView::from_objects(&sent, "rovn");
        let b = TableView::from_objects(&listed, "rovn");
        assert_eq!(a, b);
        assert_eq!(a.element_count(), 2 + 2);

        // A missing element, an extra rule or another fingerprint is a difference.
        let fewer = TableView::from_objects(&listed[..2], "rovn");
        assert_ne!(a, fewer);
        let mut changed = listed.clone();
        changed[3]["rule"]["comment"] = json!("x #2");
        assert_ne!(a, TableView::from_objects(&changed, "rovn"));
    }
}
