//! The one error every annotation parser returns.

/// A malformed or inconsistent annotation. It carries the key and the value as written, so
/// the message (`annotation rovn.io/ip_address="10.16.0.300": not an IP address`) tells an
/// operator exactly which annotation to fix on the object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {key}={value:?}: {reason}")]
pub struct AnnotationError {
    /// The annotation key.
    pub key: String,
    /// The value as written (empty when the annotation is missing).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl AnnotationError {
    /// An error about `key` holding `value`.
    pub(crate) fn new(key: &str, value: &str, reason: impl Into<String>) -> AnnotationError {
        AnnotationError {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
