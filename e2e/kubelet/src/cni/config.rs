//! Network configuration lists (`*.conflist`) and the per-plugin request a runtime builds from
//! them. Pure: no file or process I/O beyond [`load_first_conflist`], which only reads the directory.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::CniError;
use super::version::CniVersion;

/// A parsed `*.conflist`. Each plugin keeps its raw JSON object so that plugin-specific keys
/// reach the plugin untouched, as libcni does.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    /// Network name, injected into every plugin's config and part of the cache key.
    pub name: String,
    /// The list's `cniVersion`, injected into every plugin's config; decides CHECK/GC/STATUS.
    pub cni_version: String,
    /// `disableCheck`: the runtime must skip CHECK entirely.
    pub disable_check: bool,
    /// `disableGC`: the runtime must not send GC to the plugins.
    pub disable_gc: bool,
    /// Plugins in chain order.
    pub plugins: Vec<PluginConfig>,
    /// The file the list came from, for error messages.
    pub source: PathBuf,
}

/// One plugin of a list: its `type` (the executable's name) and its whole config object.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// The executable searched for in `CNI_PATH`.
    pub plugin_type: String,
    /// The config object exactly as written in the list.
    pub raw: Map<String, Value>,
}

impl NetworkConfigList {
    /// Parses a conflist, rejecting what libcni rejects (missing name, version or plugins) and
    /// plugin types that are not plain file names, so nothing outside `CNI_PATH` can be run.
    pub fn parse(bytes: &[u8], source: &Path) -> Result<Self, CniError> {
        let invalid = |reason: String| CniError::InvalidConfig {
            source_file: source.to_path_buf(),
            reason,
        };
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("top level is not an object".into()))?;
        let name = non_empty_str(obj, "name").ok_or_else(|| invalid("missing \"name\"".into()))?;
        let cni_version = non_empty_str(obj, "cniVersion")
            .ok_or_else(|| invalid("missing \"cniVersion\"".into()))?;
        CniVersion::parse(&cni_version)
            .ok_or_else(|| invalid(format!("bad cniVersion {cni_version:?}")))?;
        let plugins_json = obj
            .get("plugins")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| invalid("\"plugins\" must be a non-empty array".into()))?;
        let mut plugins = Vec::with_capacity(plugins_json.len());
        for (i, p) in plugins_json.iter().enumerate() {
            let raw = p
                .as_object()
                .ok_or_else(|| invalid(format!("plugin {i} is not an object")))?;
            let plugin_type = non_empty_str(raw, "type")
                .ok_or_else(|| invalid(format!("plugin {i} has no \"type\"")))?;
            if plugin_type.contains('/') || plugin_type == "." || plugin_type == ".." {
                return Err(invalid(format!(
                    "plugin {i} type {plugin_type:?} is not a plain file name"
                )));
            }
            plugins.push(PluginConfig {
                plugin_type,
                raw: raw.clone(),
            });
        }
        Ok(Self {
            name,
            cni_version,
            disable_check: flag(obj, "disableCheck"),
            disable_gc: flag(obj, "disableGC"),
            plugins,
            source: source.to_path_buf(),
        })
    }

    /// The list's version, parsed (validated in [`Self::parse`]).
    pub fn version(&self) -> CniVersion {
        CniVersion::parse(&self.cni_version).unwrap_or(CniVersion::ZERO)
    }
}

fn non_empty_str(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// libcni accepts both a JSON bool and the strings "true"/"false" for its flags.
fn flag(obj: &Map<String, Value>, key: &str) -> bool {
    match obj.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// What a runtime knows about an attachment that capability-aware plugins may ask for
/// (e.g. `portMappings` for `portmap`). Keys are capability names.
pub type CapabilityArgs = Map<String, Value>;

/// Builds the stdin of one plugin call as libcni does: the plugin's own config plus the list's
/// `name` and `cniVersion`, `prevResult` when given, and `runtimeConfig` holding only the
/// capabilities the plugin declares (and only when at least one of them has a value).
pub fn plugin_request(
    list: &NetworkConfigList,
    plugin: &PluginConfig,
    prev_result: Option<&Value>,
    capability_args: &CapabilityArgs,
) -> Value {
    let mut conf = plugin.raw.clone();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    match prev_result {
        Some(prev) => {
            conf.insert("prevResult".into(), prev.clone());
        }
        None => {
            conf.remove("prevResult");
        }
    }
    let declared = plugin.raw.get("capabilities").and_then(Value::as_object);
    let mut runtime_config = Map::new();
    if let Some(caps) = declared {
        for (cap, enabled) in caps {
            if enabled.as_bool() == Some(true)
                && let Some(value) = capability_args.get(cap)
            {
                runtime_config.insert(cap.clone(), value.clone());
            }
        }
    }
    if runtime_config.is_empty() {
        conf.remove("runtimeConfig");
    } else {
        conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    Value::Object(conf)
}

/// The first `*.conflist` of a directory in lexical order, as CRI runtimes pick their network.
pub fn load_first_conflist(dir: &Path) -> Result<NetworkConfigList, CniError> {
    let read_dir = std::fs::read_dir(dir).map_err(|e| CniError::Io {
        what: format!("reading CNI config dir {}", dir.display()),
        source: e,
    })?;
    let mut candidates: Vec<PathBuf> = read_dir
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "conflist") && p.is_file())
        .collect();
    candidates.sort();
    let first = candidates
        .into_iter()
        .next()
        .ok_or_else(|| CniError::NoConfig(dir.to_path_buf()))?;
    let bytes = std::fs::read(&first).map_err(|e| CniError::Io {
        what: format!("reading {}", first.display()),
        source: e,
    })?;
    NetworkConfigList::parse(&bytes, &first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(v: Value) -> Result<NetworkConfigList, CniError> {
        NetworkConfigList::parse(v.to_string().as_bytes(), Path::new("t.conflist"))
    }

    #[test]
    fn parses_list_and_flags() -> Result<(), CniError> {
        let l = list(
            json!({"cniVersion":"1.0.0","name":"n","disableCheck":"true",
            "plugins":[{"type":"bridge","bridge":"b0"},{"type":"portmap"}]}),
        )?;
        assert_eq!(l.name, "n");
        assert!(l.disable_check);
        assert!(!l.disable_gc);
        assert_eq!(l.plugins.len(), 2);
        assert_eq!(l.plugins[1].plugin_type, "portmap");
        Ok(())
    }

    #[test]
    fn rejects_bad_lists() {
        for bad in [
            json!({"name":"n","plugins":[{"type":"x"}]}),
            json!({"cniVersion":"1.0.0","plugins":[{"type":"x"}]}),
            json!({"cniVersion":"1.0.0","name":"n","plugins":[]}),
            json!({"cniVersion":"1.0.0","name":"n","plugins":[{"bridge":"x"}]}),
            json!({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../bin/sh"}]}),
            json!({"cniVersion":"one","name":"n","plugins":[{"type":"x"}]}),
            json!([1, 2]),
        ] {
            assert!(list(bad.clone()).is_err(), "accepted {bad}");
        }
        assert!(NetworkConfigList::parse(b"{nope", Path::new("x")).is_err());
    }

    #[test]
    fn request_injects_name_version_prev_result() -> Result<(), CniError> {
        let l = list(json!({"cniVersion":"1.0.0","name":"net",
            "plugins":[{"type":"bridge","name":"ignored","prevResult":{"stale":1}}]}))?;
        let first = plugin_request(&l, &l.plugins[0], None, &Map::new());
        assert_eq!(first["name"], "net");
        assert_eq!(first["cniVersion"], "1.0.0");
        assert!(first.get("prevResult").is_none());
        assert!(first.get("runtimeConfig").is_none());
        let prev = json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]});
        let second = plugin_request(&l, &l.plugins[0], Some(&prev), &Map::new());
        assert_eq!(second["prevResult"], prev);
        assert_eq!(second["bridge"], Value::Null);
        assert_eq!(second["type"], "bridge");
        Ok(())
    }

    #[test]
    fn runtime_config_only_for_declared_capabilities() -> Result<(), CniError> {
        let l = list(json!({"cniVersion":"1.0.0","name":"net","plugins":[
            {"type":"bridge"},
            {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}}]}))?;
        let mut caps = Map::new();
        caps.insert(
            "portMappings".into(),
            json!([{"hostPort":8080,"containerPort":80}]),
        );
        caps.insert("bandwidth".into(), json!({"ingressRate":1}));
        let bridge = plugin_request(&l, &l.plugins[0], None, &caps);
        assert!(bridge.get("runtimeConfig").is_none());
        let portmap = plugin_request(&l, &l.plugins[1], None, &caps);
        assert_eq!(
            portmap["runtimeConfig"],
            json!({"portMappings":[{"hostPort":8080,"containerPort":80}]})
        );
        let none = plugin_request(&l, &l.plugins[1], None, &Map::new());
        assert!(none.get("runtimeConfig").is_none());
        Ok(())
    }

    #[test]
    fn picks_first_conflist_lexically() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mk = |name: &str| json!({"cniVersion":"1.0.0","name":name,"plugins":[{"type":"x"}]});
        std::fs::write(dir.path().join("20-b.conflist"), mk("b").to_string())?;
        std::fs::write(dir.path().join("10-a.conflist"), mk("a").to_string())?;
        std::fs::write(dir.path().join("00-z.conf"), mk("z").to_string())?;
        assert_eq!(load_first_conflist(dir.path())?.name, "a");
        let empty = tempfile::tempdir()?;
        assert!(matches!(
            load_first_conflist(empty.path()),
            Err(CniError::NoConfig(_))
        ));
        Ok(())
    }
}
