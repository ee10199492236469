//! The CNI ADD result rovn returns (pure): what chained plugins receive as `prevResult` and
//! the runtime records.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rovn_api::MacAddr;
use serde_json::{Value, json};

/// What ADD did, in the terms of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The host end of the veth.
    pub host_ifname: String,
    /// Its MAC.
    pub host_mac: MacAddr,
    /// The interface inside the sandbox (`CNI_IFNAME`).
    pub sandbox_ifname: String,
    /// Its MAC (the pod's allocated one).
    pub sandbox_mac: MacAddr,
    /// The sandbox path (`CNI_NETNS`).
    pub sandbox: String,
    /// The pod's address with the subnet's prefix.
    pub address: Ipv4Net,
    /// The subnet's gateway.
    pub gateway: Ipv4Addr,
    /// The MTU set on both ends.
    pub mtu: u32,
}

/// The CNI result in `cni_version`'s shape (0.3.0 and later share it): interface 0 the host
/// veth, interface 1 the sandbox one, which the IP names by index.
pub fn add_result(cni_version: &str, a: &Attachment) -> Value {
    json!({
        "cniVersion": cni_version,
        "interfaces": [
            {"name": a.host_ifname, "mac": a.host_mac.to_string()},
            {"name": a.sandbox_ifname, "mac": a.sandbox_mac.to_string(), "mtu": a.mtu, "sandbox": a.sandbox},
        ],
        "ips": [
            {"interface": 1, "address": a.address.to_string(), "gateway": a.gateway.to_string()},
        ],
        "routes": [
            {"dst": "0.0.0.0/0", "gw": a.gateway.to_string()},
        ],
        "dns": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_names_the_sandbox_interface_by_index() {
        let a = Attachment {
            host_ifname: "rovnabc".into(),
            host_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            sandbox_ifname: "eth0".into(),
            sandbox_mac: MacAddr([0x0a, 0x58, 10, 16, 0, 5]),
            sandbox: "/run/netns/x".into(),
            address: "10.16.0.5/16".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 16, 0, 1),
            mtu: 1400,
        };
        let r = add_result("1.1.0", &a);
        assert_eq!(r["cniVersion"], "1.1.0");
        assert_eq!(r["ips"][0]["interface"], 1);
        assert_eq!(r["ips"][0]["address"], "10.16.0.5/16");
        assert_eq!(r["interfaces"][1]["sandbox"], "/run/netns/x");
        assert_eq!(r["interfaces"][1]["mac"], "0a:58:0a:10:00:05");
        assert_eq!(r["routes"][0]["gw"], "10.16.0.1");
    }
}
