//! The machine's kubectl against the in-process server through a temporary kubeconfig:
//! create, apply (twice, with and without client validation), get (table, json, -l,
//! -w, -A, several kinds), annotate, label, delete, api-resources, CRDs.

mod common;

use std::time::Duration;

use common::kubectl::{Kubectl, path_str};
use common::{start, unique};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;

const MANIFEST: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: main
    image: rovn-podtool
    args: [serve, --port, "8080"]
    ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_everyday_commands() {
    let t = start().await;
    let k = Kubectl::new(&t.server.url());
    let manifest = k.write("web.yaml", MANIFEST);

    let out = k.ok(&["create", "-f", path_str(&manifest)]).await;
    assert!(
        out.contains("pod/web created") && out.contains("service/web created"),
        "{out}"
    );

    let table = k.ok(&["get", "pods"]).await;
    assert!(
        table.starts_with("NAME") && table.contains("web") && table.contains("Pending"),
        "{table}"
    );
    let svc = k.ok(&["get", "svc", "web", "-o", "wide"]).await;
    assert!(
        svc.contains("ClusterIP") && svc.contains("80/TCP") && svc.contains("app=web"),
        "{svc}"
    );

    let listed: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "pods", "-o", "json"]).await).expect("json output");
    assert_eq!(listed["items"][0]["metadata"]["name"], "web");
    assert_eq!(
        k.ok(&["get", "pods", "-l", "app=web", "-o", "name"])
            .await
            .trim(),
        "pod/web"
    );
    assert_eq!(
        k.ok(&["get", "pods", "-l", "app=other", "-o", "name"])
            .await
            .trim(),
        ""
    );

    k.ok(&["apply", "-f", path_str(&manifest)]).await;
    let relabelled = k.write(
        "web2.yaml",
        &MANIFEST.replace("labels: {app: web}", "labels: {app: web, rev: \"2\"}"),
    );
    let out = k.ok(&["apply", "-f", path_str(&relabelled)]).await;
    assert!(out.contains("pod/web configured"), "{out}");
    let out = k
        .ok(&["apply", "--validate=false", "-f", path_str(&relabelled)])
        .await;
    assert!(out.contains("pod/web unchanged"), "{out}");

    k.ok(&["annotate", "pod", "web", "rovn.io/note=hello"])
        .await;
    k.ok(&["label", "pod", "web", "extra=yes"]).await;
    let pods: Api<Pod> = Api::namespaced(t.client.clone(), "default");
    let web = pods.get("web").await.expect("pod exists");
    let labels = web.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("rev").map(String::as_str), Some("2"));
    assert_eq!(labels.get("extra").map(String::as_str), Some("yes"));
    assert_eq!(
        web.metadata
            .annotations
            .unwrap_or_default()
            .get("rovn.io/note")
            .map(String::as_str),
        Some("hello")
    );

    let node: Node = serde_json::from_value(json!({"metadata": {"name": "node1"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0"}}}))
    .expect("node literal");
    Api::<Node>::all(t.client.clone())
        .create(&PostParams::default(), &node)
        .await
        .expect("node created");
    let all = k.ok(&["get", "nodes,pods", "-A"]).await;
    assert!(
        all.contains("node/node1")
            && all.contains("Ready")
            && all.contains("pod/web")
            && all.contains("default"),
        "{all}"
    );

    let resources = k.ok(&["api-resources"]).await;
    for want in [
        "pods",
        "services",
        "leases",
        "networkpolicies",
        "endpointslices",
        "customresourcedefinitions",
    ] {
        assert!(
            resources.contains(want),
            "{want} missing from api-resources:\n{resources}"
        );
    }

    let out = k.ok(&["delete", "-f", path_str(&manifest)]).await;
    assert!(out.contains("pod \"web\" deleted"), "{out}");
    assert!(k.ok(&["get", "pods", "-o", "name"]).await.trim().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_sees_new_objects() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let t = start().await;
    let k = Kubectl::new(&t.server.url());
    let name = unique("watched");
    let mut watch = k.command(&["get", "configmaps", "-w", "--request-timeout=0"]);
    watch
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = watch.spawn().expect("kubectl get -w starts");
    let stdout = child.stdout.take().expect("piped stdout");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cm = k.write(
        "cm.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: b}}\n"),
    );
    k.ok(&["create", "-f", path_str(&cm)]).await;
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let hit = line.contains(&name);
            seen.push(line);
            if hit {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    let _ = child.kill().await;
    assert!(
        found,
        "kubectl get -w never showed {name}; it printed {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_crd_then_custom_resources() {
    let t = start().await;
    let k = Kubectl::new(&t.server.url());
    let crd = k.write(
        "crd.yaml",
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: subnets.rovn.io
spec:
  group: rovn.io
  scope: Cluster
  names: {plural: subnets, singular: subnet, kind: Subnet}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
    additionalPrinterColumns:
    - {name: CIDR, type: string, jsonPath: .spec.cidrBlock}
"#,
    );
    k.ok(&["apply", "-f", path_str(&crd)]).await;
    let subnet = k.write("subnet.yaml", "apiVersion: rovn.io/v1\nkind: Subnet\nmetadata: {name: s1}\nspec: {cidrBlock: 10.20.0.0/16}\n");
    k.ok(&["apply", "-f", path_str(&subnet)]).await;
    let table = k.ok(&["get", "subnets"]).await;
    assert!(
        table.contains("CIDR") && table.contains("10.20.0.0/16"),
        "{table}"
    );
    k.ok(&["label", "subnet", "s1", "zone=a"]).await;
    assert_eq!(
        k.ok(&["get", "subnets", "-l", "zone=a", "-o", "name"])
            .await
            .trim(),
        "subnet.rovn.io/s1"
    );
    k.ok(&["delete", "crd", "subnets.rovn.io"]).await;
    let out = k.run(&["get", "subnets.rovn.io"]).await;
    assert!(
        !out.status.success(),
        "custom resources are gone with their CRD"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_generators_and_server_dry_run() {
    let t = start().await;
    let k = Kubectl::new(&t.server.url());
    let ns = unique("gen");
    k.ok(&["create", "namespace", &ns]).await;
    k.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        &ns,
        "--from-literal=mtu=1400",
    ])
    .await;
    let cm: k8s_openapi::api::core::v1::ConfigMap = Api::namespaced(t.client.clone(), &ns)
        .get("settings")
        .await
        .expect("configmap");
    assert_eq!(
        cm.data.unwrap_or_default().get("mtu").map(String::as_str),
        Some("1400")
    );
    assert_eq!(cm.metadata.generate_name, None);

    k.ok(&[
        "create",
        "service",
        "nodeport",
        "np",
        "-n",
        &ns,
        "--tcp=80:8080",
        "--node-port=30090",
    ])
    .await;
    let svc: k8s_openapi::api::core::v1::Service = Api::namespaced(t.client.clone(), &ns)
        .get("np")
        .await
        .expect("service");
    let spec = svc.spec.expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    assert_eq!(
        spec.selector
            .unwrap_or_default()
            .get("app")
            .map(String::as_str),
        Some("np")
    );
    let port = &spec.ports.expect("ports")[0];
    assert_eq!((port.port, port.node_port), (80, Some(30090)));
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
    );

    let out = k
        .ok(&["delete", "namespace", &ns, "--dry-run=server"])
        .await;
    assert!(out.contains("server dry run"), "{out}");
    let still = k.ok(&["get", "namespace", &ns, "-o", "name"]).await;
    assert_eq!(
        still.trim(),
        format!("namespace/{ns}"),
        "a dry-run delete changes nothing"
    );
    k.ok(&["delete", "namespace", &ns]).await;
    assert!(!k.run(&["get", "namespace", &ns]).await.status.success());
}

/// What `kubectl get -o yaml` prints for several objects is a `kind: List`; applying it back
/// must pass kubectl's client-side validation, which looks `v1/List` up in the OpenAPI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_of_a_listed_yaml() {
    let t = start().await;
    let k = Kubectl::new(&t.server.url());
    let ns = unique("list");
    k.ok(&["create", "namespace", &ns]).await;
    let manifest = k.write("web.yaml", MANIFEST);
    k.ok(&["create", "-n", &ns, "-f", path_str(&manifest)])
        .await;
    let listed = k
        .ok(&["get", "-n", &ns, "pods,services", "-o", "yaml"])
        .await;
    assert!(listed.contains("kind: List"), "{listed}");
    let relabelled = k.write(
        "list.yaml",
        &listed.replace("app: web\n", "app: web\n      listed: \"yes\"\n"),
    );
    let out = k.ok(&["apply", "-f", path_str(&relabelled)]).await;
    assert!(
        out.contains("pod/web configured") && out.contains("service/web"),
        "{out}"
    );
    let pod = Api::<Pod>::namespaced(t.client.clone(), &ns)
        .get("web")
        .await
        .expect("pod exists");
    assert_eq!(
        pod.metadata
            .labels
            .unwrap_or_default()
            .get("listed")
            .map(String::as_str),
        Some("yes")
    );
}
