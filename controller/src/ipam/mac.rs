//! MAC addresses of pod and node ports.
//!
//! A port's MAC is derived from its IP (`0a:58:` + the four octets, as ovn-kubernetes does), so
//! it is stable across controller restarts without being stored anywhere but the annotation,
//! and unique wherever the IP is.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::IpamError;

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The MAC rovn gives a port with IP `ip` when the pod asks for none.
    pub fn derived_from(ip: Ipv4Addr) -> MacAddr {
        let [a, b, c, d] = ip.octets();
        MacAddr([0x0a, 0x58, a, b, c, d])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = IpamError;

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`), and refuses what cannot be a port's own
    /// address: multicast/broadcast (group bit set) and all-zero.
    fn from_str(s: &str) -> Result<MacAddr, IpamError> {
        let bad = |reason: &str| IpamError::BadMac {
            mac: s.to_string(),
            reason: reason.to_string(),
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
    use super::*;

    #[test]
    fn derived_mac_spells_the_ip() {
        assert_eq!(
            MacAddr::derived_from(Ipv4Addr::new(10, 16, 0, 5)).to_string(),
            "0a:58:0a:10:00:05"
        );
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
    }
}
