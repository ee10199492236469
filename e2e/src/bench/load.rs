//! Creating many objects with many requests in flight, as a busy cluster would.

use std::fmt::Debug;

use futures::{StreamExt, TryStreamExt};
use kube::api::PostParams;
use kube::core::NamespaceResourceScope;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::BenchError;

/// Creates every object through `api`, `in_flight` requests at a time; returns them as the
/// server stored them (with what it allocated, such as a Service's ClusterIP), in order.
pub async fn create_all<K>(
    api: &Api<K>,
    objects: Vec<K>,
    in_flight: usize,
) -> Result<Vec<K>, BenchError>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    create_each(objects.into_iter().map(|o| (api.clone(), o)), in_flight).await
}

/// Creates every namespaced object in its own namespace, as [`create_all`] does in one.
pub async fn create_all_namespaced<K>(
    client: &Client,
    objects: Vec<K>,
    in_flight: usize,
) -> Result<Vec<K>, BenchError>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Serialize + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let client = client.clone();
    let through = move |object: K| {
        let namespace = object.namespace().unwrap_or_default();
        (Api::namespaced(client.clone(), &namespace), object)
    };
    create_each(objects.into_iter().map(through), in_flight).await
}

/// Creates each object through its API, `in_flight` requests at a time, in order.
async fn create_each<K>(
    objects: impl Iterator<Item = (Api<K>, K)>,
    in_flight: usize,
) -> Result<Vec<K>, BenchError>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    futures::stream::iter(objects)
        .map(|(api, object)| async move {
            let name = object.name_any();
            api.create(&PostParams::default(), &object)
                .await
                .map_err(|e| BenchError::kube(format!("create {name}"), e))
        })
        .buffered(in_flight.max(1))
        .try_collect()
        .await
}
