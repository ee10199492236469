//! `rovn-lab`: bring a local OVN lab (central + N nodes in network namespaces) up, tear it down,
//! list labs, and run commands inside a lab's namespaces.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use rovn_e2e::lab::{self, Encap, Lab, LabError, LabName, LabNames, LabSpec, Place};
use rovn_e2e::scenario::{Cluster, LabCluster};
use rovn_e2e::scenario::{demo, egress};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(about = "Local OVN lab: central OVN plus N nodes, each a network namespace")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a lab (tearing down leftovers of the same name first) and print how to reach it.
    Up {
        /// Lab name, 1-8 characters of [a-z0-9]; scopes every namespace, file and process.
        #[arg(long)]
        name: LabName,
        /// Number of nodes (chassis), named node1..nodeN.
        #[arg(long, default_value_t = 2)]
        nodes: u8,
        /// Tunnel encapsulation between nodes: geneve or vxlan.
        #[arg(long, default_value_t = Encap::Geneve)]
        encap: Encap,
        /// Only OVN/OVS: no API server, kubelets or scheduler.
        #[arg(long, conflicts_with = "rovn")]
        no_kube: bool,
        /// Also run rovn: rovn-controller in the central namespace and rovn-node on every node.
        #[arg(long)]
        rovn: bool,
        /// No test kubelets: the lab registers the Node objects itself (for driving CNI directly).
        #[arg(long, conflicts_with = "no_kube")]
        no_kubelets: bool,
        /// NB and SB listen on the underlay only with ssl:, and every client connects with a
        /// certificate of the lab's own PKI (made with ovs-pki in the lab's directory).
        #[arg(long)]
        tls: bool,
        /// Where rovn-kubesim, rovn-kubelet, rovn-scheduler, rovn-controller, rovn-node and
        /// rovn-cni are.
        #[arg(long, env = "ROVN_BIN_DIR")]
        bin_dir: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Leave a failed lab in place for inspection.
        #[arg(long)]
        keep_on_failure: bool,
    },
    /// Remove everything a lab made; safe on half-made labs and when nothing is left.
    Down {
        /// The lab to remove.
        #[arg(long, required_unless_present = "stale")]
        name: Option<LabName>,
        /// Instead: remove every lab whose owning test process has died.
        #[arg(long, conflicts_with = "name")]
        stale: bool,
    },
    /// After `up --rovn`: pods in namespace `demo` on every node, a reachability table, and how
    /// to look at the lab with kubectl, ovn-nbctl and ovn-trace.
    Demo {
        /// The lab.
        #[arg(long)]
        name: LabName,
    },
    /// List labs and whether their daemons are alive.
    Status,
    /// Run a command inside a place of a lab (nodeN, central or outside) with its OVS/OVN env.
    Exec {
        /// The lab.
        #[arg(long)]
        name: LabName,
        /// Where to run: node1..nodeN, central or outside.
        place: Place,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// Held by the interrupt handler while it tears a lab down (it exits the process when done), so
/// the main thread cannot finish first and cut the teardown short.
static INTERRUPT_TEARDOWN: Mutex<()> = Mutex::new(());

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `RUST_LOG=rovn_e2e=debug` also shows how long each phase of `up` took.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rovn_e2e=info")),
        )
        .init();
    let result = run(cli);
    let _not_interrupted = INTERRUPT_TEARDOWN.lock();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rovn-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Up {
            name,
            nodes,
            encap,
            no_kube,
            rovn,
            no_kubelets,
            tls,
            bin_dir,
            timeout,
            keep_on_failure,
        } => {
            let started = Instant::now();
            teardown_on_interrupt(name.clone())?;
            let spec = LabSpec {
                encap,
                kube: !no_kube,
                rovn,
                kubelets: !no_kubelets,
                bin_dir,
                timeout: Duration::from_secs(timeout),
                keep_on_failure,
                tls,
                ..LabSpec::new(name.clone(), nodes)
            };
            let lab = Lab::up(&spec).map_err(|e| match e {
                LabError::Timeout { .. } => anyhow!(
                    "bringing up lab {name} (timeout {timeout}s): {e}\n(on a busy machine, a larger --timeout may help)"
                ),
                e => anyhow!("bringing up lab {name}: {e}"),
            })?;
            for line in lab.info().summary_lines() {
                println!("{line}");
            }
            eprintln!(
                "rovn-lab: lab {name} up in {:.2}s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Cmd::Down {
            name: Some(name), ..
        } => lab::down(&name).map_err(|e| anyhow!("tearing down lab {name}: {e}")),
        Cmd::Down { name: None, .. } => {
            for name in lab::down_stale().map_err(|e| anyhow!("removing stale labs: {e}"))? {
                eprintln!("rovn-lab: removed stale lab {name}");
            }
            Ok(())
        }
        Cmd::Demo { name } => run_demo(&name),
        Cmd::Status => {
            let labs = lab::status().map_err(|e| anyhow!("listing labs: {e}"))?;
            if labs.is_empty() {
                eprintln!("rovn-lab: no labs under {}", lab::names::STATE_ROOT);
            }
            for lab in &labs {
                print_status(lab);
            }
            Ok(())
        }
        Cmd::Exec {
            name,
            place,
            command,
        } => {
            let names = LabNames::new(name.clone());
            let ns = names.netns(place);
            anyhow::ensure!(
                lab::netns::exists(&ns),
                "lab {name} has no {} (namespace {ns} does not exist)",
                place.label()
            );
            let (program, args) = command
                .split_first()
                .context("exec needs a command after --")?;
            // Replace this process so signals and the exit status are the command's own.
            let err = lab::exec_command(&names, place, program).args(args).exec();
            Err(anyhow!("running {program} in {ns}: {err}"))
        }
    }
}

/// Makes Ctrl-C (or SIGTERM/SIGHUP) during `up` tear the half-made lab down instead of
/// leaving it for the next `up` or `down` to find. Signal handlers, unlike a blocked signal
/// mask, are not inherited by the daemons `up` starts.
fn teardown_on_interrupt(name: LabName) -> anyhow::Result<()> {
    let (registered_tx, registered_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build();
            let result = runtime.map_err(anyhow::Error::from).and_then(|rt| {
                rt.block_on(async {
                    let mut int = signal(SignalKind::interrupt())?;
                    let mut term = signal(SignalKind::terminate())?;
                    let mut hup = signal(SignalKind::hangup())?;
                    let _ = registered_tx.send(Ok(()));
                    let which = tokio::select! {
                        _ = int.recv() => "SIGINT",
                        _ = term.recv() => "SIGTERM",
                        _ = hup.recv() => "SIGHUP",
                    };
                    Ok::<_, anyhow::Error>(which)
                })
            });
            match result {
                Ok(which) => {
                    let _teardown = INTERRUPT_TEARDOWN.lock();
                    eprintln!("rovn-lab: {which} during up; tearing lab {name} down");
                    lab::cancel::cancel();
                    if let Err(e) = lab::down(&name) {
                        eprintln!("rovn-lab: tearing down lab {name}: {e}");
                    }
                    std::process::exit(130);
                }
                Err(e) => {
                    let _ = registered_tx.send(Err(e));
                }
            }
        })
        .context("starting the interrupt handler")?;
    registered_rx
        .recv()
        .context("the interrupt handler stopped")?
        .context("installing interrupt handlers")
}

fn print_status(lab: &lab::LabStatus) {
    let nodes = lab
        .info
        .as_ref()
        .map(|i| {
            i.nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_else(|| "?".into());
    let api = lab
        .info
        .as_ref()
        .and_then(|i| i.api.clone())
        .unwrap_or_else(|| "-".into());
    let owner = match lab.info.as_ref().and_then(|i| i.owner) {
        Some(o) if o.is_alive() => format!(" owner={}", o.pid),
        Some(o) => format!(" owner={} stale=yes", o.pid),
        None => String::new(),
    };
    println!("lab={} nodes={nodes} api={api}{owner}", lab.name);
    for d in &lab.daemons {
        let pid = d.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
        let alive = if d.alive { "yes" } else { "NO" };
        println!("  daemon={} pid={pid} alive={alive}", d.label);
    }
}

/// `rovn-lab demo`: runs the demo against lab `name` and prints the table, the NB summary, a
/// working `ovn-trace` and how to use the lab's tools.
fn run_demo(name: &LabName) -> anyhow::Result<()> {
    let lab = Lab::attach(name, None).map_err(|e| anyhow!("lab {name}: {e}"))?;
    anyhow::ensure!(
        lab.info().rovn,
        "lab {name} does not run rovn: bring it up with `rovn-lab up --name {name} --rovn`"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let cluster = LabCluster::connect_lab(&lab)
            .await
            .map_err(|e| anyhow!("connecting to lab {name}: {e}"))?;
        let started = Instant::now();
        let outcome = demo::run(&cluster).await;
        let result = match outcome {
            Ok(result) => result,
            Err(e) => {
                eprintln!("{}", cluster.dump(&[demo::NAMESPACE]).await);
                return Err(anyhow!("demo in lab {name}: {e}"));
            }
        };
        println!(
            "== reachability in namespace {} ({} pods ready and measured in {:.1}s; \
             TIME includes starting the client in the pod)",
            demo::NAMESPACE,
            result.servers.len() + result.clients.len(),
            started.elapsed().as_secs_f64()
        );
        print!("{}", demo::render_table(&result));
        println!();
        println!(
            "== Services in namespace {} (ClusterIPs served by OVN load balancers; no kube-proxy)",
            demo::NAMESPACE
        );
        print!("{}", demo::render_service_table(&result));
        println!();
        let ingress = demo::node_port_reaches(&cluster)
            .await
            .map_err(|e| anyhow!("demo NodePort in lab {name}: {e}"))?;
        println!(
            "== NodePort svc/{}/{} from outside the cluster (the node DNATs to the ClusterIP \
             and SNATs to its join IP, which the server sees)",
            demo::NAMESPACE,
            demo::NODE_PORT_SERVICE
        );
        print!(
            "{}",
            demo::render_node_port_table(&ingress, cluster.outside_address())
        );
        println!();
        println!(
            "== NetworkPolicy {}/{} (the servers take TCP only from the first node's client; OVN ACLs)",
            demo::NAMESPACE,
            demo::POLICY
        );
        print!("{}", demo::render_policy_table(&result));
        println!();
        println!(
            "== egress to the outside (each pod leaves through its own node, masqueraded by the \
             node's nftables to its InternalIP)"
        );
        print!("{}", egress::render_egress_table(&result.egress));
        println!();
        let names = lab.names();
        let nb = cluster
            .nbctl(&["show"])
            .await
            .unwrap_or_else(|e| e.to_string());
        println!("== ovn-nbctl show");
        print!("{nb}");
        println!();
        let traced = print_trace(names, &result).await;
        print_usage(names);
        anyhow::ensure!(
            ingress.iter().all(|r| r.outcome.is_ok()),
            "the outside did not reach the NodePort on every node (see the table)"
        );
        anyhow::ensure!(
            demo::all_reached(&result),
            "not every client reached every server with its own address, the echo Service, and a \
             refusal from the empty one, or the policy did not allow exactly the first client, or \
             a client did not reach the outside as its node (see the tables)"
        );
        traced
    })
}

/// Runs the `ovn-trace` the usage text recommends, so the printed command is known to work:
/// the trace must end in the server's port.
async fn print_trace(names: &LabNames, result: &demo::Demo) -> anyhow::Result<()> {
    let (Some(client), Some(server)) = (result.clients.first(), result.servers.last()) else {
        return Ok(());
    };
    let flow = demo::trace_flow(client, server);
    let switch = rovn_api::names::DEFAULT_SUBNET;
    println!(
        "== ovn-trace --db={} --summary {switch} '{flow}'",
        names.sb_remote()
    );
    let out = tokio::process::Command::new("ovn-trace")
        .arg(format!("--db={}", names.sb_remote()))
        .arg("--summary")
        .arg(switch)
        .arg(&flow)
        .output()
        .await
        .context("running ovn-trace")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    println!();
    let port = server.pod.lsp_name();
    anyhow::ensure!(
        out.status.success() && stdout.contains(&format!("output to \"{port}\"")),
        "ovn-trace did not deliver {flow} to {port} ({})",
        out.status
    );
    Ok(())
}

fn print_usage(names: &LabNames) {
    let kubeconfig = names.kubeconfig();
    let kubeconfig = kubeconfig.display();
    let name = names.name();
    println!("== use the lab");
    println!("  kubectl --kubeconfig {kubeconfig} get pods -n demo -o wide");
    println!("  kubectl --kubeconfig {kubeconfig} get subnets");
    println!(
        "  kubectl --kubeconfig {kubeconfig} get pod -n demo client-node1 -o jsonpath='{{.metadata.annotations}}'"
    );
    println!("  ovn-nbctl --db={} show", names.nb_remote());
    println!("  ovn-sbctl --db={} show", names.sb_remote());
    println!(
        "  ovn-trace --db={} ovn-default '<flow, as above>'",
        names.sb_remote()
    );
    println!("  rovn-lab exec --name {name} node1 -- ovs-vsctl show");
    println!("  rovn-lab exec --name {name} node1 -- ip route");
    println!("  logs: {}", names.logs_dir().display());
    // kubectl finds plugins on PATH; the plugin finds NB and SB through the ConfigMap
    // kube-system/rovn-config the lab created, so the kubeconfig is all it needs.
    let bin_dir = rovn_e2e::lab::bins::default_bin_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "target/debug".into());
    println!("== kubectl rovn (the debug plugin, target/debug/kubectl-rovn)");
    println!("  export PATH={bin_dir}:$PATH KUBECONFIG={kubeconfig}");
    println!("  kubectl rovn trace demo/client-node1 demo/server-node2 tcp 8080");
    println!(
        "  kubectl rovn trace demo/client-node1 demo/server-node2 tcp 8080 --ovs   # + OpenFlow on node1"
    );
    println!("  kubectl rovn trace demo/client-node1 svc/demo/echo");
    println!("  kubectl rovn trace demo/client-node1 demo/server-node2 --src-ip 10.16.99.99");
    println!(
        "  kubectl rovn rows pod/demo/server-node1 --nb-db-file {}",
        names.nb_db_file().display()
    );
    println!("  kubectl rovn topology");
    println!(
        "  kubectl rovn diagnose   # bumps NB_Global.nb_cfg to hear from every ovn-controller; --no-sync writes nothing"
    );
    println!("  kubectl rovn nbctl lsp-list ovn-default");
}
