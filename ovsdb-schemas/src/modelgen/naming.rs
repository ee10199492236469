//! Schema names to Rust names.
//!
//! OVSDB names are free-form (`Logical_Switch_Port`, `type`, `allow-related`, `OpenFlow10`);
//! Rust needs identifiers that follow its conventions and avoid keywords. Kept pure so the
//! mapping is unit-tested on its own.

/// Words Rust reserves in any edition, which a field may not be called.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// The words of a name: split at `_`, `-`, `.`, spaces and any other non-alphanumeric.
fn words(name: &str) -> impl Iterator<Item = &str> {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// One word in UpperCamelCase: acronyms (`ACL`, `DHCPv6`) become `Acl`, `Dhcpv6`; other
/// mixed-case words keep their inner capitals (`QoS`, `vSwitch` → `VSwitch`).
fn camel_word(word: &str) -> String {
    let upper_run = word
        .chars()
        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        .count();
    let mut chars = word.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    let rest = chars.as_str();
    let rest = if upper_run >= 2 {
        let (acronym, tail) = rest.split_at(upper_run - 1);
        format!("{}{tail}", acronym.to_ascii_lowercase())
    } else {
        rest.to_string()
    };
    format!("{}{rest}", first.to_ascii_uppercase())
}

/// A type name for a table or column: `Logical_Switch_Port` → `LogicalSwitchPort`,
/// `ACL` → `Acl`, `sFlow` → `SFlow`.
pub fn type_name(name: &str) -> String {
    let camel: String = words(name).map(camel_word).collect();
    match camel.chars().next() {
        None => "Unnamed".to_string(),
        Some(c) if c.is_ascii_digit() => format!("T{camel}"),
        Some(_) => camel,
    }
}

/// An enum variant for a string value: `allow-related` → `AllowRelated`,
/// `dnat_and_snat` → `DnatAndSnat`, `802.1q` → `V8021q`, `` → `Empty`.
pub fn variant_name(value: &str) -> String {
    let camel: String = words(value).map(camel_word).collect();
    match camel.chars().next() {
        None => "Empty".to_string(),
        Some(c) if c.is_ascii_digit() => format!("V{camel}"),
        Some(_) => camel,
    }
}

/// A field name for a column: lower snake case, keywords suffixed with `_` (`type` →
/// `type_`), and `uuid` → `uuid_` because `uuid` holds the row's `_uuid`.
pub fn field_name(column: &str) -> String {
    let snake = snake(column);
    if KEYWORDS.contains(&snake.as_str()) || snake == "uuid" {
        format!("{snake}_")
    } else {
        snake
    }
}

/// A constant name for a column: `external_ids` → `EXTERNAL_IDS`. `TABLE` and `COLUMNS` are
/// the [`rovn_ovsdb::model::Model`] constants, so such columns get a `_COLUMN` suffix.
pub fn const_name(column: &str) -> String {
    let upper = snake(column).to_ascii_uppercase();
    if upper == "TABLE" || upper == "COLUMNS" {
        format!("{upper}_COLUMN")
    } else {
        upper
    }
}

/// A snake-case module-style name for a table: `Logical_Switch_Port` → `logical_switch_port`.
pub fn snake(name: &str) -> String {
    let joined = words(name)
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join("_");
    match joined.chars().next() {
        None => "unnamed".to_string(),
        Some(c) if c.is_ascii_digit() => format!("_{joined}"),
        Some(_) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_become_camel_case_types() {
        assert_eq!(type_name("Logical_Switch_Port"), "LogicalSwitchPort");
        assert_eq!(type_name("ACL"), "Acl");
        assert_eq!(type_name("DHCP_Options"), "DhcpOptions");
        assert_eq!(type_name("DHCPv6_Options"), "Dhcpv6Options");
        assert_eq!(type_name("IPFIX"), "Ipfix");
        assert_eq!(type_name("NetFlow"), "NetFlow");
        assert_eq!(type_name("QoS"), "QoS");
        assert_eq!(type_name("Open_vSwitch"), "OpenVSwitch");
        assert_eq!(type_name("sFlow"), "SFlow");
        assert_eq!(type_name("CT_Zone"), "CtZone");
        assert_eq!(type_name("NB_Global"), "NbGlobal");
    }

    #[test]
    fn enum_values_become_variants() {
        assert_eq!(variant_name("allow-related"), "AllowRelated");
        assert_eq!(variant_name("dnat_and_snat"), "DnatAndSnat");
        assert_eq!(variant_name("OpenFlow10"), "OpenFlow10");
        assert_eq!(variant_name("uint8"), "Uint8");
        assert_eq!(variant_name("802.1q"), "V8021q");
        assert_eq!(variant_name(""), "Empty");
        assert_eq!(variant_name("admin_down"), "AdminDown");
    }

    #[test]
    fn columns_become_safe_fields_and_constants() {
        assert_eq!(field_name("type"), "type_");
        assert_eq!(field_name("match"), "match_");
        assert_eq!(field_name("uuid"), "uuid_");
        assert_eq!(field_name("external_ids"), "external_ids");
        assert_eq!(field_name("Weird-Name"), "weird_name");
        assert_eq!(field_name("9lives"), "_9lives");
        assert_eq!(const_name("external_ids"), "EXTERNAL_IDS");
        assert_eq!(const_name("type"), "TYPE");
        assert_eq!(const_name("table"), "TABLE_COLUMN");
    }
}
