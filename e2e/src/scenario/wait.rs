//! Polling for outcomes that arrive asynchronously, with a deadline naming what was awaited
//! and the last reason it was not there yet.

use std::time::Duration;

use tokio::time::Instant;

use super::error::{Result, ScenarioError};

/// How often conditions are re-checked.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Re-runs `check` until it yields `Some`. Errors count as "not yet" (a server may still be
/// starting); only the deadline is fatal, and it reports the last error.
pub async fn until<T>(
    timeout: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last = Some(e.to_string()),
        }
        if Instant::now() >= deadline {
            return Err(ScenarioError::Timeout {
                what: what.to_string(),
                timeout,
                last,
            });
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
