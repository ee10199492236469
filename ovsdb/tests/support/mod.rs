//! rovn-ovsdb's side of the test kit: the servers, clusters and PKI come from `rovn-testkit`;
//! this module only turns them into this crate's types (`Remote`, `TlsConfig`, `Connection`).
#![allow(dead_code, unused_imports)]

use anyhow::{Context, Result};
use rovn_ovsdb::connection::{ConnectOptions, Connection, Notification};
use rovn_ovsdb::transport::{Remote, TlsConfig};
use rovn_testkit::Tls;
use tokio::sync::mpsc::UnboundedReceiver;

pub use rovn_testkit::ovsdb::{Listener, OvsdbServer as TestServer, Pki};
pub use rovn_testkit::raft::RaftCluster as Cluster;
pub use rovn_testkit::schema::{
    NB as NB_SCHEMA, NB_DB, SB as SB_SCHEMA, VSWITCH as VSWITCH_SCHEMA,
};

/// The kit's certificate files as a client or server `TlsConfig`.
pub fn tls(files: Tls) -> TlsConfig {
    TlsConfig {
        private_key: files.private_key,
        certificate: files.certificate,
        ca_cert: files.ca_cert,
    }
}

/// A kit server's sockets and listeners as remotes, and clients connected to them.
pub trait ServerExt {
    /// The `unix:` remote clients under test use.
    fn remote(&self) -> Remote;
    /// The `unix:` remote of the admin socket, which also listens while clients are kept out.
    fn admin_remote(&self) -> Remote;
    /// The `tcp:127.0.0.1:PORT` remote, when started with [`Listener::Tcp`].
    fn tcp_remote(&self) -> Option<Remote>;
    /// The `ssl:127.0.0.1:PORT` remote, when started with [`Listener::Ssl`].
    fn ssl_remote(&self) -> Option<Remote>;
    /// Connects a client to the unix socket with default options.
    fn connect(
        &self,
    ) -> impl Future<Output = Result<(Connection, UnboundedReceiver<Notification>)>>;
    /// A plain session on the admin socket.
    fn admin(&self) -> impl Future<Output = Result<Connection>>;
}

impl ServerExt for TestServer {
    fn remote(&self) -> Remote {
        Remote::Unix(self.sock().to_path_buf())
    }

    fn admin_remote(&self) -> Remote {
        Remote::Unix(self.admin_sock().to_path_buf())
    }

    fn tcp_remote(&self) -> Option<Remote> {
        match (self.listener(), self.port()) {
            (Listener::Tcp, Some(port)) => Some(Remote::Tcp {
                host: "127.0.0.1".into(),
                port,
            }),
            _ => None,
        }
    }

    fn ssl_remote(&self) -> Option<Remote> {
        match (self.listener(), self.port()) {
            (Listener::Ssl(_), Some(port)) => Some(Remote::Ssl {
                host: "127.0.0.1".into(),
                port,
            }),
            _ => None,
        }
    }

    async fn connect(&self) -> Result<(Connection, UnboundedReceiver<Notification>)> {
        Connection::connect(&self.remote(), &ConnectOptions::default())
            .await
            .with_context(|| format!("connecting to {}", self.remote()))
    }

    async fn admin(&self) -> Result<Connection> {
        let (conn, _) = Connection::connect(&self.admin_remote(), &ConnectOptions::default())
            .await
            .with_context(|| format!("connecting to {}", self.admin_remote()))?;
        Ok(conn)
    }
}

/// The client sockets of every member of a cluster.
pub fn remotes(cluster: &Cluster) -> Vec<Remote> {
    cluster.members.iter().map(ServerExt::remote).collect()
}
