//! The agent's side of the CNI protocol: one handler per command, and the dispatch that
//! counts, logs and publishes their outcome.

pub mod add;
pub mod check;
pub mod del;
pub mod gc;
pub mod result;

use serde_json::Value;

use super::errors::{self, Failure};
use super::kube::pods;
use super::state::AgentState;
use crate::cni::protocol::{CniCommand, CniError, CniRequest, CniResponse};

/// A required request field, or a clear error naming it.
pub fn required<'a>(
    value: Option<&'a str>,
    what: &str,
    command: CniCommand,
) -> Result<&'a str, Failure> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| {
        Failure::new(
            errors::MISSING_FIELD,
            format!("{command} request without {what}"),
        )
    })
}

/// STATUS: available once start-up finished and OVS is connected.
pub fn status(state: &AgentState) -> Result<Value, Failure> {
    if !state.is_ready() {
        return Err(Failure::new(
            errors::PLUGIN_NOT_AVAILABLE,
            format!("rovn-node on {} is still starting", state.config.node_name),
        ));
    }
    if !state.ovs.is_connected() {
        return Err(Failure::new(
            errors::PLUGIN_NOT_AVAILABLE,
            format!(
                "rovn-node is not connected to the OVS database at {}",
                state.ovs.remote()
            ),
        ));
    }
    Ok(Value::Null)
}

/// Serves one request.
pub async fn handle(state: &AgentState, request: &CniRequest) -> CniResponse {
    let command = request.command;
    let started = std::time::Instant::now();
    let outcome = match command {
        CniCommand::Add => add::add(state, request).await,
        CniCommand::Del => del::del(state, request).await,
        CniCommand::Check => check::check(state, request).await,
        CniCommand::Gc => gc::gc(state, request).await,
        CniCommand::Status => status(state),
        CniCommand::Version => Err(Failure::new(
            errors::MISSING_FIELD,
            "VERSION is answered by rovn-cni itself",
        )),
    };
    state
        .metrics
        .request(command.as_str(), outcome.is_ok(), started.elapsed());
    let container = request.container_id.as_deref().unwrap_or("");
    match outcome {
        Ok(value) if command == CniCommand::Status => CniResponse::Ok(value),
        Ok(value) => {
            tracing::info!(command = %command, container, pod = request.pod_key(), "CNI request done");
            CniResponse::Ok(value)
        }
        Err(failure) => {
            tracing::warn!(command = %command, container, pod = request.pod_key(), code = failure.error.code, error = %failure.error.msg, "CNI request failed");
            if let (Some(reason), Some((namespace, name))) = (failure.event_reason, request.pod()) {
                publish_event(state, namespace, name, reason, &failure.error).await;
            }
            CniResponse::Error(failure.error)
        }
    }
}

async fn publish_event(
    state: &AgentState,
    namespace: &str,
    name: &str,
    reason: &str,
    error: &CniError,
) {
    match pods::get(state.kube.clone(), namespace, name).await {
        Ok(Some(pod)) => state.events.warn(&pod, reason, &error.msg).await,
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the pod to publish an Event"),
    }
}
