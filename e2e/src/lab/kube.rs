//! The Kubernetes stand-ins of a lab: the test API server (root namespace, with a second
//! listener inside the central namespace), one test kubelet per node (inside the node's
//! namespace) and the scheduler; plus the kubeconfigs that point at them.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::bins;
use super::daemon::{self, Daemon, DaemonSpec};
use super::error::LabError;
use super::names::{CENTRAL_IP, CONTROLLER_POD, CONTROLLER_PORT, LabNames, Place};
use super::poll;

/// Where Debian's containernetworking-plugins put the standard CNI plugins (loopback, ...).
pub const SYSTEM_CNI_BIN_DIR: &str = "/usr/lib/cni";
/// How often the API server is asked whether the nodes are Ready.
const NODE_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The project binaries the Kubernetes stand-ins need, found before anything is started.
#[derive(Debug, Clone)]
pub struct KubeBins {
    kubesim: PathBuf,
    kubelet: PathBuf,
    scheduler: PathBuf,
    /// Also the first CNI plugin directory (where `rovn-cni` is).
    dir: PathBuf,
}

impl KubeBins {
    /// Finds rovn-kubesim, rovn-kubelet and rovn-scheduler in `dir`.
    pub fn find(dir: &Path) -> Result<KubeBins, LabError> {
        Ok(KubeBins {
            kubesim: bins::find(dir, "rovn-kubesim")?,
            kubelet: bins::find(dir, "rovn-kubelet")?,
            scheduler: bins::find(dir, "rovn-scheduler")?,
            dir: dir.to_path_buf(),
        })
    }
}

/// What runs beside the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentOptions {
    /// A test kubelet per node; without them the lab registers the Node objects itself.
    pub kubelets: bool,
    /// rovn runs: the kubelets' CNI path starts with the directory rovn-node copies
    /// `rovn-cni` into.
    pub rovn: bool,
}

/// The kubelet's CNI plugin search path on `node`: rovn's per-node bin dir first when rovn
/// runs, then the project's binaries, then Debian's reference plugins. Pure.
pub fn cni_bin_path(names: &LabNames, bin_dir: &Path, node: u8, rovn: bool) -> String {
    let project = format!("{}:{SYSTEM_CNI_BIN_DIR}", bin_dir.display());
    if rovn {
        format!("{}:{project}", names.cni_bin_dir(node).display())
    } else {
        project
    }
}

/// The Node object a kubelet would register for lab node `index`: hostname label and the
/// underlay address as InternalIP. Pure.
pub fn node_object(index: u8) -> serde_json::Value {
    let place = Place::Node(index);
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": place.label(),
            "labels": {
                "kubernetes.io/hostname": place.label(),
                "kubernetes.io/os": "linux",
            },
        },
    })
}

/// The status of a registered node without kubelet: Ready, with its underlay address. Pure.
pub fn node_status_patch(index: u8) -> serde_json::Value {
    let place = Place::Node(index);
    serde_json::json!({
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": place.underlay_ip().to_string()},
                {"type": "Hostname", "address": place.label()},
            ],
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "RovnLabRegistered",
                "message": "registered by the lab (no kubelet runs on this node)",
            }],
        }
    })
}

/// The ConfigMap `kube-system/rovn-config` of a lab running rovn: the NB and SB remotes as
/// reachable from the root namespace, where `kubectl rovn` runs, and (lab only: on a cluster
/// each node's OVS is on that node) where every node's OVS run directory is. Pure.
pub fn rovn_config_object(names: &LabNames) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": rovn_api::names::CONFIG_MAP,
            "namespace": "kube-system",
            "labels": {"app.kubernetes.io/name": "rovn"},
        },
        "data": {
            "nb-remote": names.nb_remote(),
            "sb-remote": names.sb_remote(),
            "ovs-rundir": names.node_rundir_template(),
        },
    })
}

/// Publishes where the lab's NB and SB are, as `deploy/base/rovn-config.yaml` does on a cluster, so
/// `kubectl rovn` finds them with the lab's kubeconfig alone.
pub fn create_rovn_config(api: SocketAddr, names: &LabNames) -> Result<(), LabError> {
    http_send(
        api,
        "POST",
        "/api/v1/namespaces/kube-system/configmaps",
        "application/json",
        &rovn_config_object(names).to_string(),
    )
    .map(|_| ())
}

/// The Pod object of the lab's controller, as the Deployment's pod is on a cluster: named as
/// the controller's Lease identity, with its address and metrics port, so the API server's pod
/// proxy reaches the leader (`kubectl rovn diagnose` reads `/debug/plan` that way). Bound to
/// `central`, which no kubelet runs, and hostNetwork, so nothing else acts on it. Pure.
pub fn controller_pod_object() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": CONTROLLER_POD,
            "namespace": "kube-system",
            "labels": {"app.kubernetes.io/name": "rovn-controller"},
        },
        "spec": {
            "nodeName": "central",
            "hostNetwork": true,
            "containers": [{
                "name": "rovn-controller",
                "image": "rovn:lab",
                "ports": [{"name": "metrics", "containerPort": CONTROLLER_PORT, "protocol": "TCP"}],
            }],
        },
    })
}

/// The status of [`controller_pod_object`]: running at the central address.
fn controller_pod_status() -> serde_json::Value {
    let ip = CENTRAL_IP.to_string();
    serde_json::json!({
        "status": {
            "phase": "Running",
            "hostIP": ip,
            "podIP": ip,
            "podIPs": [{"ip": ip}],
        }
    })
}

/// Publishes the controller's Pod object ([`controller_pod_object`]).
pub fn create_controller_pod(api: SocketAddr) -> Result<(), LabError> {
    http_send(
        api,
        "POST",
        "/api/v1/namespaces/kube-system/pods",
        "application/json",
        &controller_pod_object().to_string(),
    )?;
    http_send(
        api,
        "PATCH",
        &format!("/api/v1/namespaces/kube-system/pods/{CONTROLLER_POD}/status"),
        "application/merge-patch+json",
        &controller_pod_status().to_string(),
    )
    .map(|_| ())
}

/// Registers every node of `nodes` the way its kubelet would, for labs without kubelets.
fn register_nodes(api: SocketAddr, nodes: &[u8]) -> Result<(), LabError> {
    for &index in nodes {
        let name = Place::Node(index).label();
        http_send(
            api,
            "POST",
            "/api/v1/nodes",
            "application/json",
            &node_object(index).to_string(),
        )?;
        http_send(
            api,
            "PATCH",
            &format!("/api/v1/nodes/{name}/status"),
            "application/merge-patch+json",
            &node_status_patch(index).to_string(),
        )?;
    }
    Ok(())
}

/// The API server, started early (it needs only the central namespace) so its start-up
/// overlaps with OVN's.
#[derive(Debug)]
pub struct ApiServer {
    daemon: Daemon,
}

/// The running Kubernetes stand-ins and how to reach them.
#[derive(Debug)]
pub struct Kube {
    /// Kubeconfig for the root namespace.
    pub kubeconfig: PathBuf,
    /// The API server's address in the root namespace.
    pub api: SocketAddr,
    /// The API server, kubelets and scheduler.
    pub daemons: Vec<Daemon>,
}

/// Starts the API server (root namespace, second listener in the central namespace).
pub fn start_api_server(names: &LabNames, bins: &KubeBins) -> Result<ApiServer, LabError> {
    let daemon = daemon::start(&DaemonSpec {
        label: "central/rovn-kubesim".into(),
        netns: None,
        program: bins.kubesim.clone(),
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--listen".into(),
            names.kube_lab_listen().into(),
            "--ready-file".into(),
            names.kubesim_ready_file().into(),
            "--proxy-netns".into(),
            names.netns(Place::Central).into(),
        ],
        env: vec![],
        pidfile: names.pidfile(Place::Central, "rovn-kubesim"),
        log_file: names.log_file(Place::Central, "rovn-kubesim"),
        writes_own_pidfile: false,
    })?;
    Ok(ApiServer { daemon })
}

/// Waits for the API server, writes both kubeconfigs, and starts the kubelets (which need
/// the nodes' underlay) and the scheduler. Does not wait for the nodes to be Ready.
pub fn start_agents(
    names: &LabNames,
    bins: &KubeBins,
    api_server: ApiServer,
    nodes: &[u8],
    options: AgentOptions,
    deadline: Instant,
) -> Result<Kube, LabError> {
    let kubesim = api_server.daemon;
    let api = wait_for_ready_file(&kubesim, &names.kubesim_ready_file(), deadline)?;
    let mut daemons = vec![kubesim];

    let kubeconfig = names.kubeconfig();
    write_file(
        &kubeconfig,
        &render_kubeconfig(&names.kube_context(), &format!("http://{api}")),
    )?;
    write_file(
        &names.kubeconfig_lab(),
        &render_kubeconfig(&names.kube_context(), &names.kube_lab_url()),
    )?;

    if options.kubelets {
        for &index in nodes {
            let cni_bin_path = cni_bin_path(names, &bins.dir, index, options.rovn);
            daemons.push(start_kubelet(names, &bins.kubelet, index, &cni_bin_path)?);
        }
    } else {
        register_nodes(api, nodes)?;
    }
    daemons.push(daemon::start(&DaemonSpec {
        label: "central/rovn-scheduler".into(),
        netns: None,
        program: bins.scheduler.clone(),
        args: vec!["--kubeconfig".into(), kubeconfig.clone().into()],
        env: vec![],
        pidfile: names.pidfile(Place::Central, "rovn-scheduler"),
        log_file: names.log_file(Place::Central, "rovn-scheduler"),
        writes_own_pidfile: false,
    })?);
    Ok(Kube {
        kubeconfig,
        api,
        daemons,
    })
}

impl Kube {
    /// Waits until every node of `nodes` is Ready in the API server.
    pub fn wait_ready(&self, nodes: &[u8], deadline: Instant) -> Result<(), LabError> {
        let wanted: BTreeSet<String> = nodes.iter().map(|i| Place::Node(*i).label()).collect();
        wait_for_ready_nodes(self.api, &wanted, &self.daemons, deadline)
    }
}

fn start_kubelet(
    names: &LabNames,
    program: &Path,
    index: u8,
    cni_bin_path: &str,
) -> Result<Daemon, LabError> {
    let place = Place::Node(index);
    let state_dir = names.kubelet_state_dir(index);
    let cni_conf_dir = names.cni_conf_dir(index);
    for dir in [&state_dir, &cni_conf_dir] {
        std::fs::create_dir_all(dir).map_err(|e| LabError::io("create", dir, e))?;
    }
    daemon::start(&DaemonSpec {
        label: format!("{}/rovn-kubelet", place.label()),
        netns: Some(names.netns(place)),
        program: program.to_path_buf(),
        args: vec![
            "--node-name".into(),
            place.label().into(),
            "--node-ip".into(),
            place.underlay_ip().to_string().into(),
            "--kubeconfig".into(),
            names.kubeconfig_lab().into(),
            "--netns-prefix".into(),
            names.netns_prefix().into(),
            "--cni-conf-dir".into(),
            cni_conf_dir.into(),
            "--cni-bin-dir".into(),
            cni_bin_path.into(),
            "--state-dir".into(),
            state_dir.into(),
        ],
        env: names
            .env_for(place)
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect(),
        pidfile: names.pidfile(place, "rovn-kubelet"),
        log_file: names.log_file(place, "rovn-kubelet"),
        writes_own_pidfile: false,
    })
}

fn write_file(path: &Path, content: &str) -> Result<(), LabError> {
    std::fs::write(path, content).map_err(|e| LabError::io("write", path, e))
}

fn wait_for_ready_file(
    kubesim: &Daemon,
    ready_file: &Path,
    deadline: Instant,
) -> Result<SocketAddr, LabError> {
    let found = poll::until(deadline, poll::INTERVAL, || {
        match std::fs::read_to_string(ready_file) {
            Ok(text) => parse_ready_file(&text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                kubesim.ensure_alive().map(|_| None)
            }
            Err(e) => Err(LabError::io("read", ready_file, e)),
        }
    })?;
    found.ok_or_else(|| LabError::Timeout {
        what: format!("{} to write {}", kubesim.label, ready_file.display()),
        logs: vec![kubesim.log_excerpt()],
    })
}

/// The root-namespace (loopback) address from the API server's ready file.
pub fn parse_ready_file(text: &str) -> Result<SocketAddr, LabError> {
    #[derive(serde::Deserialize)]
    struct Ready {
        listen: Vec<String>,
    }
    let bad = |detail: String| LabError::Protocol {
        what: "the API server's ready file".into(),
        detail,
    };
    let ready: Ready = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    ready
        .listen
        .iter()
        .filter_map(|a| a.parse::<SocketAddr>().ok())
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| bad(format!("no loopback address in {:?}", ready.listen)))
}

/// A kubeconfig for a plain-HTTP API server without authentication.
pub fn render_kubeconfig(context: &str, server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {context}
  cluster:
    server: {server}
users:
- name: {context}
  user: {{}}
contexts:
- name: {context}
  context:
    cluster: {context}
    user: {context}
current-context: {context}
"
    )
}

fn wait_for_ready_nodes(
    api: SocketAddr,
    wanted: &BTreeSet<String>,
    daemons: &[Daemon],
    deadline: Instant,
) -> Result<(), LabError> {
    let mut last_seen = BTreeSet::new();
    let done = poll::until(deadline, NODE_POLL_INTERVAL, || {
        for d in daemons {
            d.ensure_alive()?;
        }
        // The API server may be briefly unable to answer; only the deadline is fatal.
        if let Ok(body) = http_get(api, "/api/v1/nodes") {
            last_seen = ready_nodes(&body)?;
        }
        Ok::<_, LabError>(wanted.is_subset(&last_seen).then_some(()))
    })?;
    done.ok_or_else(|| {
        let missing: Vec<&String> = wanted.difference(&last_seen).collect();
        LabError::Timeout {
            what: format!("nodes {missing:?} to be Ready in the API server at {api}"),
            logs: daemons
                .iter()
                .filter(|d| {
                    d.label.ends_with("kubesim")
                        || missing
                            .iter()
                            .any(|m| d.label.starts_with(&format!("{m}/")))
                })
                .map(Daemon::log_excerpt)
                .collect(),
        }
    })
}

/// The names of the nodes whose Ready condition is True in a NodeList.
pub fn ready_nodes(node_list_json: &str) -> Result<BTreeSet<String>, LabError> {
    let list: serde_json::Value =
        serde_json::from_str(node_list_json).map_err(|e| LabError::Protocol {
            what: "the API server's node list".into(),
            detail: e.to_string(),
        })?;
    let items = list
        .get("items")
        .and_then(|i| i.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    Ok(items
        .iter()
        .filter(|node| {
            node.pointer("/status/conditions")
                .and_then(|c| c.as_array())
                .is_some_and(|conds| {
                    conds.iter().any(|c| {
                        c.get("type").and_then(|t| t.as_str()) == Some("Ready")
                            && c.get("status").and_then(|s| s.as_str()) == Some("True")
                    })
                })
        })
        .filter_map(|node| node.pointer("/metadata/name").and_then(|n| n.as_str()))
        .map(str::to_string)
        .collect())
}

/// A minimal HTTP/1.0 GET (one request per connection, body read to EOF), enough to poll the
/// lab's own API server without a client stack.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String, LabError> {
    http_request(addr, "GET", path, None)
}

/// A minimal HTTP/1.0 request with a body (`POST`, `PATCH`, ...); the answer must be a 2xx.
pub fn http_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Result<String, LabError> {
    http_request(addr, method, path, Some((content_type, body)))
}

fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> Result<String, LabError> {
    let what = format!("{method} http://{addr}{path}");
    let io = |e: std::io::Error| LabError::Protocol {
        what: what.clone(),
        detail: e.to_string(),
    };
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(io)?;
    let mut request =
        format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n");
    if let Some((content_type, body)) = body {
        request.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;
    split_http_response(&String::from_utf8_lossy(&raw)).map_err(|detail| LabError::Protocol {
        what: what.clone(),
        detail,
    })
}

/// The body of an HTTP response, or why it is not a 200.
pub fn split_http_response(raw: &str) -> Result<String, String> {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| "response without a header end".to_string())?;
    let status_line = head.lines().next().unwrap_or_default();
    let code = status_line.split_whitespace().nth(1).unwrap_or_default();
    if !matches!(code, "200" | "201") {
        return Err(format!("status {status_line:?}"));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_file_gives_the_loopback_listener() {
        let addr = parse_ready_file(r#"{"listen":["172.30.0.1:6443","127.0.0.1:34567"]}"#).unwrap();
        assert_eq!(addr, "127.0.0.1:34567".parse().unwrap());
        assert!(parse_ready_file(r#"{"listen":["172.30.0.1:6443"]}"#).is_err());
        assert!(parse_ready_file("not json").is_err());
    }

    #[test]
    fn only_nodes_with_ready_true_count() {
        let list = r#"{"items":[
            {"metadata":{"name":"node1"},"status":{"conditions":[{"type":"Ready","status":"True"}]}},
            {"metadata":{"name":"node2"},"status":{"conditions":[{"type":"Ready","status":"False"}]}},
            {"metadata":{"name":"node3"}}]}"#;
        let ready = ready_nodes(list).unwrap();
        assert_eq!(
            ready.into_iter().collect::<Vec<_>>(),
            vec!["node1".to_string()]
        );
        assert!(ready_nodes("{").is_err());
    }

    #[test]
    fn rovn_puts_its_cni_dir_first() {
        let names = LabNames::new("dev".parse().unwrap());
        let bins = Path::new("/b");
        assert_eq!(
            cni_bin_path(&names, bins, 2, true),
            "/run/rovn-lab/dev/node2/cni/bin:/b:/usr/lib/cni"
        );
        assert_eq!(cni_bin_path(&names, bins, 2, false), "/b:/usr/lib/cni");
    }

    #[test]
    fn registered_nodes_look_like_the_kubelets() {
        let node = node_object(3);
        assert_eq!(node["metadata"]["name"], "node3");
        assert_eq!(
            node["metadata"]["labels"]["kubernetes.io/hostname"],
            "node3"
        );
        let status = node_status_patch(3);
        assert_eq!(status["status"]["addresses"][0]["address"], "172.30.0.13");
        assert_eq!(status["status"]["conditions"][0]["status"], "True");
    }

    #[test]
    fn rovn_config_names_the_root_namespace_sockets() {
        let names = LabNames::new("dev".parse().unwrap());
        let config = rovn_config_object(&names);
        assert_eq!(config["metadata"]["namespace"], "kube-system");
        assert_eq!(config["metadata"]["name"], "rovn-config");
        assert_eq!(
            config["data"]["nb-remote"],
            "unix:/run/rovn-lab/dev/central/nb.sock"
        );
        assert_eq!(
            config["data"]["sb-remote"],
            "unix:/run/rovn-lab/dev/central/sb.sock"
        );
        assert_eq!(config["data"]["ovs-rundir"], "/run/rovn-lab/dev/{node}");
    }

    #[test]
    fn kubeconfig_points_at_the_server() {
        let text = render_kubeconfig("rovn-lab-dev", "http://127.0.0.1:1234");
        assert!(text.contains("server: http://127.0.0.1:1234"));
        assert!(text.contains("current-context: rovn-lab-dev"));
    }

    #[test]
    fn http_responses_split_into_status_and_body() {
        assert_eq!(
            split_http_response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap(),
            "{}"
        );
        assert!(split_http_response("HTTP/1.1 404 Not Found\r\n\r\nno").is_err());
        assert_eq!(
            split_http_response("HTTP/1.1 201 Created\r\n\r\n{}").unwrap(),
            "{}"
        );
        assert!(split_http_response("garbage").is_err());
    }
}
