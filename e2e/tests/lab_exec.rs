//! `pods/exec` and `pods/log` in the lab, as on a real cluster: kubectl and kube-rs go to the
//! API server, which relays to the kubelet of the pod's node; the command runs in the pod's
//! sandbox (hostNetwork: the node's network) with the container's environment. The node's
//! network is Debian's reference CNI plugins, as in `lab_kube`: nothing of rovn is needed.

#[allow(dead_code)]
#[path = "lab_kube/cni.rs"]
mod cni;
mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::BoxFuture;
use futures::{AsyncBufReadExt as _, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{AttachParams, AttachedProcess, LogParams, PostParams};
use kube::{Api, Client};
use rovn_e2e::lab::kube::SYSTEM_CNI_BIN_DIR;
use rovn_e2e::lab::{LabNames, Place};
use rovn_e2e::scenario::pods;
use rovn_e2e::scenario::wait;
use serde_json::json;
use tokio::io::{
    AsyncBufReadExt, AsyncWriteExt, BufReader, Lines, ReadHalf, SimplexStream, WriteHalf,
};

const NAMESPACE: &str = "labexec";
const POD_TIMEOUT: Duration = Duration::from_secs(30);
/// A pod serving TCP on 8080 with podtool, with environment from its spec.
const APP: &str = "app";
/// A hostNetwork pod.
const HOST: &str = "host";
/// A pod that prints to stdout and stderr, then waits.
const TALKER: &str = "talker";
/// A pod whose first run prints `first` and fails, its second prints `second` and waits.
const RESTARTED: &str = "restarted";
/// A pod printing `tick-N` five times a second.
const TICKER: &str = "ticker";
const GREETING: &str = "hello-from-the-spec";

#[test]
fn exec_and_logs_reach_the_pods_containers() {
    let ((), lab) = common::run_kube_lab("lx", 1, NAMESPACE, scenario);
    eprintln!(
        "lab_exec timings: lab up {:?}, checks {:?}, lab down {:?}",
        lab.up, lab.scenario, lab.down
    );
}

struct Lab {
    kubeconfig: PathBuf,
    pods: Api<Pod>,
}

async fn scenario(names: &LabNames) -> anyhow::Result<()> {
    let lab = Lab::open(names).await?;
    lab.create_pods().await?;
    let app_ip = lab.wait_running().await?;

    lab.check_env_and_sandbox(app_ip).await?;
    lab.check_exit_code().await?;
    lab.check_stdin().await?;
    lab.check_host_network().await?;
    lab.check_logs().await?;
    lab.check_previous_logs().await?;
    lab.check_follow().await?;
    lab.check_unknown_container().await?;
    // Bounded so that a stream that never ends fails the test instead of hanging it.
    tokio::time::timeout(2 * POD_TIMEOUT, lab.check_kube_rs_streaming())
        .await
        .context("kube-rs exec sessions did not end")??;
    Ok(())
}

/// `kubectl --kubeconfig K ARGS...` with `stdin` piped in; its whole output.
async fn kubectl(kubeconfig: &Path, args: &[&str], stdin: &[u8]) -> anyhow::Result<Output> {
    let mut child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("running kubectl {}", args.join(" ")))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin)
            .await
            .context("writing kubectl's stdin")?;
    }
    let out = tokio::time::timeout(POD_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("kubectl {} did not end", args.join(" ")))??;
    Ok(out)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// kubectl's output, which must be a success.
fn succeeded(out: &Output, what: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(text(&out.stdout))
}

impl Lab {
    async fn open(names: &LabNames) -> anyhow::Result<Self> {
        cni::check_plugins(Path::new(SYSTEM_CNI_BIN_DIR))?;
        let conflist = cni::bridge_conflist(
            cni::PodRange::of_node(1),
            &names.place_dir(Place::Node(1)).join("cni-ipam"),
        );
        cni::install(&names.cni_conf_dir(1), &conflist)?;
        let kubeconfig = kube::config::Kubeconfig::read_from(names.kubeconfig())
            .with_context(|| format!("reading {}", names.kubeconfig().display()))?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .context("loading the lab kubeconfig")?;
        let client = Client::try_from(config).context("building the API client")?;
        let namespace: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {NAMESPACE}"))?;
        Ok(Lab {
            kubeconfig: names.kubeconfig(),
            pods: Api::namespaced(client, NAMESPACE),
        })
    }

    async fn create_pods(&self) -> anyhow::Result<()> {
        let pod = |name: &str, host_network: bool, command: Vec<&str>| {
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {
                    "hostNetwork": host_network,
                    "terminationGracePeriodSeconds": 2,
                    "containers": [{
                        "name": "main",
                        "image": "rovn-podtool",
                        "command": command,
                        "env": [
                            {"name": "GREETING", "value": GREETING},
                            {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                            {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                        ],
                    }],
                },
            })
        };
        let specs = [
            pod(APP, false, vec!["rovn-podtool", "serve", "--tcp", "8080"]),
            pod(HOST, true, vec!["rovn-podtool", "pause"]),
            pod(
                RESTARTED,
                false,
                vec![
                    "sh",
                    "-c",
                    "m=/tmp/rovn-lab-exec-$POD_UID; if [ -e $m ]; then rm -f $m; echo second; \
                     exec sleep 100000; else touch $m; echo first; exit 1; fi",
                ],
            ),
            pod(
                TICKER,
                false,
                vec![
                    "sh",
                    "-c",
                    "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done",
                ],
            ),
            pod(
                TALKER,
                false,
                vec![
                    "sh",
                    "-c",
                    "echo hello-on-stdout; echo hello-on-stderr >&2; exec sleep 100000",
                ],
            ),
        ];
        for spec in specs {
            let pod: Pod = serde_json::from_value(spec)?;
            self.pods
                .create(&PostParams::default(), &pod)
                .await
                .context("creating a pod")?;
        }
        Ok(())
    }

    /// Waits for the three pods to run; the app pod's address.
    async fn wait_running(&self) -> anyhow::Result<Ipv4Addr> {
        wait::until_anyhow(POD_TIMEOUT, "every pod Running and Ready", async || {
            let mut app_ip = None;
            for name in [APP, HOST, TALKER, TICKER] {
                let Some(pod) = self.pods.get_opt(name).await? else {
                    return Ok(None);
                };
                if pods::phase(&pod) != Some("Running") || !pods::is_ready(&pod) {
                    return Ok(None);
                }
                if name == APP {
                    app_ip = pods::pod_ip(&pod);
                }
            }
            Ok(app_ip)
        })
        .await
    }

    async fn exec(&self, pod: &str, command: &[&str], stdin: &[u8]) -> anyhow::Result<Output> {
        let mut args = vec!["-n", NAMESPACE, "exec"];
        if !stdin.is_empty() {
            args.push("-i");
        }
        args.push(pod);
        args.push("--");
        args.extend_from_slice(command);
        kubectl(&self.kubeconfig, &args, stdin).await
    }

    /// The command sees the spec's environment (plain and fieldRef) and the pod's own
    /// interface with the pod's address: it runs in the sandbox.
    async fn check_env_and_sandbox(&self, app_ip: Ipv4Addr) -> anyhow::Result<()> {
        let out = self
            .exec(
                APP,
                &[
                    "sh",
                    "-c",
                    "echo $GREETING; echo $MY_NODE; ip -4 addr show eth0",
                ],
                b"",
            )
            .await?;
        let stdout = succeeded(&out, "kubectl exec app")?;
        let mut lines = stdout.lines();
        anyhow::ensure!(
            lines.next() == Some(GREETING),
            "exec did not see GREETING from the spec: {stdout}"
        );
        anyhow::ensure!(
            lines.next() == Some("node1"),
            "exec did not see MY_NODE (fieldRef spec.nodeName): {stdout}"
        );
        anyhow::ensure!(
            stdout.contains(&format!("inet {app_ip}/")),
            "exec's eth0 has not the pod's address {app_ip}: {stdout}"
        );
        anyhow::ensure!(
            !stdout.contains(&format!("inet {}/", Place::Node(1).underlay_ip())),
            "exec in a pod sees the node's address: {stdout}"
        );
        Ok(())
    }

    /// kubectl exits with the command's exit code, and relays its stderr.
    async fn check_exit_code(&self) -> anyhow::Result<()> {
        let out = self
            .exec(APP, &["sh", "-c", "echo failing >&2; exit 3"], b"")
            .await?;
        anyhow::ensure!(
            out.status.code() == Some(3),
            "kubectl exec of `exit 3` ended with {}: {}",
            out.status,
            text(&out.stderr)
        );
        anyhow::ensure!(
            text(&out.stderr).contains("failing"),
            "the command's stderr did not come back: {}",
            text(&out.stderr)
        );
        Ok(())
    }

    /// `kubectl exec -i`: stdin reaches the command, and its end ends the command.
    async fn check_stdin(&self) -> anyhow::Result<()> {
        let input = b"first line\nsecond line\n";
        let out = self.exec(APP, &["cat"], input).await?;
        let stdout = succeeded(&out, "kubectl exec -i app -- cat")?;
        anyhow::ensure!(
            stdout.as_bytes() == input,
            "cat echoed {stdout:?}, expected {:?}",
            text(input)
        );
        Ok(())
    }

    /// A hostNetwork pod's exec runs in the node's network.
    async fn check_host_network(&self) -> anyhow::Result<()> {
        let out = self.exec(HOST, &["ip", "-4", "addr"], b"").await?;
        let stdout = succeeded(&out, "kubectl exec host")?;
        let node_ip = Place::Node(1).underlay_ip();
        anyhow::ensure!(
            stdout.contains(&format!("inet {node_ip}/")),
            "hostNetwork exec does not see the node's address {node_ip}: {stdout}"
        );
        Ok(())
    }

    /// `kubectl logs` shows what the container printed, stdout and stderr.
    async fn check_logs(&self) -> anyhow::Result<()> {
        let args = ["-n", NAMESPACE, "logs", TALKER];
        let stdout = succeeded(
            &kubectl(&self.kubeconfig, &args, b"").await?,
            "kubectl logs",
        )?;
        anyhow::ensure!(
            stdout.contains("hello-on-stdout\n") && stdout.contains("hello-on-stderr\n"),
            "kubectl logs talker printed {stdout:?}"
        );
        let args = ["-n", NAMESPACE, "logs", "--tail=1", TALKER];
        let tail = succeeded(
            &kubectl(&self.kubeconfig, &args, b"").await?,
            "kubectl logs --tail=1",
        )?;
        anyhow::ensure!(tail.lines().count() == 1, "--tail=1 printed {tail:?}");
        Ok(())
    }

    /// `kubectl logs` shows the current run; `--previous` the one before.
    async fn check_previous_logs(&self) -> anyhow::Result<()> {
        wait::until_anyhow(POD_TIMEOUT, "the restarted pod's second run", async || {
            let pod = self.pods.get(RESTARTED).await?;
            let restarts = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.first())
                .map_or(0, |c| c.restart_count);
            Ok((restarts >= 1 && pods::is_ready(&pod)).then_some(()))
        })
        .await?;
        let current = ["-n", NAMESPACE, "logs", RESTARTED];
        let current = succeeded(&kubectl(&self.kubeconfig, &current, b"").await?, "logs")?;
        anyhow::ensure!(current == "second\n", "current run's log: {current:?}");
        let previous = ["-n", NAMESPACE, "logs", "--previous", RESTARTED];
        let previous = succeeded(
            &kubectl(&self.kubeconfig, &previous, b"").await?,
            "logs --previous",
        )?;
        anyhow::ensure!(previous == "first\n", "previous run's log: {previous:?}");
        Ok(())
    }

    /// Following streams output written after the request.
    async fn check_follow(&self) -> anyhow::Result<()> {
        let now = ["-n", NAMESPACE, "logs", TICKER];
        let so_far = succeeded(&kubectl(&self.kubeconfig, &now, b"").await?, "logs")?;
        let later = format!("tick-{}", so_far.lines().count() + 2);
        let params = LogParams {
            follow: true,
            ..LogParams::default()
        };
        let mut lines = self.pods.log_stream(TICKER, &params).await?.lines();
        while let Some(line) = lines.try_next().await? {
            if line == later {
                return Ok(());
            }
        }
        anyhow::bail!("the followed log of {TICKER} ended before {later}")
    }

    /// A container the pod does not have: the API server's refusal, through kubectl.
    async fn check_unknown_container(&self) -> anyhow::Result<()> {
        let args = ["-n", NAMESPACE, "exec", APP, "-c", "nope", "--", "true"];
        let out = kubectl(&self.kubeconfig, &args, b"").await?;
        let stderr = text(&out.stderr);
        anyhow::ensure!(
            !out.status.success() && stderr.contains("container nope is not valid for pod app"),
            "exec in an unknown container: {} {stderr}",
            out.status
        );
        Ok(())
    }

    /// A kube-rs exec session with stdin and stdout streamed (what `KubectlCluster` uses for
    /// long-lived commands).
    async fn streamed(&self, command: &[&str]) -> anyhow::Result<Streamed> {
        let params = AttachParams::default()
            .stdin(true)
            .stdout(true)
            .stderr(false);
        let mut attached = self
            .pods
            .exec(APP, command.to_vec(), &params)
            .await
            .with_context(|| format!("kube-rs exec {command:?}"))?;
        let stdin = attached.stdin().context("no stdin")?;
        let stdout = BufReader::new(attached.stdout().context("no stdout")?).lines();
        let status = attached.take_status().context("no status")?;
        Ok(Streamed {
            attached,
            stdin,
            stdout,
            status: Box::pin(status),
        })
    }

    /// kube-rs `Api::exec` with long-lived commands: stdin written line by line while stdout
    /// is read, then stdin closed and the status read; a dropped session kills its command.
    async fn check_kube_rs_streaming(&self) -> anyhow::Result<()> {
        let mut cat = self.streamed(&["cat"]).await?;
        for i in 0..3 {
            let line = format!("line {i}");
            cat.stdin.write_all(format!("{line}\n").as_bytes()).await?;
            cat.stdin.flush().await?;
            let echoed = cat.stdout.next_line().await?;
            anyhow::ensure!(
                echoed.as_deref() == Some(line.as_str()),
                "cat echoed {echoed:?}, expected {line:?}"
            );
        }
        cat.finish("cat").await?;

        // podtool's probe loop runs until stdin closes: lines come while it runs.
        let target = "tcp:127.0.0.1:8080";
        let mut probe = self
            .streamed(&["rovn-podtool", "probe", "--every", "100ms", target])
            .await?;
        for _ in 0..2 {
            let line = probe.stdout.next_line().await?.unwrap_or_default();
            anyhow::ensure!(
                line.starts_with(&format!("{target} reached")),
                "probe printed {line:?}"
            );
        }
        probe.finish("rovn-podtool probe").await?;

        // The client goes away: the command is killed.
        let mut sleeper = self
            .streamed(&["sh", "-c", "echo $$; exec sleep 100000"])
            .await?;
        let pid = sleeper.stdout.next_line().await?.unwrap_or_default();
        let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
        anyhow::ensure!(
            !pid.trim().is_empty() && proc_dir.exists(),
            "the sleeper printed {pid:?}, no such process"
        );
        drop(sleeper);
        wait::until_anyhow(POD_TIMEOUT, "the abandoned exec killed", async || {
            Ok((!proc_dir.exists()).then_some(()))
        })
        .await?;

        // A non-zero exit: the status carries the code.
        let one_shot = AttachParams::default().stdin(false).stderr(false);
        let mut attached = self
            .pods
            .exec(APP, ["sh", "-c", "exit 7"], &one_shot)
            .await
            .context("kube-rs exec exit 7")?;
        let status = attached.take_status().context("no status")?.await;
        let code = status
            .as_ref()
            .and_then(|s| s.details.as_ref())
            .and_then(|d| d.causes.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.message.clone());
        anyhow::ensure!(code.as_deref() == Some("7"), "exit 7 reported {status:?}");

        // A figure, not a check: one-shot exec round trips through API server and kubelet.
        const ROUNDS: u32 = 10;
        let started = Instant::now();
        for _ in 0..ROUNDS {
            let mut attached = self.pods.exec(APP, ["true"], &one_shot).await?;
            let status = attached.take_status().context("no status")?.await;
            anyhow::ensure!(
                status.as_ref().and_then(|s| s.status.as_deref()) == Some("Success"),
                "true ended with {status:?}"
            );
        }
        eprintln!(
            "lab_exec figure: kube-rs exec `true` round trip {:?} (mean of {ROUNDS})",
            started.elapsed() / ROUNDS
        );
        Ok(())
    }
}

/// An open exec session.
struct Streamed {
    attached: AttachedProcess,
    stdin: WriteHalf<SimplexStream>,
    stdout: Lines<BufReader<ReadHalf<SimplexStream>>>,
    status: BoxFuture<'static, Option<Status>>,
}

impl Streamed {
    /// Closes stdin, reads stdout to its end and expects the command to succeed.
    async fn finish(mut self, what: &str) -> anyhow::Result<()> {
        // Ends stdin (kube-rs sends v5's close of channel 0); dropping the writer alone does
        // not: the pipe is shared with kube-rs's reader.
        self.stdin.shutdown().await?;
        while self.stdout.next_line().await?.is_some() {}
        let status = self
            .status
            .await
            .with_context(|| format!("no status after {what} ended"))?;
        anyhow::ensure!(
            status.status.as_deref() == Some("Success"),
            "{what} ended with {status:?}"
        );
        self.attached
            .join()
            .await
            .with_context(|| format!("the exec session of {what}"))
    }
}
