//! The status the controller writes on each Subnet object.

use k8s_openapi::jiff::Timestamp;
use rovn_api::subnet::{READY, SubnetCondition, SubnetStatus};

use super::config::SubnetConfig;
use super::reject::SubnetRejection;
use crate::ipam::Usage;

/// The reason of a `Ready=True` condition.
const ACCEPTED: &str = "Accepted";
/// `Ready=True` of a deleted Subnet that pods still use: it keeps serving them (its switch,
/// router port and their ports stay, and nodes keep routing it) but takes no new pods.
pub const TERMINATING: &str = "Terminating";
/// `Ready=True` with an edit refused: the last accepted addressing stays in effect.
pub const SPEC_CHANGE_REFUSED: &str = "SpecChangeRefused";

/// "N pods" in words.
fn pods(n: usize) -> String {
    if n == 1 {
        "1 pod".to_string()
    } else {
        format!("{n} pods")
    }
}

/// The reason and message of the `Ready=True` condition of an accepted Subnet.
pub fn accepted_condition(config: &SubnetConfig) -> (&'static str, String) {
    let in_effect = format!("cidrBlock {} with gateway {}", config.cidr, config.gateway);
    if config.terminating {
        return (
            TERMINATING,
            format!(
                "deleted, but {} still use it: its switch and their ports stay and it takes no \
                 new pods until they are gone ({in_effect})",
                pods(config.pods)
            ),
        );
    }
    if !config.refused.is_empty() {
        let why: Vec<&str> = config.refused.iter().map(|r| r.why.as_str()).collect();
        return (
            SPEC_CHANGE_REFUSED,
            format!(
                "{}; {in_effect} stays in effect until no pod uses the Subnet or the edit is \
                 reverted",
                why.join("; ")
            ),
        );
    }
    (ACCEPTED, in_effect)
}

/// What validation (and IPAM) concluded about one Subnet object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubnetOutcome<'a> {
    /// Accepted, with its pool's current usage.
    Accepted(&'a SubnetConfig, Usage),
    /// Rejected whole.
    Rejected(&'a SubnetRejection),
}

/// Status for one Subnet object: Ready=True with usage and the addressing in effect (reason
/// `Accepted`, `Terminating` or `SpecChangeRefused`, see [`accepted_condition`]), or
/// Ready=False with the rejection's reason/message. `previous` keeps lastTransitionTime when the condition's status did not
/// change, so an unchanged cluster renders exactly the status it already has.
pub fn subnet_status(
    outcome: SubnetOutcome<'_>,
    previous: Option<&SubnetStatus>,
    now: Timestamp,
) -> SubnetStatus {
    let (usage, config, status, reason, message, generation) = match outcome {
        SubnetOutcome::Accepted(config, usage) => {
            let (reason, message) = accepted_condition(config);
            (
                usage,
                Some(config),
                "True",
                reason.to_string(),
                message,
                config.generation,
            )
        }
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
        gateway: config.map(|c| c.gateway.to_string()),
        cidr_block: config.map(|c| c.cidr.to_string()),
        exclude_ips: config.map(|c| c.exclude_ips.clone()).unwrap_or_default(),
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
