//! Shared test helpers: a real `ovsdb-server` on a fresh database in a temp dir, and an
//! `ovs-pki` certificate authority for `ssl:` tests.
//!
//! Every server gets its own directory (socket, unixctl socket, log, db), so tests run in
//! parallel with each other and with a lab. TCP/SSL listeners bind port 0 on 127.0.0.1 and the
//! port the kernel picked is read from the server's log. Drop kills the server and removes the
//! directory, also when the test fails.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rovn_ovsdb::connection::{ConnectOptions, Connection, Notification};
use rovn_ovsdb::transport::{Remote, TlsConfig};
use tokio::sync::mpsc::UnboundedReceiver;

/// The OVN Northbound schema shipped by Debian's `ovn-common`.
pub const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
/// The OVN Southbound schema.
pub const SB_SCHEMA: &str = "/usr/share/ovn/ovn-sb.ovsschema";
/// The Open_vSwitch schema shipped by `openvswitch-common`.
pub const VSWITCH_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// The extra listener a test server has besides its unix socket.
#[derive(Debug, Clone)]
pub enum Listener {
    /// Only `punix:`.
    None,
    /// `ptcp:PORT:127.0.0.1`.
    Tcp,
    /// `pssl:PORT:127.0.0.1` with the server's key, certificate and CA certificate.
    Ssl(TlsConfig),
}

/// A running `ovsdb-server` on its own database file.
pub struct TestServer {
    dir: tempfile::TempDir,
    schema: PathBuf,
    db_name: String,
    db: PathBuf,
    sock: PathBuf,
    ctl: PathBuf,
    log: PathBuf,
    listener: Listener,
    port: Option<u16>,
    child: Option<Child>,
}

impl TestServer {
    /// A server with only a unix socket, on a fresh database made from `schema`.
    pub fn start(schema: &str) -> Result<TestServer> {
        TestServer::start_with(schema, Listener::None)
    }

    /// A fresh OVN Northbound server.
    pub fn nb() -> Result<TestServer> {
        TestServer::start(NB_SCHEMA)
    }

    /// A server with an extra TCP or SSL listener on 127.0.0.1.
    pub fn start_with(schema: &str, listener: Listener) -> Result<TestServer> {
        let dir = tempfile::Builder::new()
            .prefix("rovn-ovsdb-test-")
            .tempdir()
            .context("creating the test server's temp dir")?;
        let schema_text =
            std::fs::read_to_string(schema).with_context(|| format!("reading schema {schema}"))?;
        let db_name = serde_json::from_str::<serde_json::Value>(&schema_text)
            .ok()
            .and_then(|s| s.get("name")?.as_str().map(String::from))
            .ok_or_else(|| anyhow!("schema {schema} has no name"))?;
        let db = dir.path().join("db");
        run_checked(
            Command::new("ovsdb-tool")
                .arg("create")
                .arg(&db)
                .arg(schema),
            "ovsdb-tool create",
        )?;
        let mut server = TestServer {
            sock: dir.path().join("db.sock"),
            ctl: dir.path().join("ctl.sock"),
            log: dir.path().join("ovsdb-server.log"),
            schema: PathBuf::from(schema),
            db_name,
            db,
            dir,
            listener,
            port: None,
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<()> {
        let port = self.port.unwrap_or(0);
        let mut cmd = Command::new("ovsdb-server");
        cmd.arg(&self.db)
            .arg(format!("--remote=punix:{}", self.sock.display()))
            .arg(format!("--unixctl={}", self.ctl.display()))
            .arg(format!("--log-file={}", self.log.display()))
            .arg("--no-chdir")
            .arg("-vconsole:off")
            .env("OVS_RUNDIR", self.dir.path())
            .env("OVS_LOGDIR", self.dir.path())
            .env("OVS_DBDIR", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match &self.listener {
            Listener::None => {}
            Listener::Tcp => {
                cmd.arg(format!("--remote=ptcp:{port}:127.0.0.1"));
            }
            Listener::Ssl(tls) => {
                cmd.arg(format!("--remote=pssl:{port}:127.0.0.1"))
                    .arg(format!("--private-key={}", tls.private_key.display()))
                    .arg(format!("--certificate={}", tls.certificate.display()))
                    .arg(format!("--ca-cert={}", tls.ca_cert.display()));
            }
        }
        let log_len_before = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let child = cmd.spawn().context("spawning ovsdb-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                bail!(
                    "ovsdb-server exited with {status} while starting; log:\n{}",
                    self.log_tail(20)
                );
            }
            let unix_ready = std::os::unix::net::UnixStream::connect(&self.sock).is_ok();
            let port_ready = match self.listener {
                Listener::None => true,
                _ if self.port.is_some() => self.port_is_listening(),
                _ => {
                    self.port = self.port_from_log(log_len_before);
                    self.port.is_some()
                }
            };
            if unix_ready && port_ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "ovsdb-server did not come up within 15 s; log:\n{}",
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn port_from_log(&self, skip: u64) -> Option<u16> {
        let mut text = String::new();
        let mut file = std::fs::File::open(&self.log).ok()?;
        file.read_to_string(&mut text).ok()?;
        let fresh = text.get(skip as usize..)?;
        fresh.lines().find_map(|line| {
            let (_, rest) = line.split_once("listening on port ")?;
            rest.trim().parse().ok()
        })
    }

    fn port_is_listening(&self) -> bool {
        self.port
            .is_some_and(|p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok())
    }

    /// The `unix:` remote.
    pub fn remote(&self) -> Remote {
        Remote::Unix(self.sock.clone())
    }

    /// The `tcp:127.0.0.1:PORT` remote, when started with [`Listener::Tcp`].
    pub fn tcp_remote(&self) -> Option<Remote> {
        match (&self.listener, self.port) {
            (Listener::Tcp, Some(port)) => Some(Remote::Tcp {
                host: "127.0.0.1".into(),
                port,
            }),
            _ => None,
        }
    }

    /// The `ssl:127.0.0.1:PORT` remote, when started with [`Listener::Ssl`].
    pub fn ssl_remote(&self) -> Option<Remote> {
        match (&self.listener, self.port) {
            (Listener::Ssl(_), Some(port)) => Some(Remote::Ssl {
                host: "127.0.0.1".into(),
                port,
            }),
            _ => None,
        }
    }

    /// The database's name (`OVN_Northbound`, ...).
    pub fn db_name(&self) -> &str {
        &self.db_name
    }

    /// The schema file the database was made from.
    pub fn schema_path(&self) -> &Path {
        &self.schema
    }

    /// The server's private directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Connects a client to the unix socket with default options.
    pub async fn connect(&self) -> Result<(Connection, UnboundedReceiver<Notification>)> {
        Connection::connect(&self.remote(), &ConnectOptions::default())
            .await
            .with_context(|| format!("connecting to {}", self.remote()))
    }

    /// Stops the server and starts it again on the same database file, socket and port, so
    /// that clients see their session end and can reconnect to the same data.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
    }

    /// Kills the server (SIGKILL, as a crash would); the database file stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.sock);
        let _ = std::fs::remove_file(&self.ctl);
    }

    /// Freezes the server (SIGSTOP): it keeps its sockets but answers nothing.
    pub fn pause(&self) -> Result<()> {
        self.signal("STOP")
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, sig: &str) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("ovsdb-server is not running"))?;
        run_checked(
            Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid.to_string()),
            "kill",
        )
        .map(drop)
    }

    /// Runs `ovsdb-client [--options] COMMAND unix:SOCK [ARGS...]` and returns its stdout.
    /// Leading arguments that start with `-` are options and go before the command.
    pub fn ovsdb_client(&self, args: &[&str]) -> Result<String> {
        let split = args
            .iter()
            .position(|a| !a.starts_with('-'))
            .unwrap_or(args.len());
        let (options, rest) = args.split_at(split);
        let (command, rest) = rest
            .split_first()
            .ok_or_else(|| anyhow!("ovsdb_client needs a command"))?;
        let mut cmd = Command::new("ovsdb-client");
        cmd.args(options)
            .arg(command)
            .arg(self.remote().to_string())
            .args(rest);
        run_checked(&mut cmd, &format!("ovsdb-client {command}"))
    }

    /// The last `lines` lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("{what} printed non-UTF-8"))
}

/// A throw-away OVS PKI made with `ovs-pki`, in a temp dir removed on drop.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// `ovs-pki init`: creates the switch and controller CAs.
    pub fn new() -> Result<Pki> {
        let dir = tempfile::Builder::new()
            .prefix("rovn-ovs-pki-")
            .tempdir()
            .context("creating the PKI temp dir")?;
        let pki = Pki { dir };
        pki.ovs_pki(&["init"])?;
        Ok(pki)
    }

    fn ovs_pki(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("ovs-pki");
        cmd.arg(format!("--dir={}", self.dir.path().join("pki").display()))
            .arg(format!(
                "--log={}",
                self.dir.path().join("ovs-pki.log").display()
            ))
            .arg("--force")
            .args(args)
            .current_dir(self.dir.path());
        run_checked(&mut cmd, &format!("ovs-pki {}", args.join(" ")))
    }

    /// `ovs-pki req+sign NAME switch`: a key and certificate signed by the switch CA, whose CN
    /// is `NAME` plus a random id (not a host name, as with every OVS certificate).
    /// Returns them with the CA certificate, ready for a client or a server.
    pub fn issue(&self, name: &str) -> Result<TlsConfig> {
        self.ovs_pki(&["req+sign", name, "switch"])?;
        Ok(TlsConfig {
            private_key: self.dir.path().join(format!("{name}-privkey.pem")),
            certificate: self.dir.path().join(format!("{name}-cert.pem")),
            ca_cert: self.ca_cert(),
        })
    }

    /// The switch CA's certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("pki/switchca/cacert.pem")
    }

    /// The PKI's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
