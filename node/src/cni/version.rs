//! Which CNI spec versions `rovn-cni` speaks, and the VERSION answer built from them.

use serde::Serialize;

/// The newest spec version implemented; used in VERSION output and in error objects when
/// the config's own version is unknown or unusable.
pub const CURRENT_VERSION: &str = "1.1.0";

/// Every config `cniVersion` accepted. Pre-0.3 results had a different shape, which the
/// agent does not produce, so those versions are refused with code 1.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The object printed for `CNI_COMMAND=VERSION`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// The version of this answer's own format.
    pub cni_version: &'static str,
    /// What a runtime may put in `cniVersion`.
    pub supported_versions: Vec<&'static str>,
}

impl VersionInfo {
    /// The answer this plugin gives.
    pub fn current() -> Self {
        VersionInfo {
            cni_version: CURRENT_VERSION,
            supported_versions: SUPPORTED_VERSIONS.to_vec(),
        }
    }
}

/// True when `version` is one of [`SUPPORTED_VERSIONS`], spelled exactly.
pub fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// `major.minor.patch` as numbers, for "at least version X" checks; `None` if it is not
/// three dot-separated decimal numbers.
pub fn parse_semver(version: &str) -> Option<(u64, u64, u64)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

/// True when `version` parses and is `minimum` or newer.
pub fn at_least(version: &str, minimum: (u64, u64, u64)) -> bool {
    parse_semver(version).is_some_and(|v| v >= minimum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_info_serializes_as_the_spec_example() {
        let text = serde_json::to_string(&VersionInfo::current()).unwrap();
        assert_eq!(
            text,
            r#"{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#
        );
    }

    #[test]
    fn semver_comparison_is_numeric() {
        assert!(at_least("1.1.0", (1, 1, 0)));
        assert!(!at_least("1.0.0", (1, 1, 0)));
        assert!(at_least("0.10.0", (0, 4, 0)));
        assert!(!at_least("1.1", (0, 1, 0)));
        assert!(!at_least("1.1.0.0", (0, 1, 0)));
        assert!(!is_supported("0.2.0"));
        assert!(is_supported("0.4.0"));
    }
}
