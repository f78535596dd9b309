//! The circuit breaker of a provider or a group: after repeated failures, calls fail fast for a
//! while instead of piling onto something that is down; then one probe call finds out whether it
//! is back.
//!
//! ```text
//!            failure_threshold failures in a row
//!   Closed ──────────────────────────────────────▶ Open { until }
//!     ▲                                              │ first try_acquire at or after `until`
//!     │ probe succeeds                               ▼
//!     └──────────────────────────────────────────  HalfOpen ── probe fails or is abandoned ──▶ Open
//! ```
//!
//! Architecture invariant: pure bookkeeping. The breaker never reads a clock (callers pass `now`),
//! never sleeps and never publishes; every state change is returned to the caller, who publishes
//! it. Deliberately absent: a failure *rate* or sliding window — `failure_threshold` means
//! failures in a row, which needs no memory beyond one integer.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Where a breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go through; consecutive failures are counted.
    Closed,
    /// Calls fail fast until `until`; the first call at or after it becomes the probe.
    Open { until: Instant },
    /// One probe call is out; every other call fails fast until its result is known.
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state change that happened, for the caller to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerChange {
    pub from: BreakerState,
    pub to: BreakerState,
}

/// Admission to make one call. Hand it back to [`CircuitBreaker::record`] when the call ends.
///
/// Neither `Clone` nor constructible outside this module, so a result is recorded at most once
/// and only for a call the breaker admitted. A probe permit that is dropped without being
/// recorded counts as a failed probe: the breaker notices on the next [`CircuitBreaker::try_acquire`]
/// and re-opens, so a caller that gave up can never wedge it in `HalfOpen`.
#[derive(Debug)]
#[must_use = "a permit's result must be recorded; a dropped probe permit re-opens the breaker"]
pub struct Permit {
    kind: PermitKind,
    /// The breaker's epoch when the permit was issued (see the breaker's `epoch` field).
    epoch: u64,
}

#[derive(Debug)]
enum PermitKind {
    Normal,
    /// Held, never read: the breaker keeps a `Weak` to this token, and once it cannot be
    /// upgraded the probe's caller is gone. One allocation per probe, none on the ordinary path.
    Probe {
        _alive: Arc<()>,
    },
}

impl Permit {
    /// Whether this call is the half-open probe whose outcome decides the breaker's state.
    pub fn is_probe(&self) -> bool {
        matches!(self.kind, PermitKind::Probe { .. })
    }
}

/// A call the breaker refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// When a call may be admitted again. While open: the end of the open period. While a probe
    /// is out: one reset timeout from now, because the probe may fail and re-open the breaker for
    /// that long; retrying sooner is harmless (it is rejected again, cheaply).
    pub retry_at: Instant,
    /// Set when this very call found the probe abandoned and re-opened the breaker.
    pub change: Option<BreakerChange>,
}

/// Counts consecutive failures and decides, per call, whether it may go through.
#[derive(Debug)]
pub struct CircuitBreaker {
    failure_threshold: u32,
    reset_timeout: Duration,
    state: BreakerState,
    consecutive_failures: u32,
    /// Increases on every state change. A permit issued in an earlier epoch is stale: its result
    /// describes a period the breaker has already left (e.g. a slow call that was admitted while
    /// closed and answers after the breaker opened) and is ignored.
    epoch: u64,
    /// The current probe's token while the breaker is half-open.
    probe: Weak<()>,
}

impl CircuitBreaker {
    /// A closed breaker. A `failure_threshold` of 0 is taken as 1: "open before any failure"
    /// would refuse every call forever.
    pub fn new(failure_threshold: u32, reset_timeout: Duration) -> Self {
        Self {
            failure_threshold: failure_threshold.max(1),
            reset_timeout,
            state: BreakerState::Closed,
            consecutive_failures: 0,
            epoch: 0,
            probe: Weak::new(),
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Failures in a row since the last success (or reset). Kept while open so operators can
    /// see what tripped the breaker.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Admits a call or refuses it. The move from `Open` to `HalfOpen` happens here, when the
    /// first call after the open period arrives; that call gets the probe permit.
    pub fn try_acquire(
        &mut self,
        now: Instant,
    ) -> Result<(Permit, Option<BreakerChange>), Rejected> {
        match self.state {
            BreakerState::Closed => Ok((self.permit(PermitKind::Normal), None)),
            BreakerState::Open { until } if now < until => Err(Rejected {
                retry_at: until,
                change: None,
            }),
            BreakerState::Open { .. } => {
                let token = Arc::new(());
                self.probe = Arc::downgrade(&token);
                let change = self.set(BreakerState::HalfOpen);
                Ok((
                    self.permit(PermitKind::Probe { _alive: token }),
                    Some(change),
                ))
            }
            BreakerState::HalfOpen if self.probe.strong_count() > 0 => Err(Rejected {
                retry_at: later(now, self.reset_timeout),
                change: None,
            }),
            BreakerState::HalfOpen => {
                // The probe's permit was dropped without a result: its caller gave up. We cannot
                // know when, so the failure is dated now.
                let change = self.fail_probe(now);
                Err(Rejected {
                    retry_at: later(now, self.reset_timeout),
                    change: Some(change),
                })
            }
        }
    }

    /// Records the outcome of an admitted call. Only a current permit counts: a normal call's
    /// result while closed, the probe's result while half-open. Anything else is stale and
    /// changes nothing.
    pub fn record(&mut self, permit: Permit, success: bool, now: Instant) -> Option<BreakerChange> {
        if permit.epoch != self.epoch {
            return None;
        }
        match (&permit.kind, self.state) {
            (PermitKind::Normal, BreakerState::Closed) => {
                if success {
                    self.consecutive_failures = 0;
                    return None;
                }
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                (self.consecutive_failures >= self.failure_threshold).then(|| {
                    self.set(BreakerState::Open {
                        until: later(now, self.reset_timeout),
                    })
                })
            }
            // Same epoch and half-open: this is the one probe issued when the epoch began.
            (PermitKind::Probe { .. }, BreakerState::HalfOpen) => {
                if success {
                    self.consecutive_failures = 0;
                    self.probe = Weak::new();
                    Some(self.set(BreakerState::Closed))
                } else {
                    Some(self.fail_probe(now))
                }
            }
            // A permit of the current epoch whose kind this state never issues can only come from
            // another breaker.
            _ => None,
        }
    }

    /// An operator's reset: closed, with no failures counted. If the breaker was open or
    /// half-open, permits still out become stale; from closed, nothing changes but the count.
    pub fn reset(&mut self) -> Option<BreakerChange> {
        self.consecutive_failures = 0;
        self.probe = Weak::new();
        (self.state != BreakerState::Closed).then(|| self.set(BreakerState::Closed))
    }

    fn fail_probe(&mut self, now: Instant) -> BreakerChange {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.probe = Weak::new();
        self.set(BreakerState::Open {
            until: later(now, self.reset_timeout),
        })
    }

    fn permit(&self, kind: PermitKind) -> Permit {
        Permit {
            kind,
            epoch: self.epoch,
        }
    }

    fn set(&mut self, to: BreakerState) -> BreakerChange {
        let from = self.state;
        self.state = to;
        self.epoch += 1;
        BreakerChange { from, to }
    }
}

/// `now + timeout` without the panic `Instant + Duration` has on overflow: the timeout comes from
/// a config file, and an absurd one should mean "open for a very long time", not a crash.
fn later(now: Instant, timeout: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(timeout)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    fn fail(b: &mut CircuitBreaker, now: Instant) -> Option<BreakerChange> {
        let (permit, _) = b.try_acquire(now).expect("admitted");
        b.record(permit, false, now)
    }

    /// A breaker tripped at `t0` with threshold 1.
    fn opened(t0: Instant) -> CircuitBreaker {
        let mut b = CircuitBreaker::new(1, TIMEOUT);
        fail(&mut b, t0);
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t0 + TIMEOUT
            }
        );
        b
    }

    #[test]
    fn opens_after_exactly_failure_threshold_consecutive_failures() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(3, TIMEOUT);
        assert_eq!(fail(&mut b, t0), None);
        assert_eq!(fail(&mut b, t0), None);
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "threshold - 1 failures stay closed"
        );
        assert_eq!(b.consecutive_failures(), 2);
        let change = fail(&mut b, t0);
        assert_eq!(
            change,
            Some(BreakerChange {
                from: BreakerState::Closed,
                to: BreakerState::Open {
                    until: t0 + TIMEOUT
                },
            })
        );
    }

    #[test]
    fn a_success_while_closed_resets_the_consecutive_count() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(3, TIMEOUT);
        fail(&mut b, t0);
        fail(&mut b, t0);
        let (p, _) = b.try_acquire(t0).expect("closed");
        assert_eq!(b.record(p, true, t0), None);
        assert_eq!(b.consecutive_failures(), 0);
        fail(&mut b, t0);
        fail(&mut b, t0);
        assert_eq!(b.state(), BreakerState::Closed, "the count started over");
    }

    #[test]
    fn a_zero_threshold_opens_on_the_first_failure_not_before() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(0, TIMEOUT);
        assert!(b.try_acquire(t0).is_ok(), "a fresh breaker admits calls");
        fail(&mut b, t0);
        assert!(matches!(b.state(), BreakerState::Open { .. }));
    }

    #[test]
    fn open_rejects_with_retry_at_opened_at_plus_reset_timeout() {
        let t0 = Instant::now();
        let mut b = opened(t0);
        for dt in [0, 1, 29_999] {
            let rejected = b
                .try_acquire(t0 + Duration::from_millis(dt))
                .expect_err("open");
            assert_eq!(rejected.retry_at, t0 + TIMEOUT);
            assert_eq!(rejected.change, None);
        }
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t0 + TIMEOUT
            }
        );
    }

    #[test]
    fn after_the_timeout_exactly_one_probe_goes_through() {
        let t0 = Instant::now();
        let mut b = opened(t0);
        let t1 = t0 + TIMEOUT;
        let (probe, change) = b.try_acquire(t1).expect("the timeout has passed");
        assert!(probe.is_probe());
        assert_eq!(
            change,
            Some(BreakerChange {
                from: BreakerState::Open { until: t1 },
                to: BreakerState::HalfOpen,
            })
        );
        for dt in [0, 1, 60] {
            let rejected = b
                .try_acquire(t1 + Duration::from_secs(dt))
                .expect_err("the probe is still out");
            assert_eq!(rejected.change, None);
        }
        assert_eq!(b.state(), BreakerState::HalfOpen);
        drop(probe);
    }

    #[test]
    fn a_probe_success_closes_and_clears_the_failures() {
        let t0 = Instant::now();
        let mut b = opened(t0);
        let t1 = t0 + TIMEOUT;
        let (probe, _) = b.try_acquire(t1).expect("probe");
        let change = b.record(probe, true, t1);
        assert_eq!(
            change,
            Some(BreakerChange {
                from: BreakerState::HalfOpen,
                to: BreakerState::Closed,
            })
        );
        assert_eq!(b.consecutive_failures(), 0);
        let (next, _) = b.try_acquire(t1).expect("closed again");
        assert!(!next.is_probe());
    }

    #[test]
    fn a_probe_failure_reopens_for_a_fresh_reset_timeout() {
        let t0 = Instant::now();
        let mut b = opened(t0);
        let (probe, _) = b.try_acquire(t0 + TIMEOUT).expect("probe");
        let failed_at = t0 + TIMEOUT + Duration::from_secs(5);
        let change = b.record(probe, false, failed_at);
        assert_eq!(
            change,
            Some(BreakerChange {
                from: BreakerState::HalfOpen,
                to: BreakerState::Open {
                    until: failed_at + TIMEOUT
                },
            })
        );
        let rejected = b
            .try_acquire(failed_at + TIMEOUT - Duration::from_millis(1))
            .expect_err("open for a full timeout after the probe failed");
        assert_eq!(rejected.retry_at, failed_at + TIMEOUT);
        assert!(
            b.try_acquire(failed_at + TIMEOUT)
                .is_ok_and(|(p, _)| p.is_probe())
        );
    }

    #[test]
    fn a_dropped_probe_permit_reopens_instead_of_wedging_half_open() {
        let t0 = Instant::now();
        let mut b = opened(t0);
        let (probe, _) = b.try_acquire(t0 + TIMEOUT).expect("probe");
        drop(probe); // the caller gave up without a result
        let noticed = t0 + TIMEOUT + Duration::from_secs(2);
        let rejected = b
            .try_acquire(noticed)
            .expect_err("an abandoned probe is a failure");
        assert_eq!(
            rejected.change,
            Some(BreakerChange {
                from: BreakerState::HalfOpen,
                to: BreakerState::Open {
                    until: noticed + TIMEOUT
                },
            }),
            "the re-opening is reported so it can be published"
        );
        assert_eq!(rejected.retry_at, noticed + TIMEOUT);
        let (again, _) = b.try_acquire(noticed + TIMEOUT).expect("a new probe");
        assert!(again.is_probe());
        assert_eq!(
            b.record(again, true, noticed + TIMEOUT).map(|c| c.to),
            Some(BreakerState::Closed)
        );
    }

    #[test]
    fn recording_an_abandoned_probe_as_a_failure_reopens_at_once() {
        let t0 = Instant::now();
        let mut b = opened(t0);
        let (probe, _) = b.try_acquire(t0 + TIMEOUT).expect("probe");
        let gave_up = t0 + TIMEOUT + Duration::from_secs(1);
        let change = b.record(probe, false, gave_up);
        assert_eq!(
            change.map(|c| c.to),
            Some(BreakerState::Open {
                until: gave_up + TIMEOUT
            })
        );
    }

    #[test]
    fn late_normal_results_after_the_breaker_opened_change_nothing() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(2, TIMEOUT);
        let (slow_ok, _) = b.try_acquire(t0).expect("closed");
        let (slow_fail, _) = b.try_acquire(t0).expect("closed");
        let (slow_fail_2, _) = b.try_acquire(t0).expect("closed");
        fail(&mut b, t0);
        fail(&mut b, t0);
        let open = BreakerState::Open {
            until: t0 + TIMEOUT,
        };
        assert_eq!(b.state(), open);

        // A success must not close an open breaker; a failure must not extend it.
        assert_eq!(b.record(slow_ok, true, t0 + Duration::from_secs(1)), None);
        assert_eq!(
            b.record(slow_fail, false, t0 + Duration::from_secs(2)),
            None
        );
        assert_eq!(b.state(), open);

        // Nor may it count against the probe, or against the next closed period.
        let (probe, _) = b.try_acquire(t0 + TIMEOUT).expect("probe");
        b.record(probe, true, t0 + TIMEOUT);
        assert_eq!(b.record(slow_fail_2, false, t0 + TIMEOUT), None);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
    }

    #[test]
    fn a_probe_from_before_a_reset_is_stale() {
        let t0 = Instant::now();
        let mut b = opened(t0);
        let (old_probe, _) = b.try_acquire(t0 + TIMEOUT).expect("probe");
        b.reset();
        fail(&mut b, t0 + TIMEOUT);
        let t2 = t0 + TIMEOUT * 2;
        let (new_probe, _) = b.try_acquire(t2).expect("a new probe");
        assert_eq!(
            b.record(old_probe, true, t2),
            None,
            "the old probe cannot close it"
        );
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.try_acquire(t2).is_err(), "the new probe is still out");
        drop(new_probe);
    }

    #[test]
    fn reset_closes_from_any_state_and_reports_the_change() {
        let t0 = Instant::now();
        let mut b = opened(t0);
        assert_eq!(
            b.reset(),
            Some(BreakerChange {
                from: BreakerState::Open {
                    until: t0 + TIMEOUT
                },
                to: BreakerState::Closed,
            })
        );
        assert_eq!(b.consecutive_failures(), 0);
        fail(&mut b, t0);
        let (probe, _) = b.try_acquire(t0 + TIMEOUT).expect("probe");
        assert_eq!(b.reset().map(|c| c.from), Some(BreakerState::HalfOpen));
        assert!(
            b.try_acquire(t0 + TIMEOUT)
                .is_ok_and(|(p, _)| !p.is_probe())
        );
        drop(probe);
    }

    #[test]
    fn reset_while_closed_clears_the_count_and_reports_nothing() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(2, TIMEOUT);
        fail(&mut b, t0);
        assert_eq!(b.reset(), None);
        assert_eq!(b.consecutive_failures(), 0);
        fail(&mut b, t0);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn an_absurd_reset_timeout_opens_for_long_instead_of_panicking() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(1, Duration::MAX);
        fail(&mut b, t0);
        let rejected = b
            .try_acquire(t0 + Duration::from_secs(10 * 365 * 24 * 3600))
            .expect_err("still open ten years later");
        assert!(rejected.retry_at > t0);
    }

    #[test]
    fn state_names_are_the_ones_operators_see() {
        let names: Vec<_> = [
            BreakerState::Closed,
            BreakerState::Open {
                until: Instant::now(),
            },
            BreakerState::HalfOpen,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(names, ["closed", "open", "half_open"]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Acquire,
        Finish { which: usize, success: bool },
        Abandon { which: usize },
        Advance { millis: u64 },
        Reset,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Acquire),
            4 => (any::<usize>(), any::<bool>()).prop_map(|(which, success)| Op::Finish { which, success }),
            1 => any::<usize>().prop_map(|which| Op::Abandon { which }),
            3 => (0u64..1_500).prop_map(|millis| Op::Advance { millis }),
            1 => Just(Op::Reset),
        ]
    }

    proptest! {
        /// For any interleaving of calls, outcomes, abandoned calls, time and resets: nothing is
        /// admitted while open before `until`, at most one probe is out per half-open period, and
        /// every state change is reported exactly when it happens.
        #[test]
        fn never_admits_early_never_two_probes_and_reports_every_change(
            threshold in 1u32..5,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let timeout = Duration::from_millis(1_000);
            let mut b = CircuitBreaker::new(threshold, timeout);
            let mut now = Instant::now();
            // (permit, reset count when it was issued)
            let mut out: Vec<(Permit, u32)> = Vec::new();
            let mut resets = 0u32;
            for op in ops {
                let before = b.state();
                let change = match op {
                    Op::Acquire => {
                        let probe_out = out.iter().any(|(p, r)| p.is_probe() && *r == resets);
                        match b.try_acquire(now) {
                            Ok((permit, change)) => {
                                if let BreakerState::Open { until } = before {
                                    prop_assert!(now >= until, "admitted while open");
                                }
                                prop_assert!(!(before == BreakerState::HalfOpen), "admitted while half-open");
                                prop_assert!(!(permit.is_probe() && probe_out), "a second probe");
                                prop_assert_eq!(permit.is_probe(), b.state() == BreakerState::HalfOpen);
                                out.push((permit, resets));
                                change
                            }
                            Err(rejected) => {
                                prop_assert!(before != BreakerState::Closed, "rejected while closed");
                                prop_assert!(rejected.retry_at > now);
                                rejected.change
                            }
                        }
                    }
                    Op::Finish { which, success } if !out.is_empty() => {
                        let (permit, _) = out.swap_remove(which % out.len());
                        b.record(permit, success, now)
                    }
                    Op::Abandon { which } if !out.is_empty() => {
                        drop(out.swap_remove(which % out.len()));
                        None
                    }
                    Op::Advance { millis } => {
                        now += Duration::from_millis(millis);
                        None
                    }
                    Op::Reset => {
                        resets += 1;
                        b.reset()
                    }
                    Op::Finish { .. } | Op::Abandon { .. } => None,
                };
                let after = b.state();
                match change {
                    Some(c) => {
                        prop_assert_eq!(c.from, before);
                        prop_assert_eq!(c.to, after);
                        prop_assert_ne!(before, after);
                        if let BreakerState::Open { until } = after {
                            prop_assert_eq!(until, now + timeout, "opened for one full timeout");
                        }
                    }
                    None => prop_assert_eq!(before, after, "an unreported change"),
                }
                if after == BreakerState::Closed {
                    prop_assert!(b.consecutive_failures() < threshold);
                }
                let current_probes = out.iter().filter(|(p, r)| p.is_probe() && *r == resets).count();
                prop_assert!(current_probes <= 1, "{current_probes} probes out");
            }
        }
    }
}
