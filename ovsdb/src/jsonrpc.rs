//! JSON-RPC 1.0 messages as OVSDB uses them.
