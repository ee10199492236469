//! OVSDB values (RFC 7047 §5.1): atoms, and the datums made of them.
//!
//! Every column value is held as a [`Datum`]: a set of atoms or a map from atom to atom. A scalar
//! column is a set of exactly one atom, an optional column a set of zero or one, as in
//! ovsdb-server itself; that keeps one representation for the wire, the replica and diffs.
//! Decoding is schema-directed ([`Datum::from_json`]): the wire form alone cannot tell an
//! integer from a real, nor a one-element set from an atom.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};

use serde_json::{Value as Json, json};
pub use uuid::Uuid;

use crate::abbreviate::abbreviate;
use crate::schema::{AtomicType, BaseType, ColumnType};

/// Why a JSON value is not a valid datum for a column.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ValueError {
    /// The JSON is not any OVSDB notation for the expected type.
    #[error("expected {expected}, got {got}")]
    Type {
        /// What the column's type called for.
        expected: String,
        /// The offending JSON, abbreviated.
        got: String,
    },
    /// A `["uuid", ...]` whose string is not a UUID.
    #[error("invalid uuid {0:?}")]
    Uuid(String),
    /// The datum's size is outside the column's `min`/`max`.
    #[error("{n} elements, but the column allows {min} to {max}")]
    Size {
        /// Elements found.
        n: usize,
        /// The column's minimum.
        min: u64,
        /// The column's maximum, `unlimited` when unbounded.
        max: String,
    },
    /// An atom outside the column's constraints (enum, range, length).
    #[error("{atom} violates the column constraint: {constraint}")]
    Constraint {
        /// The atom, as JSON.
        atom: String,
        /// The constraint it breaks.
        constraint: String,
    },
}

/// One OVSDB atom.
///
/// Ordering follows ovsdb-server's (by type, then value; reals by total order), so sets and
/// maps iterate in the order the server prints them.
#[derive(Debug, Clone)]
pub enum Atom {
    /// `integer`: a 64-bit signed integer.
    Integer(i64),
    /// `real`: an IEEE 754 double.
    Real(f64),
    /// `boolean`.
    Boolean(bool),
    /// `string`: UTF-8.
    String(String),
    /// `uuid`: a reference to, or the identity of, a row.
    Uuid(Uuid),
    /// `named-uuid`: a row inserted earlier in the same transaction, by its `uuid-name`.
    /// Only valid inside a transaction request; the server answers with real UUIDs.
    NamedUuid(String),
}

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
            Atom::NamedUuid(_) => 5,
        }
    }

    /// The atom in RFC 7047 JSON notation.
    pub fn to_json(&self) -> Json {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => json!(["uuid", u.to_string()]),
            Atom::NamedUuid(n) => json!(["named-uuid", n]),
        }
    }

    /// Decodes an atom of the given base type, checking its constraints.
    pub fn from_json(json: &Json, base: &BaseType) -> Result<Atom, ValueError> {
        let atom = match (base.atomic, json) {
            (AtomicType::Integer, Json::Number(n)) => n
                .as_i64()
                .map(Atom::Integer)
                .ok_or_else(|| type_error("integer", json))?,
            (AtomicType::Real, Json::Number(n)) => n
                .as_f64()
                .map(Atom::Real)
                .ok_or_else(|| type_error("real", json))?,
            (AtomicType::Boolean, Json::Bool(b)) => Atom::Boolean(*b),
            (AtomicType::String, Json::String(s)) => Atom::String(s.clone()),
            (AtomicType::Uuid, Json::Array(pair)) => match pair.as_slice() {
                [Json::String(tag), Json::String(s)] if tag == "uuid" => {
                    Atom::Uuid(Uuid::parse_str(s).map_err(|_| ValueError::Uuid(s.clone()))?)
                }
                [Json::String(tag), Json::String(s)] if tag == "named-uuid" => {
                    Atom::NamedUuid(s.clone())
                }
                _ => return Err(type_error("uuid", json)),
            },
            (atomic, _) => return Err(type_error(atomic.as_str(), json)),
        };
        base.check(&atom)?;
        Ok(atom)
    }

    /// The string, if this is a string atom.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer atom.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The real, if this is a real atom.
    pub fn as_real(&self) -> Option<f64> {
        match self {
            Atom::Real(r) => Some(*r),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean atom.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The UUID, if this is a (resolved) uuid atom.
    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }
}

fn type_error(expected: &str, got: &Json) -> ValueError {
    ValueError::Type {
        expected: expected.to_string(),
        got: abbreviate(&got.to_string(), 80),
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Atom {}

impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            (Atom::NamedUuid(a), Atom::NamedUuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl Hash for Atom {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rank().hash(state);
        match self {
            Atom::Integer(i) => i.hash(state),
            Atom::Real(r) => r.to_bits().hash(state),
            Atom::Boolean(b) => b.hash(state),
            Atom::String(s) | Atom::NamedUuid(s) => s.hash(state),
            Atom::Uuid(u) => u.hash(state),
        }
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Integer(i) => write!(f, "{i}"),
            Atom::Real(r) => write!(f, "{r}"),
            Atom::Boolean(b) => write!(f, "{b}"),
            Atom::String(s) => write!(f, "{s:?}"),
            Atom::Uuid(u) => write!(f, "{u}"),
            Atom::NamedUuid(n) => write!(f, "@{n}"),
        }
    }
}

impl From<&str> for Atom {
    fn from(s: &str) -> Self {
        Atom::String(s.to_string())
    }
}

impl From<String> for Atom {
    fn from(s: String) -> Self {
        Atom::String(s)
    }
}

impl From<i64> for Atom {
    fn from(i: i64) -> Self {
        Atom::Integer(i)
    }
}

impl From<f64> for Atom {
    fn from(r: f64) -> Self {
        Atom::Real(r)
    }
}

impl From<bool> for Atom {
    fn from(b: bool) -> Self {
        Atom::Boolean(b)
    }
}

impl From<Uuid> for Atom {
    fn from(u: Uuid) -> Self {
        Atom::Uuid(u)
    }
}

/// The value of one column: a set of atoms, or a map between atoms.
///
/// Scalars are one-element sets and optional values zero-or-one-element sets, so that
/// `update2` differences ("elements to add or remove") apply the same way to every column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Datum {
    /// Atoms, set or scalar columns.
    Set(BTreeSet<Atom>),
    /// Key/value pairs, map columns.
    Map(BTreeMap<Atom, Atom>),
}

impl Default for Datum {
    fn default() -> Self {
        Datum::Set(BTreeSet::new())
    }
}

impl Datum {
    /// A one-atom datum, the value of a scalar column.
    pub fn atom(atom: impl Into<Atom>) -> Datum {
        Datum::Set(BTreeSet::from([atom.into()]))
    }

    /// A set datum from any atoms.
    pub fn set<A: Into<Atom>>(atoms: impl IntoIterator<Item = A>) -> Datum {
        Datum::Set(atoms.into_iter().map(Into::into).collect())
    }

    /// A map datum from any pairs.
    pub fn map<K: Into<Atom>, V: Into<Atom>>(pairs: impl IntoIterator<Item = (K, V)>) -> Datum {
        Datum::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// A reference to a row inserted earlier in the same transaction.
    pub fn named_uuid(name: impl Into<String>) -> Datum {
        Datum::atom(Atom::NamedUuid(name.into()))
    }

    /// The empty value of a column of type `ty`: an empty set or an empty map.
    pub fn empty_of(ty: &ColumnType) -> Datum {
        if ty.is_map() {
            Datum::Map(BTreeMap::new())
        } else {
            Datum::Set(BTreeSet::new())
        }
    }

    /// The number of atoms (set) or pairs (map).
    pub fn len(&self) -> usize {
        match self {
            Datum::Set(s) => s.len(),
            Datum::Map(m) => m.len(),
        }
    }

    /// Whether the datum has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The single atom of a scalar (or one-element set) datum.
    pub fn as_atom(&self) -> Option<&Atom> {
        match self {
            Datum::Set(s) if s.len() == 1 => s.iter().next(),
            _ => None,
        }
    }

    /// The atoms of a set datum.
    pub fn as_set(&self) -> Option<&BTreeSet<Atom>> {
        match self {
            Datum::Set(s) => Some(s),
            Datum::Map(_) => None,
        }
    }

    /// The pairs of a map datum.
    pub fn as_map(&self) -> Option<&BTreeMap<Atom, Atom>> {
        match self {
            Datum::Map(m) => Some(m),
            Datum::Set(_) => None,
        }
    }

    /// The datum in RFC 7047 JSON notation: a bare atom for one-element sets,
    /// `["set", [...]]` otherwise, `["map", [[k, v], ...]]` for maps.
    pub fn to_json(&self) -> Json {
        match self {
            Datum::Set(s) if s.len() == 1 => {
                s.iter().next().map(Atom::to_json).unwrap_or(Json::Null)
            }
            Datum::Set(s) => json!(["set", s.iter().map(Atom::to_json).collect::<Vec<_>>()]),
            Datum::Map(m) => json!([
                "map",
                m.iter()
                    .map(|(k, v)| json!([k.to_json(), v.to_json()]))
                    .collect::<Vec<_>>()
            ]),
        }
    }

    /// Decodes a datum of column type `ty`, checking atom constraints and the size bounds.
    pub fn from_json(json: &Json, ty: &ColumnType) -> Result<Datum, ValueError> {
        let datum = Self::from_json_unbounded(json, ty)?;
        ty.check_size(datum.len())?;
        Ok(datum)
    }

    /// Decodes a datum of column type `ty` without checking its size against the column's
    /// bounds: `update2` differences, mutation arguments and `includes` conditions carry
    /// element sets of any size.
    pub fn from_json_unbounded(json: &Json, ty: &ColumnType) -> Result<Datum, ValueError> {
        if let Some(value) = &ty.value {
            let pairs = match tagged(json, "map") {
                Some(pairs) => pairs,
                None => return Err(type_error("map", json)),
            };
            let mut map = BTreeMap::new();
            for pair in pairs {
                match pair.as_array().map(Vec::as_slice) {
                    Some([k, v]) => {
                        map.insert(Atom::from_json(k, &ty.key)?, Atom::from_json(v, value)?);
                    }
                    _ => return Err(type_error("[key, value]", pair)),
                }
            }
            return Ok(Datum::Map(map));
        }
        match tagged(json, "set") {
            Some(atoms) => atoms
                .iter()
                .map(|a| Atom::from_json(a, &ty.key))
                .collect::<Result<BTreeSet<_>, _>>()
                .map(Datum::Set),
            None => Ok(Datum::atom(Atom::from_json(json, &ty.key)?)),
        }
    }
}

/// The elements of `[tag, [..]]`.
fn tagged<'a>(json: &'a Json, tag: &str) -> Option<&'a Vec<Json>> {
    match json.as_array().map(Vec::as_slice) {
        Some([Json::String(t), Json::Array(items)]) if t == tag => Some(items),
        _ => None,
    }
}

/// A row: column name to value. Columns absent from the map were not selected or not sent.
pub type Row = BTreeMap<String, Datum>;

impl fmt::Display for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Datum::Set(s) if s.len() == 1 => write!(
                f,
                "{}",
                s.iter().next().map(ToString::to_string).unwrap_or_default()
            ),
            Datum::Set(s) => {
                write!(f, "[")?;
                for (i, a) in s.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{a}")?;
                }
                write!(f, "]")
            }
            Datum::Map(m) => {
                write!(f, "{{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                write!(f, "}}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnType;

    fn ty(json: Json) -> ColumnType {
        match ColumnType::from_json(&json) {
            Ok(t) => t,
            Err(e) => panic!("bad test type {json}: {e}"),
        }
    }

    #[test]
    fn scalar_set_and_map_round_trip() {
        let cases = [
            (json!("integer"), json!(7)),
            (json!("real"), json!(1.5)),
            (json!("boolean"), json!(true)),
            (json!("string"), json!("a b")),
            (
                json!("uuid"),
                json!(["uuid", "2c2f4e4a-7d3f-4c0e-9a55-5c1bd0c5b2a1"]),
            ),
            (
                json!({"key": "string", "min": 0, "max": "unlimited"}),
                json!(["set", ["a", "b"]]),
            ),
            (
                json!({"key": "string", "min": 0, "max": "unlimited"}),
                json!(["set", []]),
            ),
            (
                json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"}),
                json!(["map", [["k", "v"], ["x", "y"]]]),
            ),
        ];
        for (t, v) in cases {
            let t = ty(t);
            let d = Datum::from_json(&v, &t).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert_eq!(d.to_json(), v);
        }
    }

    #[test]
    fn integer_json_decodes_as_real_for_real_columns() {
        let d = Datum::from_json(&json!(2), &ty(json!("real"))).ok();
        assert_eq!(d, Some(Datum::atom(2.0)));
    }

    #[test]
    fn wrong_types_and_sizes_are_errors() {
        assert!(Datum::from_json(&json!("x"), &ty(json!("integer"))).is_err());
        assert!(Datum::from_json(&json!(["uuid", "nope"]), &ty(json!("uuid"))).is_err());
        assert!(Datum::from_json(&json!(["set", [1, 2]]), &ty(json!("integer"))).is_err());
        assert!(
            Datum::from_json(
                &json!(["map", [[1]]]),
                &ty(json!({"key": "integer", "value": "integer"}))
            )
            .is_err()
        );
        let enum_ty = ty(json!({"key": {"type": "string", "enum": ["set", ["a", "b"]]}}));
        assert!(Datum::from_json(&json!("c"), &enum_ty).is_err());
        assert!(Datum::from_json(&json!("a"), &enum_ty).is_ok());
    }

    #[test]
    fn atoms_order_like_the_server() {
        let mut v = vec![
            Atom::from("b"),
            Atom::from(3),
            Atom::from("a"),
            Atom::from(1),
        ];
        v.sort();
        assert_eq!(
            v,
            vec![
                Atom::from(1),
                Atom::from(3),
                Atom::from("a"),
                Atom::from("b")
            ]
        );
        assert_eq!(Atom::Real(f64::NAN), Atom::Real(f64::NAN));
    }
}
