//! The binary against a real unix socket served with the protocol's own types: what it
//! forwards, what it prints, and how an absent, failing, slow or broken agent surfaces.

mod common;

use std::time::Duration;

use common::{Reply, Stdin, TestAgent, add_env, run_cni, with, without};
use rovn_node::cni::protocol::{CniCommand, CniError, CniResponse};
use serde_json::{Value, json};

/// An agent that answers every request with a result echoing the request, keys in a
/// deliberately unsorted order so "printed exactly" is tested, not "printed equivalently".
fn echo_agent() -> TestAgent {
    TestAgent::start(|request| {
        Reply::Response(CniResponse::Ok(json!({
            "cniVersion": request.cni_version,
            "interfaces": [{"name": "eth0", "mac": "0a:58:0a:10:00:05", "sandbox": request.netns}],
            "ips": [{"address": "10.16.0.5/16", "gateway": "10.16.0.1", "interface": 0}],
            "zz_echo": serde_json::to_value(request).unwrap_or(Value::Null),
            "aa_last": true
        })))
    })
}

fn add_config() -> Value {
    json!({
        "cniVersion": "1.1.0",
        "name": "rovn",
        "type": "rovn-cni",
        "prevResult": {"cniVersion": "1.1.0", "interfaces": [], "ips": []},
        "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    })
}

#[test]
fn add_round_trip_forwards_everything_and_prints_the_agent_result_exactly() {
    let agent = echo_agent();
    let config = add_config();
    let run = run_cni(
        &add_env(agent.socket()),
        Stdin::Bytes(serde_json::to_vec(&config).unwrap()),
    );
    assert_eq!(run.exit_code, Some(0), "{run:?}");

    let request = agent.received();
    assert_eq!(request.command, CniCommand::Add);
    assert_eq!(request.container_id.as_deref(), Some("3f2a9c1e7b"));
    assert_eq!(request.netns.as_deref(), Some("/var/run/netns/cni-1234"));
    assert_eq!(request.ifname.as_deref(), Some("eth0"));
    assert_eq!(
        request.args.get("K8S_POD_NAMESPACE").map(String::as_str),
        Some("default")
    );
    assert_eq!(
        request.args.get("K8S_POD_NAME").map(String::as_str),
        Some("web")
    );
    assert_eq!(
        request.args.get("K8S_POD_UID").map(String::as_str),
        Some("8d1c")
    );
    assert_eq!(
        request.args.get("IgnoreUnknown").map(String::as_str),
        Some("1")
    );
    assert_eq!(request.path, vec!["/opt/cni/bin"]);
    assert_eq!(request.cni_version, "1.1.0");
    assert_eq!(
        request.config, config,
        "config (with prevResult and runtimeConfig) forwarded whole"
    );

    let expected = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:10:00:05", "sandbox": "/var/run/netns/cni-1234"}],
        "ips": [{"address": "10.16.0.5/16", "gateway": "10.16.0.1", "interface": 0}],
        "zz_echo": serde_json::to_value(&request).unwrap(),
        "aa_last": true
    });
    assert_eq!(
        run.stdout,
        serde_json::to_string(&expected).unwrap(),
        "stdout is the agent's JSON, byte for byte"
    );
    assert!(
        agent.received_nothing(),
        "exactly one request per invocation"
    );
}

#[test]
fn add_result_is_accepted_as_prev_result_by_a_chained_check() {
    let agent = echo_agent();
    let run = run_cni(
        &add_env(agent.socket()),
        Stdin::Bytes(serde_json::to_vec(&add_config()).unwrap()),
    );
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    let add_request = agent.received();

    let mut check_config = add_config();
    check_config["prevResult"] = run.stdout_json();
    let env = with(add_env(agent.socket()), "CNI_COMMAND", "CHECK");
    let check = run_cni(
        &env,
        Stdin::Bytes(serde_json::to_vec(&check_config).unwrap()),
    );
    assert_eq!(check.exit_code, Some(0), "{check:?}");
    assert_eq!(check.stdout, "", "CHECK prints nothing on success");
    let check_request = agent.received();
    assert_eq!(check_request.command, CniCommand::Check);
    assert_eq!(
        check_request.config["prevResult"]["zz_echo"]["containerId"],
        json!(add_request.container_id)
    );
}

#[test]
fn del_without_netns_is_forwarded_and_prints_nothing() {
    let agent = echo_agent();
    let env = without(
        with(add_env(agent.socket()), "CNI_COMMAND", "DEL"),
        "CNI_NETNS",
    );
    let run = run_cni(
        &env,
        Stdin::Bytes(serde_json::to_vec(&add_config()).unwrap()),
    );
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "");
    let request = agent.received();
    assert_eq!(request.command, CniCommand::Del);
    assert_eq!(request.netns, None);
    assert_eq!(request.container_id.as_deref(), Some("3f2a9c1e7b"));
}

#[test]
fn gc_and_status_forward_without_container_identity() {
    let agent = echo_agent();
    let gc_config = json!({
        "cniVersion": "1.1.0", "name": "rovn", "type": "rovn-cni",
        "cni.dev/valid-attachments": [{"containerID": "3f2a9c1e7b", "ifname": "eth0"}]
    });
    let env = [("CNI_COMMAND", "GC"), ("ROVN_CNI_SOCKET", agent.socket())];
    let run = run_cni(&env, Stdin::Bytes(serde_json::to_vec(&gc_config).unwrap()));
    assert_eq!(
        (run.exit_code, run.stdout.as_str()),
        (Some(0), ""),
        "{run:?}"
    );
    let request = agent.received();
    assert_eq!(request.command, CniCommand::Gc);
    assert_eq!(request.container_id, None);
    assert_eq!(
        request.config["cni.dev/valid-attachments"],
        gc_config["cni.dev/valid-attachments"]
    );

    let env = [
        ("CNI_COMMAND", "STATUS"),
        ("ROVN_CNI_SOCKET", agent.socket()),
    ];
    let run = run_cni(
        &env,
        Stdin::Bytes(br#"{"cniVersion":"1.1.0","name":"rovn","type":"rovn-cni"}"#.to_vec()),
    );
    assert_eq!(
        (run.exit_code, run.stdout.as_str()),
        (Some(0), ""),
        "{run:?}"
    );
    assert_eq!(agent.received().command, CniCommand::Status);
}

#[test]
fn agent_error_surfaces_verbatim_with_the_request_version() {
    let agent = TestAgent::start(|_| {
        Reply::Response(CniResponse::Error(
            CniError::new(3, "pod default/web is unknown")
                .with_details("no Pod object with uid 8d1c"),
        ))
    });
    let config = br#"{"cniVersion":"0.4.0","name":"rovn","type":"rovn-cni"}"#;
    let run = run_cni(&add_env(agent.socket()), Stdin::Bytes(config.to_vec()));
    let error = run.assert_cni_error(3);
    assert_eq!(
        error,
        json!({"cniVersion": "0.4.0", "code": 3, "msg": "pod default/web is unknown", "details": "no Pod object with uid 8d1c"})
    );
}

#[test]
fn missing_agent_socket_is_try_again_later_naming_path_and_errno() {
    let dir = tempfile::Builder::new()
        .prefix("rovn-cni-test-")
        .tempdir()
        .unwrap();
    let socket = dir.path().join("absent.sock");
    let socket = socket.to_str().unwrap();
    let run = run_cni(
        &add_env(socket),
        Stdin::Bytes(serde_json::to_vec(&add_config()).unwrap()),
    );
    let error = run.assert_cni_error(11);
    let msg = error["msg"].as_str().unwrap_or_default();
    assert!(msg.contains(socket), "msg names the socket: {msg}");
    assert!(msg.contains("os error 2"), "msg names the errno: {msg}");
    assert_eq!(error["cniVersion"], json!("1.1.0"));
}

#[test]
fn missing_agent_socket_makes_status_report_plugin_not_available() {
    let dir = tempfile::Builder::new()
        .prefix("rovn-cni-test-")
        .tempdir()
        .unwrap();
    let socket = dir.path().join("absent.sock");
    let env = [
        ("CNI_COMMAND", "STATUS"),
        ("ROVN_CNI_SOCKET", socket.to_str().unwrap()),
    ];
    let run = run_cni(
        &env,
        Stdin::Bytes(br#"{"cniVersion":"1.1.0","name":"rovn","type":"rovn-cni"}"#.to_vec()),
    );
    run.assert_cni_error(50);
}

#[test]
fn socket_from_config_is_used_when_env_does_not_override() {
    let agent = echo_agent();
    let mut config = add_config();
    config["socket"] = json!(agent.socket());
    let env = without(add_env(agent.socket()), "ROVN_CNI_SOCKET");
    let run = run_cni(&env, Stdin::Bytes(serde_json::to_vec(&config).unwrap()));
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    assert_eq!(agent.received().command, CniCommand::Add);
}

#[test]
fn silent_agent_times_out_as_try_again_later() {
    let agent = TestAgent::start(|_| Reply::Hold);
    let mut config = add_config();
    config["timeoutSeconds"] = json!(1);
    let run = run_cni(
        &add_env(agent.socket()),
        Stdin::Bytes(serde_json::to_vec(&config).unwrap()),
    );
    let error = run.assert_cni_error(11);
    assert!(
        error["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("did not answer within 1s (stuck exchanging the request)"),
        "{run:?}"
    );
    assert!(
        run.elapsed >= Duration::from_millis(900),
        "waited the budget: {:?}",
        run.elapsed
    );
    assert!(
        run.elapsed < Duration::from_secs(10),
        "did not overrun the budget: {:?}",
        run.elapsed
    );
}

#[test]
fn garbage_reply_is_a_protocol_violation_and_a_cut_reply_an_io_failure() {
    let agent = TestAgent::start(|_| Reply::Raw(b"this is not json\n".to_vec()));
    let run = run_cni(
        &add_env(agent.socket()),
        Stdin::Bytes(serde_json::to_vec(&add_config()).unwrap()),
    );
    run.assert_cni_error(100);

    let agent = TestAgent::start(|_| Reply::Raw(br#"{"ok":{"cniVers"#.to_vec()));
    let run = run_cni(
        &add_env(agent.socket()),
        Stdin::Bytes(serde_json::to_vec(&add_config()).unwrap()),
    );
    run.assert_cni_error(5);
}

#[test]
fn log_file_from_config_receives_the_diagnostics() {
    let agent = echo_agent();
    let log = agent.dir().join("rovn-cni.log");
    let mut config = add_config();
    config["logFile"] = json!(log.to_str().unwrap());
    let run = run_cni(
        &add_env(agent.socket()),
        Stdin::Bytes(serde_json::to_vec(&config).unwrap()),
    );
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("ADD container=3f2a9c1e7b ifname=eth0 pod=default/web: ok"),
        "{logged}"
    );
    assert!(run.stderr.contains("pod=default/web"), "{run:?}");
}

/// An agent that listens but never accepts, with its backlog already full, makes
/// `connect(2)` itself block; the budget must still hold.
#[test]
fn wedged_agent_with_full_backlog_times_out_during_connect() {
    use nix::errno::Errno;
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, connect, listen, socket,
    };
    use std::os::fd::AsRawFd;

    let dir = tempfile::Builder::new()
        .prefix("rovn-cni-test-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("wedged.sock");
    let address = UnixAddr::new(&path).unwrap();
    let listener = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(listener.as_raw_fd(), &address).unwrap();
    listen(&listener, Backlog::new(0).unwrap()).unwrap();
    let mut queued = Vec::new();
    loop {
        let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
        let client = socket(AddressFamily::Unix, SockType::Stream, flags, None).unwrap();
        match connect(client.as_raw_fd(), &address) {
            Ok(()) => queued.push(client),
            Err(Errno::EAGAIN) => break,
            Err(e) => panic!("filling the backlog: {e}"),
        }
        assert!(queued.len() < 64, "backlog never filled");
    }

    let mut config = add_config();
    config["timeoutSeconds"] = json!(1);
    let run = run_cni(
        &add_env(path.to_str().unwrap()),
        Stdin::Bytes(serde_json::to_vec(&config).unwrap()),
    );
    let error = run.assert_cni_error(11);
    assert!(
        error["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("did not answer within 1s (stuck connecting)"),
        "{run:?}"
    );
    assert!(
        run.elapsed < Duration::from_secs(10),
        "did not overrun the budget: {:?}",
        run.elapsed
    );
    drop(queued);
}
