//! Parsing of `CNI_ARGS` (`KEY=VALUE;KEY=VALUE`), through which kubelet-driven runtimes pass
//! the pod identity (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_UID`, ...).

use std::collections::BTreeMap;

/// Why `CNI_ARGS` was refused; reported to the runtime as code 4 (invalid environment).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// A `;`-separated element has no `=`.
    #[error("CNI_ARGS element {element:?} is not KEY=VALUE")]
    MissingEquals {
        /// The offending element.
        element: String,
    },
    /// A key is empty or contains something other than ASCII letters, digits and `_`.
    #[error("CNI_ARGS key {key:?} is not alphanumeric")]
    InvalidKey {
        /// The offending key.
        key: String,
    },
    /// The same key appears twice, so which one the runtime meant is ambiguous.
    #[error("CNI_ARGS key {key:?} appears more than once")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
}

/// Splits `CNI_ARGS` into its pairs. Empty elements (`A=1;;B=2`, a trailing `;`) are
/// skipped; a value may contain `=` (only the first one separates key and value).
pub fn parse_cni_args(raw: &str) -> Result<BTreeMap<String, String>, ArgsError> {
    let mut pairs = BTreeMap::new();
    for element in raw.split(';').filter(|element| !element.is_empty()) {
        let Some((key, value)) = element.split_once('=') else {
            return Err(ArgsError::MissingEquals {
                element: element.to_string(),
            });
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ArgsError::InvalidKey {
                key: key.to_string(),
            });
        }
        if pairs.insert(key.to_string(), value.to_string()).is_some() {
            return Err(ArgsError::DuplicateKey {
                key: key.to_string(),
            });
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_style_args_parse() {
        let args = parse_cni_args(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1-2",
        )
        .unwrap();
        assert_eq!(
            args.get("K8S_POD_NAMESPACE").map(String::as_str),
            Some("default")
        );
        assert_eq!(args.get("K8S_POD_NAME").map(String::as_str), Some("web-0"));
        assert_eq!(args.get("K8S_POD_UID").map(String::as_str), Some("1-2"));
        assert_eq!(args.len(), 5);
    }

    #[test]
    fn empty_elements_are_skipped_and_values_may_hold_equals() {
        let args = parse_cni_args(";A=x=y;;B=;").unwrap();
        assert_eq!(args.get("A").map(String::as_str), Some("x=y"));
        assert_eq!(args.get("B").map(String::as_str), Some(""));
        assert!(parse_cni_args("").unwrap().is_empty());
    }

    #[test]
    fn malformed_elements_are_refused() {
        assert!(matches!(
            parse_cni_args("A"),
            Err(ArgsError::MissingEquals { .. })
        ));
        assert!(matches!(
            parse_cni_args("=1"),
            Err(ArgsError::InvalidKey { .. })
        ));
        assert!(matches!(
            parse_cni_args("A-B=1"),
            Err(ArgsError::InvalidKey { .. })
        ));
        assert!(matches!(
            parse_cni_args("A=1;A=2"),
            Err(ArgsError::DuplicateKey { .. })
        ));
    }
}
