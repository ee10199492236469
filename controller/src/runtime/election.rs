//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: a replica takes
//! the Lease when it is free or has not been renewed for its duration (as observed on this
//! replica's own clock, so clock skew between replicas does not matter), every write is
//! checked against the resourceVersion it read, and a leader that cannot renew in time gives up.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

use super::config::ElectionConfig;

/// Why leadership could not be taken or kept.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// The API refused or could not be reached.
    #[error("lease {namespace}/{name}: {source}")]
    Api {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// Another replica took the Lease, or it could not be renewed in time.
    #[error("lease {namespace}/{name}: leadership lost ({reason})")]
    Lost {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// What happened.
        reason: String,
    },
}

/// The Lease as last seen, and when this replica saw it change.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    holder: Option<String>,
    renew: Option<MicroTime>,
    at: Instant,
}

/// One replica's view of the election.
pub struct Elector {
    api: Api<Lease>,
    config: ElectionConfig,
    observed: Option<Observed>,
    /// The resourceVersion of this replica's last successful write, while it leads.
    held_version: Option<String>,
}

/// Whether a Lease may be taken now: free, already ours, or not renewed for its duration.
fn takeable(lease: &LeaseSpec, me: &str, observed_at: Instant, now: Instant) -> bool {
    let holder = lease.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == me {
        return true;
    }
    let duration = lease
        .lease_duration_seconds
        .map_or(15, |s| u64::try_from(s.max(1)).unwrap_or(15));
    now.duration_since(observed_at) >= Duration::from_secs(duration)
}

impl Elector {
    /// An elector for the Lease `config` names.
    pub fn new(client: kube::Client, config: ElectionConfig) -> Elector {
        let api = Api::namespaced(client, &config.namespace);
        Elector {
            api,
            config,
            observed: None,
            held_version: None,
        }
    }

    fn api_error(&self, source: kube::Error) -> ElectionError {
        ElectionError::Api {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source,
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(15)
    }

    /// How often the leader renews (a third of the duration, as client-go's defaults).
    pub fn renew_interval(&self) -> Duration {
        (self.config.lease_duration / 3).max(Duration::from_millis(200))
    }

    /// One attempt to take or keep the Lease. `Ok(true)` when this replica now holds it.
    pub async fn try_acquire(&mut self) -> Result<bool, ElectionError> {
        let now_ts = MicroTime(Timestamp::now());
        let existing = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.api_error(e))?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(self.duration_seconds()),
                    acquire_time: Some(now_ts.clone()),
                    renew_time: Some(now_ts),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.held_version = created.metadata.resource_version;
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(self.api_error(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let now = Instant::now();
        let seen = Observed {
            holder: spec.holder_identity.clone(),
            renew: spec.renew_time.clone(),
            at: now,
        };
        let observed_at = match &self.observed {
            Some(o) if o.holder == seen.holder && o.renew == seen.renew => o.at,
            _ => {
                self.observed = Some(seen);
                now
            }
        };
        if !takeable(&spec, &self.config.identity, observed_at, now) {
            self.held_version = None;
            return Ok(false);
        }
        let ours = spec.holder_identity.as_deref() == Some(self.config.identity.as_str());
        let mut new_spec = spec.clone();
        if !ours {
            new_spec.acquire_time = Some(now_ts.clone());
            new_spec.lease_transitions =
                Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        new_spec.holder_identity = Some(self.config.identity.clone());
        new_spec.lease_duration_seconds = Some(self.duration_seconds());
        new_spec.renew_time = Some(now_ts);
        lease.spec = Some(new_spec);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.held_version = updated.metadata.resource_version;
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// Waits until this replica holds the Lease, retrying every `retry`.
    pub async fn acquire(&mut self, retry: Duration) {
        loop {
            match self.try_acquire().await {
                Ok(true) => {
                    tracing::info!(
                        lease = %self.config.name,
                        identity = %self.config.identity,
                        "became leader"
                    );
                    return;
                }
                Ok(false) => {
                    tracing::debug!(lease = %self.config.name, "lease held by another replica")
                }
                Err(e) => tracing::warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Renews until a renewal fails for longer than two thirds of the Lease duration or
    /// another replica holds the Lease; then returns why leadership was lost.
    pub async fn keep(&mut self) -> ElectionError {
        let deadline = self.config.lease_duration * 2 / 3;
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.renew_interval()).await;
            match self.try_acquire().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    return ElectionError::Lost {
                        namespace: self.config.namespace.clone(),
                        name: self.config.name.clone(),
                        reason: "another replica holds the lease".into(),
                    };
                }
                Err(e) => tracing::warn!(error = %e, "renewing the lease"),
            }
            if last_renewed.elapsed() > deadline {
                return ElectionError::Lost {
                    namespace: self.config.namespace.clone(),
                    name: self.config.name.clone(),
                    reason: format!("not renewed for {deadline:?}"),
                };
            }
        }
    }

    /// Gives the Lease up (on shutdown) so another replica takes over at once.
    pub async fn release(&mut self) {
        let Some(version) = self.held_version.take() else {
            return;
        };
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        if lease.metadata.resource_version.as_deref() != Some(version.as_str()) {
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.config.name, "lease released"),
            Err(e) => tracing::warn!(error = %e, lease = %self.config.name, "releasing the lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(seconds),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_is_takeable_when_free_ours_or_expired() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(20);
        assert!(takeable(&spec(None, 15), "a", t0, t0));
        assert!(takeable(&spec(Some(""), 15), "a", t0, t0));
        assert!(takeable(&spec(Some("a"), 15), "a", t0, t0));
        assert!(!takeable(&spec(Some("b"), 15), "a", t0, t0));
        assert!(takeable(&spec(Some("b"), 15), "a", t0, later));
        assert!(!takeable(&spec(Some("b"), 30), "a", t0, later));
    }
}
