//! The node network the test installs instead of rovn's: Debian's reference plugins, `bridge`
//! with `host-local` IPAM, chained with `portmap` and `tuning` so the runtime must hand each
//! plugin its predecessor's `prevResult`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

/// The network name in every node's conflist; host-local keeps its reservations in a
/// directory of that name.
pub const NET_NAME: &str = "labbridge";
/// The file name the kubelet finds first (lexically) in its conf dir.
pub const CONFLIST_FILE: &str = "10-bridge.conflist";
/// The bridge every node's pods hang off.
pub const BRIDGE: &str = "cni0";

/// The pod range of a node: node N gets 10.244.N.0/24, so an address tells which node gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodRange {
    /// The network address.
    pub network: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl PodRange {
    /// The range of node `index` (1-based).
    pub fn of_node(index: u8) -> Self {
        PodRange {
            network: Ipv4Addr::new(10, 244, index, 0),
            prefix: 24,
        }
    }

    /// Whether `ip` is a host address inside the range (neither network nor broadcast).
    pub fn holds_host(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        let net = u32::from(self.network) & mask;
        let host = u32::from(ip) & !mask;
        u32::from(ip) & mask == net && host != 0 && host != !mask
    }

    /// The first host address, which host-local gives the bridge as the pods' gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(1))
    }

    /// CIDR notation, as host-local wants it.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }
}

/// The plugins the conflist chains; Debian's `containernetworking-plugins` ships them all.
pub const PLUGINS: [&str; 4] = ["bridge", "host-local", "portmap", "tuning"];

/// Fails with one clear message when a plugin is missing, instead of pods that never start.
pub fn check_plugins(dir: &Path) -> anyhow::Result<()> {
    let missing: Vec<&str> = PLUGINS
        .into_iter()
        .filter(|p| !dir.join(p).is_file())
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "CNI plugins {missing:?} missing from {} (install containernetworking-plugins)",
        dir.display()
    );
    Ok(())
}

/// The conflist of one node: bridge (gateway on the bridge, no masquerade: pods must see each
/// other's real addresses) with host-local keeping its state in `ipam_dir`, then portmap and
/// tuning, which both only work on a correct `prevResult`.
pub fn bridge_conflist(range: PodRange, ipam_dir: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": NET_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir,
                    "ranges": [[{"subnet": range.cidr()}]],
                    "routes": [{"dst": "0.0.0.0/0"}]
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": false},
            {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}}
        ]
    })
}

/// Installs the conflist atomically (the kubelet may read the directory at any moment).
pub fn install(conf_dir: &Path, conflist: &Value) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(conf_dir)
        .with_context(|| format!("creating CNI conf dir {}", conf_dir.display()))?;
    let path = conf_dir.join(CONFLIST_FILE);
    let tmp = conf_dir.join(format!("{CONFLIST_FILE}.tmp"));
    std::fs::write(&tmp, conflist.to_string())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("installing {}", path.display()))?;
    Ok(path)
}

/// The file by which host-local records that `ip` is taken on network [`NET_NAME`].
pub fn reservation_file(ipam_dir: &Path, ip: Ipv4Addr) -> PathBuf {
    ipam_dir.join(NET_NAME).join(ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ranges_hold_only_their_hosts() {
        let r = PodRange::of_node(2);
        assert_eq!(r.cidr(), "10.244.2.0/24");
        assert_eq!(r.gateway(), Ipv4Addr::new(10, 244, 2, 1));
        assert!(r.holds_host(Ipv4Addr::new(10, 244, 2, 7)));
        assert!(!r.holds_host(Ipv4Addr::new(10, 244, 1, 7)));
        assert!(!r.holds_host(Ipv4Addr::new(10, 244, 2, 0)));
        assert!(!r.holds_host(Ipv4Addr::new(10, 244, 2, 255)));
    }

    #[test]
    fn conflist_chains_portmap_and_tuning_after_bridge() {
        let list = bridge_conflist(PodRange::of_node(1), Path::new("/s/ipam"));
        let types: Vec<&str> = list["plugins"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["type"].as_str())
            .collect();
        assert_eq!(types, ["bridge", "portmap", "tuning"]);
        assert_eq!(list["plugins"][0]["ipam"]["dataDir"], "/s/ipam");
        assert_eq!(list["plugins"][0]["ipMasq"], false);
        assert_eq!(
            reservation_file(Path::new("/s/ipam"), Ipv4Addr::new(10, 244, 1, 2)),
            Path::new("/s/ipam/labbridge/10.244.1.2")
        );
    }
}
