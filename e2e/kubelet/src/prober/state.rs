//! From probe outcomes to "is the container ready?" and "should the pod hear about it?". Pure,
//! so the upstream rules can be checked without running anything.
//!
//! The readiness rules are those of the real kubelet's probe worker: a container starts not
//! ready; a result counts only once the same result has come `threshold` times in a row; a probe
//! that *errored* (could not be run at all) is thrown away and changes nothing.

use super::Outcome;

/// What a probe result means for readiness, once errors are set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Success, or a warning (a terminated redirect), which upstream also counts as success.
    Success,
    /// Failure (including a timeout).
    Failure,
}

impl Verdict {
    /// The verdict of an outcome; `None` for an errored probe, whose result upstream discards.
    pub fn of(outcome: &Outcome) -> Option<Self> {
        match outcome {
            Outcome::Success(_) | Outcome::Warning(_) => Some(Verdict::Success),
            Outcome::Failure(_) => Some(Verdict::Failure),
            Outcome::Error(_) => None,
        }
    }
}

/// One container run's readiness as its probe results come in. A restarted container gets a
/// fresh one, so it starts not ready and must earn `success_threshold` successes again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    success_threshold: u32,
    failure_threshold: u32,
    last: Option<Verdict>,
    run: u32,
    ready: bool,
}

impl Readiness {
    /// Not ready, nothing seen yet. Thresholds below 1 behave as 1.
    pub fn new(success_threshold: u32, failure_threshold: u32) -> Self {
        Self {
            success_threshold: success_threshold.max(1),
            failure_threshold: failure_threshold.max(1),
            last: None,
            run: 0,
            ready: false,
        }
    }

    /// Whether the container currently counts as ready.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Records one probe result; returns the new readiness when it changed.
    pub fn record(&mut self, verdict: Verdict) -> Option<bool> {
        if self.last == Some(verdict) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(verdict);
            self.run = 1;
        }
        let threshold = match verdict {
            Verdict::Success => self.success_threshold,
            Verdict::Failure => self.failure_threshold,
        };
        if self.run < threshold {
            return None;
        }
        let ready = verdict == Verdict::Success;
        (ready != self.ready).then(|| {
            self.ready = ready;
            ready
        })
    }
}

/// An event the pod should get about its probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeEvent {
    /// `Unhealthy` or `ProbeWarning`, the real kubelet's reasons.
    pub reason: &'static str,
    /// The real kubelet's wording, e.g. `Readiness probe failed: ...`.
    pub message: String,
}

/// Decides which outcomes become events. The real kubelet records one event per failed probe
/// and leaves the flood to event aggregation; here a failure streak (failed or errored probes
/// with no success in between) gives one `Unhealthy` event, its first, and a streak of
/// warnings one `ProbeWarning`. A probe failing every second thus costs one event, yet every
/// new episode of failures is reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventGate {
    failing: bool,
    warning: bool,
}

impl EventGate {
    /// The event this outcome calls for, if any.
    pub fn event(&mut self, outcome: &Outcome) -> Option<ProbeEvent> {
        let (failing, warning) = (self.failing, self.warning);
        self.failing = matches!(outcome, Outcome::Failure(_) | Outcome::Error(_));
        self.warning = matches!(outcome, Outcome::Warning(_));
        match outcome {
            Outcome::Failure(output) if !failing => Some(ProbeEvent {
                reason: "Unhealthy",
                message: format!("Readiness probe failed: {output}"),
            }),
            Outcome::Error(error) if !failing => Some(ProbeEvent {
                reason: "Unhealthy",
                message: format!("Readiness probe errored and resulted in unknown state: {error}"),
            }),
            Outcome::Warning(output) if !warning => Some(ProbeEvent {
                reason: "ProbeWarning",
                message: format!("Readiness probe warning: {output}"),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Failure as F, Success as S};

    /// Feeds verdicts, returning readiness after each.
    fn trace(r: &mut Readiness, verdicts: &[Verdict]) -> Vec<bool> {
        verdicts
            .iter()
            .map(|v| {
                r.record(*v);
                r.ready()
            })
            .collect()
    }

    #[test]
    fn starts_not_ready_and_one_success_makes_ready() {
        let mut r = Readiness::new(1, 3);
        assert!(!r.ready());
        assert_eq!(r.record(S), Some(true));
        assert_eq!(r.record(S), None, "no change, no report");
        assert!(r.ready());
    }

    #[test]
    fn three_failures_make_not_ready() {
        let mut r = Readiness::new(1, 3);
        r.record(S);
        assert_eq!(r.record(F), None);
        assert_eq!(r.record(F), None);
        assert!(r.ready(), "two failures are below the threshold");
        assert_eq!(r.record(F), Some(false));
        assert_eq!(r.record(F), None);
    }

    #[test]
    fn failures_must_be_consecutive() {
        let mut r = Readiness::new(1, 3);
        assert_eq!(
            trace(&mut r, &[S, F, F, S, F, F, S, F, F, F]),
            [true, true, true, true, true, true, true, true, true, false]
        );
    }

    #[test]
    fn success_threshold_two() {
        let mut r = Readiness::new(2, 3);
        assert_eq!(r.record(S), None);
        assert!(!r.ready());
        assert_eq!(r.record(S), Some(true));
        // After going not ready, two successes in a row are needed again.
        assert_eq!(
            trace(&mut r, &[F, F, F, S, F, S, S]),
            [true, true, false, false, false, false, true]
        );
    }

    #[test]
    fn failures_before_first_success_keep_not_ready() {
        let mut r = Readiness::new(1, 1);
        assert_eq!(r.record(F), None, "already not ready");
        assert_eq!(r.record(S), Some(true));
        assert_eq!(r.record(F), Some(false));
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        let mut r = Readiness::new(0, 0);
        assert_eq!(r.record(S), Some(true));
        assert_eq!(r.record(F), Some(false));
    }

    #[test]
    fn verdicts_of_outcomes() {
        assert_eq!(Verdict::of(&Outcome::Success(String::new())), Some(S));
        assert_eq!(
            Verdict::of(&Outcome::Warning("redirect".into())),
            Some(S),
            "a terminated redirect counts as success"
        );
        assert_eq!(Verdict::of(&Outcome::Failure("x".into())), Some(F));
        assert_eq!(Verdict::of(&Outcome::Error("x".into())), None);
    }

    #[test]
    fn one_unhealthy_event_per_failure_streak() {
        let mut g = EventGate::default();
        let fail = Outcome::Failure("HTTP probe failed with statuscode: 500".into());
        let first = g.event(&fail);
        assert_eq!(
            first,
            Some(ProbeEvent {
                reason: "Unhealthy",
                message: "Readiness probe failed: HTTP probe failed with statuscode: 500".into()
            })
        );
        assert_eq!(g.event(&fail), None);
        assert_eq!(g.event(&Outcome::Error("boom".into())), None, "same streak");
        assert_eq!(g.event(&Outcome::Success(String::new())), None);
        assert!(g.event(&fail).is_some(), "a new streak is reported");
    }

    #[test]
    fn errors_and_warnings_have_their_wording() {
        let mut g = EventGate::default();
        let e = g.event(&Outcome::Error("port \"x\" not found".into()));
        assert_eq!(
            e.map(|e| e.message),
            Some(
                "Readiness probe errored and resulted in unknown state: port \"x\" not found"
                    .into()
            )
        );
        let w = Outcome::Warning("Probe terminated redirects, Response body: ".into());
        assert_eq!(g.event(&w).map(|e| e.reason), Some("ProbeWarning"));
        assert_eq!(g.event(&w), None);
        assert_eq!(
            g.event(&Outcome::Failure(String::new())).map(|e| e.reason),
            Some("Unhealthy")
        );
    }
}
