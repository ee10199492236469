//! Polling for outcomes that arrive asynchronously, with a deadline naming what was awaited
//! and the last reason it was not there yet: `rovn-testkit`'s wait, with its timeout as a
//! [`ScenarioError`].

use std::fmt::Display;
use std::time::Duration;

use rovn_testkit::wait::{TimedOut, until_async};

use super::error::{Result, ScenarioError};

/// How often conditions are re-checked.
pub const INTERVAL: Duration = rovn_testkit::wait::INTERVAL;

/// Re-runs `check` until it yields `Some`. Errors count as "not yet" (a server may still be
/// starting); only the deadline is fatal, and it reports the last error.
pub async fn until<T>(
    timeout: Duration,
    what: &str,
    check: impl AsyncFnMut() -> Result<Option<T>>,
) -> Result<T> {
    until_any(timeout, what, check).await
}

/// [`until`] for checks that fail with `anyhow` (tests); the timeout is a
/// [`ScenarioError::Timeout`] inside the `anyhow::Error`.
pub async fn until_anyhow<T>(
    timeout: Duration,
    what: &str,
    check: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    Ok(until_any(timeout, what, check).await?)
}

async fn until_any<T, E: Display>(
    timeout: Duration,
    what: &str,
    check: impl AsyncFnMut() -> std::result::Result<Option<T>, E>,
) -> Result<T> {
    until_async(timeout, what, check).await.map_err(
        |TimedOut {
             what,
             timeout,
             last,
         }| ScenarioError::Timeout {
            what,
            timeout,
            last,
        },
    )
}
