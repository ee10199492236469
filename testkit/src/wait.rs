//! Polling for outcomes that arrive asynchronously, the one copy for every test.
//!
//! Two flavours, each sync and async:
//! - [`poll`]: `check` yields `Some(value)` when done; after the timeout the result is
//!   `Ok(None)`, and an error from `check` ends the wait at once (for checks whose failure is
//!   a real failure, such as a query of a server that must be up).
//! - [`until`]: errors count as "not yet" (a server may still be starting); only the deadline
//!   fails, with a [`TimedOut`] naming what was awaited and the last error seen.
//!
//! `check` always runs at least once, and once more after the deadline has passed.

use std::fmt;
use std::time::{Duration, Instant};

/// How often conditions are re-checked unless a [`Wait`] says otherwise.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// A deadline and a polling interval.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    timeout: Duration,
    interval: Duration,
}

/// The deadline of [`until`] passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// What was awaited.
    pub what: String,
    /// How long.
    pub timeout: Duration,
    /// The last error `check` returned, if any.
    pub last: Option<String>,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {}",
            self.timeout, self.what
        )?;
        match &self.last {
            Some(last) => write!(f, " (last error: {last})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for TimedOut {}

impl Wait {
    /// Waits up to `timeout`, checking every [`INTERVAL`].
    pub fn new(timeout: Duration) -> Wait {
        Wait {
            timeout,
            interval: INTERVAL,
        }
    }

    /// Checks every `interval` instead.
    pub fn every(self, interval: Duration) -> Wait {
        Wait { interval, ..self }
    }

    /// See [`poll`].
    pub fn poll<T, E>(
        &self,
        mut check: impl FnMut() -> Result<Option<T>, E>,
    ) -> Result<Option<T>, E> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(value) = check()? {
                return Ok(Some(value));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(self.interval);
        }
    }

    /// See [`poll_async`].
    pub async fn poll_async<T, E>(
        &self,
        mut check: impl AsyncFnMut() -> Result<Option<T>, E>,
    ) -> Result<Option<T>, E> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(value) = check().await? {
                return Ok(Some(value));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(self.interval).await;
        }
    }

    /// See [`until`].
    pub fn until<T, E: fmt::Display>(
        &self,
        what: &str,
        mut check: impl FnMut() -> Result<Option<T>, E>,
    ) -> Result<T, TimedOut> {
        let mut last = None;
        let found = self.poll(|| Ok::<_, std::convert::Infallible>(not_yet(check(), &mut last)));
        self.finish(found, what, last)
    }

    /// See [`until_async`].
    pub async fn until_async<T, E: fmt::Display>(
        &self,
        what: &str,
        mut check: impl AsyncFnMut() -> Result<Option<T>, E>,
    ) -> Result<T, TimedOut> {
        let mut last = None;
        let found = self
            .poll_async(async || {
                Ok::<_, std::convert::Infallible>(not_yet(check().await, &mut last))
            })
            .await;
        self.finish(found, what, last)
    }

    fn finish<T>(
        &self,
        found: Result<Option<T>, std::convert::Infallible>,
        what: &str,
        last: Option<String>,
    ) -> Result<T, TimedOut> {
        let Ok(found) = found;
        found.ok_or_else(|| TimedOut {
            what: what.to_string(),
            timeout: self.timeout,
            last,
        })
    }
}

/// An error as "not yet", remembering it.
fn not_yet<T, E: fmt::Display>(
    result: Result<Option<T>, E>,
    last: &mut Option<String>,
) -> Option<T> {
    result.unwrap_or_else(|e| {
        *last = Some(format!("{e:#}"));
        None
    })
}

/// Re-runs `check` every [`INTERVAL`] until it yields `Some`; `Ok(None)` once `timeout`
/// passed; an error from `check` ends the wait.
pub fn poll<T, E>(
    timeout: Duration,
    check: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    Wait::new(timeout).poll(check)
}

/// [`poll`] for async checks.
pub async fn poll_async<T, E>(
    timeout: Duration,
    check: impl AsyncFnMut() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    Wait::new(timeout).poll_async(check).await
}

/// Re-runs `check` every [`INTERVAL`] until it yields `Some`. Errors count as "not yet"; after
/// `timeout` the result is a [`TimedOut`] naming `what` and the last error.
pub fn until<T, E: fmt::Display>(
    timeout: Duration,
    what: &str,
    check: impl FnMut() -> Result<Option<T>, E>,
) -> Result<T, TimedOut> {
    Wait::new(timeout).until(what, check)
}

/// [`until`] for async checks.
pub async fn until_async<T, E: fmt::Display>(
    timeout: Duration,
    what: &str,
    check: impl AsyncFnMut() -> Result<Option<T>, E>,
) -> Result<T, TimedOut> {
    Wait::new(timeout).until_async(what, check).await
}

/// A `bool` condition as a [`poll`] check.
pub fn holds(condition: bool) -> Result<Option<()>, std::convert::Infallible> {
    Ok(condition.then_some(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_returns_the_value_none_on_timeout_and_stops_on_errors() {
        let mut n = 0;
        let got = Wait::new(Duration::from_secs(5))
            .every(Duration::from_millis(1))
            .poll(|| {
                n += 1;
                Ok::<_, String>((n == 3).then_some(n))
            });
        assert_eq!(got, Ok(Some(3)));
        assert_eq!(poll(Duration::ZERO, || holds(false)), Ok(None));
        assert_eq!(
            poll(Duration::from_secs(5), || Err::<Option<()>, _>("boom")),
            Err("boom")
        );
    }

    #[test]
    fn until_reports_what_and_the_last_error() {
        let err = until(Duration::ZERO, "the thing", || {
            Err::<Option<()>, _>("not there")
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "timed out after 0ns waiting for the thing (last error: not there)"
        );
    }

    #[tokio::test]
    async fn async_flavours_agree() {
        let mut n = 0;
        let got = until_async(Duration::from_secs(5), "n", async || {
            n += 1;
            if n < 2 { Err("early") } else { Ok(Some(n)) }
        })
        .await;
        assert_eq!(got, Ok(2));
        let none = poll_async(Duration::ZERO, async || holds(false)).await;
        assert_eq!(none, Ok(None));
    }
}
