//! The real binary under arbitrary env values and stdin bytes: it must always exit 0 or 1
//! (never panic, never die by a signal) and, when it fails, print exactly one CNI error
//! object with a well-known code.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Stdio};

use proptest::prelude::*;

const KEYS: &[&str] = &[
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];

fn env_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::sample::select(vec!["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"])
            .prop_map(|s| s.as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>().prop_filter("no NUL in env", |b| *b != 0), 0..20),
    ]
}

fn stdin_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "\\{\"cniVersion\":\"(1\\.1\\.0|1\\.0\\.0|0\\.4\\.0|x)\",\"name\":\"[a-z.-]{0,4}\",\"type\":\"r\"\\}"
            .prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn binary_always_answers_with_a_clean_exit(
        env in proptest::collection::vec((proptest::sample::select(KEYS), env_value()), 0..7),
        stdin in stdin_bytes(),
    ) {
        let dir = tempfile::Builder::new().prefix("rovn-cni-fuzz-").tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_rovn-cni"));
        command
            .env_clear()
            .env("ROVN_CNI_SOCKET", dir.path().join("absent.sock"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, OsString::from_vec(value));
        }
        let mut child = command.spawn().map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Some(mut pipe) = child.stdin.take() {
            let _ = pipe.write_all(&stdin);
        }
        let output = child.wait_with_output().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        match output.status.code() {
            Some(0) => {}
            Some(1) => {
                let error: serde_json::Value = serde_json::from_str(&stdout)
                    .map_err(|e| TestCaseError::fail(format!("error output is not JSON ({e}): {stdout}")))?;
                let code = error["code"].as_u64().unwrap_or(0);
                prop_assert!([1, 4, 5, 6, 7, 11, 50].contains(&code), "unexpected code {code}: {stdout}");
                prop_assert!(error["cniVersion"].is_string(), "{stdout}");
            }
            other => prop_assert!(false, "exit {other:?}, stderr {}", String::from_utf8_lossy(&output.stderr)),
        }
    }
}
