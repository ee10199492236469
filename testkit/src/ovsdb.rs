//! A real `ovsdb-server` on a fresh database in a temp dir, and an `ovs-pki` certificate
//! authority for `ssl:` listeners.
//!
//! Every server gets its own directory (database `db`, client socket `db.sock`, admin socket
//! `admin.sock`, unixctl socket `ctl.sock`, log `ovsdb-server.log`), so tests run in parallel
//! with each other and with a lab. TCP/SSL listeners bind port 0 on 127.0.0.1 and the port the
//! kernel picked is read from the server's log; a restart binds the same port again. Drop
//! kills the server and removes the directory, also when the test fails.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::process::{ChildGuard, log_tail, run_checked};
use crate::schema;

/// How long a server may take to open its sockets.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Key, certificate and CA certificate files for an SSL peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub private_key: PathBuf,
    pub certificate: PathBuf,
    pub ca_cert: PathBuf,
}

/// The extra listener a server has besides its unix sockets.
#[derive(Debug, Clone)]
pub enum Listener {
    /// Only `punix:`.
    None,
    /// `ptcp:PORT:127.0.0.1`.
    Tcp,
    /// `pssl:PORT:127.0.0.1` with the server's key, certificate and CA certificate.
    Ssl(Tls),
}

/// A running `ovsdb-server` on its own database file.
pub struct OvsdbServer {
    /// The temp dir, when the server owns its directory (a raft member's belongs to the cluster).
    _owned: Option<tempfile::TempDir>,
    dir: PathBuf,
    schema: PathBuf,
    db_name: String,
    db: PathBuf,
    sock: PathBuf,
    admin_sock: PathBuf,
    ctl: PathBuf,
    log: PathBuf,
    listener: Listener,
    port: Option<u16>,
    child: ChildGuard,
}

impl OvsdbServer {
    /// A server with only unix sockets, on a fresh database made from `schema`.
    pub fn start(schema: &str) -> Result<OvsdbServer> {
        OvsdbServer::start_with(schema, Listener::None)
    }

    /// A fresh OVN Northbound server.
    pub fn nb() -> Result<OvsdbServer> {
        OvsdbServer::start(schema::NB)
    }

    /// A fresh OVN Southbound server.
    pub fn sb() -> Result<OvsdbServer> {
        OvsdbServer::start(schema::SB)
    }

    /// A server with an extra TCP or SSL listener on 127.0.0.1.
    pub fn start_with(schema: &str, listener: Listener) -> Result<OvsdbServer> {
        let tmp = tempfile::Builder::new()
            .prefix("rovn-ovsdb-test-")
            .tempdir()
            .context("creating the test server's temp dir")?;
        let mut server = OvsdbServer::in_dir(tmp.path(), schema, listener)?;
        server._owned = Some(tmp);
        run_checked(
            Command::new("ovsdb-tool")
                .arg("create")
                .arg(&server.db)
                .arg(schema),
            "ovsdb-tool create",
        )?;
        server.spawn(true)?;
        Ok(server)
    }

    /// A server that is not started yet, with its files in `dir` (which it does not own).
    pub(crate) fn in_dir(dir: &Path, schema: &str, listener: Listener) -> Result<OvsdbServer> {
        Ok(OvsdbServer {
            _owned: None,
            dir: dir.to_path_buf(),
            schema: PathBuf::from(schema),
            db_name: schema_name(schema)?,
            db: dir.join("db"),
            sock: dir.join("db.sock"),
            admin_sock: dir.join("admin.sock"),
            ctl: dir.join("ctl.sock"),
            log: dir.join("ovsdb-server.log"),
            listener,
            port: None,
            child: ChildGuard::default(),
        })
    }

    /// Starts the process and waits for its sockets. With `clients` false only the admin
    /// socket listens, so clients under test cannot reach the server.
    pub(crate) fn spawn(&mut self, clients: bool) -> Result<()> {
        let port = self.port.unwrap_or(0);
        let mut cmd = Command::new("ovsdb-server");
        cmd.arg(&self.db)
            .arg(format!("--remote=punix:{}", self.admin_sock.display()))
            .arg(format!("--unixctl={}", self.ctl.display()))
            .arg(format!("--log-file={}", self.log.display()))
            .arg("--no-chdir")
            .arg("-vconsole:off")
            .env("OVS_RUNDIR", &self.dir)
            .env("OVS_LOGDIR", &self.dir)
            .env("OVS_DBDIR", &self.dir);
        let mut listens = false;
        if clients {
            cmd.arg(format!("--remote=punix:{}", self.sock.display()));
            match &self.listener {
                Listener::None => {}
                Listener::Tcp => {
                    cmd.arg(format!("--remote=ptcp:{port}:127.0.0.1"));
                    listens = true;
                }
                Listener::Ssl(tls) => {
                    cmd.arg(format!("--remote=pssl:{port}:127.0.0.1"))
                        .arg(format!("--private-key={}", tls.private_key.display()))
                        .arg(format!("--certificate={}", tls.certificate.display()))
                        .arg(format!("--ca-cert={}", tls.ca_cert.display()));
                    listens = true;
                }
            }
        }
        let log_len_before = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        self.child = ChildGuard::spawn_daemon(&mut cmd, "ovsdb-server")?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.exited() {
                bail!(
                    "ovsdb-server exited with {status} while starting; log:\n{}",
                    self.log_tail(20)
                );
            }
            let admin_ready = connects(&self.admin_sock);
            let clients_ready = !clients || connects(&self.sock);
            let port_ready = match self.port {
                _ if !listens => true,
                Some(port) => std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
                None => {
                    self.port = self.port_from_log(log_len_before);
                    self.port.is_some()
                }
            };
            if admin_ready && clients_ready && port_ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "ovsdb-server did not come up within {START_TIMEOUT:?}; log:\n{}",
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

    /// The client socket's path.
    pub fn sock(&self) -> &Path {
        &self.sock
    }

    /// The admin socket's path: it listens also while clients are kept out.
    pub fn admin_sock(&self) -> &Path {
        &self.admin_sock
    }

    /// The client socket as an OVSDB remote string, `unix:PATH`.
    pub fn unix_remote(&self) -> String {
        format!("unix:{}", self.sock.display())
    }

    /// The TCP or SSL port on 127.0.0.1, when started with one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The extra listener the server was started with.
    pub fn listener(&self) -> &Listener {
        &self.listener
    }

    /// The database's name (`OVN_Northbound`, ...).
    pub fn db_name(&self) -> &str {
        &self.db_name
    }

    /// The schema file the database was made from.
    pub fn schema_path(&self) -> &Path {
        &self.schema
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.db
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The server's private directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    /// Whether the process runs.
    pub fn is_running(&self) -> bool {
        self.child.is_owned()
    }

    /// Stops the server and starts it again on the same database file, sockets and port, so
    /// that clients see their session end and can reconnect to the same data.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn(true)
    }

    /// Like [`OvsdbServer::restart`], but only the admin socket listens: clients under test
    /// stay disconnected while the test changes the database.
    pub fn restart_without_clients(&mut self) -> Result<()> {
        self.stop();
        self.spawn(false)
    }

    /// Kills the server (SIGKILL, as a crash would); the database file stays.
    pub fn stop(&mut self) {
        self.child.kill();
        for sock in [&self.sock, &self.admin_sock, &self.ctl] {
            let _ = std::fs::remove_file(sock);
        }
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

    /// Runs `ovs-appctl -t CTL ARGS...` against the server; its stdout.
    pub fn appctl(&self, args: &[&str]) -> Result<String> {
        run_checked(
            Command::new("ovs-appctl")
                .arg("-t")
                .arg(&self.ctl)
                .args(args),
            &format!("ovs-appctl {}", args.join(" ")),
        )
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
            .arg(self.unix_remote())
            .args(rest);
        run_checked(&mut cmd, &format!("ovsdb-client {command}"))
    }

    /// Runs `ovsdb-tool transact DB JSON` on the database file, for changes made while the
    /// server is stopped; its stdout.
    pub fn tool_transact(&self, transaction: &str) -> Result<String> {
        run_checked(
            Command::new("ovsdb-tool")
                .arg("transact")
                .arg(&self.db)
                .arg(transaction),
            "ovsdb-tool transact",
        )
    }

    /// The last `lines` lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for OvsdbServer {
    fn drop(&mut self) {
        // The child guard kills the process; the sockets go with the directory, or here when
        // the directory belongs to someone else.
        self.stop();
    }
}

fn connects(sock: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(sock).is_ok()
}

/// The database name a schema file declares (`ovsdb-tool schema-name`).
pub fn schema_name(schema: &str) -> Result<String> {
    let name = run_checked(
        Command::new("ovsdb-tool").arg("schema-name").arg(schema),
        &format!("ovsdb-tool schema-name {schema}"),
    )?;
    Ok(name.trim().to_string())
}

/// An OVS PKI made with `ovs-pki`: a throw-away one in a temp dir removed on drop
/// ([`Pki::new`]), or one that lives in a directory of its owner's ([`Pki::create_in`]).
pub struct Pki {
    root: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Pki {
    /// `ovs-pki init` in a temp dir: creates the switch and controller CAs.
    pub fn new() -> Result<Pki> {
        let dir = tempfile::Builder::new()
            .prefix("rovn-ovs-pki-")
            .tempdir()
            .context("creating the PKI temp dir")?;
        let pki = Pki {
            root: dir.path().to_path_buf(),
            _temp: Some(dir),
        };
        pki.ovs_pki(&["init"])?;
        Ok(pki)
    }

    /// `ovs-pki init` in `root` (created if missing), which outlives the returned value.
    pub fn create_in(root: &Path) -> Result<Pki> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let pki = Pki::open(root);
        pki.ovs_pki(&["init"])?;
        Ok(pki)
    }

    /// The PKI [`Pki::create_in`] made in `root` earlier.
    pub fn open(root: &Path) -> Pki {
        Pki {
            root: root.to_path_buf(),
            _temp: None,
        }
    }

    fn ovs_pki(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("ovs-pki");
        cmd.arg(format!("--dir={}", self.root.join("pki").display()))
            .arg(format!("--log={}", self.root.join("ovs-pki.log").display()))
            .arg("--force")
            .args(args)
            .current_dir(&self.root);
        run_checked(&mut cmd, &format!("ovs-pki {}", args.join(" ")))
    }

    /// `ovs-pki req+sign NAME switch`: a key and certificate signed by the switch CA, whose CN
    /// is `NAME` plus a random id (not a host name, as with every OVS certificate).
    /// Returns them with the CA certificate, ready for a client or a server.
    pub fn issue(&self, name: &str) -> Result<Tls> {
        self.ovs_pki(&["req+sign", name, "switch"])?;
        Ok(self.files(name))
    }

    /// The files [`Pki::issue`] made for `name`.
    pub fn files(&self, name: &str) -> Tls {
        Tls {
            private_key: self.root.join(format!("{name}-privkey.pem")),
            certificate: self.root.join(format!("{name}-cert.pem")),
            ca_cert: self.ca_cert(),
        }
    }

    /// The switch CA's certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("pki/switchca/cacert.pem")
    }

    /// The PKI's directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }
}
