//! Transaction operations (RFC 7047 §5.2) and their results.
