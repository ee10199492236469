//! Remotes (unix:, tcp:, ssl:) and the byte streams to them.
