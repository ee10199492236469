//! The transport protocols a Service port, NodePort or hostPort can use, in Kubernetes' spelling
//! and in the lowercase one OVN load balancers, ACL matches and nftables use. Here so the node
//! agent and the controller read `TCP`/`UDP`/`SCTP` the same way.

use std::fmt;

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (Kubernetes' default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Kubernetes' spelling (`TCP`, `UDP`, `SCTP`); anything else is not a protocol, which the
    /// caller reports naming the object rather than guess.
    pub fn from_kubernetes(text: &str) -> Option<Protocol> {
        match text {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The lowercase name OVN load balancers and ACL matches and nftables (`inet_proto`) use.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// The IANA number, which `nft` prints in place of the name at times.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_names_parse_and_nothing_else_does() {
        assert_eq!(Protocol::from_kubernetes("UDP"), Some(Protocol::Udp));
        assert_eq!(Protocol::from_kubernetes("udp"), None);
        assert_eq!(Protocol::from_kubernetes("ICMP"), None);
        assert_eq!(Protocol::Sctp.to_string(), "sctp");
        assert_eq!(Protocol::Tcp.number(), 6);
    }
}
