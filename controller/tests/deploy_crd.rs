//! `deploy/crds/subnet.yaml` is what the code generates, and a real API server (the lab's
//! rovn-kubesim, in-process) accepts it through kubectl: Subnets can then be created with
//! kube-rs, their status written through the status subresource, and `kubectl get subnets`
//! prints the printer columns.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray,
};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use rovn_api::subnet::{self, Subnet, SubnetSpec, SubnetStatus};
use rovn_controller::crd;
use rovn_controller::subnets::{Reserved, SubnetOutcome, subnet_status, validate_subnets};
use rovn_kubesim::RunningServer;

fn manifest_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds/subnet.yaml")
}

#[test]
fn checked_in_manifest_is_what_the_code_generates() {
    let generated = crd::crd_yaml().expect("the CRD renders");
    let on_disk =
        std::fs::read_to_string(manifest_path()).expect("deploy/crds/subnet.yaml is readable");
    assert!(
        on_disk == generated,
        "deploy/crds/subnet.yaml is stale: run `cargo run -p rovn-controller --bin rovn-crdgen`"
    );
}

#[test]
fn crd_is_cluster_scoped_with_status_and_short_name() {
    let definition = subnet::crd();
    assert_eq!(definition.metadata.name.as_deref(), Some("subnets.rovn.io"));
    assert_eq!(definition.spec.scope, "Cluster");
    assert_eq!(
        definition.spec.names.short_names.as_deref(),
        Some(&["subnet".to_string()][..])
    );
    let version = &definition.spec.versions[0];
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "CIDR",
            "Gateway",
            "Namespaces",
            "Ready",
            "Reason",
            "Used",
            "Available"
        ]
    );
}

/// An in-process API server plus a kubeconfig for kubectl in a temp dir; all gone on drop.
struct Cluster {
    server: RunningServer,
    client: kube::Client,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let config = rovn_kubesim::Config {
            listen: vec!["127.0.0.1:0".parse().expect("literal listen spec")],
            ..rovn_kubesim::Config::default()
        };
        let server = rovn_kubesim::start(config)
            .await
            .expect("the API server starts");
        let url = server.url();
        let client = kube::Client::try_from(kube::Config::new(url.parse().expect("server URL")))
            .expect("kube client");
        let dir = tempfile::Builder::new()
            .prefix("rovn-deploy-crd-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(
            dir.path().join("kubeconfig"),
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {url}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: sim\n    user: u\ncurrent-context: c\n"
            ),
        )
        .expect("kubeconfig written");
        Cluster {
            server,
            client,
            dir,
        }
    }

    async fn kubectl(&self, args: &[&str]) -> Output {
        tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .kill_on_drop(true)
            .output()
            .await
            .expect("kubectl runs")
    }

    /// Runs kubectl, insisting on success; its stdout.
    async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\nstdout: {stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

fn spec(cidr: &str) -> SubnetSpec {
    SubnetSpec {
        cidr_block: cidr.into(),
        gateway: Some("10.40.0.254".into()),
        exclude_ips: vec!["10.40.0.2..10.40.0.9".into()],
        namespaces: vec!["team".into()],
        nat_outgoing: true,
        private: false,
        allow_subnets: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_crd_and_prints_subnet_columns() {
    let cluster = Cluster::start().await;
    let manifest = manifest_path();
    let manifest = manifest.to_str().expect("utf-8 path");
    cluster.kubectl_ok(&["apply", "-f", manifest]).await;
    // Applying again is a no-op, as in a redeploy.
    cluster.kubectl_ok(&["apply", "-f", manifest]).await;

    // The API serves the kind once the CRD is established; kube-rs creates through it.
    let api: Api<Subnet> = Api::all(cluster.client.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    let created = loop {
        match api
            .create(
                &PostParams::default(),
                &Subnet::new("blue", spec("10.40.0.0/24")),
            )
            .await
        {
            Ok(created) => break created,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for the Subnet kind: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("creating Subnet blue: {e}"),
        }
    };
    assert_eq!(created.spec, spec("10.40.0.0/24"));
    // What went in comes back; create does not set a status.
    assert_eq!(created.status, None);

    // The controller's status, computed from a real validation, through the status subresource.
    let reserved = Reserved {
        join: "100.64.0.0/16".parse().expect("literal CIDR"),
        service: "10.96.0.0/12".parse().expect("literal CIDR"),
    };
    let set = validate_subnets(std::slice::from_ref(&created), &reserved);
    let config = set.get("blue").expect("blue is valid");
    let pool = config.pool().expect("blue's pool");
    let mut usage = pool.usage();
    usage.used += 2;
    usage.available -= 2;
    let status: SubnetStatus = subnet_status(
        SubnetOutcome::Accepted(config, usage),
        None,
        k8s_openapi::jiff::Timestamp::now(),
    );
    let patch = serde_json::json!({ "status": status });
    let patched = api
        .patch_status("blue", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("status patch");
    assert_eq!(patched.status.as_ref(), Some(&status));
    // The status subresource ignores spec changes, and the main resource ignores status.
    let got = api.get("blue").await.expect("get blue");
    assert_eq!(got.status.as_ref(), Some(&status));
    assert_eq!(got.spec, spec("10.40.0.0/24"));

    let table = cluster.kubectl_ok(&["get", "subnets"]).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "CIDR",
            "GATEWAY",
            "NAMESPACES",
            "READY",
            "REASON",
            "USED",
            "AVAILABLE"
        ],
        "{table}"
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let available = (256 - 3 - 8 - 2).to_string();
    assert_eq!(
        row,
        [
            "blue",
            "10.40.0.0/24",
            "10.40.0.254",
            "[team]",
            "True",
            "Accepted",
            "2",
            available.as_str(),
        ],
        "{table}"
    );

    // The short name works too.
    let names = cluster.kubectl_ok(&["get", "subnet", "-o", "name"]).await;
    assert_eq!(names.trim(), "subnet.rovn.io/blue");
    drop(cluster.server);
}

#[test]
fn crdgen_writes_the_manifest_and_check_detects_staleness() {
    let dir = tempfile::Builder::new()
        .prefix("rovn-crdgen-")
        .tempdir()
        .expect("temp dir");
    let output = dir.path().join("crds/subnet.yaml");
    let crdgen = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rovn-crdgen"))
            .arg("--output")
            .arg(&output)
            .args(args)
            .output()
            .expect("rovn-crdgen runs")
    };
    assert!(
        !crdgen(&["--check"]).status.success(),
        "a missing manifest is stale"
    );
    assert!(crdgen(&[]).status.success());
    let written = std::fs::read_to_string(&output).expect("manifest written");
    assert_eq!(written, crd::crd_yaml().expect("the CRD renders"));
    assert!(
        crdgen(&["--check"]).status.success(),
        "a fresh manifest passes --check"
    );
    std::fs::write(&output, written.replace("usedIPs", "usedIps")).expect("manifest edited");
    let stale = crdgen(&["--check"]);
    assert!(!stale.status.success(), "an edited manifest fails --check");
    assert!(String::from_utf8_lossy(&stale.stderr).contains("stale"));
}

/// Checks the rules a v1 CRD schema must follow to be accepted by kube-apiserver (structural
/// schema, no unsupported keywords), for every node of the schema; `path` names the node.
fn assert_structural(schema: &JSONSchemaProps, path: &str) {
    let escape_hatch = schema.x_kubernetes_preserve_unknown_fields == Some(true)
        || schema.x_kubernetes_int_or_string == Some(true);
    let type_ = schema.type_.as_deref().unwrap_or_default();
    assert!(escape_hatch || !type_.is_empty(), "{path}: no type");
    assert!(
        schema.ref_path.is_none()
            && schema.schema.is_none()
            && schema.id.is_none()
            && schema.definitions.is_none()
            && schema.dependencies.is_none()
            && schema.additional_items.is_none()
            && schema.pattern_properties.is_none()
            && schema.unique_items != Some(true),
        "{path}: uses a keyword v1 CRDs forbid"
    );
    assert!(
        schema.all_of.is_none()
            && schema.any_of.is_none()
            && schema.one_of.is_none()
            && schema.not.is_none(),
        "{path}: logical junctors would need their fields repeated outside them"
    );
    assert!(
        !(schema.properties.is_some() && schema.additional_properties.is_some()),
        "{path}: properties and additionalProperties together"
    );
    if let Some(format) = schema.format.as_deref() {
        assert!(
            [
                "int32",
                "int64",
                "float",
                "double",
                "byte",
                "date",
                "date-time",
                "duration",
                "uuid",
                "ipv4",
                "cidr"
            ]
            .contains(&format),
            "{path}: format {format:?} is not one kube-apiserver knows"
        );
    }
    if let Some(default) = &schema.default {
        let fits = match type_ {
            "boolean" => default.0.is_boolean(),
            "integer" => default.0.is_i64() || default.0.is_u64(),
            "string" => default.0.is_string(),
            "array" => default.0.is_array(),
            "object" => default.0.is_object(),
            _ => false,
        };
        assert!(fits, "{path}: default {:?} is not a {type_}", default.0);
    }
    match type_ {
        "array" => match &schema.items {
            Some(JSONSchemaPropsOrArray::Schema(items)) => {
                assert_structural(items, &format!("{path}[]"))
            }
            _ => panic!("{path}: an array needs exactly one items schema"),
        },
        "object" => {
            assert!(
                schema.properties.is_some()
                    || schema.additional_properties.is_some()
                    || escape_hatch,
                "{path}: an object with no properties would be pruned empty"
            );
            for (name, property) in schema.properties.iter().flatten() {
                assert_structural(property, &format!("{path}.{name}"));
            }
            for required in schema.required.iter().flatten() {
                assert!(
                    schema
                        .properties
                        .as_ref()
                        .is_some_and(|p| p.contains_key(required)),
                    "{path}: requires {required}, which it does not declare"
                );
            }
        }
        _ => assert!(
            schema.properties.is_none() && schema.items.is_none(),
            "{path}: a {type_} with fields"
        ),
    }
}

#[test]
fn crd_schema_is_structural() {
    let definition = subnet::crd();
    for version in &definition.spec.versions {
        let schema = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("an openAPIV3Schema");
        assert_eq!(schema.type_.as_deref(), Some("object"));
        assert!(
            !schema
                .properties
                .iter()
                .flatten()
                .any(|(name, _)| name == "metadata"),
            "metadata must not be restricted beyond name"
        );
        assert_structural(schema, &version.name);
    }
}
