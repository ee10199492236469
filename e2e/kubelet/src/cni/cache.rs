//! The attachment cache, in libcni's on-disk format (`cniCacheV1`): one JSON file per
//! `<network>-<containerID>-<ifname>` holding the config used and the final result. DEL, CHECK
//! and GC need it: they send the cached result as `prevResult` and find stale attachments.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::CniError;

/// One cached attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAttachment {
    /// Always `cniCacheV1`.
    pub kind: String,
    /// `CNI_CONTAINERID` of the attachment.
    #[serde(rename = "containerId")]
    pub container_id: String,
    /// The conflist bytes used for ADD, base64 as libcni writes `[]byte`.
    pub config: String,
    /// `CNI_IFNAME`.
    #[serde(rename = "ifName")]
    pub ifname: String,
    /// The network name.
    #[serde(rename = "networkName")]
    pub network_name: String,
    /// `CNI_NETNS` used for ADD, so that a GC can DEL a stale attachment.
    #[serde(rename = "netns", default)]
    pub netns: String,
    /// `CNI_ARGS` pairs.
    #[serde(rename = "cniArgs", default)]
    pub cni_args: Vec<(String, String)>,
    /// Capability arguments given to ADD.
    #[serde(rename = "capabilityArgs", default)]
    pub capability_args: Map<String, Value>,
    /// The final result of the ADD chain.
    pub result: Value,
}

/// The directory holding cached attachments, one per runtime state directory.
#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
}

/// libcni's file name for an attachment.
pub fn cache_file_name(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{network}-{container_id}-{ifname}")
}

impl ResultCache {
    /// A cache rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Where the cache lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.dir
            .join(cache_file_name(network, container_id, ifname))
    }

    /// Writes atomically (temp file + rename) so a crash never leaves half a record.
    pub fn store(&self, entry: &CachedAttachment) -> Result<(), CniError> {
        let io = |what: String| move |source| CniError::Io { what, source };
        std::fs::create_dir_all(&self.dir)
            .map_err(io(format!("creating {}", self.dir.display())))?;
        let path = self.path(&entry.network_name, &entry.container_id, &entry.ifname);
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(entry).map_err(|e| CniError::Io {
            what: format!("encoding cache entry {}", path.display()),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&tmp, bytes).map_err(io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("renaming to {}", path.display())))
    }

    /// The cached attachment, or `None` when there is none (never ADDed, or already DELeted).
    pub fn load(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CachedAttachment>, CniError> {
        let path = self.path(network, container_id, ifname);
        read_entry(&path)
    }

    /// Forgets an attachment; absent entries are fine (DEL is idempotent).
    pub fn remove(&self, network: &str, container_id: &str, ifname: &str) -> Result<(), CniError> {
        let path = self.path(network, container_id, ifname);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CniError::Io {
                what: format!("removing {}", path.display()),
                source: e,
            }),
        }
    }

    /// Every cached attachment of one network; unreadable files are skipped (logged by caller
    /// through the error list).
    pub fn list(&self, network: &str) -> Result<Vec<CachedAttachment>, CniError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(CniError::Io {
                    what: format!("listing {}", self.dir.display()),
                    source: e,
                });
            }
        };
        let prefix = format!("{network}-");
        let mut out = Vec::new();
        for entry in rd.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&prefix) || name.ends_with(".tmp") {
                continue;
            }
            if let Ok(Some(att)) = read_entry(&entry.path())
                && att.network_name == network
            {
                out.push(att);
            }
        }
        Ok(out)
    }
}

impl ResultCache {
    /// The cached attachment of a container on any network, for teardown paths that no longer
    /// know which list was used (the config dir may have changed since the ADD).
    pub fn find_by_container(&self, container_id: &str, ifname: &str) -> Option<CachedAttachment> {
        let suffix = format!("-{container_id}-{ifname}");
        std::fs::read_dir(&self.dir)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(&suffix))
            .filter_map(|e| read_entry(&e.path()).ok().flatten())
            .find(|a| a.container_id == container_id && a.ifname == ifname)
    }
}

/// The conflist an attachment was ADDed with, decoded from the cache entry.
pub fn cached_list(entry: &CachedAttachment) -> Option<super::NetworkConfigList> {
    let bytes = base64_decode(&entry.config)?;
    super::NetworkConfigList::parse(&bytes, Path::new("(cached config)")).ok()
}

fn read_entry(path: &Path) -> Result<Option<CachedAttachment>, CniError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CniError::Io {
                what: format!("reading {}", path.display()),
                source: e,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| CniError::Io {
            what: format!("decoding cache entry {}", path.display()),
            source: std::io::Error::other(e),
        })
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard padded base64, the encoding Go's JSON uses for `[]byte`.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Inverse of [`base64_encode`]; `None` on malformed input.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        for s in [&b""[..], b"a", b"ab", b"abc", b"{\"x\":1}\n\xff\x00"] {
            assert_eq!(base64_decode(&base64_encode(s)).as_deref(), Some(s));
        }
        assert_eq!(base64_decode("Zm9v!"), None);
    }

    #[test]
    fn store_load_list_remove() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cache = ResultCache::new(dir.path().join("results"));
        assert_eq!(cache.load("net", "c1", "eth0")?, None);
        assert!(cache.list("net")?.is_empty());
        let entry = CachedAttachment {
            kind: "cniCacheV1".into(),
            container_id: "c1".into(),
            config: base64_encode(b"{}"),
            ifname: "eth0".into(),
            network_name: "net".into(),
            netns: "/run/netns/x".into(),
            cni_args: vec![("K8S_POD_NAME".into(), "p".into())],
            capability_args: Map::new(),
            result: json!({"cniVersion":"1.0.0"}),
        };
        cache.store(&entry)?;
        assert!(dir.path().join("results/net-c1-eth0").is_file());
        assert_eq!(cache.load("net", "c1", "eth0")?, Some(entry.clone()));
        assert_eq!(cache.list("net")?, vec![entry]);
        assert!(cache.list("other")?.is_empty());
        assert_eq!(
            cache
                .find_by_container("c1", "eth0")
                .map(|a| a.network_name),
            Some("net".into())
        );
        assert!(cache.find_by_container("c2", "eth0").is_none());
        cache.remove("net", "c1", "eth0")?;
        cache.remove("net", "c1", "eth0")?;
        assert_eq!(cache.load("net", "c1", "eth0")?, None);
        Ok(())
    }
}
