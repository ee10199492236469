//! `excludeIps`: addresses of a subnet that IPAM never hands out.
//!
//! Entries are single addresses (`10.16.0.5`) or inclusive ranges (`10.16.0.10..10.16.0.20`),
//! the notation Kube-OVN users already write.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::IpamError;

/// An inclusive range of IPv4 addresses, as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    /// First address of the range.
    pub first: u32,
    /// Last address of the range (inclusive).
    pub last: u32,
}

impl AddrRange {
    /// Whether `addr` falls inside.
    pub fn contains(&self, addr: u32) -> bool {
        self.first <= addr && addr <= self.last
    }
}

/// Parses `excludeIps` entries of the subnet `cidr`. Every entry must lie inside the subnet,
/// so that a typo is reported rather than silently excluding nothing.
pub fn parse_exclude_ips(entries: &[String], cidr: Ipv4Net) -> Result<Vec<AddrRange>, IpamError> {
    entries
        .iter()
        .map(|entry| parse_entry(entry.trim(), cidr))
        .collect()
}

fn parse_entry(entry: &str, cidr: Ipv4Net) -> Result<AddrRange, IpamError> {
    let bad = |reason: &str| IpamError::BadExclude {
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    let (first, last) = match entry.split_once("..") {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (entry, entry),
    };
    let first: Ipv4Addr = first
        .parse()
        .map_err(|_| bad("not an IPv4 address or range a..b"))?;
    let last: Ipv4Addr = last
        .parse()
        .map_err(|_| bad("not an IPv4 address or range a..b"))?;
    if !cidr.contains(&first) || !cidr.contains(&last) {
        return Err(bad(&format!("outside the subnet {cidr}")));
    }
    let (first, last) = (u32::from(first), u32::from(last));
    if first > last {
        return Err(bad("the range ends before it starts"));
    }
    Ok(AddrRange { first, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Ipv4Net {
        "10.16.0.0/16".parse().unwrap_or_default()
    }

    #[test]
    fn single_addresses_and_ranges() {
        let r = parse_exclude_ips(
            &["10.16.0.5".into(), " 10.16.0.10..10.16.0.20 ".into()],
            net(),
        );
        let r = r.unwrap_or_default();
        assert_eq!(r.len(), 2);
        assert!(r[0].contains(u32::from(Ipv4Addr::new(10, 16, 0, 5))));
        assert!(r[1].contains(u32::from(Ipv4Addr::new(10, 16, 0, 15))));
        assert!(!r[1].contains(u32::from(Ipv4Addr::new(10, 16, 0, 21))));
    }

    #[test]
    fn malformed_reversed_and_foreign_entries_are_errors() {
        for e in [
            "10.16.0",
            "10.16.0.9..10.16.0.1",
            "10.17.0.1",
            "a..b",
            "10.16.0.1..10.17.0.1",
        ] {
            assert!(parse_exclude_ips(&[e.to_string()], net()).is_err(), "{e}");
        }
    }
}
