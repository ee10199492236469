//! Typed reads of single annotation values, shared by the pod and node parsers.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::AnnotationError;
use crate::MacAddr;

/// The value of `key`, or an error saying it is missing (for keys that must come together).
pub(super) fn required<'a>(
    annotations: &'a BTreeMap<String, String>,
    key: &str,
) -> Result<&'a str, AnnotationError> {
    annotations
        .get(key)
        .map(String::as_str)
        .ok_or_else(|| AnnotationError::new(key, "", "missing"))
}

/// An IPv4 or IPv6 address without prefix, as rovn writes it.
pub(super) fn ip(key: &str, value: &str) -> Result<IpAddr, AnnotationError> {
    value
        .parse()
        .map_err(|_| AnnotationError::new(key, value, "not an IP address"))
}

/// A unicast MAC address.
pub(super) fn mac(key: &str, value: &str) -> Result<MacAddr, AnnotationError> {
    value.parse::<MacAddr>().map_err(|e| {
        AnnotationError::new(
            key,
            value,
            format!("not a unicast MAC address ({})", e.reason),
        )
    })
}

/// A subnet CIDR in canonical form (no host bits) that can hold hosts (/30 or shorter for
/// IPv4, /126 or shorter for IPv6).
pub(super) fn cidr(key: &str, value: &str) -> Result<IpNet, AnnotationError> {
    let net: IpNet = value
        .parse()
        .map_err(|_| AnnotationError::new(key, value, "not an IP CIDR"))?;
    if net.trunc() != net {
        return Err(AnnotationError::new(
            key,
            value,
            format!("has host bits set (the network is {})", net.trunc()),
        ));
    }
    let longest = net.max_prefix_len() - 2;
    if net.prefix_len() > longest {
        return Err(AnnotationError::new(
            key,
            value,
            format!("leaves no host addresses (the prefix must be /{longest} or shorter)"),
        ));
    }
    Ok(net)
}

/// A logical switch (Subnet) name: what a user typed, so only emptiness and blanks are refused
/// here; whether such a Subnet exists is the Subnet choice's business.
pub(super) fn switch_name(key: &str, value: &str) -> Result<String, AnnotationError> {
    if value.is_empty() {
        return Err(AnnotationError::new(key, value, "empty"));
    }
    if value.chars().any(char::is_whitespace) {
        return Err(AnnotationError::new(key, value, "contains whitespace"));
    }
    Ok(value.to_string())
}

/// Checks that the address `key` holds is a host address of `cidr`: of its family, not
/// outside, not the network or the all-ones (IPv4 broadcast) address.
pub(super) fn host_of(
    annotations: &BTreeMap<String, String>,
    key: &str,
    cidr: IpNet,
    cidr_key: &str,
) -> Result<IpAddr, AnnotationError> {
    let value = required(annotations, key)?;
    let ip = ip(key, value)?;
    if !cidr.contains(&ip) {
        return Err(AnnotationError::new(
            key,
            value,
            format!("outside {cidr} ({cidr_key})"),
        ));
    }
    if ip == cidr.network() || ip == cidr.broadcast() {
        return Err(AnnotationError::new(
            key,
            value,
            format!("is not a host address of {cidr} ({cidr_key})"),
        ));
    }
    Ok(ip)
}
