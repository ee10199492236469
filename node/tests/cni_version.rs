//! VERSION answers from the binary itself, whatever the runtime does with stdin.

mod common;

use common::{Stdin, run_cni};
use serde_json::json;

const EXPECTED: &str =
    r#"{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#;

#[test]
fn version_without_stdin() {
    let run = run_cni(&[("CNI_COMMAND", "VERSION")], Stdin::Null);
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    assert_eq!(run.stdout, EXPECTED);
}

#[test]
fn version_with_empty_stdin() {
    let run = run_cni(&[("CNI_COMMAND", "VERSION")], Stdin::Bytes(Vec::new()));
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    assert_eq!(run.stdout, EXPECTED);
}

#[test]
fn version_with_the_spec_stdin_and_with_garbage() {
    for stdin in [&br#"{"cniVersion":"1.0.0"}"#[..], b"\xff not json"] {
        let run = run_cni(&[("CNI_COMMAND", "VERSION")], Stdin::Bytes(stdin.to_vec()));
        assert_eq!(run.exit_code, Some(0), "{run:?}");
        assert_eq!(
            run.stdout_json(),
            serde_json::from_str::<serde_json::Value>(EXPECTED).unwrap()
        );
    }
}

#[test]
fn version_does_not_wait_for_a_stdin_that_never_closes() {
    let run = run_cni(&[("CNI_COMMAND", "VERSION")], Stdin::HeldOpen);
    assert_eq!(run.exit_code, Some(0), "{run:?}");
    assert_eq!(run.stdout_json()["cniVersion"], json!("1.1.0"));
}
