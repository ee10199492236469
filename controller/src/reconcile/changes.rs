//! The writes that give a current row rovn's columns and references, and nothing else.

use std::collections::BTreeSet;

use rovn_ovsdb::model::Changes;
use rovn_ovsdb::{Atom, Datum, Row};

use crate::tables::Ownership;

/// Whether `have` holds every key of the map `want` with the same value (other keys allowed).
fn keys_within(want: &Datum, have: &Datum) -> bool {
    match (want, have) {
        (Datum::Map(want), Datum::Map(have)) => want.iter().all(|(k, v)| have.get(k) == Some(v)),
        _ => false,
    }
}

/// Whether `have` holds one of `keys` that the map `want` lacks: a key rovn dropped.
fn holds_any(have: &Datum, want: &Datum, keys: &[&str]) -> bool {
    match (have, want) {
        (Datum::Map(have), Datum::Map(want)) => have
            .keys()
            .any(|k| is_one_of(k, keys) && !want.contains_key(k)),
        _ => false,
    }
}

fn is_one_of(key: &Atom, keys: &[&str]) -> bool {
    matches!(key, Atom::String(k) if keys.contains(&k.as_str()))
}

/// Gives the map `column` the keys of `want`, removing those of `have` that `want` lacks only
/// where `dropped` says rovn owns them.
fn own_keys(
    column: &str,
    have: &Datum,
    want: &Datum,
    dropped: impl Fn(&Atom) -> bool,
    changes: &mut Changes,
) {
    let (Datum::Map(have), Datum::Map(want_map)) = (have, want) else {
        changes.replace(column, want.clone());
        return;
    };
    let ours = have
        .iter()
        .filter(|(k, _)| want_map.contains_key(*k) || dropped(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    changes.elements(column, &Datum::Map(ours), want);
}

/// The changes that give `current` (a replica row) the desired managed `columns`. Works on the
/// raw row, so a converged row costs a few comparisons and no decoding.
pub(crate) fn column_changes(
    current: &Row,
    columns: &[(&'static str, Datum, Ownership)],
    changes: &mut Changes,
) {
    let empty = Datum::default();
    for (column, want, ownership) in columns {
        let have = current.get(*column).unwrap_or(&empty);
        match ownership {
            Ownership::Whole if want != have => changes.replace(column, want.clone()),
            Ownership::Elements if want != have => changes.elements(column, have, want),
            Ownership::OwnKeys if !keys_within(want, have) => {
                own_keys(column, have, want, |_| false, changes)
            }
            Ownership::Keys(keys) if !keys_within(want, have) || holds_any(have, want, keys) => {
                own_keys(column, have, want, |k| is_one_of(k, keys), changes)
            }
            _ => {}
        }
    }
}

/// The changes that make reference `column` of `current` hold `want`: references in `want`
/// are added, and references it lacks are removed only when `is_ours` says the referenced row
/// is rovn's, so references other writers added survive.
pub(crate) fn reference_changes(
    current: &Row,
    column: &str,
    want: &BTreeSet<Atom>,
    is_ours: impl Fn(&Atom) -> bool,
    changes: &mut Changes,
) {
    let empty = BTreeSet::new();
    let have = current
        .get(column)
        .and_then(Datum::as_set)
        .unwrap_or(&empty);
    let added: BTreeSet<Atom> = want.difference(have).cloned().collect();
    let removed: BTreeSet<Atom> = have
        .difference(want)
        .filter(|a| is_ours(a))
        .cloned()
        .collect();
    if !added.is_empty() {
        changes
            .mutations
            .push(rovn_ovsdb::Mutation::insert(column, Datum::Set(added)));
    }
    if !removed.is_empty() {
        changes
            .mutations
            .push(rovn_ovsdb::Mutation::delete(column, Datum::Set(removed)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rovn_ovsdb::Model;
    use rovn_ovsdb::Uuid;
    use rovn_ovsdb_schemas::nb::LogicalSwitchPort;

    use crate::tables::Managed;

    #[test]
    fn named_keys_rovn_dropped_are_removed_and_foreign_ones_stay() {
        let current = Datum::map([
            ("reject", "true"),
            ("affinity_timeout", "60"),
            ("hairpin_snat_ip", "169.254.0.5"),
        ]);
        let mut row = Row::new();
        row.insert("options".to_string(), current);
        let keys: &[&str] = &["reject", "affinity_timeout"];
        let want = Datum::map([("reject", "true")]);
        let mut changes = Changes::default();
        column_changes(
            &row,
            &[("options", want.clone(), Ownership::Keys(keys))],
            &mut changes,
        );
        assert_eq!(
            changes.mutations,
            vec![rovn_ovsdb::Mutation::delete(
                "options",
                Datum::set(["affinity_timeout"])
            )]
        );
        row.insert(
            "options".to_string(),
            Datum::map([("reject", "true"), ("hairpin_snat_ip", "169.254.0.5")]),
        );
        let mut none = Changes::default();
        column_changes(&row, &[("options", want, Ownership::Keys(keys))], &mut none);
        assert!(none.is_empty(), "{none:?}");
    }

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
            ..Default::default()
        };
        let mut columns = desired.managed();
        columns.push((
            "external_ids",
            Datum::map([("rovn.io/vendor", "rovn"), ("pod-uid", "new")]),
            Ownership::OwnKeys,
        ));
        let mut changes = Changes::default();
        column_changes(&current.to_row(), &columns, &mut changes);
        assert!(changes.update.is_empty(), "{:?}", changes.update);
        assert_eq!(
            changes.mutations,
            vec![
                rovn_ovsdb::Mutation::delete("external_ids", Datum::set(["pod-uid"])),
                rovn_ovsdb::Mutation::insert("external_ids", Datum::map([("pod-uid", "new")])),
            ]
        );
        let mut converged = current.clone();
        converged
            .external_ids
            .insert("pod-uid".to_string(), "new".to_string());
        let mut none = Changes::default();
        column_changes(&converged.to_row(), &columns, &mut none);
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn foreign_references_survive() {
        let ours = Uuid::new_v4();
        let theirs = Uuid::new_v4();
        let wanted = Uuid::new_v4();
        let mut row = Row::new();
        row.insert(
            "ports".to_string(),
            Datum::set([Atom::Uuid(ours), Atom::Uuid(theirs)]),
        );
        let want = BTreeSet::from([Atom::Uuid(wanted)]);
        let mut changes = Changes::default();
        reference_changes(
            &row,
            "ports",
            &want,
            |a| *a == Atom::Uuid(ours),
            &mut changes,
        );
        assert_eq!(
            changes.mutations,
            vec![
                rovn_ovsdb::Mutation::insert("ports", Datum::set([Atom::Uuid(wanted)])),
                rovn_ovsdb::Mutation::delete("ports", Datum::set([Atom::Uuid(ours)])),
            ]
        );
    }
}
