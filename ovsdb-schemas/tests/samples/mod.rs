//! Rows full of non-default values for any table of any schema, and the rows they need to be
//! accepted by a real ovsdb-server: referenced rows (a strong reference must point at a row),
//! and, for rows of non-root tables, a parent that references them (or the server
//! garbage-collects them at commit).
//!
//! Driven by the schema only, so the round-trip test covers every table and column without a
//! hand-written value per column, and keeps doing so when a schema gains columns.

use std::collections::BTreeSet;

use anyhow::{Result, anyhow, bail};
use rovn_ovsdb::{
    Atom, AtomicType, BaseType, ColumnSchema, DatabaseSchema, Datum, RefType, Row, Uuid,
};
use serde_json::{Value as Json, json};

/// How deep chains of required references may go before the schema is deemed circular.
const MAX_DEPTH: usize = 8;

/// Plans one transaction: the row under test plus every supporting row.
pub struct Planner<'s> {
    schema: &'s DatabaseSchema,
    counter: u64,
    /// Supporting rows: table, uuid, row.
    rows: Vec<(String, Uuid, Row)>,
}

impl<'s> Planner<'s> {
    /// A planner whose UUIDs and unique values start from `seed`, so plans for different tables
    /// never reuse a UUID.
    pub fn new(schema: &'s DatabaseSchema, seed: u64) -> Planner<'s> {
        Planner {
            schema,
            counter: seed,
            rows: Vec::new(),
        }
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn fresh_uuid(&mut self) -> Uuid {
        Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 | u128::from(self.next()))
    }

    /// A row of `table` with a non-default value in every column, and its UUID. Supporting
    /// rows (references, a parent for non-root tables) are planned as a side effect.
    pub fn sample_row(&mut self, table: &str) -> Result<(Uuid, Row)> {
        let uuid = self.fresh_uuid();
        let ts = self
            .schema
            .table(table)
            .ok_or_else(|| anyhow!("no table {table}"))?;
        let mut row = Row::new();
        for column in ts.columns.values() {
            let datum = self.datum(column, Fill::Full, 0)?;
            row.insert(column.name.clone(), datum);
        }
        self.keep_alive(table, uuid, 0)?;
        Ok((uuid, row))
    }

    /// The `insert` operations of every supporting row, with their UUIDs fixed.
    pub fn supporting_inserts(&self) -> Vec<Json> {
        self.rows
            .iter()
            .map(|(table, uuid, row)| insert_op(table, *uuid, row))
            .collect()
    }

    /// A row of `table` with only what the schema requires (and unique index values), for a
    /// row under test to reference.
    fn minimal_row(&mut self, table: &str, depth: usize) -> Result<Uuid> {
        if depth > MAX_DEPTH {
            bail!("required references nest deeper than {MAX_DEPTH} at table {table}");
        }
        let ts = self
            .schema
            .table(table)
            .ok_or_else(|| anyhow!("reference to unknown table {table}"))?;
        let indexed: BTreeSet<&String> = ts.indexes.iter().flatten().collect();
        let uuid = self.fresh_uuid();
        let mut row = Row::new();
        for column in ts.columns.values() {
            let fill = if indexed.contains(&column.name) {
                Fill::Full
            } else if column.ty.min > 0 {
                Fill::Required
            } else {
                continue;
            };
            let datum = self.datum(column, fill, depth + 1)?;
            row.insert(column.name.clone(), datum);
        }
        self.rows.push((table.to_string(), uuid, row));
        Ok(uuid)
    }

    /// Makes sure row `uuid` of `table` survives the commit: rows of non-root tables need a
    /// strong reference from a row that survives.
    fn keep_alive(&mut self, table: &str, uuid: Uuid, depth: usize) -> Result<()> {
        let ts = self
            .schema
            .table(table)
            .ok_or_else(|| anyhow!("no table {table}"))?;
        if ts.is_root {
            return Ok(());
        }
        if depth > MAX_DEPTH {
            bail!("no root table keeps {table} alive within {MAX_DEPTH} levels");
        }
        let (parent, column) = self.parent_of(table)?;
        let holds = self.schema.tables[&parent].columns[&column].clone();
        // Reuse a planned parent row if its column can take one more reference.
        let reusable = self.rows.iter().position(|(t, _, row)| {
            t == &parent
                && holds
                    .ty
                    .max
                    .is_none_or(|max| row.get(&column).map_or(0, Datum::len) < max as usize)
        });
        let index = match reusable {
            Some(index) => index,
            None => {
                let parent_uuid = self.minimal_row(&parent, depth + 1)?;
                self.keep_alive(&parent, parent_uuid, depth + 1)?;
                self.rows
                    .iter()
                    .position(|(_, u, _)| *u == parent_uuid)
                    .ok_or_else(|| anyhow!("planned parent row vanished"))?
            }
        };
        // For a map, the reference is its key or its value; the other side needs a sample.
        let value_is_ref = holds
            .ty
            .value
            .as_ref()
            .is_some_and(|v| v.ref_table.as_deref() == Some(table));
        let other_side = match &holds.ty.value {
            Some(_) if value_is_ref => Some(self.atom(&holds.ty.key, 0, depth + 1)?),
            Some(value) => Some(self.atom(value, 0, depth + 1)?),
            None => None,
        };
        let row = &mut self.rows[index].2;
        let datum = row
            .entry(column.clone())
            .or_insert_with(|| Datum::empty_of(&holds.ty));
        match (datum, other_side) {
            (Datum::Set(set), None) => {
                if holds.ty.max == Some(1) {
                    set.clear();
                }
                set.insert(Atom::Uuid(uuid));
            }
            (Datum::Map(map), Some(other)) => {
                if value_is_ref {
                    map.insert(other, Atom::Uuid(uuid));
                } else {
                    map.insert(Atom::Uuid(uuid), other);
                }
            }
            _ => bail!("{parent}.{column} has an unexpected shape"),
        }
        Ok(())
    }

    /// A table and column that can hold a strong reference to a row of `table`; root parents
    /// first, so chains stay short.
    fn parent_of(&self, table: &str) -> Result<(String, String)> {
        let mut candidates = Vec::new();
        for (parent, ts) in &self.schema.tables {
            for column in ts.columns.values() {
                let refs = |b: &BaseType| {
                    b.ref_table.as_deref() == Some(table) && b.ref_type == RefType::Strong
                };
                if refs(&column.ty.key) || column.ty.value.as_ref().is_some_and(refs) {
                    candidates.push((!ts.is_root, parent.clone(), column.name.clone()));
                }
            }
        }
        candidates.sort();
        candidates
            .into_iter()
            .next()
            .map(|(_, parent, column)| (parent, column))
            .ok_or_else(|| anyhow!("nothing references non-root table {table} strongly"))
    }

    /// A value for `column`: `fill` decides how many elements.
    fn datum(&mut self, column: &ColumnSchema, fill: Fill, depth: usize) -> Result<Datum> {
        let ty = &column.ty;
        let wanted = match fill {
            Fill::Full => ty.max.map_or(2, |m| m.min(2)).max(ty.min),
            Fill::Required => ty.min,
        } as usize;
        let wanted = wanted.min(distinct_values(&ty.key));
        if let Some(value) = &ty.value {
            let mut map = std::collections::BTreeMap::new();
            let mut i = 0;
            while map.len() < wanted {
                let k = self.atom(&ty.key, i, depth)?;
                let v = self.atom(value, i, depth)?;
                map.insert(k, v);
                i += 1;
                if i > 16 {
                    bail!("cannot find {wanted} distinct keys for {}", column.name);
                }
            }
            return Ok(Datum::Map(map));
        }
        let mut set = BTreeSet::new();
        let mut i = 0;
        while set.len() < wanted {
            set.insert(self.atom(&ty.key, i, depth)?);
            i += 1;
            if i > 16 {
                bail!("cannot find {wanted} distinct values for {}", column.name);
            }
        }
        Ok(Datum::Set(set))
    }

    /// The `i`th sample atom of `base`: never the type's default value where another is
    /// allowed, unique per call for strings, integers and reals.
    fn atom(&mut self, base: &BaseType, i: usize, depth: usize) -> Result<Atom> {
        if let Some(values) = &base.enumeration {
            // Generated enums default to their first value, so samples pick from the end.
            let values: Vec<&Atom> = values.iter().collect();
            let pick = values.len().saturating_sub(1 + i % values.len().max(1));
            return values
                .get(pick)
                .map(|a| (*a).clone())
                .ok_or_else(|| anyhow!("empty enumeration"));
        }
        Ok(match base.atomic {
            AtomicType::Integer => {
                let lo = i128::from(base.min_integer.unwrap_or(i64::MIN));
                let hi = i128::from(base.max_integer.unwrap_or(i64::MAX));
                let start = if lo <= 1 && 1 <= hi { 1 } else { lo };
                let span = (hi - start + 1).clamp(1, 1 << 20);
                let v = start + i128::from(self.next()) % span;
                Atom::Integer(i64::try_from(v)?)
            }
            AtomicType::Real => {
                let lo = base.min_real.unwrap_or(f64::MIN);
                let hi = base.max_real.unwrap_or(f64::MAX);
                let step = (self.next() % 16) as f64 * 0.125;
                Atom::Real((0.5 + step).clamp(lo, hi))
            }
            AtomicType::Boolean => Atom::Boolean(i.is_multiple_of(2)),
            AtomicType::String => {
                let mut s = format!("v{}", self.next());
                let min = base.min_length.unwrap_or(0) as usize;
                while s.len() < min {
                    s.push('x');
                }
                if let Some(max) = base.max_length {
                    s.truncate(max as usize);
                }
                Atom::String(s)
            }
            AtomicType::Uuid => match &base.ref_table {
                None => Atom::Uuid(self.fresh_uuid()),
                Some(target) => {
                    let target = target.clone();
                    let uuid = self.minimal_row(&target, depth)?;
                    if base.ref_type == RefType::Weak {
                        self.keep_alive(&target, uuid, depth)?;
                    }
                    Atom::Uuid(uuid)
                }
            },
        })
    }
}

/// How much to put in a column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fill {
    /// Non-default: one element for scalars and optionals, two for sets and maps (also for
    /// indexed columns of supporting rows, whose values are unique like every sample).
    Full,
    /// Only the schema's minimum.
    Required,
}

/// How many distinct values `base` allows (bounded for enumerations and booleans).
fn distinct_values(base: &BaseType) -> usize {
    match (&base.enumeration, base.atomic) {
        (Some(values), _) => values.len(),
        (None, AtomicType::Boolean) => 2,
        _ => usize::MAX,
    }
}

/// An `insert` with a fixed `uuid` (ovsdb-server's extension to RFC 7047), so rows of one
/// transaction can reference each other by real UUID.
pub fn insert_op(table: &str, uuid: Uuid, row: &Row) -> Json {
    let row: serde_json::Map<String, Json> = row
        .iter()
        .map(|(column, datum)| (column.clone(), datum.to_json()))
        .collect();
    json!({"op": "insert", "table": table, "uuid": uuid.to_string(), "row": row})
}
