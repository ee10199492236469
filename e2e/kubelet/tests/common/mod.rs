//! Helpers shared by the integration tests: unique names, namespace guards, running async code
//! inside a namespace, small `ip` wrappers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod harness;
pub mod procs;

use rovn_kubelet::sandbox;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A prefix no other test or lab uses: `rkt<tag><pid><counter>-`.
pub fn unique_prefix(tag: &str) -> String {
    format!("rkt{}-", rovn_testkit::unique::name(tag))
}

/// Deletes the named namespaces (killing what runs inside) on drop, even after a panic.
pub struct NetnsGuard {
    names: Vec<String>,
    prefixes: Vec<String>,
}

impl NetnsGuard {
    pub fn new() -> Self {
        Self {
            names: Vec::new(),
            prefixes: Vec::new(),
        }
    }

    /// Creates a namespace and takes responsibility for it.
    pub fn create(&mut self, name: &str) -> Result<PathBuf, sandbox::SandboxError> {
        self.names.push(name.to_owned());
        sandbox::create_netns(name)
    }

    /// Also removes, on drop, every namespace starting with `prefix` (those made by a kubelet).
    pub fn cover_prefix(&mut self, prefix: &str) {
        self.prefixes.push(prefix.to_owned());
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let mut all = self.names.clone();
        for p in &self.prefixes {
            all.extend(sandbox::list_netns(p).unwrap_or_default());
        }
        // Sandboxes first, the node last.
        all.reverse();
        for name in all {
            for pid in sandbox::pids_in_netns(&sandbox::netns_path(&name)) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = sandbox::delete_netns(&name);
        }
    }
}

/// Runs an async block on a fresh single-threaded runtime on a thread inside the namespace:
/// every process it spawns (CNI plugins) starts in that namespace.
pub fn block_on_in<T, F, Fut>(
    netns: &Path,
    f: F,
) -> Result<T, Box<dyn std::error::Error + Send + Sync>>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let out = sandbox::run_in_netns(netns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok::<T, std::io::Error>(rt.block_on(f()))
    })??;
    Ok(out)
}

/// `ip -n NS ARGS...` output, failing on a non-zero exit.
pub fn ip_n(ns: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip -n {ns} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One ping from inside `ns` to `ip`; true when answered.
pub fn ping_from(ns: &str, ip: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "2", ip])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Pings with a few retries (new veths may need a moment for neighbour resolution).
pub fn ping_eventually(ns: &str, ip: &str) -> bool {
    (0..5).any(|_| ping_from(ns, ip))
}

/// Writes an executable shell script.
pub fn write_script(path: &Path, body: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// A CNI plugin that records each call (stdin and `CNI_*` env) as numbered files in `log_dir`
/// (numbered, plus the PID so concurrent calls never collide; the `.json` is written last, so
/// a listed call is complete) and answers like a pass-through chained plugin: its result is the `prevResult` it got (or
/// a minimal result with one IP when first in the chain). `fail_on` makes one verb fail with a
/// CNI error object.
pub fn spy_plugin(path: &Path, log_dir: &Path, fail_on: Option<&str>) -> std::io::Result<()> {
    std::fs::create_dir_all(log_dir)?;
    let fail = fail_on.unwrap_or("NONE");
    let body = format!(
        r#"#!/bin/sh
in=$(cat)
d='{dir}'
n=$(ls "$d" | wc -l)
n=$(printf '%03d' "$n")
f="$d/$n-$$-$CNI_COMMAND"
env | grep '^CNI_' | sort > "$f.env"
printf '%s' "$in" > "$f.json"
if [ "$CNI_COMMAND" = '{fail}' ]; then
  echo '{{"cniVersion":"1.0.0","code":50,"msg":"spy refuses {fail}","details":"as asked"}}'
  exit 1
fi
case "$CNI_COMMAND" in
ADD)
  prev=$(printf '%s' "$in" | jq -c '.prevResult // empty')
  if [ -n "$prev" ]; then printf '%s' "$prev"; else
    printf '{{"cniVersion":"%s","ips":[{{"address":"192.0.2.7/24"}}]}}' "$(printf '%s' "$in" | jq -r .cniVersion)"
  fi;;
VERSION) echo '{{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}}';;
*) ;;
esac
"#,
        dir = log_dir.display(),
        fail = fail
    );
    write_script(path, &body)
}

/// The spy's recorded calls in order: (verb, stdin JSON, env lines).
pub fn spy_calls(log_dir: &Path) -> Vec<(String, serde_json::Value, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(log_dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let verb = stem.rsplit('-').next().unwrap_or("").to_owned();
            let json = std::fs::read(p)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(serde_json::Value::Null);
            let env = std::fs::read_to_string(p.with_extension("env")).unwrap_or_default();
            (verb, json, env)
        })
        .collect()
}
