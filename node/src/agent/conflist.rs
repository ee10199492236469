//! The CNI network config the runtime reads and the `rovn-cni` binary it runs: written
//! atomically, and only when the content changes, so a restart touches nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The conflist's content for `socket` (contracts.md).
pub fn render(socket: &Path) -> String {
    let value = serde_json::json!({
        "cniVersion": "1.1.0",
        "name": "rovn",
        "plugins": [{"type": "rovn-cni", "socket": socket.to_string_lossy()}],
    });
    value.to_string()
}

/// Writes `content` to `path` through a temporary file and a rename, unless the file already
/// holds exactly that. Returns whether it wrote.
pub fn write_if_changed(path: &Path, content: &[u8], mode: u32) -> anyhow::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::read(path).is_ok_and(|current| current == content) {
        return Ok(false);
    }
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file_name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(content)
        .and_then(|_| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(true)
}

/// Writes the conflist into `dir/name`.
pub fn install_conflist(dir: &Path, name: &str, socket: &Path) -> anyhow::Result<bool> {
    write_if_changed(&dir.join(name), render(socket).as_bytes(), 0o644)
}

/// Copies `rovn-cni` from beside the running executable into `bin_dir`, unless it is the same
/// file or already identical.
pub fn install_cni_binary(bin_dir: &Path) -> anyhow::Result<bool> {
    let exe = std::env::current_exe().context("finding the agent's own executable")?;
    let dir = exe
        .parent()
        .with_context(|| format!("{} has no parent directory", exe.display()))?;
    let source = dir.join("rovn-cni");
    let target = bin_dir.join("rovn-cni");
    if let (Ok(a), Ok(b)) = (source.canonicalize(), target.canonicalize())
        && a == b
    {
        return Ok(false);
    }
    let bytes = std::fs::read(&source).with_context(|| {
        format!(
            "reading {} (it is installed from beside rovn-node)",
            source.display()
        )
    })?;
    write_if_changed(&target, &bytes, 0o755)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_matches_the_contract_and_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let text = render(Path::new("/run/rovn/cni.sock"));
        assert_eq!(
            text,
            r#"{"cniVersion":"1.1.0","name":"rovn","plugins":[{"type":"rovn-cni","socket":"/run/rovn/cni.sock"}]}"#
        );
        assert!(
            install_conflist(
                dir.path(),
                "10-rovn.conflist",
                Path::new("/run/rovn/cni.sock")
            )
            .unwrap()
        );
        assert!(
            !install_conflist(
                dir.path(),
                "10-rovn.conflist",
                Path::new("/run/rovn/cni.sock")
            )
            .unwrap()
        );
        assert!(install_conflist(dir.path(), "10-rovn.conflist", Path::new("/x.sock")).unwrap());
    }
}
