//! The provider as a pure state machine.
//!
//! Architecture invariant: nothing in this module does I/O, spawns tasks or reads a clock on its
//! own — callers pass `Instant`s in. Every state change goes through [`Lifecycle::transition`],
//! which checks the transition table; there is no setter for the state.

pub mod breaker;
mod state;

pub use state::{InvalidTransition, ProviderState, Transition};

use std::time::{Duration, Instant};

/// The lifecycle bookkeeping of one provider: its state, why it is there, and the counters the
/// idle collector and `registry_details` read.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    state: ProviderState,
    /// Why the provider entered its current state (exit status, start error, "idle", …).
    reason: Option<String>,
    since: Instant,
    last_used: Instant,
    in_flight: u32,
    /// Increases on every start, so late news from an older process can be recognised and ignored.
    generation: u64,
    started_at: Option<Instant>,
    total_invocations: u64,
    total_failures: u64,
    consecutive_failures: u32,
    /// When a call or check last succeeded, and last failed (`registry_details`).
    last_success: Option<Instant>,
    last_failure: Option<Instant>,
}

impl Lifecycle {
    pub fn new(now: Instant) -> Self {
        Self {
            state: ProviderState::Cold,
            reason: None,
            since: now,
            last_used: now,
            in_flight: 0,
            generation: 0,
            started_at: None,
            total_invocations: 0,
            total_failures: 0,
            consecutive_failures: 0,
            last_success: None,
            last_failure: None,
        }
    }

    pub fn state(&self) -> ProviderState {
        self.state
    }

    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    pub fn since(&self) -> Instant {
        self.since
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    pub fn last_used(&self) -> Instant {
        self.last_used
    }

    pub fn started_at(&self) -> Option<Instant> {
        self.started_at
    }

    pub fn total_invocations(&self) -> u64 {
        self.total_invocations
    }

    pub fn total_failures(&self) -> u64 {
        self.total_failures
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub fn last_success(&self) -> Option<Instant> {
        self.last_success
    }

    pub fn last_failure(&self) -> Option<Instant> {
        self.last_failure
    }

    /// The one way to change state. Returns the transition that happened so the caller can
    /// publish it; an edge that is not in the table is an error and changes nothing.
    pub fn transition(
        &mut self,
        to: ProviderState,
        reason: Option<String>,
        now: Instant,
    ) -> Result<Transition, InvalidTransition> {
        let from = self.state;
        state::check(from, to)?;
        self.state = to;
        self.reason = reason.clone();
        self.since = now;
        if to == ProviderState::Initializing {
            self.generation += 1;
        }
        if to == ProviderState::Ready && from == ProviderState::Initializing {
            self.started_at = Some(now);
            self.last_used = now;
        }
        if matches!(to, ProviderState::Cold | ProviderState::Dead) {
            self.started_at = None;
        }
        Ok(Transition { from, to, reason })
    }

    /// A call is about to be sent to the provider.
    pub fn begin_call(&mut self, now: Instant) {
        self.in_flight += 1;
        self.total_invocations += 1;
        self.last_used = now;
    }

    /// A call has been answered. `provider_failed` is a transport-level failure (timeout, broken
    /// pipe, crash) — a tool's own `isError` result is not the provider's failure.
    pub fn end_call(&mut self, now: Instant, provider_failed: bool) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.last_used = now;
        if provider_failed {
            self.total_failures += 1;
        }
        self.record_check(!provider_failed, now);
    }

    /// A call whose caller went away before its answer (client cancelled, disconnected): it
    /// no longer runs here, and says nothing about the provider's health either way.
    pub fn abandon_call(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.last_used = now;
    }

    /// A health check's outcome. Counts like a call's: failures in a row make the provider
    /// DEGRADED, a success makes it READY again.
    pub fn record_check(&mut self, success: bool, now: Instant) {
        if success {
            self.consecutive_failures = 0;
            self.last_success = Some(now);
        } else {
            self.consecutive_failures += 1;
            self.last_failure = Some(now);
        }
    }

    /// The state the failure count calls for, if it differs from the current one:
    /// READY -> DEGRADED after `max_failures` failures in a row, DEGRADED -> READY after a success.
    pub fn health_verdict(&self, max_failures: u32) -> Option<ProviderState> {
        match self.state {
            ProviderState::Ready if self.consecutive_failures >= max_failures.max(1) => {
                Some(ProviderState::Degraded)
            }
            ProviderState::Degraded if self.consecutive_failures == 0 => Some(ProviderState::Ready),
            _ => None,
        }
    }

    /// Whether the idle collector should stop this provider now.
    pub fn is_idle(&self, now: Instant, ttl: Duration) -> bool {
        self.state == ProviderState::Ready
            && self.in_flight == 0
            && now.saturating_duration_since(self.last_used) >= ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_abandoned_call_frees_its_place_without_counting_for_or_against_health() {
        let now = Instant::now();
        let mut lc = Lifecycle::new(now);
        lc.transition(ProviderState::Initializing, None, now)
            .unwrap();
        lc.transition(ProviderState::Ready, None, now).unwrap();
        lc.record_check(false, now);
        lc.begin_call(now);
        assert!(!lc.is_idle(now + Duration::from_secs(10), Duration::from_secs(1)));
        lc.abandon_call(now);
        assert_eq!(lc.in_flight(), 0);
        assert_eq!(
            lc.consecutive_failures(),
            1,
            "neither a success nor a failure"
        );
        assert!(lc.is_idle(now + Duration::from_secs(10), Duration::from_secs(1)));
    }

    #[test]
    fn a_new_provider_is_cold_with_no_generation() {
        let lc = Lifecycle::new(Instant::now());
        assert_eq!(lc.state(), ProviderState::Cold);
        assert_eq!(lc.generation(), 0);
    }

    #[test]
    fn each_start_increases_the_generation() {
        let now = Instant::now();
        let mut lc = Lifecycle::new(now);
        lc.transition(ProviderState::Initializing, None, now)
            .unwrap();
        lc.transition(ProviderState::Ready, None, now).unwrap();
        lc.transition(ProviderState::Dead, Some("exit 1".into()), now)
            .unwrap();
        lc.transition(ProviderState::Initializing, None, now)
            .unwrap();
        assert_eq!(lc.generation(), 2);
    }

    #[test]
    fn an_invalid_transition_changes_nothing() {
        let now = Instant::now();
        let mut lc = Lifecycle::new(now);
        let err = lc.transition(ProviderState::Ready, None, now).unwrap_err();
        assert_eq!(err.from, ProviderState::Cold);
        assert_eq!(err.to, ProviderState::Ready);
        assert_eq!(lc.state(), ProviderState::Cold);
        assert_eq!(lc.generation(), 0);
    }

    #[test]
    fn idle_needs_ready_no_calls_in_flight_and_the_ttl_elapsed() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut lc = Lifecycle::new(t0);
        assert!(
            !lc.is_idle(t0 + ttl * 2, ttl),
            "cold is never idle-collected"
        );
        lc.transition(ProviderState::Initializing, None, t0)
            .unwrap();
        lc.transition(ProviderState::Ready, None, t0).unwrap();
        assert!(!lc.is_idle(t0 + Duration::from_secs(9), ttl));
        assert!(lc.is_idle(t0 + ttl, ttl));
        lc.begin_call(t0 + ttl);
        assert!(
            !lc.is_idle(t0 + ttl * 5, ttl),
            "a call in flight keeps it alive"
        );
        lc.end_call(t0 + ttl * 5, false);
        assert!(!lc.is_idle(t0 + ttl * 5 + Duration::from_secs(1), ttl));
        assert!(lc.is_idle(t0 + ttl * 6, ttl));
    }

    #[test]
    fn failures_in_a_row_degrade_and_a_success_restores() {
        let now = Instant::now();
        let mut lc = Lifecycle::new(now);
        lc.transition(ProviderState::Initializing, None, now)
            .unwrap();
        lc.transition(ProviderState::Ready, None, now).unwrap();
        lc.record_check(false, now);
        lc.begin_call(now);
        lc.end_call(now, true);
        assert_eq!(lc.health_verdict(3), None, "two failures of three allowed");
        lc.record_check(false, now);
        assert_eq!(lc.health_verdict(3), Some(ProviderState::Degraded));
        lc.transition(ProviderState::Degraded, None, now).unwrap();
        assert_eq!(lc.health_verdict(3), None);
        lc.record_check(true, now);
        assert_eq!(lc.health_verdict(3), Some(ProviderState::Ready));
    }

    #[test]
    fn the_last_success_and_failure_are_remembered_separately() {
        let t0 = Instant::now();
        let mut lc = Lifecycle::new(t0);
        assert_eq!((lc.last_success(), lc.last_failure()), (None, None));
        let t1 = t0 + Duration::from_secs(1);
        lc.begin_call(t1);
        lc.end_call(t1, true);
        let t2 = t0 + Duration::from_secs(2);
        lc.record_check(true, t2);
        assert_eq!((lc.last_success(), lc.last_failure()), (Some(t2), Some(t1)));
    }

    #[test]
    fn consecutive_failures_reset_on_success() {
        let now = Instant::now();
        let mut lc = Lifecycle::new(now);
        for _ in 0..3 {
            lc.begin_call(now);
            lc.end_call(now, true);
        }
        assert_eq!(lc.consecutive_failures(), 3);
        assert_eq!(lc.total_failures(), 3);
        lc.begin_call(now);
        lc.end_call(now, false);
        assert_eq!(lc.consecutive_failures(), 0);
        assert_eq!(lc.total_failures(), 3);
        assert_eq!(lc.total_invocations(), 4);
    }
}
