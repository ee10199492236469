//! The test kit's servers as rovn-ovsdb connections; everything else comes from `rovn-testkit`.
#![allow(dead_code)]

use anyhow::Result;
use rovn_ovsdb::connection::{ConnectOptions, Connection, Notification};
use rovn_ovsdb::transport::Remote;
use rovn_testkit::OvsdbServer;
use tokio::sync::mpsc::UnboundedReceiver;

/// A session on the server's unix socket.
pub async fn connect(
    server: &OvsdbServer,
) -> Result<(Connection, UnboundedReceiver<Notification>)> {
    let remote = Remote::Unix(server.sock().to_path_buf());
    Ok(Connection::connect(&remote, &ConnectOptions::default()).await?)
}
