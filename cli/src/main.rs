//! `kubectl-rovn`: the binary kubectl runs for `kubectl rovn …`. Everything that decides lives
//! in the library; this is the command line, the I/O that gathers snapshots, and anyhow at the
//! edge. Exit status: 0 fine, 1 a finding (a dropped trace, a `diagnose` finding), 2 an error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use kubectl_rovn::flow::{self, Destination, Overrides, Proto, Request};
use kubectl_rovn::ovn_io::{self, Db};
use kubectl_rovn::remotes::{self, Resolved, Tls};
use kubectl_rovn::snapshot::KubeSnapshot;
use kubectl_rovn::topology::Format;
use kubectl_rovn::{
    diagnose, kube_io, liveness, nblog, node_ovs, plan, rows, tools, topology, trace, tunnels,
};
use rovn_api::MacAddr;

/// kubectl rovn: debug rovn pod networking from Kubernetes objects to OVN rows and back.
///
/// NB and SB are found through --nb/--sb, else $ROVN_NB/$ROVN_SB, else the ConfigMap
/// kube-system/rovn-config (keys nb-remote, sb-remote) read with your kubeconfig.
#[derive(Debug, Parser)]
#[command(name = "kubectl rovn", bin_name = "kubectl rovn", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// The kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// The OVN Northbound database, as ovn-nbctl --db takes it (unix:PATH, tcp:IP:PORT, ssl:IP:PORT).
    #[arg(long, global = true)]
    nb: Option<String>,
    /// The OVN Southbound database, as ovn-sbctl --db takes it.
    #[arg(long, global = true)]
    sb: Option<String>,
    /// Private key for ssl: remotes (PEM).
    #[arg(long, global = true)]
    private_key: Option<PathBuf>,
    /// Certificate for ssl: remotes (PEM).
    #[arg(long, global = true)]
    certificate: Option<PathBuf>,
    /// CA certificate for ssl: remotes (PEM).
    #[arg(long, global = true)]
    ca_cert: Option<PathBuf>,
    /// Seconds to wait for the API server and the databases.
    #[arg(long, global = true, default_value_t = 10)]
    timeout: u64,
    /// Where each node's OVS run directory (db.sock, ovs-vswitchd's pidfile and control socket)
    /// is reachable from here, with {node} for the node's name (default: $ROVN_OVS_RUNDIR, else
    /// the ConfigMap key ovs-rundir, which the lab sets). For `trace --ovs` and the tunnel
    /// ports `diagnose` checks.
    #[arg(long, global = true)]
    ovs_rundir: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run ovn-nbctl against rovn's NB (--db and TLS options filled in); ARGS go to ovn-nbctl.
    #[command(trailing_var_arg = true)]
    Nbctl {
        /// ovn-nbctl's arguments, e.g. `show` or `lsp-list ovn-default`.
        #[arg(allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run ovn-sbctl against rovn's SB (--db and TLS options filled in); ARGS go to ovn-sbctl.
    #[command(trailing_var_arg = true)]
    Sbctl {
        /// ovn-sbctl's arguments, e.g. `show` or `list Port_Binding`.
        #[arg(allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Trace a pod's first packet through OVN (ovn-trace) and say who delivers, balances or
    /// drops it: a VERDICT line naming the pod, Service or ACL owner, then the trace.
    /// Exits 1 when the packet is not delivered.
    Trace(TraceArgs),
    /// List every NB row a Kubernetes object owns (external_ids:rovn.io/owner), in every table
    /// rovn writes; with --nb-db-file, also the NB transactions that named it.
    Rows {
        /// The owner: Pod/<ns>/<name>, Service/<ns>/<name>, Node/<name>, Subnet/<name> (kind in any case).
        owner: String,
        /// The NB database file (when reachable from here): list the transactions whose
        /// comment names the owner (with `ovsdb-tool show-log -m`).
        #[arg(long)]
        nb_db_file: Option<PathBuf>,
    },
    /// Show the router, its switches with CIDRs, the pods per node per switch, and the load
    /// balancers (Service → VIPs → backends).
    Topology {
        /// text or dot (Graphviz).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Check rovn's state: duplicate or foreign addresses, missing and stale pod ports,
    /// unregistered chassis, unbound pod ports, ovn-northd and every ovn-controller processing,
    /// tunnels, and the leading controller's own dry run (rows it keeps wanting to change,
    /// names taken by rows it did not write). Prints each finding with its fix; exits 1 if
    /// there is one.
    ///
    /// Its one write: NB_Global.nb_cfg += 1 (as `ovn-nbctl --wait=hv sync` does), to see every
    /// chassis report it back; --no-sync skips it and that check.
    Diagnose(DiagnoseArgs),
}

#[derive(Debug, Args)]
struct DiagnoseArgs {
    /// Do not bump NB_Global.nb_cfg (diagnose then writes nothing) and do not check that
    /// ovn-northd and every ovn-controller process it.
    #[arg(long)]
    no_sync: bool,
    /// Seconds to wait for ovn-northd and every chassis to report the bumped nb_cfg.
    #[arg(long, default_value_t = 10)]
    sync_wait: u64,
}

#[derive(Debug, Args)]
struct TraceArgs {
    /// The source pod, <namespace>/<pod>.
    source: String,
    /// The destination: <namespace>/<pod>, svc/<namespace>/<name> (its ClusterIP) or an IP.
    destination: String,
    /// tcp, udp or icmp (default: the Service port's protocol, else tcp).
    proto: Option<String>,
    /// The destination port (default: the Service's first port, else 80).
    port: Option<u16>,
    /// Send from this IP instead of the pod's (checks port security).
    #[arg(long)]
    src_ip: Option<std::net::Ipv4Addr>,
    /// Send from this MAC instead of the pod's (checks port security).
    #[arg(long)]
    src_mac: Option<String>,
    /// The source port (default 40000).
    #[arg(long)]
    src_port: Option<u16>,
    /// Also trace the packet through OpenFlow on the source pod's node
    /// (`ovs-appctl ofproto/trace br-int`): through its run directory (see --ovs-rundir), else
    /// by exec into the node's OVS pod.
    #[arg(long)]
    ovs: bool,
    /// With --ovs on a cluster: the namespace of the OVS pods.
    #[arg(long, default_value = "kube-system")]
    ovs_pod_namespace: String,
    /// With --ovs on a cluster: the label selector of the OVS pods (one per node).
    #[arg(long, default_value = "app.kubernetes.io/name=ovs-ovn")]
    ovs_pod_selector: String,
    /// With --ovs on a cluster: the OVS pods' container with ovs-vsctl and ovs-appctl (default:
    /// their only one).
    #[arg(long)]
    ovs_pod_container: Option<String>,
}

/// What the commands share: the flags, and the API client and ConfigMap once read.
struct Env {
    global: Global,
    tls: Option<Tls>,
    kube: Option<kube::Client>,
    /// `kube-system/rovn-config`'s data once read (`None` inside: it does not exist).
    config: Option<Option<std::collections::BTreeMap<String, String>>>,
}

impl Env {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.global.timeout.max(1))
    }

    async fn kube(&mut self) -> Result<kube::Client> {
        if let Some(client) = &self.kube {
            return Ok(client.clone());
        }
        let client = kube_io::client(
            self.global.kubeconfig.as_deref(),
            self.global.context.as_deref(),
        )
        .await?;
        self.kube = Some(client.clone());
        Ok(client)
    }

    /// The remote of `db`: flag, env, then the ConfigMap (read only when needed).
    async fn remote(&mut self, db: remotes::Db) -> Result<Resolved> {
        let flag = match db {
            remotes::Db::Nb => self.global.nb.clone(),
            remotes::Db::Sb => self.global.sb.clone(),
        };
        let env = std::env::var(db.env()).ok();
        let resolved = match remotes::pick(db, flag.as_deref(), env.as_deref(), None) {
            Some(r) => r,
            None => {
                let data = self.rovn_config(db.flag(), db.env()).await?;
                let value = data.as_ref().and_then(|d| d.get(db.configmap_key()));
                remotes::pick(db, None, None, value.map(String::as_str)).ok_or_else(|| {
                    anyhow!(
                        "no {} remote: give {}, set ${}, or put key {} in ConfigMap {}/{}{}",
                        match db {
                            remotes::Db::Nb => "NB",
                            remotes::Db::Sb => "SB",
                        },
                        db.flag(),
                        db.env(),
                        db.configmap_key(),
                        remotes::CONFIGMAP_NAMESPACE,
                        remotes::CONFIGMAP_NAME,
                        if data.is_none() {
                            " (it does not exist)"
                        } else {
                            ""
                        }
                    )
                })?
            }
        };
        remotes::check_tls(&resolved, self.tls.as_ref())?;
        Ok(resolved)
    }

    /// The ConfigMap's data, read once; `flag` and `env` say what was missing, for errors.
    async fn rovn_config(
        &mut self,
        flag: &str,
        env: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>> {
        if let Some(data) = &self.config {
            return Ok(data.clone());
        }
        let client = self.kube().await.with_context(|| {
            format!(
                "no {flag} or ${env}, so reading ConfigMap {}/{}",
                remotes::CONFIGMAP_NAMESPACE,
                remotes::CONFIGMAP_NAME
            )
        })?;
        let data = tokio::time::timeout(self.timeout(), kube_io::rovn_config(&client))
            .await
            .map_err(|_| {
                anyhow!(
                    "timed out reading ConfigMap {}/{}",
                    remotes::CONFIGMAP_NAMESPACE,
                    remotes::CONFIGMAP_NAME
                )
            })??;
        self.config = Some(data.clone());
        Ok(data)
    }

    /// The template of the nodes' OVS run directories, when one is configured.
    async fn ovs_rundir(&mut self) -> Result<Option<Resolved>> {
        let env = std::env::var(node_ovs::RUNDIR_ENV).ok();
        if let Some(r) = node_ovs::pick(self.global.ovs_rundir.as_deref(), env.as_deref(), None) {
            return Ok(Some(r));
        }
        let data = self
            .rovn_config(node_ovs::RUNDIR_FLAG, node_ovs::RUNDIR_ENV)
            .await?;
        let value = data.as_ref().and_then(|d| d.get(node_ovs::RUNDIR_KEY));
        Ok(node_ovs::pick(None, None, value.map(String::as_str)))
    }

    async fn kube_snapshot(&mut self) -> Result<KubeSnapshot> {
        let client = self.kube().await?;
        tokio::time::timeout(self.timeout(), kube_io::snapshot(&client))
            .await
            .map_err(|_| anyhow!("timed out reading pods, nodes and services"))?
            .context("reading the cluster")
    }

    async fn nb(&mut self) -> Result<Db> {
        let nb = self.remote(remotes::Db::Nb).await?;
        ovn_io::connect_nb(&nb.remote, self.tls.as_ref(), self.timeout())
            .await
            .with_context(|| format!("reading NB (from {})", nb.source))
    }

    async fn sb(&mut self) -> Result<(Db, Resolved)> {
        let sb = self.remote(remotes::Db::Sb).await?;
        let db = ovn_io::connect_sb(&sb.remote, self.tls.as_ref(), self.timeout())
            .await
            .with_context(|| format!("reading SB (from {})", sb.source))?;
        Ok((db, sb))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kubectl rovn: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let tls = remotes::tls_from_flags(
        cli.global.private_key.clone(),
        cli.global.certificate.clone(),
        cli.global.ca_cert.clone(),
    )?;
    let mut env = Env {
        global: cli.global,
        tls,
        kube: None,
        config: None,
    };
    match cli.command {
        Command::Nbctl { args } => passthrough(&mut env, remotes::Db::Nb, "ovn-nbctl", args).await,
        Command::Sbctl { args } => passthrough(&mut env, remotes::Db::Sb, "ovn-sbctl", args).await,
        Command::Trace(args) => run_trace(&mut env, args).await,
        Command::Rows { owner, nb_db_file } => run_rows(&mut env, &owner, nb_db_file).await,
        Command::Topology { format } => {
            let nb = env.nb().await?;
            let snapshot = ovn_io::nb_snapshot(&nb.contents())?;
            emit(&match format {
                Format::Text => topology::render_text(&snapshot),
                Format::Dot => topology::render_dot(&snapshot),
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Diagnose(args) => run_diagnose(&mut env, args).await,
    }
}

/// Writes to stdout; a closed pipe (`| head`) ends the output quietly instead of panicking.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

async fn passthrough(
    env: &mut Env,
    db: remotes::Db,
    program: &str,
    args: Vec<String>,
) -> Result<ExitCode> {
    let resolved = env.remote(db).await?;
    let mut full = remotes::tool_args(&resolved.remote, env.tls.as_ref());
    full.extend(args);
    let status = tools::passthrough(program, &full).await?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(1),
    })
}

async fn run_trace(env: &mut Env, args: TraceArgs) -> Result<ExitCode> {
    let source = flow::parse_pod_ref(&args.source)?;
    let destination: Destination = args.destination.parse()?;
    let proto = args.proto.as_deref().map(str::parse::<Proto>).transpose()?;
    let src_mac = args
        .src_mac
        .as_deref()
        .map(str::parse::<MacAddr>)
        .transpose()
        .context("--src-mac")?;
    let request = Request {
        source,
        destination,
        proto,
        port: args.port,
        overrides: Overrides {
            src_ip: args.src_ip,
            src_mac,
            src_port: args.src_port,
        },
    };
    let kube = env.kube_snapshot().await?;
    let nb_db = env.nb().await?;
    let nb = ovn_io::nb_snapshot(&nb_db.contents())?;
    let plan = flow::plan(&kube, &nb, &request)?;
    let (sb_db, sb) = env.sb().await?;

    let mut trace_args = remotes::tool_args(&sb.remote, env.tls.as_ref());
    trace_args.extend(trace::trace_args(&plan));
    let out = tools::capture("ovn-trace", &trace_args).await?;
    if !out.success {
        bail!(
            "ovn-trace {} failed: {}",
            trace_args.join(" "),
            out.stderr.trim()
        );
    }
    let verdict = kubectl_rovn::verdict::parse(&out.stdout)?;

    let acls = ovn_io::flow_acls(&sb_db, &verdict.acl_hits, &nb.acls).await?;
    let explained = trace::explain(&plan, &verdict, &nb, &acls);
    emit(&format!(
        "{}\n# {} -> {}: ovn-trace {}\n{}",
        explained.line,
        plan.source,
        args.destination,
        trace_args.join(" "),
        out.stdout
    ));
    if args.ovs {
        let node = kube
            .pod(&request.source.0, &request.source.1)
            .and_then(|p| p.node.clone())
            .ok_or_else(|| anyhow!("--ovs: pod {} is not bound to a node", plan.source))?;
        emit(&ovs_trace(env, &node, &plan, &args).await?);
    }
    Ok(if explained.delivered {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// How to reach `node`'s OVS: its run directory when one is configured, else its OVS pod.
async fn reach(
    env: &mut Env,
    node: &str,
    plan: &flow::Plan,
    args: &TraceArgs,
) -> Result<node_ovs::Reach> {
    if let Some(template) = env.ovs_rundir().await? {
        return Ok(node_ovs::Reach::RunDir(node_ovs::rundir(
            &template.remote,
            node,
        )));
    }
    let client = env.kube().await?;
    let pod = tokio::time::timeout(
        env.timeout(),
        kube_io::pod_on_node(
            &client,
            &args.ovs_pod_namespace,
            &args.ovs_pod_selector,
            node,
        ),
    )
    .await
    .map_err(|_| anyhow!("--ovs: timed out looking for the OVS pod of node {node}"))??;
    let Some(name) = pod else {
        let flow = plan.flow.ovs_flow(format!(
            "$(ovs-vsctl --bare --columns=ofport find Interface external_ids:iface-id={})",
            plan.flow.inport
        ));
        return Err(node_ovs::NodeOvsError::NoPod {
            node: node.to_string(),
            namespace: args.ovs_pod_namespace.clone(),
            selector: args.ovs_pod_selector.clone(),
            hint: format!(
                "ovs-appctl {}",
                node_ovs::ofproto_trace_args(&format!("\"{flow}\"")).join(" ")
            ),
        }
        .into());
    };
    Ok(node_ovs::Reach::Pod(node_ovs::OvsPod {
        client,
        namespace: args.ovs_pod_namespace.clone(),
        name,
        container: args.ovs_pod_container.clone(),
    }))
}

/// `ofproto/trace` of the plan's packet on `node`'s br-int, as text to print after the OVN trace.
async fn ovs_trace(
    env: &mut Env,
    node: &str,
    plan: &flow::Plan,
    args: &TraceArgs,
) -> Result<String> {
    let reach = reach(env, node, plan, args).await?;
    let ofport = tokio::time::timeout(
        env.timeout(),
        reach.ofport_of(node, &plan.flow.inport, env.timeout()),
    )
    .await
    .map_err(|_| anyhow!("--ovs: timed out reading br-int of node {node}"))??
    .ok_or_else(|| {
        anyhow!(
            "--ovs: br-int on node {node} has no interface with external_ids:iface-id={} and an OpenFlow port",
            plan.flow.inport
        )
    })?;
    let flow = plan.flow.ovs_flow(ofport);
    let out = tokio::time::timeout(env.timeout(), reach.ofproto_trace(node, &flow))
        .await
        .map_err(|_| anyhow!("--ovs: timed out running ofproto/trace on node {node}"))??;
    if !out.success {
        bail!(
            "ovs-appctl ofproto/trace on node {node} failed: {}",
            out.stderr.trim()
        );
    }
    Ok(format!(
        "# OpenFlow on node {node}: ovs-appctl {}\n{}",
        node_ovs::ofproto_trace_args(&format!("'{flow}'")).join(" "),
        out.stdout
    ))
}

async fn run_rows(env: &mut Env, owner: &str, nb_db_file: Option<PathBuf>) -> Result<ExitCode> {
    let owner = rows::parse_owner(owner)?;
    let nb = env.nb().await?;
    let found = rows::owned_rows(&nb.contents(), &owner);
    let mut text = rows::render(&owner, &found);
    if let Some(path) = nb_db_file {
        let args = vec![
            "show-log".to_string(),
            "-m".to_string(),
            path.display().to_string(),
        ];
        let out = tools::capture("ovsdb-tool", &args).await?;
        if !out.success {
            bail!(
                "ovsdb-tool show-log -m {}: {}",
                path.display(),
                out.stderr.trim()
            );
        }
        let records = nblog::records_naming(&out.stdout, &owner.to_string());
        text.push_str(&format!(
            "\nNB transactions naming {owner} in {} ({}):\n",
            path.display(),
            records.len()
        ));
        for record in records {
            text.push_str(&record.header);
            text.push('\n');
            for line in record.lines {
                text.push_str(&line);
                text.push('\n');
            }
        }
    }
    emit(&text);
    Ok(ExitCode::SUCCESS)
}

/// How long apart the controller's plan is read twice: what it was merely about to write is
/// gone from the second reading.
const PLAN_SETTLE: Duration = Duration::from_secs(2);

/// The steps and conflicts that stay in the leading controller's dry run.
async fn controller_findings(env: &mut Env) -> Result<Vec<diagnose::Finding>> {
    let client = env.kube().await?;
    let read = || async {
        let (leader, text) = kube_io::controller_plan(&client)
            .await
            .map_err(anyhow::Error::msg)?;
        let plan = plan::parse(&text)
            .map_err(|e| anyhow::anyhow!("the plan of {leader} is unreadable: {e}"))?;
        anyhow::Ok((leader, plan))
    };
    let (leader, first) = read().await?;
    if first == plan::Plan::default() {
        return Ok(Vec::new());
    }
    tokio::time::sleep(PLAN_SETTLE).await;
    let (_, second) = read().await?;
    Ok(plan::findings(&plan::lasting(&first, &second), &leader))
}

async fn run_diagnose(env: &mut Env, args: DiagnoseArgs) -> Result<ExitCode> {
    let kube = env.kube_snapshot().await?;
    let nb_db = env.nb().await?;
    let nb = ovn_io::nb_snapshot(&nb_db.contents())?;
    let (sb_db, _) = env.sb().await?;
    let mut notes = Vec::new();
    let (sb, mut findings) = if args.no_sync {
        notes.push(
            "--no-sync: ovn-northd and ovn-controllers not asked to report (nothing written)"
                .to_string(),
        );
        (ovn_io::sb_snapshot(&sb_db.contents())?, Vec::new())
    } else {
        let target = ovn_io::bump_nb_cfg(&nb_db)
            .await
            .context("asking every chassis to report (--no-sync skips it)")?;
        let wait = Duration::from_secs(args.sync_wait);
        let sb = ovn_io::wait_nb_cfg(&sb_db, target, wait).await?;
        let found = liveness::findings(&kube, &sb, target, wait);
        (sb, found)
    };
    let mut nodes = Vec::new();
    match env.ovs_rundir().await? {
        Some(template) => {
            for node in &kube.nodes {
                let dir = node_ovs::rundir(&template.remote, &node.name);
                match node_ovs::read(&node.name, &dir, env.timeout()).await {
                    Ok(ovs) => nodes.push(ovs.tunnels(&node.name)),
                    Err(e) => notes.push(format!(
                        "tunnel ports of node {} not checked: {e} (run directory from {})",
                        node.name, template.source
                    )),
                }
            }
        }
        None => notes.push(format!(
            "tunnel ports on the nodes not checked: no {}, ${} or ConfigMap key {} says where their OVS is",
            node_ovs::RUNDIR_FLAG,
            node_ovs::RUNDIR_ENV,
            node_ovs::RUNDIR_KEY
        )),
    }
    match controller_findings(env).await {
        Ok(found) => findings.extend(found),
        Err(why) => notes.push(format!("the controller's own dry run not checked: {why}")),
    }
    findings.extend(diagnose::diagnose(&kube, &nb, &sb));
    findings.extend(tunnels::findings(&kube, &sb, &nodes));
    findings.sort();
    let notes: String = notes.iter().map(|n| format!("note: {n}\n")).collect();
    if findings.is_empty() {
        emit(&format!(
            "no findings: {} pods, {} nodes, {} NB switch ports, {} SB chassis, {} nodes' tunnel ports checked\n{notes}",
            kube.pods.len(),
            kube.nodes.len(),
            nb.ports.len(),
            sb.chassis.len(),
            nodes.len()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = format!("{} finding(s):\n", findings.len());
    for finding in &findings {
        text.push_str(&format!("{finding}\n"));
    }
    text.push_str(&notes);
    emit(&text);
    Ok(ExitCode::from(1))
}
