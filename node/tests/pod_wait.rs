//! The agent's wait for a pod's allocation against the lab's API server (rovn-kubesim, in
//! process): when it times out, the error quotes rovn-controller's latest Event on the pod
//! (why it refused) instead of asking whether the controller runs.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};
use rovn_api::events::{EventBook, EventNote, EventReporter, EventWrite};
use rovn_node::agent::kube::pods::{PodWaitError, wait_allocation};
use serde_json::json;

async fn server() -> (rovn_kubesim::RunningServer, kube::Client) {
    let server = rovn_kubesim::start(rovn_kubesim::Config::loopback())
        .await
        .expect("the API server starts");
    let url = server.url().parse().expect("the server URL parses");
    let client = kube::Client::try_from(kube::Config::new(url)).expect("a client");
    (server, client)
}

async fn timeout_message(client: &kube::Client, pod: &Pod) -> String {
    let err = wait_allocation(
        client.clone(),
        "t1",
        &pod.name_any(),
        pod.metadata.uid.as_deref(),
        Duration::from_millis(300),
    )
    .await
    .expect_err("nothing allocates the pod");
    assert!(matches!(err, PodWaitError::Timeout { .. }), "{err}");
    err.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocation_timeout_quotes_the_controllers_refusal() {
    let (_server, client) = server().await;
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "t1"}})).expect("literal");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p7", "namespace": "t1"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "pause"}]},
    }))
    .expect("literal");
    let pod = Api::<Pod>::namespaced(client.clone(), "t1")
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod created");

    let silent = timeout_message(&client, &pod).await;
    assert!(silent.contains("Pod/t1/p7"), "{silent}");
    assert!(silent.contains("is rovn-controller running?"), "{silent}");

    // Another component's Event is no answer from the controller.
    for (component, reason, message) in [
        ("rovn-node", "AllocationTimeout", "an earlier timeout"),
        (
            "rovn-controller",
            "SubnetNotReady",
            "Subnet blue is not ready: Overlap",
        ),
    ] {
        let book = EventBook::new(EventReporter {
            component: component.into(),
            instance: "x".into(),
        });
        let EventWrite::Create { event, .. } = book.record(
            &pod.object_ref(&()),
            &EventNote::warning(reason, "Allocate", message),
            Timestamp::now(),
        ) else {
            panic!("a first Event is a create");
        };
        Api::<Event>::namespaced(client.clone(), "t1")
            .create(&PostParams::default(), &event)
            .await
            .expect("event created");
    }

    let told = timeout_message(&client, &pod).await;
    assert!(
        told.contains("rovn-controller reported SubnetNotReady: Subnet blue is not ready: Overlap"),
        "{told}"
    );
    assert!(!told.contains("running?"), "{told}");
}
