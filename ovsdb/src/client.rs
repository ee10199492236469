//! The long-lived client: reconnect, resume, leader-only clustering, and the replica kept in sync.
