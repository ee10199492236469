//! `rovn-podtool`: what test pods run. `serve` answers TCP/UDP/HTTP saying who answered and
//! whom it saw; `connect` performs one exchange and prints what the server said; `probe` checks
//! many targets at once and prints one verdict line each.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use rovn_e2e::podtool::connect::{self, ConnectSpec, Proto};
use rovn_e2e::podtool::probe::{self, ProbeTarget};
use rovn_e2e::podtool::serve::{self, ServeSpec};
use rovn_e2e::podtool::{hostname, parse_duration};

#[derive(Parser)]
#[command(about = "Test program for lab pods: echo servers and a client")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtoArg {
    Tcp,
    Udp,
    Http,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve until SIGTERM/SIGINT.
    Serve {
        /// TCP echo port (repeatable): greets with `hostname=H client=IP:PORT`, then echoes.
        #[arg(long)]
        tcp: Vec<u16>,
        /// UDP echo port (repeatable): replies with the greeting line followed by the datagram.
        #[arg(long)]
        udp: Vec<u16>,
        /// HTTP port (repeatable): GET /hostname, /clientip, /echo?msg=X.
        #[arg(long)]
        http: Vec<u16>,
        /// Keep serving this long after SIGTERM, as an application draining its clients does
        /// (a terminating endpoint that still serves).
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        drain: std::time::Duration,
    },
    /// Do nothing until SIGTERM/SIGINT: for pods that only need to exist.
    Pause,
    /// One exchange with a server; prints what it said. Exit 1 on timeout or refusal.
    Connect {
        proto: ProtoArg,
        /// HOST:PORT
        target: String,
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        timeout: std::time::Duration,
        /// Line to echo (tcp/udp) or message for /echo (http).
        #[arg(long)]
        message: Option<String>,
        /// HTTP path to GET when no --message is given.
        #[arg(long, default_value = "/hostname")]
        path: String,
    },
    /// Probe every target at once; one line per target: `TARGET VERDICT at=MS took=MS`, the
    /// verdict `reached`, `dropped` (no answer within the timeout), `refused` or `failed`.
    /// Exit 0 whatever the verdicts.
    Probe {
        /// `tcp:IP:PORT` or `udp:IP:PORT`.
        #[arg(required = true)]
        targets: Vec<ProbeTarget>,
        /// Bound on each probe: no answer by then is a drop.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        timeout: std::time::Duration,
        /// Start a round of probes this often until stdin closes, one line per attempt.
        #[arg(long, value_parser = parse_duration)]
        every: Option<std::time::Duration>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rovn-podtool: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rovn-podtool: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Pause => {
            shutdown_signal()?.await;
            Ok(())
        }
        Cmd::Serve {
            tcp,
            udp,
            http,
            drain,
        } => {
            let spec = ServeSpec { tcp, udp, http };
            let signalled = shutdown_signal()?;
            let shutdown = async move {
                signalled.await;
                tokio::time::sleep(drain).await;
            };
            serve::serve(&spec, hostname(), shutdown).await?;
            Ok(())
        }
        Cmd::Connect {
            proto,
            target,
            timeout,
            message,
            path,
        } => {
            let spec = ConnectSpec {
                proto: match proto {
                    ProtoArg::Tcp => Proto::Tcp,
                    ProtoArg::Udp => Proto::Udp,
                    ProtoArg::Http => Proto::Http,
                },
                target,
                timeout,
                message,
                path,
            };
            let said = connect::connect(&spec).await?;
            print!("{said}");
            if !said.ends_with('\n') {
                println!();
            }
            Ok(())
        }
        Cmd::Probe {
            targets,
            timeout,
            every: None,
        } => {
            for result in probe::probe_all(&targets, timeout).await {
                println!("{result}");
            }
            Ok(())
        }
        Cmd::Probe {
            targets,
            timeout,
            every: Some(every),
        } => {
            let stdin_closed = async {
                let mut sink = tokio::io::sink();
                let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut sink).await;
            };
            probe::probe_repeatedly(&targets, timeout, every, stdin_closed, |result| {
                println!("{result}")
            })
            .await;
            Ok(())
        }
    }
}

fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
