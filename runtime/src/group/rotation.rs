//! Who is in a group's rotation, and what that makes of the group.
//!
//! A member leaves the rotation after `unhealthy` failures in a row and rejoins after `healthy`
//! successes in a row. While it is out, its successes come from health checks and restarts
//! (the strategy is not offered it), so a member cannot talk its way back in through the
//! traffic it no longer gets. A member that rejoined less than the group's failback delay ago is
//! *warming*: the strategies use it only when nothing else is left, so a flapping member does not
//! take traffic back the moment it answers once.
//!
//! Pure bookkeeping: callers pass `now` and publish the [`RotationChange`]s they get back.

use std::fmt;
use std::time::{Duration, Instant};

/// How many outcomes in a row move a member out of, and back into, the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive failures before a member leaves the rotation (0 is taken as 1).
    pub unhealthy: u32,
    /// Consecutive successes before a member out of the rotation rejoins it (0 is taken as 1).
    pub healthy: u32,
}

/// A member's move, for the caller to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationChange {
    Left,
    Rejoined,
}

/// One member's standing in its group's rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHealth {
    in_rotation: bool,
    consecutive_failures: u32,
    consecutive_successes: u32,
    /// When the member last came back; `None` for a member that has never left.
    rejoined_at: Option<Instant>,
}

impl Default for MemberHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl MemberHealth {
    /// A new member is in the rotation and not warming: it has not failed, so there is nothing
    /// to fail back from.
    pub fn new() -> Self {
        Self {
            in_rotation: true,
            consecutive_failures: 0,
            consecutive_successes: 0,
            rejoined_at: None,
        }
    }

    /// Counts one outcome (a call, a health check, a start) and moves the member if a threshold
    /// is reached. A success breaks a run of failures and vice versa.
    pub fn record(
        &mut self,
        success: bool,
        now: Instant,
        thresholds: Thresholds,
    ) -> Option<RotationChange> {
        if success {
            self.consecutive_failures = 0;
            self.consecutive_successes = self.consecutive_successes.saturating_add(1);
            if !self.in_rotation && self.consecutive_successes >= thresholds.healthy.max(1) {
                self.rejoin(now);
                return Some(RotationChange::Rejoined);
            }
        } else {
            self.consecutive_successes = 0;
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            if self.in_rotation && self.consecutive_failures >= thresholds.unhealthy.max(1) {
                self.in_rotation = false;
                return Some(RotationChange::Left);
            }
        }
        None
    }

    pub fn in_rotation(&self) -> bool {
        self.in_rotation
    }

    /// Failures in a row since the last success (what `unhealthy_threshold` counts).
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// In the rotation, but rejoined less than `failback_delay` before `now`. A member out of the
    /// rotation is not warming: it is not eligible at all.
    pub fn is_warming(&self, now: Instant, failback_delay: Duration) -> bool {
        self.in_rotation
            && self
                .rejoined_at
                .is_some_and(|at| now.saturating_duration_since(at) < failback_delay)
    }

    /// An operator's rebalance: back in the rotation now, counts cleared. The failback delay
    /// still applies — the member has not yet proved itself under traffic — so it warms like
    /// any member that rejoined. Returns `None` if it was already in.
    pub fn force_rejoin(&mut self, now: Instant) -> Option<RotationChange> {
        self.consecutive_failures = 0;
        self.consecutive_successes = 0;
        if self.in_rotation {
            return None;
        }
        self.rejoin(now);
        Some(RotationChange::Rejoined)
    }

    fn rejoin(&mut self, now: Instant) {
        self.in_rotation = true;
        self.consecutive_successes = 0;
        self.rejoined_at = Some(now);
    }
}

/// A group's state, derived from its members; see [`group_state`] for the exact rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Inactive,
    Partial,
    Healthy,
    Degraded,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Inactive => "inactive",
            GroupState::Partial => "partial",
            GroupState::Healthy => "healthy",
            GroupState::Degraded => "degraded",
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A group's state from `(running, in_rotation)` per member. The first rule that matches wins:
///
/// 1. [`GroupState::Inactive`]: no member is running (this includes a group with no members).
/// 2. [`GroupState::Healthy`]: every member is running and in the rotation.
/// 3. [`GroupState::Partial`]: at least `min_healthy` members are in the rotation.
/// 4. [`GroupState::Degraded`]: otherwise — some member runs, but fewer than `min_healthy` are
///    in the rotation.
///
/// A member in the rotation that is not running (cold, started on its first pick) counts towards
/// `min_healthy`: it has not failed, it just has not been needed. A member running outside the
/// rotation does not: it is failing its checks.
pub fn group_state(members: &[(bool, bool)], min_healthy: u32) -> GroupState {
    let running = members.iter().filter(|(running, _)| *running).count();
    let in_rotation = members
        .iter()
        .filter(|(_, in_rotation)| *in_rotation)
        .count();
    if running == 0 {
        GroupState::Inactive
    } else if members
        .iter()
        .all(|&(running, in_rotation)| running && in_rotation)
    {
        GroupState::Healthy
    } else if in_rotation >= min_healthy as usize {
        GroupState::Partial
    } else {
        GroupState::Degraded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: Thresholds = Thresholds {
        unhealthy: 3,
        healthy: 2,
    };

    fn record_n(m: &mut MemberHealth, n: u32, success: bool, now: Instant) -> Vec<RotationChange> {
        (0..n).filter_map(|_| m.record(success, now, T)).collect()
    }

    #[test]
    fn leaves_after_exactly_unhealthy_threshold_failures() {
        let now = Instant::now();
        let mut m = MemberHealth::new();
        assert_eq!(record_n(&mut m, 2, false, now), []);
        assert!(m.in_rotation(), "threshold - 1 failures keep it in");
        assert_eq!(m.record(false, now, T), Some(RotationChange::Left));
        assert!(!m.in_rotation());
        assert_eq!(record_n(&mut m, 5, false, now), [], "leaves once");
    }

    #[test]
    fn a_success_breaks_a_run_of_failures() {
        let now = Instant::now();
        let mut m = MemberHealth::new();
        record_n(&mut m, 2, false, now);
        m.record(true, now, T);
        record_n(&mut m, 2, false, now);
        assert!(m.in_rotation());
    }

    #[test]
    fn rejoins_after_exactly_healthy_threshold_successes() {
        let now = Instant::now();
        let mut m = MemberHealth::new();
        record_n(&mut m, 3, false, now);
        assert_eq!(m.record(true, now, T), None);
        assert!(!m.in_rotation());
        assert_eq!(m.record(true, now, T), Some(RotationChange::Rejoined));
        assert!(m.in_rotation());
        assert_eq!(record_n(&mut m, 5, true, now), [], "rejoins once");
    }

    #[test]
    fn a_failure_while_out_restarts_the_success_count() {
        let now = Instant::now();
        let mut m = MemberHealth::new();
        record_n(&mut m, 3, false, now);
        m.record(true, now, T);
        m.record(false, now, T);
        assert_eq!(m.record(true, now, T), None);
        assert_eq!(m.record(true, now, T), Some(RotationChange::Rejoined));
    }

    #[test]
    fn after_rejoining_it_takes_the_full_unhealthy_threshold_to_leave_again() {
        let now = Instant::now();
        let mut m = MemberHealth::new();
        record_n(&mut m, 3, false, now);
        record_n(&mut m, 2, true, now);
        assert_eq!(record_n(&mut m, 2, false, now), []);
        assert_eq!(m.record(false, now, T), Some(RotationChange::Left));
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        let now = Instant::now();
        let zero = Thresholds {
            unhealthy: 0,
            healthy: 0,
        };
        let mut m = MemberHealth::new();
        assert_eq!(
            m.record(true, now, zero),
            None,
            "a success never removes a member"
        );
        assert_eq!(m.record(false, now, zero), Some(RotationChange::Left));
        assert_eq!(m.record(true, now, zero), Some(RotationChange::Rejoined));
    }

    #[test]
    fn a_rejoined_member_warms_for_the_failback_delay() {
        let t0 = Instant::now();
        let delay = Duration::from_secs(10);
        let mut m = MemberHealth::new();
        assert!(
            !m.is_warming(t0, delay),
            "a member that never left is not warming"
        );
        record_n(&mut m, 3, false, t0);
        assert!(
            !m.is_warming(t0, delay),
            "out of the rotation is not warming"
        );
        record_n(&mut m, 2, true, t0);
        assert!(m.is_warming(t0, delay));
        assert!(m.is_warming(t0 + Duration::from_millis(9_999), delay));
        assert!(!m.is_warming(t0 + delay, delay));
        assert!(!m.is_warming(t0, Duration::ZERO), "no delay, no warming");
    }

    #[test]
    fn a_member_that_leaves_again_while_warming_is_not_warming() {
        let t0 = Instant::now();
        let delay = Duration::from_secs(10);
        let mut m = MemberHealth::new();
        record_n(&mut m, 3, false, t0);
        record_n(&mut m, 2, true, t0);
        record_n(&mut m, 3, false, t0);
        assert!(!m.in_rotation());
        assert!(
            !m.is_warming(t0, delay),
            "out of the rotation: not eligible at all"
        );
    }

    #[test]
    fn force_rejoin_brings_a_member_back_warming_and_clears_its_counts() {
        let t0 = Instant::now();
        let delay = Duration::from_secs(10);
        let mut m = MemberHealth::new();
        record_n(&mut m, 3, false, t0);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(m.force_rejoin(t1), Some(RotationChange::Rejoined));
        assert!(m.in_rotation());
        assert!(m.is_warming(t1, delay));
        assert_eq!(
            record_n(&mut m, 2, false, t1),
            [],
            "old failures were cleared"
        );
        assert_eq!(m.force_rejoin(t1), None, "already in");
    }

    #[test]
    fn a_group_with_no_running_member_is_inactive() {
        assert_eq!(group_state(&[], 1), GroupState::Inactive);
        assert_eq!(
            group_state(&[(false, true), (false, false)], 1),
            GroupState::Inactive
        );
    }

    #[test]
    fn a_group_is_healthy_only_with_every_member_running_and_in_rotation() {
        assert_eq!(
            group_state(&[(true, true), (true, true)], 2),
            GroupState::Healthy
        );
        assert_eq!(
            group_state(&[(true, true), (false, true)], 1),
            GroupState::Partial
        );
        assert_eq!(
            group_state(&[(true, true), (true, false)], 1),
            GroupState::Partial
        );
    }

    #[test]
    fn a_group_is_partial_with_min_healthy_in_rotation_and_degraded_below() {
        let members = [(true, true), (true, false), (true, false)];
        assert_eq!(group_state(&members, 1), GroupState::Partial);
        assert_eq!(group_state(&members, 2), GroupState::Degraded);
        assert_eq!(group_state(&[(true, false)], 0), GroupState::Partial);
        assert_eq!(
            group_state(&[(true, false), (true, false)], 1),
            GroupState::Degraded
        );
    }

    #[test]
    fn a_cold_member_in_rotation_counts_towards_min_healthy() {
        assert_eq!(
            group_state(&[(true, true), (false, true)], 2),
            GroupState::Partial
        );
    }

    #[test]
    fn group_state_names_are_the_ones_operators_see() {
        let names: Vec<_> = [
            GroupState::Inactive,
            GroupState::Partial,
            GroupState::Healthy,
            GroupState::Degraded,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(names, ["inactive", "partial", "healthy", "degraded"]);
    }

    proptest! {
        /// The returned changes are the whole story: `in_rotation` flips exactly when a change is
        /// returned, and a member is out exactly when its last `unhealthy` outcomes were failures
        /// and it has not since had `healthy` successes in a row.
        #[test]
        fn rotation_changes_are_reported_exactly_when_membership_flips(
            unhealthy in 0u32..5,
            healthy in 0u32..5,
            outcomes in proptest::collection::vec(any::<bool>(), 0..200),
        ) {
            let t = Thresholds { unhealthy, healthy };
            let now = Instant::now();
            let mut m = MemberHealth::new();
            let (mut failures, mut successes) = (0u32, 0u32);
            for success in outcomes {
                let before = m.in_rotation();
                let change = m.record(success, now, t);
                if success { successes += 1; failures = 0 } else { failures += 1; successes = 0 }
                let expected = match (before, success) {
                    (true, false) if failures >= unhealthy.max(1) => Some(RotationChange::Left),
                    (false, true) if successes >= healthy.max(1) => Some(RotationChange::Rejoined),
                    _ => None,
                };
                prop_assert_eq!(change, expected);
                prop_assert_eq!(m.in_rotation(), before != change.is_some());
                if change == Some(RotationChange::Rejoined) { successes = 0 }
            }
        }

        /// Healthy and inactive exclude each other, and degraded needs a running member below
        /// `min_healthy`, whatever the mix of members.
        #[test]
        fn group_state_follows_its_documented_rules(
            members in proptest::collection::vec((any::<bool>(), any::<bool>()), 0..8),
            min_healthy in 0u32..6,
        ) {
            let state = group_state(&members, min_healthy);
            let running = members.iter().filter(|m| m.0).count();
            let in_rotation = members.iter().filter(|m| m.1).count();
            match state {
                GroupState::Inactive => prop_assert_eq!(running, 0),
                GroupState::Healthy => prop_assert!(running > 0 && members.iter().all(|&(r, i)| r && i)),
                GroupState::Partial => prop_assert!(running > 0 && in_rotation >= min_healthy as usize),
                GroupState::Degraded => prop_assert!(running > 0 && in_rotation < min_healthy as usize),
            }
        }
    }
}
