//! The `addresses` / `port_security` strings of logical switch ports ("MAC IP…"), parsed.
//!
//! Both `trace` (the destination's MAC) and `diagnose` (who holds an address) need them, and OVN
//! also puts words there (`router`, `unknown`, `dynamic`), which hold no address.

use std::net::IpAddr;

use rovn_api::MacAddr;

/// One element of a port's `addresses`: a MAC and the IPs that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortAddress {
    /// The MAC.
    pub mac: MacAddr,
    /// Its IP addresses (without prefix lengths).
    pub ips: Vec<IpAddr>,
}

/// Parses one `addresses` element. `None` for OVN's keywords (`router`, `unknown`, `dynamic`,
/// `none`) and for anything that does not start with a MAC, which holds no address rovn checks.
pub fn parse_port_address(text: &str) -> Option<PortAddress> {
    let mut words = text.split_whitespace();
    let mac: MacAddr = words.next()?.parse().ok()?;
    let ips = words
        .filter_map(|w| w.split('/').next())
        .filter_map(|w| w.parse().ok())
        .collect();
    Some(PortAddress { mac, ips })
}

/// Every address of a set of `addresses` elements.
pub fn parse_all<'a>(texts: impl IntoIterator<Item = &'a String>) -> Vec<PortAddress> {
    texts
        .into_iter()
        .filter_map(|t| parse_port_address(t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_and_ips_are_read_and_keywords_skipped() {
        let a = parse_port_address("0a:58:0a:10:00:07 10.16.0.7").unwrap();
        assert_eq!(a.mac.to_string(), "0a:58:0a:10:00:07");
        assert_eq!(a.ips, vec!["10.16.0.7".parse::<IpAddr>().unwrap()]);
        let b = parse_port_address("0a:58:0a:10:00:01 10.16.0.1/16").unwrap();
        assert_eq!(b.ips, vec!["10.16.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(parse_port_address("router"), None);
        assert_eq!(parse_port_address("unknown"), None);
        assert_eq!(parse_port_address(""), None);
    }
}
