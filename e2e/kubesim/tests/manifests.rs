//! Every manifest rovn ships (each kustomization under `deploy/` rendered with `kubectl
//! kustomize`, and every YAML file outside one) validates against the vendored
//! Kubernetes v1.33 schemas and the CRDs it ships; `kubectl apply --dry-run=server` of each
//! set succeeds against the lab's API server and stores nothing; a typo is rejected with
//! its path, by the validator and by the server; a custom resource needs its CRD applied
//! first, as on a real server.

mod common;

use std::path::{Path, PathBuf};

use common::kubectl::{Kubectl, path_str};
use common::{start, unique};
use rovn_kubesim::schema::{self, Problem};
use serde_json::{Value, json};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// What kubectl applies as one unit: a rendered kustomization or a loose file.
struct ManifestSet {
    /// Path relative to `deploy/` (a directory for a kustomization).
    name: String,
    /// The YAML kubectl would apply.
    text: String,
    /// Its documents.
    docs: Vec<Value>,
}

fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

/// Kustomize components only render as part of a kustomization that includes them.
fn is_component(kustomization: &Path) -> bool {
    std::fs::read_to_string(kustomization)
        .unwrap_or_else(|e| panic!("reading {}: {e}", kustomization.display()))
        .lines()
        .any(|l| l.trim() == "kind: Component")
}

/// Kustomization directories to render, and YAML files in no kustomization directory.
fn discover(dir: &Path, in_kustomization: bool, dirs: &mut Vec<PathBuf>, files: &mut Vec<PathBuf>) {
    let kustomization = kustomization_file(dir);
    if let Some(k) = &kustomization
        && !is_component(k)
    {
        dirs.push(dir.to_path_buf());
    }
    let inside = in_kustomization || kustomization.is_some();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
                .path()
        })
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            discover(&path, inside, dirs, files);
        } else if !inside && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
}

fn documents(text: &str, what: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("{what} is not valid YAML: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn render(dir: &Path) -> String {
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl runs (make setup installs it)");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kustomize prints UTF-8")
}

/// Every set rovn ships, discovered (not named), rendered and split into documents.
fn manifest_sets() -> Vec<ManifestSet> {
    let root = deploy_dir();
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    discover(&root, false, &mut dirs, &mut files);
    let relative = |p: &Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();
    let mut sets = Vec::new();
    for dir in dirs {
        let text = render(&dir);
        let name = format!("{}/ (kustomize)", relative(&dir));
        sets.push(ManifestSet {
            docs: documents(&text, &name),
            name,
            text,
        });
    }
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let name = relative(&file);
        sets.push(ManifestSet {
            docs: documents(&text, &name),
            name,
            text,
        });
    }
    sets
}

fn kind_of(doc: &Value) -> &str {
    doc.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn describe(doc: &Value) -> String {
    format!(
        "{} {}",
        kind_of(doc),
        doc.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)")
    )
}

fn is_workload(doc: &Value) -> bool {
    matches!(kind_of(doc), "Deployment" | "DaemonSet" | "StatefulSet")
}

/// `doc` with its first container's `imagePullPolicy` misspelt `imagePullPolcy`.
fn with_typo(doc: &Value) -> Value {
    let mut doc = doc.clone();
    let container = doc
        .pointer_mut("/spec/template/spec/containers/0")
        .and_then(Value::as_object_mut)
        .expect("a workload has a container");
    let policy = container
        .remove("imagePullPolicy")
        .unwrap_or_else(|| json!("IfNotPresent"));
    container.insert("imagePullPolcy".into(), policy);
    doc
}

const TYPO_PATH: &str = "spec.template.spec.containers[0].imagePullPolcy";

fn crds(sets: &[ManifestSet]) -> Vec<Value> {
    sets.iter()
        .flat_map(|s| &s.docs)
        .filter(|d| kind_of(d) == "CustomResourceDefinition")
        .cloned()
        .collect()
}

#[test]
fn every_shipped_manifest_validates() {
    let sets = manifest_sets();
    let crds = crds(&sets);
    let mut failures = Vec::new();
    let mut checked = 0;
    let started = std::time::Instant::now();
    for set in &sets {
        for doc in &set.docs {
            checked += 1;
            match schema::validate(doc, &crds) {
                Ok(errors) if errors.is_empty() => {}
                Ok(errors) => {
                    for e in errors {
                        failures.push(format!("{}: {}: {e}", set.name, describe(doc)));
                    }
                }
                Err(e) => failures.push(format!("{}: {}: {e}", set.name, describe(doc))),
            }
        }
    }
    println!(
        "{checked} documents in {} sets validated in {:?} (first use parses the schemas): {}",
        sets.len(),
        started.elapsed(),
        sets.iter()
            .map(|s| format!("{} ({})", s.name, s.docs.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let all = || sets.iter().flat_map(|s| &s.docs);
    assert!(!crds.is_empty(), "no CRD found under deploy/");
    assert!(all().any(is_workload), "no workload found under deploy/");
}

#[test]
fn a_typo_in_a_shipped_workload_is_reported_with_its_path() {
    let sets = manifest_sets();
    for doc in sets.iter().flat_map(|s| &s.docs).filter(|d| is_workload(d)) {
        let errors = schema::validate(&with_typo(doc), &[]).expect("workloads have schemas");
        assert_eq!(errors.len(), 1, "{}: {errors:?}", describe(doc));
        assert_eq!(errors[0].path, TYPO_PATH);
        assert_eq!(errors[0].problem, Problem::UnknownField);
    }
}

/// The namespaced and cluster-wide kinds a rovn install creates: all empty after dry runs.
const STORED_KINDS: &str = "deploy,ds,sts,sa,cm,role,rolebinding,pdb,svc";
const CLUSTER_KINDS: &str =
    "crd,clusterrole,clusterrolebinding,validatingadmissionpolicy,validatingadmissionpolicybinding";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_dry_run_of_every_set_stores_nothing() {
    let t = start().await;
    let k = Kubectl::new(&t.server.url());
    let before = k.ok(&["get", STORED_KINDS, "-A", "-o", "name"]).await;
    let sets = manifest_sets();
    for (i, set) in sets.iter().enumerate() {
        let file = k.write(&format!("set{i}.yaml"), &set.text);
        let out = k
            .ok(&["apply", "--dry-run=server", "-f", path_str(&file)])
            .await;
        let dry = out
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count();
        assert_eq!(dry, set.docs.len(), "{}:\n{out}", set.name);
        println!("{}: {dry} objects (server dry run)", set.name);
    }
    assert_eq!(
        k.ok(&["get", STORED_KINDS, "-A", "-o", "name"]).await,
        before,
        "a dry run stored something"
    );
    assert_eq!(k.ok(&["get", CLUSTER_KINDS, "-o", "name"]).await, "");
    assert_eq!(k.ok(&["get", "deploy,ds,sts", "-A"]).await, "");
    // The vendored schemas are published too.
    let explained = k
        .ok(&[
            "explain",
            "deployment.spec.template.spec.containers.imagePullPolicy",
        ])
        .await;
    assert!(explained.contains("Image pull policy"), "{explained}");

    let workload = sets
        .iter()
        .flat_map(|s| &s.docs)
        .find(|d| is_workload(d))
        .expect("a workload ships");
    let typo = k.write("typo.json", &with_typo(workload).to_string());
    let (ok, stderr) = server_dry_run(&k, "apply", &[], &typo).await;
    assert!(!ok, "the typo was accepted: {stderr}");
    let want = format!("strict decoding error: unknown field \"{TYPO_PATH}\"");
    assert!(
        stderr.contains("Error from server (BadRequest)") && stderr.contains(&want),
        "{stderr}"
    );
    println!("typo rejected: {}", stderr.trim());

    let (ok, stderr) = server_dry_run(&k, "apply", &["--validate=warn"], &typo).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("Warning: unknown field \"{TYPO_PATH}\"")),
        "{stderr}"
    );
    let (ok, stderr) = server_dry_run(&k, "apply", &["--validate=false"], &typo).await;
    assert!(ok && !stderr.contains("Warning"), "{stderr}");
    assert_eq!(k.ok(&["get", "deploy,ds,sts", "-A"]).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_resource_needs_its_crd_applied_first() {
    let t = start().await;
    let k = Kubectl::new(&t.server.url());
    let crd = crds(&manifest_sets())
        .into_iter()
        .find(|c| c.pointer("/spec/names/kind") == Some(&json!("Subnet")))
        .expect("the Subnet CRD ships");
    let subnet = |spec: Value| {
        json!({"apiVersion": "rovn.io/v1", "kind": "Subnet",
            "metadata": {"name": unique("dry")}, "spec": spec})
    };
    let good = subnet(json!({"cidrBlock": "10.77.0.0/16", "namespaces": ["a"]}));
    let together = k.write(
        "together.yaml",
        &format!(
            "{}\n---\n{}\n",
            serde_saphyr::to_string(&crd).expect("CRD serialises"),
            serde_saphyr::to_string(&good).expect("Subnet serialises")
        ),
    );
    let (ok, stderr) = server_dry_run(&k, "apply", &[], &together).await;
    assert!(!ok, "a CR of a dry-run CRD was accepted");
    assert!(
        stderr.contains("no matches for kind \"Subnet\" in version \"rovn.io/v1\"")
            && stderr.contains("ensure CRDs are installed first"),
        "{stderr}"
    );
    println!("CRD and CR in one dry run: {}", stderr.trim());

    let crd_file = k.write("crd.json", &crd.to_string());
    k.ok(&["apply", "-f", path_str(&crd_file)]).await;
    let good_file = k.write("good.json", &good.to_string());
    let out = k
        .ok(&["apply", "--dry-run=server", "-f", path_str(&good_file)])
        .await;
    assert!(
        out.trim_end().ends_with("created (server dry run)"),
        "{out}"
    );
    assert_eq!(k.ok(&["get", "subnets", "-o", "name"]).await, "");

    let typo = subnet(json!({"cidrBlock": "10.77.0.0/16", "natOutgoin": true}));
    let typo_file = k.write("typo.json", &typo.to_string());
    let (ok, stderr) = server_dry_run(&k, "apply", &[], &typo_file).await;
    assert!(
        !ok && stderr.contains("strict decoding error: unknown field \"spec.natOutgoin\""),
        "{stderr}"
    );
    let wrong = subnet(json!({"cidrBlock": 10}));
    let wrong_file = k.write("wrong.json", &wrong.to_string());
    let (ok, stderr) = server_dry_run(&k, "apply", &[], &wrong_file).await;
    assert!(
        !ok && stderr.contains("spec.cidrBlock: Invalid value: \"integer\""),
        "{stderr}"
    );
}

/// `kubectl VERB --dry-run=server FLAGS -f FILE`: whether it succeeded, and its stderr.
async fn server_dry_run(k: &Kubectl, verb: &str, flags: &[&str], file: &Path) -> (bool, String) {
    let mut args = vec![verb, "--dry-run=server"];
    args.extend_from_slice(flags);
    args.extend(["-f", path_str(file)]);
    let out = k.run(&args).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The stored image of a workload's first container.
async fn first_image(k: &Kubectl, ns: &str, name: &str) -> String {
    let path = "jsonpath={.spec.template.spec.containers[0].image}";
    k.ok(&["get", "-n", ns, name, "-o", path]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_and_patches_are_validated_and_dry_runs_change_nothing() {
    let t = start().await;
    let k = Kubectl::new(&t.server.url());
    let sets = manifest_sets();
    let mut workload = sets
        .iter()
        .flat_map(|s| &s.docs)
        .find(|d| is_workload(d))
        .expect("a workload ships")
        .clone();
    let name = format!(
        "{}/{}",
        kind_of(&workload).to_ascii_lowercase(),
        workload["metadata"]["name"].as_str().unwrap_or_default()
    );
    let ns = workload["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let file = k.write("workload.json", &workload.to_string());
    k.ok(&["apply", "-f", path_str(&file)]).await;
    let stored = first_image(&k, &ns, &name).await;
    assert!(!stored.is_empty(), "{name} has no image");

    // kubectl apply of an existing object is a strategic merge PATCH.
    let typo = k.write("typo.json", &with_typo(&workload).to_string());
    let (ok, stderr) = server_dry_run(&k, "apply", &[], &typo).await;
    assert!(
        !ok && stderr.contains(&format!(
            "strict decoding error: unknown field \"{TYPO_PATH}\""
        )),
        "patch: {stderr}"
    );
    // kubectl replace is a PUT.
    let (ok, stderr) = server_dry_run(&k, "replace", &[], &typo).await;
    assert!(
        !ok && stderr.contains("strict decoding error"),
        "update: {stderr}"
    );

    workload["spec"]["template"]["spec"]["containers"][0]["image"] = json!("changed:dry");
    let changed = k.write("changed.json", &workload.to_string());
    let out = k
        .ok(&["apply", "--dry-run=server", "-f", path_str(&changed)])
        .await;
    assert!(out.contains("configured (server dry run)"), "{out}");
    let out = k
        .ok(&["replace", "--dry-run=server", "-f", path_str(&changed)])
        .await;
    assert!(out.contains("replaced (server dry run)"), "{out}");
    assert_eq!(
        first_image(&k, &ns, &name).await,
        stored,
        "a dry run changed the object"
    );
}

/// The kinds an OVN install adds next to rovn's own (what `deploy/` grows into): a headless
/// Service, a StatefulSet with volume claim templates, a PodDisruptionBudget, a privileged
/// host-network DaemonSet with host paths, a ConfigMap.
const OVN_INSTALL: &str = r#"apiVersion: v1
kind: Service
metadata: {name: ovn-central, namespace: kube-system}
spec:
  clusterIP: None
  selector: {app: ovn-central}
  ports:
  - {name: nb, port: 6641, targetPort: 6641}
  - {name: sb, port: 6642, targetPort: nb-raft}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ovn-central, namespace: kube-system}
spec:
  serviceName: ovn-central
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: ovn-central}}
  template:
    metadata: {labels: {app: ovn-central}}
    spec:
      containers:
      - name: nb
        image: rovn-ovn:dev
        ports: [{name: nb-raft, containerPort: 6643}]
        resources: {requests: {cpu: 100m, memory: 128Mi}}
        volumeMounts: [{name: data, mountPath: /var/lib/ovn}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: ovn-central, namespace: kube-system}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: ovn-central}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ovs-ovn, namespace: kube-system}
spec:
  selector: {matchLabels: {app: ovs-ovn}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: "10%"}}
  template:
    metadata: {labels: {app: ovs-ovn}}
    spec:
      hostNetwork: true
      hostPID: true
      tolerations: [{operator: Exists}]
      containers:
      - name: openvswitch
        image: rovn-ovn:dev
        securityContext: {privileged: true, capabilities: {add: [NET_ADMIN, SYS_ADMIN]}}
        livenessProbe: {exec: {command: [ovs-appctl, version]}, periodSeconds: 10}
        volumeMounts: [{name: run, mountPath: /run/openvswitch}]
      volumes:
      - {name: run, hostPath: {path: /run/openvswitch, type: DirectoryOrCreate}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ovn-config, namespace: kube-system}
data: {replicas: "3"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kinds_an_ovn_install_adds_validate_and_dry_run() {
    for doc in documents(OVN_INSTALL, "OVN_INSTALL") {
        let errors = schema::validate(&doc, &[]).expect("built-in kinds have schemas");
        assert!(errors.is_empty(), "{}: {errors:?}", describe(&doc));
    }
    let t = start().await;
    let k = Kubectl::new(&t.server.url());
    let file = k.write("ovn.yaml", OVN_INSTALL);
    let out = k
        .ok(&["apply", "--dry-run=server", "-f", path_str(&file)])
        .await;
    assert_eq!(out.matches("(server dry run)").count(), 5, "{out}");
    assert_eq!(
        k.ok(&["get", STORED_KINDS, "-A", "-o", "name"]).await,
        "service/kubernetes\n"
    );

    let missing = OVN_INSTALL.replace("- name: nb\n        image", "- image");
    let (ok, stderr) = server_dry_run(&k, "apply", &[], &k.write("missing.yaml", &missing)).await;
    assert!(
        !ok && stderr.contains("is invalid: spec.template.spec.containers[0].name: Required value"),
        "{stderr}"
    );
    let wrong = OVN_INSTALL.replace("replicas: 3", "replicas: three");
    let (ok, stderr) = server_dry_run(&k, "apply", &[], &k.write("wrong.yaml", &wrong)).await;
    assert!(
        !ok && stderr.contains(
            "cannot unmarshal string into Go struct field .spec.replicas of type integer"
        ),
        "{stderr}"
    );
}
