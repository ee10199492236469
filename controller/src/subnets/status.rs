//! The status the controller writes on each Subnet object.

use k8s_openapi::jiff::Timestamp;
use rovn_api::subnet::{READY, SubnetCondition, SubnetStatus};

use super::config::SubnetConfig;
use super::reject::SubnetRejection;
use crate::ipam::Usage;

/// The reason of a `Ready=True` condition.
const ACCEPTED: &str = "Accepted";

/// What validation (and IPAM) concluded about one Subnet object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubnetOutcome<'a> {
    /// Accepted, with its pool's current usage.
    Accepted(&'a SubnetConfig, Usage),
    /// Rejected whole.
    Rejected(&'a SubnetRejection),
}

/// Status for one Subnet object: Ready=True with usage and the gateway in effect, or Ready=False with the rejection's
/// reason/message. `previous` keeps lastTransitionTime when the condition's status did not
/// change, so an unchanged cluster renders exactly the status it already has.
pub fn subnet_status(
    outcome: SubnetOutcome<'_>,
    previous: Option<&SubnetStatus>,
    now: Timestamp,
) -> SubnetStatus {
    let (usage, gateway, status, reason, message, generation) = match outcome {
        SubnetOutcome::Accepted(config, usage) => (
            usage,
            Some(config.gateway.to_string()),
            "True",
            ACCEPTED.to_string(),
            format!("cidrBlock {} with gateway {}", config.cidr, config.gateway),
            config.generation,
        ),
        SubnetOutcome::Rejected(rejection) => (
            Usage {
                used: 0,
                available: 0,
            },
            None,
            "False",
            rejection.reason.to_string(),
            rejection.message.clone(),
            rejection.generation,
        ),
    };
    let last_transition_time = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == READY))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| rfc3339_seconds(now));
    SubnetStatus {
        used_ips: usage.used,
        available_ips: usage.available,
        gateway,
        conditions: vec![SubnetCondition {
            type_: READY.to_string(),
            status: status.to_string(),
            reason,
            message,
            last_transition_time,
            observed_generation: generation,
        }],
    }
}

/// Whether `next` differs from what the object already has, so the caller skips identical
/// status writes (which would otherwise wake every watcher of Subnets for nothing).
pub fn status_needs_write(previous: Option<&SubnetStatus>, next: &SubnetStatus) -> bool {
    previous != Some(next)
}

/// `metav1.Time` precision: whole seconds, UTC.
fn rfc3339_seconds(now: Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
