use super::*;
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::ffi::OsString;

fn add_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_NETNS", "/run/netns/pod"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"),
        ("CNI_PATH", "/opt/cni/bin::/usr/lib/cni"),
    ]
}

fn env_with(
    base: Vec<(&'static str, &'static str)>,
    changes: &[(&'static str, Option<&'static str>)],
) -> CniEnv {
    let mut vars: BTreeMap<&str, &str> = base.into_iter().collect();
    for (key, value) in changes {
        match value {
            Some(value) => vars.insert(key, value),
            None => vars.remove(key),
        };
    }
    CniEnv::from_pairs(vars)
}

const CONFIG: &str = r#"{"cniVersion":"1.1.0","name":"rovn","type":"rovn-cni"}"#;

fn code_of(result: Result<PreparedRequest, RequestError>) -> u32 {
    match result {
        Ok(prepared) => panic!("expected a refusal, got {prepared:?}"),
        Err(refused) => refused.error.code,
    }
}

#[test]
fn valid_add_builds_the_request_with_defaults() {
    let prepared = build_request(
        CniCommand::Add,
        &env_with(add_env(), &[]),
        CONFIG.as_bytes(),
    )
    .unwrap();
    let request = &prepared.request;
    assert_eq!(request.container_id.as_deref(), Some("c0ffee"));
    assert_eq!(request.netns.as_deref(), Some("/run/netns/pod"));
    assert_eq!(request.ifname.as_deref(), Some("eth0"));
    assert_eq!(
        request.args.get("K8S_POD_NAME").map(String::as_str),
        Some("web")
    );
    assert_eq!(request.pod(), Some(("default", "web")));
    assert_eq!(request.path, vec!["/opt/cni/bin", "/usr/lib/cni"]);
    assert_eq!(request.cni_version, "1.1.0");
    assert_eq!(
        request.config,
        serde_json::from_str::<Value>(CONFIG).unwrap()
    );
    assert_eq!(
        prepared.endpoint.socket_path,
        PathBuf::from(DEFAULT_SOCKET_PATH)
    );
    assert_eq!(prepared.endpoint.timeout, DEFAULT_ADD_TIMEOUT);
    assert_eq!(prepared.log_file, None);
}

#[test]
fn del_tolerates_missing_netns_and_uses_the_short_timeout() {
    let env = env_with(
        add_env(),
        &[
            ("CNI_COMMAND", Some("DEL")),
            ("CNI_NETNS", None),
            ("CNI_ARGS", None),
        ],
    );
    let prepared = build_request(CniCommand::Del, &env, CONFIG.as_bytes()).unwrap();
    assert_eq!(prepared.request.netns, None);
    assert!(
        prepared.request.args.is_empty(),
        "DEL needs no pod identity"
    );
    assert_eq!(prepared.endpoint.timeout, DEFAULT_OTHER_TIMEOUT);
}

#[test]
fn status_and_gc_need_no_container() {
    let env = CniEnv::from_pairs([("CNI_COMMAND", "GC")]);
    let config = r#"{"cniVersion":"1.1.0","name":"rovn","type":"rovn-cni",
        "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}"#;
    let prepared = build_request(CniCommand::Gc, &env, config.as_bytes()).unwrap();
    assert_eq!(prepared.request.container_id, None);
    let prepared = build_request(CniCommand::Status, &env, CONFIG.as_bytes()).unwrap();
    assert_eq!(prepared.request.ifname, None);
}

#[test]
fn plugin_keys_and_socket_env_are_honoured() {
    let config = r#"{"cniVersion":"1.0.0","name":"rovn","type":"rovn-cni","socket":"/tmp/a.sock","timeoutSeconds":7,"logFile":"/tmp/cni.log"}"#;
    let prepared = build_request(
        CniCommand::Add,
        &env_with(add_env(), &[]),
        config.as_bytes(),
    )
    .unwrap();
    assert_eq!(prepared.endpoint.socket_path, PathBuf::from("/tmp/a.sock"));
    assert_eq!(prepared.endpoint.timeout, Duration::from_secs(7));
    assert_eq!(prepared.log_file, Some(PathBuf::from("/tmp/cni.log")));
    let env = env_with(add_env(), &[(SOCKET_ENV, Some("/tmp/b.sock"))]);
    let prepared = build_request(CniCommand::Add, &env, config.as_bytes()).unwrap();
    assert_eq!(prepared.endpoint.socket_path, PathBuf::from("/tmp/b.sock"));
}

#[test]
fn command_parsing_reports_invalid_environment() {
    assert_eq!(
        parse_command(&CniEnv::default()).unwrap_err().error.code,
        codes::INVALID_ENVIRONMENT
    );
    let env = CniEnv::from_pairs([("CNI_COMMAND", "FROB")]);
    assert_eq!(
        parse_command(&env).unwrap_err().error.code,
        codes::INVALID_ENVIRONMENT
    );
    let env = CniEnv::from_pairs([("CNI_COMMAND", "VERSION")]);
    assert_eq!(parse_command(&env).unwrap(), CniCommand::Version);
}

#[test]
fn each_malformed_config_class_gets_its_code() {
    let env = env_with(add_env(), &[]);
    let cases: &[(&str, u32)] = &[
        ("", codes::DECODE_FAILURE),
        ("  \n", codes::DECODE_FAILURE),
        ("{not json", codes::DECODE_FAILURE),
        ("[1,2]", codes::DECODE_FAILURE),
        (
            r#"{"name":"rovn","type":"rovn-cni"}"#,
            codes::INVALID_NETWORK_CONFIG,
        ),
        (
            r#"{"cniVersion":1,"name":"rovn","type":"rovn-cni"}"#,
            codes::INVALID_NETWORK_CONFIG,
        ),
        (
            r#"{"cniVersion":"0.2.0","name":"rovn","type":"rovn-cni"}"#,
            codes::INCOMPATIBLE_VERSION,
        ),
        (
            r#"{"cniVersion":"9.9.9","name":"rovn","type":"rovn-cni"}"#,
            codes::INCOMPATIBLE_VERSION,
        ),
        (
            r#"{"cniVersion":"1.1.0","type":"rovn-cni"}"#,
            codes::INVALID_NETWORK_CONFIG,
        ),
        (
            r#"{"cniVersion":"1.1.0","name":"-bad","type":"rovn-cni"}"#,
            codes::INVALID_NETWORK_CONFIG,
        ),
        (
            r#"{"cniVersion":"1.1.0","name":"rovn"}"#,
            codes::INVALID_NETWORK_CONFIG,
        ),
        (
            r#"{"cniVersion":"1.1.0","name":"rovn","type":""}"#,
            codes::INVALID_NETWORK_CONFIG,
        ),
        (
            r#"{"cniVersion":"1.1.0","name":"rovn","type":"x","prevResult":[]}"#,
            codes::INVALID_NETWORK_CONFIG,
        ),
        (
            r#"{"cniVersion":"1.1.0","name":"rovn","type":"x","socket":"rel.sock"}"#,
            codes::INVALID_NETWORK_CONFIG,
        ),
        (
            r#"{"cniVersion":"1.1.0","name":"rovn","type":"x","timeoutSeconds":0}"#,
            codes::INVALID_NETWORK_CONFIG,
        ),
        (
            r#"{"cniVersion":"1.1.0","name":"rovn","type":"x","timeoutSeconds":1.5}"#,
            codes::INVALID_NETWORK_CONFIG,
        ),
        (
            r#"{"cniVersion":"1.1.0","name":"rovn","type":"x","logFile":7}"#,
            codes::INVALID_NETWORK_CONFIG,
        ),
    ];
    for (stdin, code) in cases {
        let result = build_request(CniCommand::Add, &env, stdin.as_bytes());
        assert_eq!(code_of(result), *code, "stdin {stdin:?}");
    }
}

#[test]
fn error_version_is_the_configs_once_known() {
    let config = r#"{"cniVersion":"0.4.0","name":"rovn"}"#;
    let refused = build_request(
        CniCommand::Add,
        &env_with(add_env(), &[]),
        config.as_bytes(),
    )
    .unwrap_err();
    assert_eq!(refused.cni_version, "0.4.0");
    let refused = build_request(CniCommand::Add, &env_with(add_env(), &[]), b"nope").unwrap_err();
    assert_eq!(refused.cni_version, CURRENT_VERSION);
}

#[test]
fn command_specific_version_and_field_rules() {
    let env = env_with(add_env(), &[]);
    let old = r#"{"cniVersion":"0.3.1","name":"rovn","type":"x","prevResult":{}}"#;
    assert_eq!(
        code_of(build_request(CniCommand::Check, &env, old.as_bytes())),
        codes::INCOMPATIBLE_VERSION
    );
    let v1 = r#"{"cniVersion":"1.0.0","name":"rovn","type":"x"}"#;
    assert_eq!(
        code_of(build_request(CniCommand::Status, &env, v1.as_bytes())),
        codes::INCOMPATIBLE_VERSION
    );
    assert_eq!(
        code_of(build_request(CniCommand::Gc, &env, v1.as_bytes())),
        codes::INCOMPATIBLE_VERSION
    );
    assert_eq!(
        code_of(build_request(CniCommand::Check, &env, CONFIG.as_bytes())),
        codes::INVALID_NETWORK_CONFIG
    );
    let bad_gc = r#"{"cniVersion":"1.1.0","name":"rovn","type":"x","cni.dev/valid-attachments":[{"containerID":"a"}]}"#;
    assert_eq!(
        code_of(build_request(CniCommand::Gc, &env, bad_gc.as_bytes())),
        codes::INVALID_NETWORK_CONFIG
    );
}

#[test]
fn each_malformed_env_class_gets_invalid_environment() {
    use std::os::unix::ffi::OsStringExt;
    let cases: &[&[(&str, Option<&str>)]] = &[
        &[("CNI_CONTAINERID", None)],
        &[("CNI_CONTAINERID", Some(""))],
        &[("CNI_CONTAINERID", Some("_abc"))],
        &[("CNI_CONTAINERID", Some("a/b"))],
        &[("CNI_IFNAME", None)],
        &[("CNI_IFNAME", Some("this-name-is-too-long"))],
        &[("CNI_IFNAME", Some("et h0"))],
        &[("CNI_IFNAME", Some(".."))],
        &[("CNI_NETNS", None)],
        &[("CNI_NETNS", Some("relative/ns"))],
        &[("CNI_ARGS", Some("K8S_POD_NAME"))],
        &[("CNI_ARGS", Some("A=1;A=2"))],
        &[("CNI_ARGS", None)],
        &[("CNI_ARGS", Some("K8S_POD_NAMESPACE=default"))],
        &[("CNI_ARGS", Some("K8S_POD_NAMESPACE=default;K8S_POD_NAME="))],
        &[(SOCKET_ENV, Some("relative.sock"))],
    ];
    for changes in cases {
        let env = env_with(add_env(), changes);
        let result = build_request(CniCommand::Add, &env, CONFIG.as_bytes());
        assert_eq!(
            code_of(result),
            codes::INVALID_ENVIRONMENT,
            "env change {changes:?}"
        );
    }
    let mut pairs: Vec<(String, OsString)> = add_env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    pairs.push((
        "CNI_CONTAINERID".into(),
        OsString::from_vec(vec![0xff, 0xfe]),
    ));
    let env = CniEnv::from_pairs(pairs);
    assert_eq!(
        code_of(build_request(CniCommand::Add, &env, CONFIG.as_bytes())),
        codes::INVALID_ENVIRONMENT
    );
}

#[test]
fn config_is_forwarded_whole() {
    let config = json!({
        "cniVersion": "1.1.0", "name": "rovn", "type": "rovn-cni",
        "prevResult": {"cniVersion": "1.1.0", "ips": [{"address": "10.16.0.5/16"}]},
        "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
        "custom": {"nested": [1, 2, 3]}
    });
    let stdin = serde_json::to_vec(&config).unwrap();
    let prepared = build_request(CniCommand::Add, &env_with(add_env(), &[]), &stdin).unwrap();
    assert_eq!(prepared.request.config, config);
}

const ENV_KEYS: &[&str] = &[
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
    SOCKET_ENV,
];

fn arbitrary_env() -> impl Strategy<Value = CniEnv> {
    use std::os::unix::ffi::OsStringExt;
    proptest::collection::vec(
        (
            proptest::sample::select(ENV_KEYS),
            proptest::collection::vec(any::<u8>(), 0..24),
        ),
        0..8,
    )
    .prop_map(|pairs| {
        CniEnv::from_pairs(pairs.into_iter().map(|(k, v)| (k, OsString::from_vec(v))))
    })
}

fn arbitrary_config_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        (
            proptest::option::of("[0-9.]{0,7}"),
            proptest::option::of("[a-z_.-]{0,6}"),
            proptest::option::of(any::<i64>()),
            proptest::option::of("/?[a-z]{0,5}")
        )
            .prop_map(|(version, name, timeout, socket)| {
                let mut config = Map::new();
                if let Some(v) = version {
                    config.insert("cniVersion".into(), json!(v));
                }
                if let Some(n) = name {
                    config.insert("name".into(), json!(n));
                }
                config.insert("type".into(), json!("rovn-cni"));
                if let Some(t) = timeout {
                    config.insert("timeoutSeconds".into(), json!(t));
                }
                if let Some(s) = socket {
                    config.insert("socket".into(), json!(s));
                }
                serde_json::to_vec(&Value::Object(config)).unwrap_or_default()
            }),
    ]
}

proptest! {
    #[test]
    fn never_panics_and_codes_are_well_known(env in arbitrary_env(), stdin in arbitrary_config_bytes()) {
        match parse_command(&env) {
            Err(refused) => prop_assert_eq!(refused.error.code, codes::INVALID_ENVIRONMENT),
            Ok(CniCommand::Version) => {}
            Ok(command) => {
                if let Err(refused) = build_request(command, &env, &stdin) {
                    prop_assert!([1, 4, 6, 7].contains(&refused.error.code), "code {}", refused.error.code);
                    prop_assert!(!refused.error.msg.is_empty());
                }
            }
        }
    }

    #[test]
    fn any_command_with_arbitrary_bytes_never_panics(stdin in proptest::collection::vec(any::<u8>(), 0..512)) {
        for command in [CniCommand::Add, CniCommand::Del, CniCommand::Check, CniCommand::Status, CniCommand::Gc] {
            let _ = build_request(command, &env_with(add_env(), &[]), &stdin);
        }
    }
}
