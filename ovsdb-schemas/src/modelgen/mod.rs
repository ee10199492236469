//! The model generator: `.ovsschema` in, formatted Rust modules out.
//!
//! Lives in the library (not only in the `rovn-modelgen` binary) so that the test that keeps
//! the committed modules fresh runs exactly the code that wrote them.

mod emit;
mod naming;
mod plan;
mod rustfmt;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use rovn_ovsdb::{DatabaseSchema, SchemaError};

pub use emit::Source;
pub use naming::{const_name, field_name, snake, type_name, variant_name};
pub use plan::{EnumPlan, FieldPlan, SchemaPlan, TablePlan, plan};

/// The command that rewrites every generated module, quoted in their headers and errors.
pub const REGENERATE: &str = "cargo run -p rovn-ovsdb-schemas --bin rovn-modelgen";

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// A schema file could not be read or an output written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A schema file is not a valid OVSDB schema.
    #[error("{path}: {source}")]
    Schema {
        /// The schema file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: SchemaError,
    },
    /// Two schema names map to the same Rust name.
    #[error("{name} would be generated twice: for {first} and for {second}")]
    NameClash {
        /// The Rust name.
        name: String,
        /// What claimed it first.
        first: String,
        /// What claimed it again.
        second: String,
    },
    /// An index names a column the table does not have.
    #[error("an index of table {table} names unknown column {column}")]
    UnknownIndexColumn {
        /// The table.
        table: String,
        /// The column the index names.
        column: String,
    },
    /// rustfmt could not be run or rejected the generated code.
    #[error("rustfmt on the code for {what}: {reason}")]
    Rustfmt {
        /// The module being formatted.
        what: String,
        /// Why it failed, with rustfmt's stderr.
        reason: String,
    },
}

/// One generated module: which schema, where the output goes.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The schema file, relative to the package root.
    pub schema: &'static str,
    /// The generated file, relative to the package root.
    pub output: &'static str,
    /// The schema file as `include_str!` sees it from the output.
    pub include_path: &'static str,
    /// The manual page that documents the columns, if there is one.
    pub manual: Option<&'static str>,
}

/// Every module this package commits: the three databases, and a test schema that covers
/// the types (reals, integer enumerations, ...) the real schemas do not use.
pub const TARGETS: &[Target] = &[
    Target {
        schema: "schemas/ovn-nb.ovsschema",
        output: "src/generated/nb.rs",
        include_path: "../../schemas/ovn-nb.ovsschema",
        manual: Some("ovn-nb(5)"),
    },
    Target {
        schema: "schemas/ovn-sb.ovsschema",
        output: "src/generated/sb.rs",
        include_path: "../../schemas/ovn-sb.ovsschema",
        manual: Some("ovn-sb(5)"),
    },
    Target {
        schema: "schemas/vswitch.ovsschema",
        output: "src/generated/vswitch.rs",
        include_path: "../../schemas/vswitch.ovsschema",
        manual: Some("ovs-vswitchd.conf.db(5)"),
    },
    Target {
        schema: "tests/fixtures/all_types.ovsschema",
        output: "tests/generated/all_types.rs",
        include_path: "../fixtures/all_types.ovsschema",
        manual: None,
    },
];

/// The formatted module for one schema document. Pure apart from running rustfmt.
pub fn generate(schema: &DatabaseSchema, source: Source<'_>) -> Result<String, GenError> {
    let plan = plan::plan(schema)?;
    let code = emit::render(&plan, source);
    rustfmt::format(&code, &schema.name)
}

/// Reads `target`'s schema under `package_root` and returns the module it generates.
pub fn generate_target(package_root: &Path, target: &Target) -> Result<String, GenError> {
    let path = package_root.join(target.schema);
    let text = std::fs::read_to_string(&path).map_err(|source| GenError::Io {
        path: path.clone(),
        source,
    })?;
    let schema =
        DatabaseSchema::from_str(&text).map_err(|source| GenError::Schema { path, source })?;
    generate(
        &schema,
        Source {
            include_path: target.include_path,
            display_path: target.schema,
            regenerate: REGENERATE,
            manual: target.manual,
        },
    )
}

/// The outputs whose committed content differs from what the generator writes now.
pub fn stale_outputs(package_root: &Path) -> Result<Vec<PathBuf>, GenError> {
    let mut stale = Vec::new();
    for target in TARGETS {
        let fresh = generate_target(package_root, target)?;
        let path = package_root.join(target.output);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != fresh {
            stale.push(path);
        }
    }
    Ok(stale)
}

/// Regenerates every target, writing only files whose content changes; returns those.
pub fn write_all(package_root: &Path) -> Result<Vec<PathBuf>, GenError> {
    let mut written = Vec::new();
    for target in TARGETS {
        let fresh = generate_target(package_root, target)?;
        let path = package_root.join(target.output);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(fresh.as_str()) {
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| GenError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, fresh).map_err(|source| GenError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}
