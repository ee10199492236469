//! Waiting without fixed sleeps: check a condition at a short interval until a deadline.

use std::time::{Duration, Instant};

/// How often conditions are re-checked; short so that `up` reacts as soon as something is ready.
pub const INTERVAL: Duration = Duration::from_millis(20);

/// Calls `check` until it returns `Some`, an error, or `deadline` passes (then `Ok(None)`).
pub fn until<T, E>(
    deadline: Instant,
    interval: Duration,
    mut check: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    loop {
        if let Some(value) = check()? {
            return Ok(Some(value));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(interval.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_as_soon_as_the_condition_holds() {
        let mut calls = 0;
        let got: Result<Option<u32>, ()> = until(
            Instant::now() + Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                calls += 1;
                Ok((calls == 3).then_some(7))
            },
        );
        assert_eq!(got, Ok(Some(7)));
        assert_eq!(calls, 3);
    }

    #[test]
    fn gives_up_at_the_deadline() {
        let start = Instant::now();
        let got: Result<Option<()>, ()> = until(
            start + Duration::from_millis(30),
            Duration::from_millis(5),
            || Ok(None),
        );
        assert_eq!(got, Ok(None));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }
}
