//! The `rovn-modelgen` binary: writes the modules into a package tree and `--check` reports
//! staleness with the command that fixes it.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    Ok(())
}

fn modelgen(root: &Path, check: bool) -> Result<(i32, String)> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rovn-modelgen"));
    cmd.arg("--package-root").arg(root);
    if check {
        cmd.arg("--check");
    }
    let out = cmd.output().context("running rovn-modelgen")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}

#[test]
fn modelgen_writes_the_modules_and_check_detects_staleness() -> Result<()> {
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = tempfile::Builder::new()
        .prefix("rovn-modelgen-")
        .tempdir()?;
    let root = scratch.path();
    for target in rovn_ovsdb_schemas::modelgen::TARGETS {
        copy(&package.join(target.schema), &root.join(target.schema))?;
    }

    let (code, text) = modelgen(root, true)?;
    ensure!(
        code == 1,
        "--check on a tree without outputs exited {code}: {text}"
    );
    ensure!(
        text.contains("run: cargo run -p rovn-ovsdb-schemas --bin rovn-modelgen"),
        "{text}"
    );

    let (code, text) = modelgen(root, false)?;
    ensure!(code == 0, "generation failed ({code}): {text}");
    for target in rovn_ovsdb_schemas::modelgen::TARGETS {
        let written = std::fs::read_to_string(root.join(target.output))?;
        let committed = std::fs::read_to_string(package.join(target.output))?;
        ensure!(
            written == committed,
            "{} differs from the committed copy",
            target.output
        );
    }
    let (code, text) = modelgen(root, true)?;
    ensure!(code == 0, "--check after generation exited {code}: {text}");

    let nb = root.join("src/generated/nb.rs");
    std::fs::write(&nb, "// edited by hand\n")?;
    let (code, text) = modelgen(root, true)?;
    ensure!(
        code == 1 && text.contains("nb.rs"),
        "a hand edit went unnoticed: {text}"
    );

    std::fs::write(root.join("schemas/ovn-sb.ovsschema"), "{ not json")?;
    let (code, text) = modelgen(root, false)?;
    ensure!(
        code == 2 && text.contains("ovn-sb.ovsschema"),
        "a broken schema did not fail naming the file ({code}): {text}"
    );
    Ok(())
}
