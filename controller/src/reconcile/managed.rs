//! What rovn manages in each table it writes: the columns it sets and how.

use std::collections::{BTreeMap, BTreeSet};

use rovn_ovsdb::model::{Changes, ToDatum};
use rovn_ovsdb::{Datum, Model, Row};
use rovn_ovsdb_schemas::nb::{LogicalRouter, LogicalRouterPort, LogicalSwitch, LogicalSwitchPort};

use rovn_api::names::POD_UID_KEY;

/// How rovn owns one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// A scalar rovn sets whole (`update`).
    Whole,
    /// A set rovn owns entirely, changed element by element (`mutate`).
    Elements,
    /// A map where rovn owns only its own keys: other writers' keys are never removed.
    OwnKeys,
}

/// A managed column's desired value, borrowed from the desired row so that checking a
/// converged row allocates nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    /// A string scalar.
    Str(&'a str),
    /// A set of strings.
    Set(&'a BTreeSet<String>),
    /// A string-to-string map.
    Map(&'a BTreeMap<String, String>),
}

impl Value<'_> {
    /// The value as the datum a transaction carries.
    pub fn to_datum(self) -> Datum {
        match self {
            Value::Str(s) => Datum::atom(s),
            Value::Set(set) => set.to_datum(),
            Value::Map(map) => map.to_datum(),
        }
    }

    /// Whether `have` holds exactly this value.
    fn equals(self, have: &Datum) -> bool {
        match (self, have) {
            (Value::Str(s), Datum::Set(atoms)) => {
                atoms.len() == 1 && atoms.iter().all(|a| a.as_str() == Some(s))
            }
            (Value::Set(set), Datum::Set(atoms)) => {
                atoms.len() == set.len()
                    && atoms
                        .iter()
                        .zip(set)
                        .all(|(a, s)| a.as_str() == Some(s.as_str()))
            }
            (Value::Map(map), Datum::Map(pairs)) => {
                pairs.len() == map.len()
                    && pairs.iter().zip(map).all(|((k, v), (mk, mv))| {
                        k.as_str() == Some(mk.as_str()) && v.as_str() == Some(mv.as_str())
                    })
            }
            _ => false,
        }
    }

    /// Whether `have` holds every key of this map with the same value (other keys allowed).
    fn keys_within(self, have: &Datum) -> bool {
        match (self, have) {
            // A linear scan: these maps hold a handful of keys, and a keyed lookup would need
            // an owned atom per key.
            (Value::Map(map), Datum::Map(pairs)) => map.iter().all(|(k, v)| {
                pairs.iter().any(|(pk, pv)| {
                    pk.as_str() == Some(k.as_str()) && pv.as_str() == Some(v.as_str())
                })
            }),
            _ => false,
        }
    }
}

/// A table the reconciler writes, and exactly which of its columns are rovn's: everything
/// else (other columns, other writers' map keys, `ports` references) is never written, so
/// ovn-northd, ovn-controller and operators keep what they add.
pub(crate) trait Managed: Model {
    /// rovn's columns with their desired values.
    fn managed(&self) -> Vec<(&'static str, Value<'_>, Ownership)>;

    /// `external_ids`, for the owner and the incarnation.
    fn external_ids(&self) -> &BTreeMap<String, String>;

    /// When this differs between the current and the desired row, they are different objects
    /// (a pod re-created under the same name) and the row is replaced, not updated.
    fn incarnation(&self) -> Option<&str> {
        self.external_ids().get(POD_UID_KEY).map(String::as_str)
    }
}

/// The changes that give `current` (a replica row) `desired`'s managed columns. Works on the
/// raw row so a converged row costs a few comparisons and no decoding.
pub(crate) fn changes<M: Managed>(current: &Row, desired: &M) -> Changes {
    let mut changes = Changes::default();
    let empty = Datum::default();
    for (column, value, ownership) in desired.managed() {
        let have = current.get(column).unwrap_or(&empty);
        let converged = match ownership {
            Ownership::Whole | Ownership::Elements => value.equals(have),
            Ownership::OwnKeys => value.keys_within(have),
        };
        if converged {
            continue;
        }
        let want = value.to_datum();
        match ownership {
            Ownership::Whole => changes.replace(column, want),
            Ownership::Elements => changes.elements(column, have, &want),
            Ownership::OwnKeys => {
                let (Datum::Map(have), Datum::Map(want_map)) = (have, &want) else {
                    changes.replace(column, want);
                    continue;
                };
                let ours: BTreeMap<_, _> = have
                    .iter()
                    .filter(|(k, _)| want_map.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                changes.elements(column, &Datum::Map(ours), &want);
            }
        }
    }
    changes
}

impl Managed for LogicalRouter {
    fn managed(&self) -> Vec<(&'static str, Value<'_>, Ownership)> {
        vec![(
            Self::EXTERNAL_IDS,
            Value::Map(&self.external_ids),
            Ownership::OwnKeys,
        )]
    }
    fn external_ids(&self) -> &BTreeMap<String, String> {
        &self.external_ids
    }
}

impl Managed for LogicalSwitch {
    fn managed(&self) -> Vec<(&'static str, Value<'_>, Ownership)> {
        vec![
            (
                Self::OTHER_CONFIG,
                Value::Map(&self.other_config),
                Ownership::OwnKeys,
            ),
            (
                Self::EXTERNAL_IDS,
                Value::Map(&self.external_ids),
                Ownership::OwnKeys,
            ),
        ]
    }
    fn external_ids(&self) -> &BTreeMap<String, String> {
        &self.external_ids
    }
}

impl Managed for LogicalRouterPort {
    fn managed(&self) -> Vec<(&'static str, Value<'_>, Ownership)> {
        vec![
            (Self::MAC, Value::Str(&self.mac), Ownership::Whole),
            (
                Self::NETWORKS,
                Value::Set(&self.networks),
                Ownership::Elements,
            ),
            (
                Self::EXTERNAL_IDS,
                Value::Map(&self.external_ids),
                Ownership::OwnKeys,
            ),
        ]
    }
    fn external_ids(&self) -> &BTreeMap<String, String> {
        &self.external_ids
    }
}

impl Managed for LogicalSwitchPort {
    fn managed(&self) -> Vec<(&'static str, Value<'_>, Ownership)> {
        vec![
            (Self::TYPE, Value::Str(&self.type_), Ownership::Whole),
            (
                Self::ADDRESSES,
                Value::Set(&self.addresses),
                Ownership::Elements,
            ),
            (
                Self::PORT_SECURITY,
                Value::Set(&self.port_security),
                Ownership::Elements,
            ),
            (Self::OPTIONS, Value::Map(&self.options), Ownership::OwnKeys),
            (
                Self::EXTERNAL_IDS,
                Value::Map(&self.external_ids),
                Ownership::OwnKeys,
            ),
        ]
    }
    fn external_ids(&self) -> &BTreeMap<String, String> {
        &self.external_ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rovn_keys_and_columns_change() {
        let current = LogicalSwitchPort {
            addresses: ["0a:58:0a:10:00:05 10.16.0.5".to_string()].into(),
            external_ids: [
                ("rovn.io/vendor".to_string(), "rovn".to_string()),
                ("team".to_string(), "blue".to_string()),
                ("pod-uid".to_string(), "old".to_string()),
            ]
            .into(),
            up: Some(true),
            ..Default::default()
        };
        let desired = LogicalSwitchPort {
            addresses: ["0a:58:0a:10:00:05 10.16.0.5".to_string()].into(),
            external_ids: [
                ("rovn.io/vendor".to_string(), "rovn".to_string()),
                ("pod-uid".to_string(), "new".to_string()),
            ]
            .into(),
            ..Default::default()
        };
        let changes = changes(&current.to_row(), &desired);
        assert!(changes.update.is_empty(), "{:?}", changes.update);
        assert_eq!(
            changes.mutations,
            vec![
                rovn_ovsdb::Mutation::delete("external_ids", Datum::set(["pod-uid"])),
                rovn_ovsdb::Mutation::insert("external_ids", Datum::map([("pod-uid", "new")])),
            ]
        );
        assert!(super::changes(&desired.to_row(), &desired).is_empty());
    }
}
