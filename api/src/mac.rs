//! MAC addresses of pod and node ports.
//!
//! A port's MAC is derived from its IP (`0a:58:` + the four octets, as ovn-kubernetes does), so
//! it is stable across controller restarts without being stored anywhere but the annotation,
//! and unique wherever the IP is. The controller derives it, the node agent configures it and
//! reads it back from the kernel, so the type lives here.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The MAC rovn gives a port with IP `ip` when the pod asks for none: `0a:58:` and the
    /// IPv4 address's four octets, or an IPv6 address's last four bytes (its interface
    /// identifier's tail, which is what differs between the hosts of one subnet).
    pub fn derived_from(ip: impl Into<IpAddr>) -> MacAddr {
        let [a, b, c, d] = match ip.into() {
            IpAddr::V4(v4) => v4.octets(),
            IpAddr::V6(v6) => {
                let [.., a, b, c, d] = v6.octets();
                [a, b, c, d]
            }
        };
        MacAddr([0x0a, 0x58, a, b, c, d])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A MAC that cannot be a port's own address: malformed, multicast/broadcast or all zero. It
/// carries the text as written, so the message points at the value to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MAC address {mac:?}: {reason}")]
pub struct MacAddrError {
    /// The MAC as written.
    pub mac: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for MacAddr {
    type Err = MacAddrError;

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`), and refuses what cannot be a port's own
    /// address: multicast/broadcast (group bit set) and all-zero.
    fn from_str(s: &str) -> Result<MacAddr, MacAddrError> {
        let bad = |reason| MacAddrError {
            mac: s.to_string(),
            reason,
        };
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad("not six hex octets"));
        }
        let mut bytes = [0u8; 6];
        for (byte, part) in bytes.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return Err(bad("not six hex octets"));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad("not six hex octets"))?;
        }
        if bytes[0] & 1 == 1 {
            return Err(bad("multicast or broadcast"));
        }
        if bytes == [0; 6] {
            return Err(bad("all zero"));
        }
        Ok(MacAddr(bytes))
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn derived_mac_spells_the_ip() {
        assert_eq!(
            MacAddr::derived_from(Ipv4Addr::new(10, 16, 0, 5)).to_string(),
            "0a:58:0a:10:00:05"
        );
        assert_eq!(
            MacAddr::derived_from(IpAddr::V4(Ipv4Addr::new(10, 16, 0, 5))),
            MacAddr::derived_from(Ipv4Addr::new(10, 16, 0, 5))
        );
        let v6 = Ipv6Addr::new(0xfd00, 0x10, 0x16, 0, 0, 0, 0xa, 0x1b05);
        assert_eq!(MacAddr::derived_from(v6).to_string(), "0a:58:00:0a:1b:05");
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "0A-58-0a-10-00-05".parse::<MacAddr>().ok(),
            Some(MacAddr([0x0a, 0x58, 0x0a, 0x10, 0, 5]))
        );
        for bad in [
            "",
            "0a:58:0a:10:00",
            "0a:58:0a:10:00:zz",
            "01:00:5e:00:00:01",
            "ff:ff:ff:ff:ff:ff",
            "00:00:00:00:00:00",
            "0a:58:0a:10:00:005",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert_eq!(
            "01:00:5e:00:00:01".parse::<MacAddr>().map_err(|e| e.reason),
            Err("multicast or broadcast")
        );
    }
}
