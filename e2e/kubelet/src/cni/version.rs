//! CNI spec versions, compared numerically as the runtime's feature gates need.

/// A `major.minor.patch` CNI version; decides which verbs (CHECK, GC, STATUS) a list supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CniVersion(pub u32, pub u32, pub u32);

impl CniVersion {
    /// Versions before 0.1.0 never existed; used as a floor for unparsable input.
    pub const ZERO: CniVersion = CniVersion(0, 0, 0);
    /// First version with CHECK and with `prevResult` on DEL.
    pub const V0_4_0: CniVersion = CniVersion(0, 4, 0);
    /// First version with GC and STATUS.
    pub const V1_1_0: CniVersion = CniVersion(1, 1, 0);

    /// Parses `x.y.z` (a missing patch is taken as 0, as some configs write `1.0`).
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(CniVersion(major, minor, patch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        assert_eq!(CniVersion::parse("1.1.0"), Some(CniVersion::V1_1_0));
        assert_eq!(CniVersion::parse("1.0"), Some(CniVersion(1, 0, 0)));
        assert!(CniVersion::parse("0.3.1") < Some(CniVersion::V0_4_0));
        assert!(CniVersion::parse("0.10.0") > Some(CniVersion::V0_4_0));
        assert_eq!(CniVersion::parse("1.x.0"), None);
        assert_eq!(CniVersion::parse("1.0.0.0"), None);
        assert_eq!(CniVersion::parse(""), None);
    }
}
