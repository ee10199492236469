//! The runtime proper: verbs over a whole network list, with the result cache. This is the part
//! of libcni a container runtime links in; the kubelet and the tests call it.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::CniError;
use super::cache::{CachedAttachment, ResultCache, base64_encode};
use super::config::{CapabilityArgs, NetworkConfigList, PluginConfig, plugin_request};
use super::exec::{find_plugin, run_plugin};
use super::invocation::{AttachmentTarget, Verb, plugin_env};
use super::output::{PluginOutcome, interpret};
use super::version::CniVersion;

/// Runs CNI plugins for a runtime: where plugins live, where results are cached, and how long
/// one plugin call may take.
#[derive(Debug, Clone)]
pub struct CniRuntime {
    bin_dirs: Vec<PathBuf>,
    cache: ResultCache,
    timeout: Duration,
}

/// What a GC did: stale cached attachments it DELeted, and the errors it met (GC goes on past
/// errors so that one broken attachment does not pin all the others).
#[derive(Debug, Default)]
pub struct GcReport {
    /// `(containerID, ifname)` of stale attachments that were DELeted.
    pub deleted: Vec<(String, String)>,
    /// Failures, each naming its attachment or plugin.
    pub errors: Vec<CniError>,
}

impl CniRuntime {
    /// A runtime searching `bin_dirs` (the future `CNI_PATH`) and caching under `cache_dir`.
    pub fn new(bin_dirs: Vec<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            bin_dirs,
            cache: ResultCache::new(cache_dir),
            timeout: Duration::from_secs(120),
        }
    }

    /// Changes the per-call time limit (tests use short ones).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The result cache, e.g. to list attachments at startup.
    pub fn cache(&self) -> &ResultCache {
        &self.cache
    }

    async fn call(
        &self,
        plugin: &PluginConfig,
        verb: Verb,
        target: Option<&AttachmentTarget>,
        request: &Value,
    ) -> Result<Option<Value>, CniError> {
        let exe = find_plugin(&plugin.plugin_type, &self.bin_dirs)?;
        let env = plugin_env(verb, target, &self.bin_dirs);
        let stdin = serde_json::to_vec(request).map_err(|e| CniError::Io {
            what: format!("encoding config for plugin {:?}", plugin.plugin_type),
            source: std::io::Error::other(e),
        })?;
        let verb_name = verb.as_str();
        let raw = run_plugin(
            &exe,
            &plugin.plugin_type,
            verb_name,
            &env,
            stdin,
            self.timeout,
        )
        .await?;
        match interpret(raw.success, &raw.stdout, &raw.stderr) {
            PluginOutcome::Result(v) => Ok(Some(v)),
            PluginOutcome::Empty => Ok(None),
            PluginOutcome::Error(error) => Err(CniError::Plugin {
                plugin: plugin.plugin_type.clone(),
                verb: verb_name,
                error,
            }),
            PluginOutcome::Failed(output) => Err(CniError::PluginFailed {
                plugin: plugin.plugin_type.clone(),
                verb: verb_name,
                output,
            }),
        }
    }

    /// ADD: runs the plugins in order, each getting the previous one's result as `prevResult`,
    /// caches the final result and returns it. For CNI >= 1.1 lists, STATUS is asked first so
    /// that a plugin that is not ready fails the ADD with its own reason. A failed ADD is not
    /// undone here: as with libcni, the caller must DEL.
    pub async fn add(
        &self,
        list: &NetworkConfigList,
        target: &AttachmentTarget,
        capability_args: &CapabilityArgs,
    ) -> Result<Value, CniError> {
        if list.version() >= CniVersion::V1_1_0 {
            self.status(list).await?;
        }
        let mut prev: Option<Value> = None;
        for plugin in &list.plugins {
            let request = plugin_request(list, plugin, prev.as_ref(), capability_args);
            let result = self
                .call(plugin, Verb::Add, Some(target), &request)
                .await?
                .ok_or_else(|| CniError::MissingResult {
                    plugin: plugin.plugin_type.clone(),
                })?;
            prev = Some(result);
        }
        let result = prev.unwrap_or_else(|| json!({"cniVersion": list.cni_version}));
        self.cache.store(&CachedAttachment {
            kind: "cniCacheV1".into(),
            container_id: target.container_id.clone(),
            config: base64_encode(list_bytes(list).as_bytes()),
            ifname: target.ifname.clone(),
            network_name: list.name.clone(),
            netns: target.netns.display().to_string(),
            cni_args: target.args.clone(),
            capability_args: capability_args.clone(),
            result: result.clone(),
        })?;
        Ok(result)
    }

    /// DEL: runs the plugins in reverse order with the cached result as `prevResult` (CNI >=
    /// 0.4), then forgets the attachment. Safe to repeat: plugins must tolerate a DEL of what
    /// is already gone, and a missing cache entry only means there is no `prevResult`.
    /// Unlike libcni, which stops at the first failing plugin, the remaining plugins still get
    /// their DEL (so one broken plugin cannot leak the others' addresses); the first error is
    /// returned and the cache entry kept for a retry.
    pub async fn del(
        &self,
        list: &NetworkConfigList,
        target: &AttachmentTarget,
    ) -> Result<(), CniError> {
        let cached = self
            .cache
            .load(&list.name, &target.container_id, &target.ifname)?;
        let prev = cached
            .as_ref()
            .filter(|_| list.version() >= CniVersion::V0_4_0)
            .map(|c| &c.result);
        let caps = cached
            .as_ref()
            .map(|c| c.capability_args.clone())
            .unwrap_or_default();
        let mut first_error = None;
        for plugin in list.plugins.iter().rev() {
            let request = plugin_request(list, plugin, prev, &caps);
            if let Err(e) = self.call(plugin, Verb::Del, Some(target), &request).await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            None => self
                .cache
                .remove(&list.name, &target.container_id, &target.ifname),
            Some(e) => Err(e),
        }
    }

    /// CHECK: each plugin in order verifies the attachment against the cached ADD result.
    /// Skipped when the list sets `disableCheck`; refused before CNI 0.4.0.
    pub async fn check(
        &self,
        list: &NetworkConfigList,
        target: &AttachmentTarget,
    ) -> Result<(), CniError> {
        if list.version() < CniVersion::V0_4_0 {
            return Err(self.unsupported(list, Verb::Check));
        }
        if list.disable_check {
            return Ok(());
        }
        let cached = self
            .cache
            .load(&list.name, &target.container_id, &target.ifname)?
            .ok_or_else(|| CniError::NoCachedResult {
                network: list.name.clone(),
                container_id: target.container_id.clone(),
                ifname: target.ifname.clone(),
            })?;
        for plugin in &list.plugins {
            let request =
                plugin_request(list, plugin, Some(&cached.result), &cached.capability_args);
            self.call(plugin, Verb::Check, Some(target), &request)
                .await?;
        }
        Ok(())
    }

    /// STATUS (CNI 1.1): every plugin must say it is ready; the first that is not fails it.
    pub async fn status(&self, list: &NetworkConfigList) -> Result<(), CniError> {
        if list.version() < CniVersion::V1_1_0 {
            return Err(self.unsupported(list, Verb::Status));
        }
        for plugin in &list.plugins {
            let request = plugin_request(list, plugin, None, &Map::new());
            self.call(plugin, Verb::Status, None, &request).await?;
        }
        Ok(())
    }

    /// GC: first DELs every cached attachment of this network that is not in `valid`
    /// (`(containerID, ifname)` pairs), then, for CNI >= 1.1 lists without `disableGC`, sends
    /// GC to every plugin with `cni.dev/valid-attachments` so they release anything else.
    pub async fn gc(&self, list: &NetworkConfigList, valid: &[(String, String)]) -> GcReport {
        let mut report = GcReport::default();
        match self.cache.list(&list.name) {
            Ok(cached) => {
                for att in cached {
                    let key = (att.container_id.clone(), att.ifname.clone());
                    if valid.contains(&key) {
                        continue;
                    }
                    let target = AttachmentTarget {
                        container_id: att.container_id.clone(),
                        netns: att.netns.clone().into(),
                        ifname: att.ifname.clone(),
                        args: att.cni_args.clone(),
                    };
                    match self.del(list, &target).await {
                        Ok(()) => report.deleted.push(key),
                        Err(e) => report.errors.push(e),
                    }
                }
            }
            Err(e) => report.errors.push(e),
        }
        if list.version() >= CniVersion::V1_1_0 && !list.disable_gc {
            let attachments: Vec<Value> = valid
                .iter()
                .map(|(id, ifname)| json!({"containerID": id, "ifname": ifname}))
                .collect();
            for plugin in &list.plugins {
                let mut request = plugin_request(list, plugin, None, &Map::new());
                if let Value::Object(obj) = &mut request {
                    obj.insert(
                        "cni.dev/valid-attachments".into(),
                        Value::Array(attachments.clone()),
                    );
                }
                if let Err(e) = self.call(plugin, Verb::Gc, None, &request).await {
                    report.errors.push(e);
                }
            }
        }
        report
    }

    fn unsupported(&self, list: &NetworkConfigList, verb: Verb) -> CniError {
        CniError::Unsupported {
            network: list.name.clone(),
            version: list.cni_version.clone(),
            verb: verb.as_str(),
        }
    }
}

/// The list as JSON text for the cache; re-serialised since only the parsed form is kept.
fn list_bytes(list: &NetworkConfigList) -> String {
    let plugins: Vec<Value> = list
        .plugins
        .iter()
        .map(|p| Value::Object(p.raw.clone()))
        .collect();
    json!({
        "cniVersion": list.cni_version,
        "name": list.name,
        "disableCheck": list.disable_check,
        "disableGC": list.disable_gc,
        "plugins": plugins,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::cache::{base64_decode, cached_list};

    #[test]
    fn cached_config_parses_back_to_the_same_list() -> Result<(), CniError> {
        let text = json!({"cniVersion":"1.1.0","name":"n","disableGC":true,
            "plugins":[{"type":"bridge","ipam":{"type":"host-local"}},
                       {"type":"portmap","capabilities":{"portMappings":true}}]});
        let list = NetworkConfigList::parse(text.to_string().as_bytes(), "a.conflist".as_ref())?;
        let encoded = base64_encode(list_bytes(&list).as_bytes());
        assert!(base64_decode(&encoded).is_some());
        let entry = CachedAttachment {
            kind: "cniCacheV1".into(),
            container_id: "c".into(),
            config: encoded,
            ifname: "eth0".into(),
            network_name: "n".into(),
            netns: String::new(),
            cni_args: Vec::new(),
            capability_args: Map::new(),
            result: Value::Null,
        };
        let back = cached_list(&entry).ok_or(CniError::NoConfig("cache".into()))?;
        assert_eq!(back.plugins, list.plugins);
        assert_eq!((back.name, back.cni_version), (list.name, list.cni_version));
        assert!(back.disable_gc);
        Ok(())
    }
}
