//! Stopping lab construction from another thread, for Ctrl-C during `rovn-lab up`: once
//! cancelled, no namespace, link or daemon is made any more in this process, and the cancel
//! waits for those being made, so the teardown that follows sees everything there is.
//!
//! Process-wide on purpose: it exists for the CLI's interrupt handler, which ends the process.

use std::sync::RwLock;

use super::error::LabError;

static CANCELLED: RwLock<bool> = RwLock::new(false);

/// Runs `make` (something that creates lab objects) unless construction was cancelled.
pub fn unless_cancelled<T>(
    what: &str,
    make: impl FnOnce() -> Result<T, LabError>,
) -> Result<T, LabError> {
    let cancelled = CANCELLED
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if *cancelled {
        return Err(LabError::Cancelled {
            what: what.to_string(),
        });
    }
    make()
}

/// Whether construction was cancelled; a cancelled `up` leaves teardown to the canceller.
pub fn is_cancelled() -> bool {
    *CANCELLED
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Forbids making anything further, after the makes in flight have finished.
pub fn cancel() {
    let mut cancelled = CANCELLED
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *cancelled = true;
}
