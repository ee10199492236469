//! The API objects the cases change (NetworkPolicies, pod labels) and the cluster state the
//! model is built from, read back from the API server: expectations follow exactly what the
//! controller sees, defaults included.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::model::{Model, ModelPod};
use crate::scenario::cluster::PodRef;
use crate::scenario::error::{Result, ScenarioError};
use crate::scenario::pods;

/// A NetworkPolicy in `namespace` with `spec` (JSON as in a manifest). Pure.
pub fn policy(namespace: &str, name: &str, spec: Value) -> Result<NetworkPolicy> {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"namespace": namespace, "name": name},
        "spec": spec,
    }))
    .map_err(|e| ScenarioError::Check(format!("manifest of NetworkPolicy {namespace}/{name}: {e}")))
}

fn policy_name(np: &NetworkPolicy) -> String {
    format!(
        "{}/{}",
        np.metadata.namespace.as_deref().unwrap_or_default(),
        np.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Creates the policy.
pub async fn create_policy(client: &Client, np: &NetworkPolicy) -> Result<()> {
    let namespace = np.metadata.namespace.as_deref().unwrap_or_default();
    Api::<NetworkPolicy>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), np)
        .await
        .map_err(|e| {
            ScenarioError::kube(format!("creating NetworkPolicy {}", policy_name(np)), e)
        })?;
    Ok(())
}

/// Replaces the spec of an existing policy (read, change, update: the API's optimistic
/// concurrency, as `kubectl edit` does).
pub async fn replace_policy_spec(client: &Client, np: &NetworkPolicy) -> Result<()> {
    let namespace = np.metadata.namespace.as_deref().unwrap_or_default();
    let name = np.metadata.name.as_deref().unwrap_or_default();
    let api = Api::<NetworkPolicy>::namespaced(client.clone(), namespace);
    let what = format!("NetworkPolicy {namespace}/{name}");
    let mut current = api
        .get(name)
        .await
        .map_err(|e| ScenarioError::kube(format!("reading {what}"), e))?;
    current.spec = np.spec.clone();
    api.replace(name, &PostParams::default(), &current)
        .await
        .map_err(|e| ScenarioError::kube(format!("updating {what}"), e))?;
    Ok(())
}

/// Deletes every NetworkPolicy of `namespaces`.
pub async fn delete_policies(client: &Client, namespaces: &[&str]) -> Result<()> {
    for ns in namespaces {
        let api = Api::<NetworkPolicy>::namespaced(client.clone(), ns);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| ScenarioError::kube(format!("listing NetworkPolicies in {ns}"), e))?;
        for np in list.items {
            let name = np.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    return Err(ScenarioError::kube(
                        format!("deleting NetworkPolicy {ns}/{name}"),
                        e,
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Sets (`Some`) or removes (`None`) one label of a pod.
pub async fn set_pod_label(
    client: &Client,
    pod: &PodRef,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    Api::<Pod>::namespaced(client.clone(), &pod.namespace)
        .patch(
            &pod.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {key: value}}})),
        )
        .await
        .map_err(|e| ScenarioError::kube(format!("labelling pod {pod} {key}={value:?}"), e))?;
    Ok(())
}

/// The model of the cluster as the API server has it now: every namespace's labels, every
/// running pod on the pod network, every NetworkPolicy.
pub async fn model(client: &Client) -> Result<Model> {
    let all = ListParams::default();
    let namespaces: BTreeMap<String, BTreeMap<String, String>> =
        Api::<Namespace>::all(client.clone())
            .list(&all)
            .await
            .map_err(|e| ScenarioError::kube("listing namespaces", e))?
            .items
            .into_iter()
            .map(|ns| {
                (
                    ns.metadata.name.unwrap_or_default(),
                    ns.metadata.labels.unwrap_or_default(),
                )
            })
            .collect();
    let running: Vec<Pod> = Api::<Pod>::all(client.clone())
        .list(&all)
        .await
        .map_err(|e| ScenarioError::kube("listing pods", e))?
        .items
        .into_iter()
        .filter(|p| pods::phase(p) == Some("Running") && !pods::is_host_network(p))
        .collect();
    let pods = running
        .iter()
        .map(ModelPod::from_pod)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ScenarioError::Check(format!("reading the cluster for the model: {e}")))?;
    let policies = Api::<NetworkPolicy>::all(client.clone())
        .list(&all)
        .await
        .map_err(|e| ScenarioError::kube("listing NetworkPolicies", e))?
        .items;
    Model::new(namespaces, pods, &policies)
        .map_err(|e| ScenarioError::Check(format!("the model refuses the cluster's state: {e}")))
}
