//! What rovn reads of a Node object besides its annotations.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Node;

/// The Node's first IPv4 `InternalIP` (`status.addresses`, as its kubelet reports it): the
/// address NodePorts answer on, the node-address reroute targets and the outside sees
/// masqueraded pods as. Entries of other types, or that are not IPv4, are skipped.
pub fn internal_ipv4(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_ipv4_internal_ip_counts() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "status": {"addresses": [
                {"type": "Hostname", "address": "10.0.0.9"},
                {"type": "InternalIP", "address": "fd00::1"},
                {"type": "InternalIP", "address": "172.30.0.11"},
                {"type": "InternalIP", "address": "172.30.0.12"},
            ]}
        }))
        .unwrap_or_default();
        assert_eq!(internal_ipv4(&node), Some(Ipv4Addr::new(172, 30, 0, 11)));
        assert_eq!(internal_ipv4(&Node::default()), None);
    }
}
