//! The byte streams an OVSDB session runs over: `unix:`, `tcp:` and `ssl:` remotes.
//!
//! ## How `ssl:` certificates are checked
//! OVS's own TLS (lib/stream-ssl.c) verifies that the peer's certificate chains to the
//! configured CA certificate and does **not** compare the certificate's name with the host
//! connected to: `ovs-pki` issues certificates whose CN is the name given to
//! `ovs-pki req+sign` plus a random id, never an address. rovn does the same, so that it
//! interoperates with any PKI built for OVS: the chain (signature, validity period, CA basic
//! constraints) is verified against the CA with webpki, the name is not. Trust therefore rests
//! on the CA: use a CA that signs only OVS components. The client presents its own certificate
//! because ovsdb-server requires one from every peer.

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Error;

/// Where an OVSDB server listens, in the notation of `ovsdb-client` and `ovn-nbctl --db`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Remote {
    /// `unix:PATH`, the local socket of a co-located server.
    Unix(PathBuf),
    /// `tcp:HOST:PORT`, plain TCP.
    Tcp {
        /// Host name or address (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
    },
    /// `ssl:HOST:PORT`, TLS with certificates on both sides.
    Ssl {
        /// Host name or address (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
    },
}

impl FromStr for Remote {
    type Err = Error;

    fn from_str(s: &str) -> Result<Remote, Error> {
        let bad = |reason: &str| Error::BadRemote {
            remote: s.to_string(),
            reason: reason.to_string(),
        };
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| bad("expected unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT"))?;
        match kind {
            "unix" if !rest.is_empty() => Ok(Remote::Unix(PathBuf::from(rest))),
            "unix" => Err(bad("empty socket path")),
            "tcp" | "ssl" => {
                let (host, port) =
                    split_host_port(rest).ok_or_else(|| bad("expected HOST:PORT"))?;
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("port must be 1-65535"))?;
                if host.is_empty() {
                    return Err(bad("empty host"));
                }
                let host = host.to_string();
                Ok(if kind == "tcp" {
                    Remote::Tcp { host, port }
                } else {
                    Remote::Ssl { host, port }
                })
            }
            _ => Err(bad("unknown scheme; expected unix, tcp or ssl")),
        }
    }
}

/// Splits `HOST:PORT` or `[V6]:PORT`.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host_port = |f: &mut fmt::Formatter<'_>, scheme: &str, host: &str, port: u16| {
            if host.contains(':') {
                write!(f, "{scheme}:[{host}]:{port}")
            } else {
                write!(f, "{scheme}:{host}:{port}")
            }
        };
        match self {
            Remote::Unix(path) => write!(f, "unix:{}", path.display()),
            Remote::Tcp { host, port } => host_port(f, "tcp", host, *port),
            Remote::Ssl { host, port } => host_port(f, "ssl", host, *port),
        }
    }
}

/// The PEM files of an `ssl:` client, as `ovs-pki` writes them (the same three files
/// `ovn-nbctl --private-key/--certificate/--ca-cert` take).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The client's private key (PKCS#1, PKCS#8 or SEC1 PEM).
    pub private_key: PathBuf,
    /// The client's certificate (chain), PEM.
    pub certificate: PathBuf,
    /// The CA certificate(s) the server's certificate must chain to, PEM.
    pub ca_cert: PathBuf,
}

/// The TLS files were given in part: they go together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--private-key, --certificate and --ca-cert go together; missing {missing}")]
pub struct IncompleteTls {
    /// The flags not given, comma-separated.
    pub missing: String,
}

impl TlsConfig {
    /// The TLS files from three optional settings (flags, env), as OVN's tools take them: all
    /// three or none.
    pub fn from_files(
        private_key: Option<PathBuf>,
        certificate: Option<PathBuf>,
        ca_cert: Option<PathBuf>,
    ) -> Result<Option<TlsConfig>, IncompleteTls> {
        match (private_key, certificate, ca_cert) {
            (None, None, None) => Ok(None),
            (Some(private_key), Some(certificate), Some(ca_cert)) => Ok(Some(TlsConfig {
                private_key,
                certificate,
                ca_cert,
            })),
            (k, c, a) => {
                let missing: Vec<&str> = [
                    (k.is_none(), "--private-key"),
                    (c.is_none(), "--certificate"),
                    (a.is_none(), "--ca-cert"),
                ]
                .into_iter()
                .filter_map(|(m, n)| m.then_some(n))
                .collect();
                Err(IncompleteTls {
                    missing: missing.join(", "),
                })
            }
        }
    }
}

/// The read half of a session's byte stream.
pub type ReadHalf = Pin<Box<dyn AsyncRead + Send>>;
/// The write half of a session's byte stream.
pub type WriteHalf = Pin<Box<dyn AsyncWrite + Send>>;

/// Opens the byte stream to `remote`, within `timeout` (TLS handshake included).
pub async fn open(
    remote: &Remote,
    tls: Option<&TlsConfig>,
    timeout: Duration,
) -> Result<(ReadHalf, WriteHalf), Error> {
    let name = remote.to_string();
    match tokio::time::timeout(timeout, open_inner(remote, tls)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout {
            what: format!("connecting to {name} ({timeout:?})"),
        }),
    }
}

async fn open_inner(
    remote: &Remote,
    tls: Option<&TlsConfig>,
) -> Result<(ReadHalf, WriteHalf), Error> {
    let name = remote.to_string();
    match remote {
        Remote::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| Error::io(&name, e))?;
            let (r, w) = stream.into_split();
            Ok((Box::pin(r), Box::pin(w)))
        }
        Remote::Tcp { host, port } => {
            let stream = tcp_connect(&name, host, *port).await?;
            let (r, w) = stream.into_split();
            Ok((Box::pin(r), Box::pin(w)))
        }
        Remote::Ssl { host, port } => {
            let tls = tls.ok_or_else(|| Error::Tls {
                remote: name.clone(),
                reason: "an ssl: remote needs a private key, certificate and CA certificate".into(),
            })?;
            let config = client_config(tls).map_err(|reason| Error::Tls {
                remote: name.clone(),
                reason,
            })?;
            let server_name = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => ServerName::IpAddress(ip.into()),
                Err(_) => ServerName::try_from(host.clone()).map_err(|e| Error::Tls {
                    remote: name.clone(),
                    reason: format!("invalid host name: {e}"),
                })?,
            };
            let stream = tcp_connect(&name, host, *port).await?;
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let stream = connector
                .connect(server_name, stream)
                .await
                .map_err(|e| Error::Tls {
                    remote: name.clone(),
                    reason: format!("handshake failed: {e}"),
                })?;
            let (r, w) = tokio::io::split(stream);
            Ok((Box::pin(r), Box::pin(w)))
        }
    }
}

async fn tcp_connect(name: &str, host: &str, port: u16) -> Result<tokio::net::TcpStream, Error> {
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| Error::io(name, e))?;
    // Requests are small and pipelined; Nagle would only add latency.
    stream.set_nodelay(true).map_err(|e| Error::io(name, e))?;
    Ok(stream)
}

/// Builds the rustls client configuration from the PEM files; errors name the file.
pub fn client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in read_certs(&tls.ca_cert)? {
        roots
            .add(cert)
            .map_err(|e| format!("CA certificate {}: {e}", tls.ca_cert.display()))?;
    }
    let certs = read_certs(&tls.certificate)?;
    let key = read_key(&tls.private_key)?;
    let verifier = CaChainVerifier {
        roots: Arc::new(roots),
        provider: provider.clone(),
    };
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(certs, key)
        .map_err(|e| {
            format!(
                "client key {} does not fit certificate {}: {e}",
                tls.private_key.display(),
                tls.certificate.display()
            )
        })
}

fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_pem(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no private key in the file", path.display()))
}

/// Verifies the server's chain against the CA and, like OVS, ignores its name.
#[derive(Debug)]
struct CaChainVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for CaChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_remotes() {
        for (text, remote) in [
            (
                "unix:/run/ovn/ovnnb_db.sock",
                Remote::Unix("/run/ovn/ovnnb_db.sock".into()),
            ),
            (
                "tcp:127.0.0.1:6641",
                Remote::Tcp {
                    host: "127.0.0.1".into(),
                    port: 6641,
                },
            ),
            (
                "ssl:[::1]:6642",
                Remote::Ssl {
                    host: "::1".into(),
                    port: 6642,
                },
            ),
            (
                "tcp:[fd00::1]:6641",
                Remote::Tcp {
                    host: "fd00::1".into(),
                    port: 6641,
                },
            ),
        ] {
            let parsed = text.parse::<Remote>().ok();
            assert_eq!(parsed.as_ref(), Some(&remote), "{text}");
            assert_eq!(remote.to_string(), text);
        }
    }

    #[test]
    fn rejects_bad_remotes_with_the_reason() {
        for bad in [
            "",
            "unix:",
            "tcp:127.0.0.1",
            "tcp:host:0",
            "tcp:host:99999",
            "tcp::6641",
            "tcp:::1:6641",
            "udp:1.2.3.4:5",
            "ssl:[::1]6641",
        ] {
            match bad.parse::<Remote>() {
                Err(Error::BadRemote { remote, .. }) => assert_eq!(remote, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn missing_pem_files_are_named() {
        let tls = TlsConfig {
            private_key: "/nonexistent/key.pem".into(),
            certificate: "/nonexistent/cert.pem".into(),
            ca_cert: "/nonexistent/ca.pem".into(),
        };
        let err = client_config(&tls).err().unwrap_or_default();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
