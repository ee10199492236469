//! The Kubernetes API calls scenarios make, on top of any [`Cluster`]'s client: namespaces,
//! pods (created, awaited Running with rovn's address, deleted and awaited gone) and Subnets.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ApiResource, DeleteParams, DynamicObject, PostParams};
use kube::{Api, Client, Resource};
use rovn_api::subnet::Subnet;
use serde_json::json;

use super::cluster::{Cluster, PodRef};
use super::error::{Result, ScenarioError};
use super::pods::{self, PodSpec};
use super::wait;

/// How long a pod may take to be Running with its address on a busy 2-core machine.
pub const POD_TIMEOUT: Duration = Duration::from_secs(60);

/// Creates namespace `name` unless it exists.
pub async fn ensure_namespace(client: &Client, name: &str) -> Result<()> {
    ensure_labelled_namespace(client, name, &BTreeMap::new()).await
}

/// Creates namespace `name` with `labels` (what NetworkPolicy namespace selectors match)
/// unless it exists.
pub async fn ensure_labelled_namespace(
    client: &Client,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api
        .get_opt(name)
        .await
        .map_err(|e| ScenarioError::kube(format!("reading namespace {name}"), e))?
        .is_some()
    {
        return Ok(());
    }
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}
    }))
    .map_err(|e| ScenarioError::Check(format!("namespace manifest {name}: {e}")))?;
    api.create(&PostParams::default(), &ns)
        .await
        .map_err(|e| ScenarioError::kube(format!("creating namespace {name}"), e))?;
    Ok(())
}

/// Creates the pod.
pub async fn create_pod(client: &Client, spec: &PodSpec) -> Result<PodRef> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &spec.namespace);
    let pod = PodRef::new(&spec.namespace, &spec.name);
    api.create(&PostParams::default(), &spec.to_pod()?)
        .await
        .map_err(|e| ScenarioError::kube(format!("creating pod {pod}"), e))?;
    Ok(pod)
}

/// Reads the pod, `None` when it does not exist.
pub async fn get_pod(client: &Client, pod: &PodRef) -> Result<Option<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    api.get_opt(&pod.name)
        .await
        .map_err(|e| ScenarioError::kube(format!("reading pod {pod}"), e))
}

/// Waits until the pod is Running with a pod IP; for pods on the pod network also until rovn's
/// allocated address is the one the runtime reported. Returns the pod.
pub async fn wait_running(client: &Client, pod: &PodRef) -> Result<Pod> {
    wait::until(
        POD_TIMEOUT,
        &format!("pod {pod} Running with its IP"),
        async || {
            let Some(p) = get_pod(client, pod).await? else {
                return Ok(None);
            };
            let running = pods::phase(&p) == Some("Running") && pods::pod_ip(&p).is_some();
            if !running {
                return Err(ScenarioError::Check(format!(
                    "phase {:?}, podIP {:?}",
                    pods::phase(&p),
                    pods::pod_ip(&p)
                )));
            }
            if !pods::is_host_network(&p) && pods::allocated_ip(&p) != pods::pod_ip(&p) {
                return Err(ScenarioError::Check(format!(
                    "podIP {:?} but rovn's allocated address {:?}",
                    pods::pod_ip(&p),
                    pods::allocated_ip(&p)
                )));
            }
            Ok(Some(p))
        },
    )
    .await
}

/// Creates every pod, then waits for all of them (pods start concurrently).
pub async fn create_and_wait(client: &Client, specs: &[PodSpec]) -> Result<Vec<Pod>> {
    let mut refs = Vec::new();
    for spec in specs {
        refs.push(create_pod(client, spec).await?);
    }
    let mut running = Vec::new();
    for pod in &refs {
        running.push(wait_running(client, pod).await?);
    }
    Ok(running)
}

/// Starts deleting the pod (with `grace` seconds, or its own grace period) without waiting.
pub async fn begin_delete(client: &Client, pod: &PodRef, grace: Option<u32>) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let params = DeleteParams {
        grace_period_seconds: grace,
        ..DeleteParams::default()
    };
    match api.delete(&pod.name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(ScenarioError::kube(format!("deleting pod {pod}"), e)),
    }
}

/// Deletes the pod and waits until it has left the API (its kubelet finished it).
pub async fn delete_pod(client: &Client, pod: &PodRef) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    match api.delete(&pod.name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(ScenarioError::kube(format!("deleting pod {pod}"), e)),
    }
    wait::until(
        POD_TIMEOUT,
        &format!("pod {pod} to leave the API"),
        async || Ok(get_pod(client, pod).await?.is_none().then_some(())),
    )
    .await
}

/// The Subnet resource (rovn.io/v1, cluster-scoped), as rovn-api defines it.
pub fn subnet_resource() -> ApiResource {
    ApiResource::erase::<Subnet>(&())
}

/// A Subnet object. Pure.
pub fn subnet_object(
    name: &str,
    cidr: &str,
    exclude_ips: &[&str],
    namespaces: &[&str],
) -> Result<DynamicObject> {
    serde_json::from_value(json!({
        "apiVersion": Subnet::api_version(&()),
        "kind": Subnet::kind(&()),
        "metadata": {"name": name},
        "spec": {"cidrBlock": cidr, "excludeIps": exclude_ips, "namespaces": namespaces},
    }))
    .map_err(|e| ScenarioError::Check(format!("Subnet manifest {name}: {e}")))
}

/// Creates a Subnet and waits until its status says Ready.
pub async fn create_subnet(client: &Client, subnet: &DynamicObject) -> Result<()> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &subnet_resource());
    let name = subnet.metadata.name.clone().unwrap_or_default();
    api.create(&PostParams::default(), subnet)
        .await
        .map_err(|e| ScenarioError::kube(format!("creating Subnet {name}"), e))?;
    wait::until(
        POD_TIMEOUT,
        &format!("Subnet {name} to be Ready"),
        async || {
            let got = api
                .get_opt(&name)
                .await
                .map_err(|e| ScenarioError::kube(format!("reading Subnet {name}"), e))?;
            let ready = got.as_ref().is_some_and(|s| {
                s.data
                    .pointer("/status/conditions")
                    .and_then(|c| c.as_array())
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
            });
            Ok(ready.then_some(()))
        },
    )
    .await
}

/// A Subnet's `status.usedIPs` and `status.availableIPs`, once the controller wrote them.
pub async fn subnet_usage(client: &Client, name: &str) -> Result<Option<(u64, u64)>> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &subnet_resource());
    let got = api
        .get_opt(name)
        .await
        .map_err(|e| ScenarioError::kube(format!("reading Subnet {name}"), e))?;
    Ok(got.and_then(|s| {
        let used = s.data.pointer("/status/usedIPs")?.as_u64()?;
        let available = s.data.pointer("/status/availableIPs")?.as_u64()?;
        Some((used, available))
    }))
}

/// Every pod of `namespace`.
pub async fn list_pods(client: &Client, namespace: &str) -> Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.list(&Default::default())
        .await
        .map(|l| l.items)
        .map_err(|e| ScenarioError::kube(format!("listing pods in {namespace}"), e))
}

/// The pod, which must exist.
pub async fn must_get_pod(cluster: &impl Cluster, pod: &PodRef) -> Result<Pod> {
    get_pod(&cluster.client(), pod)
        .await?
        .ok_or_else(|| ScenarioError::Check(format!("pod {pod} does not exist")))
}

/// What a scenario starts from: a client, its namespace (made if missing), the first two
/// nodes, and how pods run the test program.
pub struct Stage {
    /// A client of the API server.
    pub client: kube::Client,
    /// The first node.
    pub n1: String,
    /// The second node.
    pub n2: String,
    /// How pods invoke `rovn-podtool`.
    pub tool: String,
}

/// Sets the stage for a scenario in namespace `ns`.
pub async fn stage(cluster: &impl Cluster, ns: &str) -> Result<Stage> {
    let client = cluster.client();
    let (n1, n2) = super::cluster::two_nodes(cluster)?;
    ensure_namespace(&client, ns).await?;
    Ok(Stage {
        client,
        n1,
        n2,
        tool: cluster.podtool(),
    })
}
