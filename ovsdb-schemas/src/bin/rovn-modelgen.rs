//! Regenerates the typed OVSDB models of `rovn-ovsdb-schemas` from its `.ovsschema` files.
//!
//! Run it after replacing a schema file; `--check` is for CI, failing when the committed
//! modules are not what the generator writes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use rovn_ovsdb_schemas::modelgen;

/// Writes `src/generated/{nb,sb,vswitch}.rs` (and the test fixture's module) from the schemas.
#[derive(Debug, Parser)]
#[command(name = "rovn-modelgen", version)]
struct Args {
    /// The `rovn-ovsdb-schemas` package directory.
    #[arg(long, default_value = env!("CARGO_MANIFEST_DIR"))]
    package_root: PathBuf,
    /// Write nothing; exit 1 when any generated file is out of date.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rovn-modelgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let root = &args.package_root;
    if args.check {
        let stale = modelgen::stale_outputs(root)
            .with_context(|| format!("generating models under {}", root.display()))?;
        if stale.is_empty() {
            println!("generated models are up to date");
            return Ok(ExitCode::SUCCESS);
        }
        for path in &stale {
            println!("out of date: {}", path.display());
        }
        println!("run: {}", modelgen::REGENERATE);
        return Ok(ExitCode::FAILURE);
    }
    let written = modelgen::write_all(root)
        .with_context(|| format!("generating models under {}", root.display()))?;
    if written.is_empty() {
        println!("generated models were already up to date");
    }
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
