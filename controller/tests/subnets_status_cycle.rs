//! Subnet validation and status against a real API server (rovn-kubesim, in-process): objects
//! get their creationTimestamp and generation from the server, the computed statuses are
//! written through the status subresource, and a second pass over the unchanged cluster finds
//! nothing to write — while an edit that breaks a Subnet flips its condition.

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use rovn_api::subnet::{self, Subnet, SubnetSpec};
use rovn_controller::ipam::Usage;
use rovn_controller::subnets::{
    Reserved, SubnetOutcome, SubnetSet, status_needs_write, subnet_status, validate_subnets,
};

fn reserved() -> Reserved {
    Reserved {
        join: "100.64.0.0/16".parse().expect("literal CIDR"),
        service: "10.96.0.0/12".parse().expect("literal CIDR"),
    }
}

fn spec(cidr: &str, namespaces: &[&str]) -> SubnetSpec {
    SubnetSpec {
        cidr_block: cidr.into(),
        gateway: None,
        exclude_ips: vec![],
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        nat_outgoing: false,
        private: false,
        allow_subnets: Vec::new(),
    }
}

/// An in-process API server with the Subnet CRD installed; stops on drop.
struct Server {
    _server: rovn_kubesim::RunningServer,
    api: Api<Subnet>,
}

impl Server {
    async fn start() -> Server {
        let config = rovn_kubesim::Config {
            listen: vec!["127.0.0.1:0".parse().expect("literal listen spec")],
            ..rovn_kubesim::Config::default()
        };
        let server = rovn_kubesim::start(config)
            .await
            .expect("the API server starts");
        let client =
            kube::Client::try_from(kube::Config::new(server.url().parse().expect("server URL")))
                .expect("kube client");
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            Api::all(client.clone());
        crds.create(&PostParams::default(), &subnet::crd())
            .await
            .expect("the CRD is accepted");
        Server {
            _server: server,
            api: Api::all(client),
        }
    }

    /// Creates a Subnet, retrying while the new kind is not served yet.
    async fn create(&self, name: &str, spec: SubnetSpec) -> Subnet {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self
                .api
                .create(&PostParams::default(), &Subnet::new(name, spec.clone()))
                .await
            {
                Ok(created) => return created,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("waiting for the Subnet kind: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("creating Subnet {name}: {e}"),
            }
        }
    }

    async fn list(&self) -> Vec<Subnet> {
        self.api
            .list(&ListParams::default())
            .await
            .expect("listing Subnets")
            .items
    }

    /// One controller pass: validate everything, write each status that changed. Returns the
    /// set and how many statuses were written.
    async fn sync(&self, now: Timestamp) -> (SubnetSet, usize) {
        let objects = self.list().await;
        let set = validate_subnets(&objects, &reserved());
        let mut writes = 0;
        for object in &objects {
            let name = object
                .metadata
                .name
                .clone()
                .expect("listed objects have names");
            let outcome = match set.get(&name) {
                Some(config) => {
                    let usage: Usage = config.pool().expect("accepted pools build").usage();
                    SubnetOutcome::Accepted(config, usage)
                }
                None => SubnetOutcome::Rejected(set.rejection(&name).expect("rejected")),
            };
            let status = subnet_status(outcome, object.status.as_ref(), now);
            if status_needs_write(object.status.as_ref(), &status) {
                let patch = serde_json::json!({ "status": status });
                self.api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap_or_else(|e| panic!("writing the status of {name}: {e}"));
                writes += 1;
            }
        }
        (set, writes)
    }

    async fn ready(&self, name: &str) -> (String, String, Option<i64>, String) {
        let object = self.api.get(name).await.expect("get Subnet");
        let status = object.status.expect("a status was written");
        let c = &status.conditions[0];
        (
            c.status.clone(),
            c.reason.clone(),
            c.observed_generation,
            c.last_transition_time.clone(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_follow_validation_and_settle() {
    let server = Server::start().await;
    server
        .create("ovn-default", spec("10.16.0.0/16", &[]))
        .await;
    server
        .create("team", spec("10.17.0.0/24", &["team-a"]))
        .await;
    // Created later, claims team's namespace: rejected whole.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    server
        .create("poacher", spec("10.18.0.0/24", &["team-a", "other"]))
        .await;

    let t0 = Timestamp::now();
    let (set, writes) = server.sync(t0).await;
    assert_eq!(writes, 3);
    assert_eq!(
        set.for_namespace("team-a").ok().map(|s| s.name.as_str()),
        Some("team")
    );
    // "other" is listed only by the rejected poacher: its pods wait for it, never taking
    // ovn-default addresses they could not leave.
    let waiting = set
        .for_namespace("other")
        .expect_err("no fallback to ovn-default");
    assert_eq!(waiting.reason(), "SubnetNotReady");
    let (status, reason, generation, _) = server.ready("poacher").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NamespaceConflict")
    );
    assert!(generation.is_some(), "the server sets metadata.generation");
    let (status, _, team_generation, team_since) = server.ready("team").await;
    let ready: Vec<String> = server
        .list()
        .await
        .into_iter()
        .filter(Subnet::is_ready)
        .filter_map(|s| s.metadata.name)
        .collect();
    assert_eq!(ready, ["ovn-default", "team"]);
    assert_eq!(status, "True");

    // Nothing changed: a second pass writes nothing, whatever the clock says.
    let (_, writes) = server.sync(Timestamp::now()).await;
    assert_eq!(writes, 0, "an unchanged cluster must not rewrite statuses");

    // Editing team onto ovn-default's range breaks it: its condition flips, with a new time.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let patch = serde_json::json!({ "spec": { "cidrBlock": "10.16.5.0/24" } });
    server
        .api
        .patch("team", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("editing team");
    let (set, writes) = server.sync(Timestamp::now()).await;
    let (status, reason, generation_after, since) = server.ready("team").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Overlap"));
    assert_ne!(
        since, team_since,
        "a readiness flip moves lastTransitionTime"
    );
    assert!(
        generation_after > team_generation,
        "observedGeneration follows the edit: {generation_after:?} after {team_generation:?}"
    );
    // team no longer holds team-a, so the poacher is now accepted.
    assert_eq!(
        set.for_namespace("team-a").ok().map(|s| s.name.as_str()),
        Some("poacher")
    );
    assert_eq!(writes, 2);
}

/// The status carries the gateway in effect, also when `spec.gateway` is absent (the
/// `Gateway` printer column reads it), and none while the Subnet is rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_names_the_effective_gateway() {
    let server = Server::start().await;
    server.create("blue", spec("10.40.0.0/24", &["t1"])).await;
    server.create("clash", spec("10.40.0.0/25", &["t2"])).await;
    server.sync(Timestamp::now()).await;
    let gateway = |object: Subnet| object.status.and_then(|s| s.gateway);
    let blue = server.api.get("blue").await.expect("get blue");
    let clash = server.api.get("clash").await.expect("get clash");
    assert_eq!(gateway(blue).as_deref(), Some("10.40.0.1"));
    assert_eq!(gateway(clash), None);
}
