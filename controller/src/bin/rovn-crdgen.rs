//! Writes the Subnet CRD manifest, `deploy/crds/subnet.yaml`, from the Rust type, so the
//! installed schema can never drift from what the controller deserializes; `--check` lets CI
//! fail when someone changed the type without regenerating.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

/// Where the manifest lives in the source tree: `deploy/crds/subnet.yaml` beside `controller/`.
fn default_output() -> PathBuf {
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    package
        .parent()
        .unwrap_or(package)
        .join("deploy")
        .join("crds")
        .join("subnet.yaml")
}

/// Generate (or check) the Subnet CustomResourceDefinition manifest.
#[derive(Debug, Parser)]
#[command(name = "rovn-crdgen")]
struct Args {
    /// The manifest to write or check [default: deploy/crds/subnet.yaml in the source tree].
    #[arg(long)]
    output: Option<PathBuf>,
    /// Do not write: exit non-zero if the manifest differs from the generated one.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rovn-crdgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let generated = rovn_controller::crd::crd_yaml()?;
    let path = &args.output.unwrap_or_else(default_output);
    if args.check {
        let current = match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if current.as_deref() == Some(generated.as_str()) {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "rovn-crdgen: {} is stale or missing; run `cargo run -p rovn-controller --bin rovn-crdgen`",
            path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, generated).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}
