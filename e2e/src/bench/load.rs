//! Creating many objects with many requests in flight, as a busy cluster would.

use std::fmt::Debug;

use futures::{StreamExt, TryStreamExt};
use kube::api::PostParams;
use kube::{Api, Resource, ResourceExt};
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
    futures::stream::iter(objects)
        .map(|object| {
            let api = api.clone();
            async move {
                let name = object.name_any();
                api.create(&PostParams::default(), &object)
                    .await
                    .map_err(|e| BenchError::kube(format!("create {name}"), e))
            }
        })
        .buffered(in_flight.max(1))
        .try_collect()
        .await
}
