//! Interface names: the host veth name rovn derives from a container id, and the kernel's rules
//! for any interface name rovn is asked to use.

use super::NetdevError;

/// Prefix of every host veth rovn creates; GC and restart cleanup recognise rovn's veths by it.
pub const HOST_VETH_PREFIX: &str = "rovn";

/// Longest interface name the kernel accepts (IFNAMSIZ − 1 for the NUL).
pub const MAX_IFNAME_LEN: usize = 15;

/// The host-side veth name for a container: "rovn" + hex of a stable hash of the container id,
/// ≤ 15 chars (IFNAMSIZ), distinct for distinct ids with overwhelming probability.
///
/// The hash is spelled out here (FNV-1a then a SplitMix64 finaliser) rather than taken from the
/// standard library, whose hasher may change between Rust releases: the name must stay the same
/// across agent upgrades so that a restarted agent finds the veths it created before.
pub fn host_veth_name(container_id: &str) -> String {
    let hex_len = MAX_IFNAME_LEN - HOST_VETH_PREFIX.len();
    let digest = format!("{:016x}", stable_hash(container_id.as_bytes()));
    format!("{HOST_VETH_PREFIX}{}", &digest[..hex_len])
}

fn stable_hash(bytes: &[u8]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let fnv = bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    });
    let mut z = fnv.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Refuses names the kernel would reject (`dev_valid_name`) before any request is sent, so the
/// error says what is wrong with the name instead of a bare `EINVAL`.
pub fn validate_ifname(name: &str) -> Result<(), NetdevError> {
    let invalid = |reason: &str| NetdevError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(invalid("longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(invalid("reserved"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            "contains '/', ':', whitespace or a control character",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_name_has_prefix_and_fits_ifnamsiz() {
        let name = host_veth_name("0123456789abcdef");
        assert!(name.starts_with(HOST_VETH_PREFIX));
        assert_eq!(name.len(), MAX_IFNAME_LEN);
        assert!(validate_ifname(&name).is_ok());
    }

    #[test]
    fn host_veth_name_is_pinned() {
        // A change of hash renames every veth across an upgrade and orphans running pods.
        assert_eq!(host_veth_name("abc"), "rovn29e32c04ec3");
        assert_ne!(host_veth_name("abc"), host_veth_name("abd"));
    }

    #[test]
    fn validate_ifname_rejects_bad_names() {
        for bad in ["", ".", "..", "a/b", "a b", "a:b", "abcdefghijklmnop"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["eth0", "net1", "ovn0", "abcdefghijklmno"] {
            assert!(validate_ifname(good).is_ok(), "{good:?} refused");
        }
    }
}
