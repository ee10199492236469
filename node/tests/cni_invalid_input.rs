//! Every class of bad invocation reaches the runtime as the spec's error object with the
//! right code and a non-zero exit, without ever contacting the agent.

mod common;

use common::{Stdin, TestAgent, add_env, run_cni, with, without};
use rovn_node::cni::protocol::{CniError, CniResponse};
use serde_json::json;

const CONFIG: &str = r#"{"cniVersion":"1.0.0","name":"rovn","type":"rovn-cni"}"#;

/// Valid for every container command, CHECK included, so only the env can be at fault.
const CONFIG_WITH_PREV_RESULT: &str =
    r#"{"cniVersion":"1.0.0","name":"rovn","type":"rovn-cni","prevResult":{"cniVersion":"1.0.0"}}"#;

fn unreachable_agent() -> TestAgent {
    TestAgent::start(|_| {
        common::Reply::Response(CniResponse::Error(CniError::new(
            999,
            "must not be reached",
        )))
    })
}

#[test]
fn missing_and_unknown_command_are_invalid_environment() {
    let run = run_cni(&[], Stdin::Bytes(CONFIG.into()));
    let error = run.assert_cni_error(4);
    assert_eq!(error["cniVersion"], json!("1.1.0"));
    let run = run_cni(&[("CNI_COMMAND", "RESTART")], Stdin::Bytes(CONFIG.into()));
    let error = run.assert_cni_error(4);
    assert!(
        error["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("RESTART"),
        "{run:?}"
    );
    let run = run_cni(&[("CNI_COMMAND", "add")], Stdin::Bytes(CONFIG.into()));
    run.assert_cni_error(4);
}

#[test]
fn malformed_stdin_classes_get_their_codes() {
    let agent = unreachable_agent();
    let env = add_env(agent.socket());
    let cases: &[(&[u8], u64)] = &[
        (b"", 6),
        (b"{\"cniVersion\": ", 6),
        (b"\xff\xfe\x00", 6),
        (b"\"a string\"", 6),
        (br#"{"name":"rovn","type":"rovn-cni"}"#, 7),
        (
            br#"{"cniVersion":"0.1.0","name":"rovn","type":"rovn-cni"}"#,
            1,
        ),
        (
            br#"{"cniVersion":"2.0.0","name":"rovn","type":"rovn-cni"}"#,
            1,
        ),
        (br#"{"cniVersion":"1.0.0","type":"rovn-cni"}"#, 7),
        (br#"{"cniVersion":"1.0.0","name":"rovn"}"#, 7),
        (
            br#"{"cniVersion":"1.0.0","name":"bad name","type":"rovn-cni"}"#,
            7,
        ),
        (
            br#"{"cniVersion":"1.0.0","name":"rovn","type":"rovn-cni","timeoutSeconds":"soon"}"#,
            7,
        ),
    ];
    for (stdin, code) in cases {
        let run = run_cni(&env, Stdin::Bytes(stdin.to_vec()));
        run.assert_cni_error(*code);
        assert!(!run.stderr.is_empty(), "no diagnostics on stderr: {run:?}");
    }
    assert!(agent.received_nothing());
}

#[test]
fn error_carries_the_configs_version_once_readable() {
    let agent = unreachable_agent();
    let run = run_cni(
        &add_env(agent.socket()),
        Stdin::Bytes(br#"{"cniVersion":"0.4.0","type":"x"}"#.to_vec()),
    );
    assert_eq!(run.assert_cni_error(7)["cniVersion"], json!("0.4.0"));
}

#[test]
fn malformed_env_classes_are_invalid_environment() {
    let agent = unreachable_agent();
    let base = add_env(agent.socket());
    let cases = [
        without(base.clone(), "CNI_CONTAINERID"),
        with(base.clone(), "CNI_CONTAINERID", "-leading-dash"),
        without(base.clone(), "CNI_IFNAME"),
        with(base.clone(), "CNI_IFNAME", "a-much-too-long-ifname"),
        without(base.clone(), "CNI_NETNS"),
        with(base.clone(), "CNI_NETNS", "netns-without-slash"),
        with(base.clone(), "CNI_ARGS", "K8S_POD_NAME"),
        with(base.clone(), "CNI_ARGS", "K8S_POD_NAMESPACE=default"),
        without(base.clone(), "CNI_ARGS"),
        with(base.clone(), "ROVN_CNI_SOCKET", "relative.sock"),
        with(with(base.clone(), "CNI_COMMAND", "CHECK"), "CNI_NETNS", ""),
    ];
    for env in cases {
        let run = run_cni(&env, Stdin::Bytes(CONFIG_WITH_PREV_RESULT.into()));
        run.assert_cni_error(4);
    }
    assert!(agent.received_nothing());
}

#[test]
fn command_version_floors_are_enforced() {
    let agent = unreachable_agent();
    let env = with(add_env(agent.socket()), "CNI_COMMAND", "STATUS");
    run_cni(&env, Stdin::Bytes(CONFIG.into())).assert_cni_error(1);
    let env = with(add_env(agent.socket()), "CNI_COMMAND", "GC");
    run_cni(&env, Stdin::Bytes(CONFIG.into())).assert_cni_error(1);
    let env = with(add_env(agent.socket()), "CNI_COMMAND", "CHECK");
    let old = br#"{"cniVersion":"0.3.1","name":"rovn","type":"rovn-cni","prevResult":{}}"#;
    run_cni(&env, Stdin::Bytes(old.to_vec())).assert_cni_error(1);
    assert!(agent.received_nothing());
}
