//! Polling for outcomes that arrive asynchronously (pod status, teardown), at a fixed short
//! interval and with a deadline that names what was awaited.

use std::time::Duration;

use tokio::time::Instant;

/// How often conditions are re-checked.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Re-runs `check` every [`INTERVAL`] until it yields `Some`, or fails after `timeout` with
/// `what` and the last error `check` returned.
/// Errors from `check` count as "not yet" (the API server or a server pod may still be
/// starting); only the deadline is fatal.
pub async fn until<T>(
    timeout: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            let detail = last_error.map(|e| format!(" (last error: {e:#})"));
            anyhow::bail!(
                "timed out after {timeout:?} waiting for {what}{}",
                detail.unwrap_or_default()
            );
        }
        tokio::time::sleep_until(Instant::now() + INTERVAL).await;
    }
}
