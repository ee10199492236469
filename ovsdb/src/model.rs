//! Typed rows: the trait the generated models implement and the conversions they use.
//!
//! The generated structs in `rovn-ovsdb-schemas` hold plain Rust values (`String`, `i64`,
//! `Option<T>`, `BTreeSet<T>`, `BTreeMap<K, V>`, `Uuid`, string enums); this module maps them
//! to and from the schema-neutral [`Datum`] so that the rest of the client (transactions,
//! replica, diffs) keeps one representation. Decoding is strict: a datum of the wrong shape is
//! an error naming `table.column`, never a silently defaulted field.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::str::FromStr;

use crate::operation::{Condition, Mutation, Operation};
use crate::value::{Atom, Datum, Row, Uuid};

/// Why a row could not be decoded into a model.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    /// A column's datum does not have the type its field needs.
    #[error("{table}.{column}: {reason}")]
    Column {
        /// The table the row belongs to.
        table: String,
        /// The offending column.
        column: String,
        /// What is wrong with its value (part of the message, so not also a `source`).
        reason: DatumError,
    },
    /// A row of a table the database's models do not know.
    #[error("database {database} has no table {table}")]
    UnknownTable {
        /// The database whose models were asked.
        database: String,
        /// The table name that was not found.
        table: String,
    },
}

/// Why one datum does not convert to a Rust value.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DatumError {
    /// An atom of another OVSDB type than the field's.
    #[error("expected {expected}, got {got}")]
    AtomType {
        /// The OVSDB type the field holds.
        expected: &'static str,
        /// The atom found, as OVSDB JSON.
        got: String,
    },
    /// A set where a map is needed, or the reverse.
    #[error("expected a {expected}, got {got}")]
    Shape {
        /// `set` or `map`.
        expected: &'static str,
        /// The datum found, as OVSDB JSON.
        got: String,
    },
    /// A scalar or optional field given the wrong number of atoms.
    #[error("expected {expected} atom(s), got {n}")]
    Size {
        /// `exactly 1` or `at most 1`.
        expected: &'static str,
        /// Atoms found.
        n: usize,
    },
    /// A string that is none of an enumeration's values.
    #[error(transparent)]
    Enum(#[from] EnumError),
}

/// A string that names no value of an enumerated column type.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{value:?} is not a valid {type_name} (one of {allowed})")]
pub struct EnumError {
    /// The Rust enum, e.g. `AclAction`.
    pub type_name: &'static str,
    /// The string that did not match.
    pub value: String,
    /// The allowed strings, comma-separated.
    pub allowed: String,
}

impl EnumError {
    /// The error for `value` not being one of `E`'s strings.
    pub fn new<E: StringEnum>(value: &str) -> EnumError {
        let allowed: Vec<&str> = E::ALL.iter().map(|v| v.as_str()).collect();
        EnumError {
            type_name: E::TYPE_NAME,
            value: value.to_string(),
            allowed: allowed.join(", "),
        }
    }
}

/// A row of one table as a Rust struct, generated from the table's schema.
///
/// Exists so that code writing OVN/OVS rows names fields the compiler checks instead of
/// string keys, while the wire still sees plain [`Row`]s.
pub trait Model: Sized + Clone + PartialEq + Debug + Default {
    /// The table's name in the schema.
    const TABLE: &'static str;
    /// Every declared column, for monitor requests and `select` column lists.
    const COLUMNS: &'static [&'static str];
    /// The schema's unique indexes, each a list of columns: the keys a row can be found by
    /// (`name` for most OVN tables) and that an insert must not duplicate.
    const INDEXES: &'static [&'static [&'static str]];

    /// The row's `_uuid`; nil for a model not yet inserted.
    fn uuid(&self) -> Uuid;

    /// Decodes a row the server sent. A column absent from `row` (not selected) takes its
    /// field's empty value; a column of the wrong type is an error naming `table.column`.
    fn from_row(uuid: Uuid, row: &Row) -> Result<Self, ModelError>;

    /// Every column's value, for `insert`. `_uuid` is not a column and is not included.
    fn to_row(&self) -> Row;

    /// The columns whose value in `desired` differs from `self`, with `desired`'s values:
    /// the `row` of the `update` that turns the row `self` describes into `desired`.
    /// Empty when nothing changed, so converged state costs no write.
    fn diff(&self, desired: &Self) -> Row;

    /// As [`Model::diff`], but unbounded set and map columns change element by element
    /// ([`Changes::mutations`]) instead of being replaced, so elements another writer added
    /// meanwhile (ovn-controller's `external_ids:ovn-installed`, ...) survive.
    fn changes(&self, desired: &Self) -> Changes;
}

/// The changes from one row state to another, split by how they are written: replaced
/// columns go into an `update`, element changes of sets and maps into a `mutate`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Columns replaced whole: scalars, optionals, bounded sets and maps.
    pub update: Row,
    /// Element deletions and insertions of unbounded sets and maps, in the order they
    /// must run.
    pub mutations: Vec<Mutation>,
}

impl Changes {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.update.is_empty() && self.mutations.is_empty()
    }

    /// Replaces `column` with `desired`.
    pub fn replace(&mut self, column: &str, desired: Datum) {
        self.update.insert(column.to_string(), desired);
    }

    /// Turns set or map `column` from `current` into `desired` by elements. Set elements are
    /// inserted before removed ones are deleted; map keys that go away or change value are
    /// deleted before the new pairs are inserted, since `insert` never overwrites a key.
    /// A set/map shape mismatch (not produced by generated models) replaces the column.
    pub fn elements(&mut self, column: &str, current: &Datum, desired: &Datum) {
        match (current, desired) {
            (Datum::Set(current), Datum::Set(desired)) => {
                let added: BTreeSet<Atom> = desired.difference(current).cloned().collect();
                let removed: BTreeSet<Atom> = current.difference(desired).cloned().collect();
                if !added.is_empty() {
                    self.mutations
                        .push(Mutation::insert(column, Datum::Set(added)));
                }
                if !removed.is_empty() {
                    self.mutations
                        .push(Mutation::delete(column, Datum::Set(removed)));
                }
            }
            (Datum::Map(current), Datum::Map(desired)) => {
                let stale: BTreeSet<Atom> = current
                    .iter()
                    .filter(|(k, v)| desired.get(*k) != Some(*v))
                    .map(|(k, _)| k.clone())
                    .collect();
                let fresh: BTreeMap<Atom, Atom> = desired
                    .iter()
                    .filter(|(k, v)| current.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !stale.is_empty() {
                    self.mutations
                        .push(Mutation::delete(column, Datum::Set(stale)));
                }
                if !fresh.is_empty() {
                    self.mutations
                        .push(Mutation::insert(column, Datum::Map(fresh)));
                }
            }
            _ => self.replace(column, desired.clone()),
        }
    }

    /// The operations that apply the changes to row `uuid` of `table`: an `update`, a
    /// `mutate`, both or none.
    pub fn into_operations(self, table: &str, uuid: Uuid) -> Vec<Operation> {
        let mut ops = Vec::new();
        if !self.update.is_empty() {
            ops.push(Operation::update(
                table,
                vec![Condition::uuid(uuid)],
                self.update,
            ));
        }
        if !self.mutations.is_empty() {
            ops.push(Operation::mutate(
                table,
                vec![Condition::uuid(uuid)],
                self.mutations,
            ));
        }
        ops
    }
}

/// A row of any table of one database: the generated `AnyModel` enum of each database module.
///
/// Lets code that receives rows by table name (monitor updates, dumps, tests over every
/// table) decode them into typed models without a match per table.
pub trait DatabaseModel: Sized + Clone + PartialEq + Debug {
    /// The database name.
    const DATABASE: &'static str;
    /// Every table of the schema the models were generated from.
    const TABLES: &'static [&'static str];

    /// The schema the models were generated from.
    fn schema() -> crate::schema::DatabaseSchema;

    /// Decodes a row of `table`, as [`Model::from_row`]; an unknown table is an error.
    fn from_row(table: &str, uuid: Uuid, row: &Row) -> Result<Self, ModelError>;

    /// The table the row belongs to.
    fn table(&self) -> &'static str;

    /// The row's `_uuid`.
    fn uuid(&self) -> Uuid;

    /// Every column's value, as [`Model::to_row`].
    fn to_row(&self) -> Row;
}

/// Conversion of one atom to a Rust value: the building block of [`FromDatum`].
pub trait FromAtom: Sized {
    /// Converts the atom, or says which OVSDB type was expected.
    fn from_atom(atom: &Atom) -> Result<Self, DatumError>;
}

/// Conversion of a Rust value to one atom: the building block of [`ToDatum`].
pub trait ToAtom {
    /// The atom for this value.
    fn to_atom(&self) -> Atom;
}

/// Conversion of a whole column value to a field's Rust type.
pub trait FromDatum: Sized {
    /// Converts the datum, checking its shape (set or map) and size.
    fn from_datum(datum: &Datum) -> Result<Self, DatumError>;
}

/// Conversion of a field to the column value the server stores.
pub trait ToDatum {
    /// The datum for this value.
    fn to_datum(&self) -> Datum;
}

/// A Rust enum generated for a string column restricted to an enumeration.
///
/// Gives every generated enum the atom conversions and [`EnumError`] reporting without
/// repeating them per enum.
pub trait StringEnum: Sized + Copy + FromStr<Err = EnumError> + 'static {
    /// The Rust type's name, for errors.
    const TYPE_NAME: &'static str;
    /// Every value, in the schema's order.
    const ALL: &'static [Self];
    /// The string the database stores.
    fn as_str(&self) -> &'static str;
}

/// A real that can be a set element or a map key: ordered and compared by IEEE 754 total
/// order, as ovsdb-server orders reals, so `BTreeSet<Real>` holds what the server holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Real(pub f64);

impl PartialEq for Real {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}

impl Eq for Real {}

impl PartialOrd for Real {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Real {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl From<f64> for Real {
    fn from(r: f64) -> Self {
        Real(r)
    }
}

impl FromAtom for Real {
    fn from_atom(atom: &Atom) -> Result<Self, DatumError> {
        f64::from_atom(atom).map(Real)
    }
}

impl ToAtom for Real {
    fn to_atom(&self) -> Atom {
        Atom::Real(self.0)
    }
}

fn atom_type_error(expected: &'static str, atom: &Atom) -> DatumError {
    DatumError::AtomType {
        expected,
        got: atom.to_json().to_string(),
    }
}

impl FromAtom for String {
    fn from_atom(atom: &Atom) -> Result<Self, DatumError> {
        atom.as_str()
            .map(str::to_string)
            .ok_or_else(|| atom_type_error("string", atom))
    }
}

impl FromAtom for i64 {
    fn from_atom(atom: &Atom) -> Result<Self, DatumError> {
        atom.as_integer()
            .ok_or_else(|| atom_type_error("integer", atom))
    }
}

impl FromAtom for f64 {
    fn from_atom(atom: &Atom) -> Result<Self, DatumError> {
        atom.as_real().ok_or_else(|| atom_type_error("real", atom))
    }
}

impl FromAtom for bool {
    fn from_atom(atom: &Atom) -> Result<Self, DatumError> {
        atom.as_bool()
            .ok_or_else(|| atom_type_error("boolean", atom))
    }
}

impl FromAtom for Uuid {
    fn from_atom(atom: &Atom) -> Result<Self, DatumError> {
        atom.as_uuid().ok_or_else(|| atom_type_error("uuid", atom))
    }
}

impl<E: StringEnum> FromAtom for E {
    fn from_atom(atom: &Atom) -> Result<Self, DatumError> {
        let s = atom
            .as_str()
            .ok_or_else(|| atom_type_error("string", atom))?;
        Ok(s.parse::<E>()?)
    }
}

impl ToAtom for String {
    fn to_atom(&self) -> Atom {
        Atom::String(self.clone())
    }
}

impl ToAtom for i64 {
    fn to_atom(&self) -> Atom {
        Atom::Integer(*self)
    }
}

impl ToAtom for f64 {
    fn to_atom(&self) -> Atom {
        Atom::Real(*self)
    }
}

impl ToAtom for bool {
    fn to_atom(&self) -> Atom {
        Atom::Boolean(*self)
    }
}

impl ToAtom for Uuid {
    fn to_atom(&self) -> Atom {
        Atom::Uuid(*self)
    }
}

impl<E: StringEnum> ToAtom for E {
    fn to_atom(&self) -> Atom {
        Atom::String(self.as_str().to_string())
    }
}

fn set_of(datum: &Datum) -> Result<&BTreeSet<Atom>, DatumError> {
    datum.as_set().ok_or_else(|| DatumError::Shape {
        expected: "set",
        got: datum.to_json().to_string(),
    })
}

/// Scalar columns: exactly one atom.
impl<T: FromAtom> FromDatum for T {
    fn from_datum(datum: &Datum) -> Result<Self, DatumError> {
        let set = set_of(datum)?;
        match set.iter().next() {
            Some(atom) if set.len() == 1 => T::from_atom(atom),
            _ => Err(DatumError::Size {
                expected: "exactly 1",
                n: set.len(),
            }),
        }
    }
}

impl<T: ToAtom> ToDatum for T {
    fn to_datum(&self) -> Datum {
        Datum::atom(self.to_atom())
    }
}

/// Optional columns (`min` 0, `max` 1): zero or one atom.
impl<T: FromAtom> FromDatum for Option<T> {
    fn from_datum(datum: &Datum) -> Result<Self, DatumError> {
        let set = set_of(datum)?;
        if set.len() > 1 {
            return Err(DatumError::Size {
                expected: "at most 1",
                n: set.len(),
            });
        }
        set.iter().next().map(T::from_atom).transpose()
    }
}

impl<T: ToAtom> ToDatum for Option<T> {
    fn to_datum(&self) -> Datum {
        Datum::Set(self.iter().map(ToAtom::to_atom).collect())
    }
}

impl<T: FromAtom + Ord> FromDatum for BTreeSet<T> {
    fn from_datum(datum: &Datum) -> Result<Self, DatumError> {
        set_of(datum)?.iter().map(T::from_atom).collect()
    }
}

impl<T: ToAtom> ToDatum for BTreeSet<T> {
    fn to_datum(&self) -> Datum {
        Datum::Set(self.iter().map(ToAtom::to_atom).collect())
    }
}

impl<K: FromAtom + Ord, V: FromAtom> FromDatum for BTreeMap<K, V> {
    fn from_datum(datum: &Datum) -> Result<Self, DatumError> {
        let map = datum.as_map().ok_or_else(|| DatumError::Shape {
            expected: "map",
            got: datum.to_json().to_string(),
        })?;
        map.iter()
            .map(|(k, v)| Ok((K::from_atom(k)?, V::from_atom(v)?)))
            .collect()
    }
}

impl<K: ToAtom, V: ToAtom> ToDatum for BTreeMap<K, V> {
    fn to_datum(&self) -> Datum {
        Datum::Map(
            self.iter()
                .map(|(k, v)| (k.to_atom(), v.to_atom()))
                .collect(),
        )
    }
}

/// Decodes one column of `row` for a generated `from_row`: absent means the field's empty
/// value, a wrongly typed datum an error naming `table.column`.
pub fn column<T: FromDatum + Default>(
    row: &Row,
    table: &str,
    column: &str,
) -> Result<T, ModelError> {
    match row.get(column) {
        None => Ok(T::default()),
        Some(datum) => T::from_datum(datum).map_err(|reason| ModelError::Column {
            table: table.to_string(),
            column: column.to_string(),
            reason,
        }),
    }
}

/// The `insert` of every column of `model` (its `uuid` is ignored: the server assigns one).
/// Add `.with_uuid_name(..)` to reference the new row from later operations.
pub fn insert<M: Model>(model: &M) -> Operation {
    Operation::insert(M::TABLE, model.to_row())
}

/// The `update` that turns row `current` into `desired`, matching the row by `current`'s
/// UUID; `None` when nothing differs, so converged state sends nothing.
pub fn update<M: Model>(current: &M, desired: &M) -> Option<Operation> {
    let row = current.diff(desired);
    if row.is_empty() {
        return None;
    }
    Some(Operation::update(
        M::TABLE,
        vec![Condition::uuid(current.uuid())],
        row,
    ))
}

/// The operations that turn row `current` into `desired` without replacing whole sets and
/// maps (see [`Model::changes`]); empty when converged.
pub fn update_elements<M: Model>(current: &M, desired: &M) -> Vec<Operation> {
    current
        .changes(desired)
        .into_operations(M::TABLE, current.uuid())
}

/// The `delete` of the row `model` was read from.
pub fn delete<M: Model>(model: &M) -> Operation {
    Operation::delete(M::TABLE, vec![Condition::uuid(model.uuid())])
}

/// Decodes `select` results (as `OperationResult::rows_decoded` returns them) into models; a
/// row without `_uuid` (not selected) gets the nil UUID.
pub fn from_rows<M: Model>(rows: &[(Option<Uuid>, Row)]) -> Result<Vec<M>, ModelError> {
    rows.iter()
        .map(|(uuid, row)| M::from_row(uuid.unwrap_or_default(), row))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
    enum Color {
        #[default]
        Dark,
        LightBlue,
    }

    impl StringEnum for Color {
        const TYPE_NAME: &'static str = "Color";
        const ALL: &'static [Self] = &[Color::Dark, Color::LightBlue];
        fn as_str(&self) -> &'static str {
            match self {
                Color::Dark => "dark",
                Color::LightBlue => "light-blue",
            }
        }
    }

    impl FromStr for Color {
        type Err = EnumError;
        fn from_str(s: &str) -> Result<Self, EnumError> {
            Color::ALL
                .iter()
                .copied()
                .find(|c| c.as_str() == s)
                .ok_or_else(|| EnumError::new::<Color>(s))
        }
    }

    fn round_trip<T: FromDatum + ToDatum + PartialEq + Debug>(value: T) {
        let datum = value.to_datum();
        assert_eq!(T::from_datum(&datum), Ok(value), "via {datum}");
    }

    #[test]
    fn every_rust_type_round_trips_through_a_datum() {
        round_trip(String::from("sw0"));
        round_trip(-42i64);
        round_trip(2.5f64);
        round_trip(true);
        round_trip(Uuid::from_u128(0x1234));
        round_trip(Color::LightBlue);
        round_trip(Some(7i64));
        round_trip(None::<String>);
        round_trip(Some(Color::Dark));
        round_trip(BTreeSet::from([Color::Dark, Color::LightBlue]));
        round_trip(BTreeSet::from([String::from("a"), String::from("b")]));
        round_trip(BTreeSet::<Uuid>::new());
        round_trip(BTreeMap::from([(String::from("k"), String::from("v"))]));
        round_trip(BTreeMap::from([(Color::Dark, 1i64), (Color::LightBlue, 2)]));
        round_trip(BTreeMap::from([(5i64, Uuid::from_u128(9))]));
        round_trip(BTreeSet::from([Real(-0.5), Real(3.25)]));
        round_trip(BTreeMap::from([(Real(1.0), 2.5f64)]));
    }

    #[test]
    fn scalars_are_one_atom_and_options_zero_or_one() {
        assert_eq!(5i64.to_datum(), Datum::atom(5));
        assert_eq!(None::<i64>.to_datum(), Datum::default());
        assert_eq!(
            i64::from_datum(&Datum::default()),
            Err(DatumError::Size {
                expected: "exactly 1",
                n: 0
            })
        );
        assert!(Option::<i64>::from_datum(&Datum::set([1i64, 2])).is_err());
    }

    #[test]
    fn wrong_atom_types_and_shapes_are_errors() {
        assert!(matches!(
            i64::from_datum(&Datum::atom("x")),
            Err(DatumError::AtomType {
                expected: "integer",
                ..
            })
        ));
        assert!(f64::from_datum(&Datum::atom(1)).is_err());
        assert!(Uuid::from_datum(&Datum::named_uuid("x")).is_err());
        assert!(matches!(
            BTreeMap::<String, String>::from_datum(&Datum::set(["a"])),
            Err(DatumError::Shape {
                expected: "map",
                ..
            })
        ));
        assert!(BTreeSet::<String>::from_datum(&Datum::map([("a", "b")])).is_err());
    }

    #[test]
    fn unknown_enum_strings_name_the_type_and_the_choices() {
        let err = Color::from_datum(&Datum::atom("red")).err();
        let Some(DatumError::Enum(e)) = err else {
            panic!("expected an enum error, got {err:?}");
        };
        assert_eq!(e.type_name, "Color");
        assert_eq!(
            e.to_string(),
            "\"red\" is not a valid Color (one of dark, light-blue)"
        );
    }

    #[test]
    fn element_changes_insert_and_delete_only_what_differs() {
        let mut changes = Changes::default();
        changes.elements("ports", &Datum::set(["a", "b"]), &Datum::set(["b", "c"]));
        changes.elements(
            "external_ids",
            &Datum::map([("keep", "1"), ("change", "old"), ("drop", "x")]),
            &Datum::map([("keep", "1"), ("change", "new"), ("add", "y")]),
        );
        changes.elements("same", &Datum::set([1i64]), &Datum::set([1i64]));
        assert_eq!(
            changes.mutations,
            vec![
                Mutation::insert("ports", Datum::set(["c"])),
                Mutation::delete("ports", Datum::set(["a"])),
                Mutation::delete("external_ids", Datum::set(["change", "drop"])),
                Mutation::insert(
                    "external_ids",
                    Datum::map([("add", "y"), ("change", "new")])
                ),
            ]
        );
        assert!(changes.update.is_empty());
        let ops = changes.into_operations("T", Uuid::from_u128(1));
        assert!(matches!(ops.as_slice(), [Operation::Mutate { .. }]));
        assert!(
            Changes::default()
                .into_operations("T", Uuid::nil())
                .is_empty()
        );
    }

    #[test]
    fn column_defaults_when_absent_and_names_table_and_column_on_error() {
        let mut row = Row::new();
        assert_eq!(column::<String>(&row, "T", "name"), Ok(String::new()));
        assert_eq!(column::<Color>(&row, "T", "color"), Ok(Color::Dark));
        row.insert("name".into(), Datum::atom(3));
        let err = column::<String>(&row, "T", "name").err();
        assert!(
            err.as_ref()
                .is_some_and(|e| e.to_string().starts_with("T.name: expected string")),
            "{err:?}"
        );
    }
}
