//! `ssl:` remotes against ovsdb-server with certificates made by `ovs-pki`, whose names are
//! not the address connected to (the chain is checked, the name is not, as in OVS).

mod support;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rovn_ovsdb::connection::{ConnectOptions, Connection};
use rovn_ovsdb::error::Error;
use rovn_ovsdb::transport::TlsConfig;
use support::{Listener, NB_SCHEMA, Pki, ServerExt, TestServer};

fn options(tls: TlsConfig) -> ConnectOptions {
    ConnectOptions {
        tls: Some(tls),
        connect_timeout: Duration::from_secs(5),
        ..ConnectOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_with_ovs_pki_certificates() -> Result<()> {
    let pki = Pki::new()?;
    let server_tls = pki.issue("ovsdb-server")?;
    let client_tls = support::tls(pki.issue("rovn-client")?);
    let server = TestServer::start_with(NB_SCHEMA, Listener::Ssl(server_tls))?;
    let remote = server.ssl_remote().context("no ssl remote")?;

    let (conn, _updates) = Connection::connect(&remote, &options(client_tls.clone())).await?;
    let dbs = conn.list_dbs().await?;
    assert!(dbs.iter().any(|d| d == "OVN_Northbound"), "{dbs:?}");
    let schema = conn.get_schema("OVN_Northbound").await?;
    assert!(schema.tables.contains_key("Logical_Switch"));

    // A certificate from another CA is refused by our verifier.
    let other_pki = Pki::new()?;
    let foreign = TlsConfig {
        ca_cert: other_pki.ca_cert(),
        ..client_tls.clone()
    };
    match Connection::connect(&remote, &options(foreign)).await {
        Err(Error::Tls { remote: r, reason }) => {
            assert_eq!(r, remote.to_string());
            assert!(reason.contains("handshake"), "{reason}");
        }
        other => bail!("a server outside our CA was accepted: {other:?}"),
    }

    // A client certificate the server's CA did not sign: ovsdb-server drops us during or right
    // after the handshake, so the first call (if connecting succeeded at all) fails.
    let stranger = support::tls(other_pki.issue("stranger")?);
    let stranger = TlsConfig {
        ca_cert: pki.ca_cert(),
        ..stranger
    };
    match Connection::connect(&remote, &options(stranger)).await {
        Err(Error::Tls { .. }) | Err(Error::Io { .. }) => {}
        Ok((conn, _)) => {
            let result = tokio::time::timeout(Duration::from_secs(5), conn.list_dbs()).await;
            assert!(
                matches!(result, Ok(Err(ref e)) if e.is_session_lost()),
                "server accepted a client from another CA: {result:?}"
            );
        }
        Err(other) => bail!("unexpected error: {other}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_without_certificates_is_a_clear_error() -> Result<()> {
    let remote = "ssl:127.0.0.1:6641".parse()?;
    match Connection::connect(&remote, &ConnectOptions::default()).await {
        Err(Error::Tls { reason, .. }) => assert!(reason.contains("certificate"), "{reason}"),
        other => bail!("expected a TLS error, got {other:?}"),
    }
    Ok(())
}
