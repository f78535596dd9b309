//! The native load-balancing strategies: how a group picks the member for one call.
//!
//! The caller offers only members that are in the rotation and not yet tried for this call, so
//! the candidate set changes between calls (failover, members leaving and rejoining). Every
//! strategy therefore keys its memory by [`Candidate::index`], never by position in the slice,
//! and copes with a member it has not seen or one that has gone. Warming members (rejoined within
//! the failback delay) are offered too; every strategy passes them over while anything else is
//! offered.
//!
//! Deliberately absent: randomness and clocks of their own. [`Strategy::pick`] takes a random
//! number as an argument, so every strategy is deterministic under test.

use std::collections::HashMap;

/// A member as a strategy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The member's position in its group; what [`Strategy::pick`] returns.
    pub index: usize,
    /// 1–100; used by the weighted strategies.
    pub weight: u32,
    /// 1–100; lower is preferred by [`Priority`].
    pub priority: u32,
    /// Calls the member is answering now.
    pub in_flight: u32,
    /// Rejoined the rotation within the failback delay: picked only if nothing else is offered.
    pub warming: bool,
}

/// `Strategy` is the interface to implement member selection for a group.
pub trait Strategy: Send + Sync {
    /// Picks one of `candidates` and returns its [`Candidate::index`]; `None` only for an empty
    /// slice. `random` is a uniformly distributed number for strategies that need one.
    fn pick(&mut self, candidates: &[Candidate], random: u64) -> Option<usize>;

    /// The name used in the config file's `strategy:` key.
    fn name(&self) -> &'static str;
}

/// The native strategy called `name` in the config file (`round_robin`, `weighted_round_robin`,
/// `least_connections`, `random`, `priority`), fresh; `None` for anything else, including
/// `plugin:NAME`. Takes `AsRef<str>` so a config's `Cow<str>` name can be passed as is.
pub fn by_name(name: impl AsRef<str>) -> Option<Box<dyn Strategy>> {
    Some(match name.as_ref() {
        "round_robin" => Box::new(RoundRobin::default()),
        "weighted_round_robin" => Box::new(WeightedRoundRobin::default()),
        "least_connections" => Box::new(LeastConnections::default()),
        "random" => Box::new(WeightedRandom),
        "priority" => Box::new(Priority::default()),
        _ => return None,
    })
}

/// The candidates a strategy may choose from: the non-warming ones, or all of them if every
/// candidate is warming. A filter, not a copy, because picking is on every call's path.
fn eligible(candidates: &[Candidate]) -> impl Iterator<Item = &Candidate> + Clone {
    let only_warming = candidates.iter().all(|c| c.warming);
    candidates
        .iter()
        .filter(move |c| only_warming || !c.warming)
}

/// A weight as used in arithmetic. Config guarantees 1–100; a 0 that slips through would make a
/// member the caller chose to offer unpickable (and a total of 0 undefined), so it counts as 1.
fn weight(c: &Candidate) -> u64 {
    u64::from(c.weight.max(1))
}

/// Remembers the last member picked and continues after it in index order, wrapping around.
/// Keyed by member index, so it needs no reset when members leave or rejoin.
#[derive(Debug, Clone, Default)]
struct Cursor {
    last: Option<usize>,
}

impl Cursor {
    /// The smallest index after the last pick, else the smallest index.
    fn next<'a>(&mut self, candidates: impl Iterator<Item = &'a Candidate>) -> Option<usize> {
        let mut after: Option<usize> = None;
        let mut first: Option<usize> = None;
        for i in candidates.map(|c| c.index) {
            first = Some(first.map_or(i, |f| f.min(i)));
            if self.last.is_none_or(|last| i > last) {
                after = Some(after.map_or(i, |a| a.min(i)));
            }
        }
        let picked = after.or(first)?;
        self.last = Some(picked);
        Some(picked)
    }
}

/// Each candidate in turn, in member order.
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    cursor: Cursor,
}

impl Strategy for RoundRobin {
    fn pick(&mut self, candidates: &[Candidate], _random: u64) -> Option<usize> {
        self.cursor.next(eligible(candidates))
    }

    fn name(&self) -> &'static str {
        "round_robin"
    }
}

/// Smooth weighted round-robin (nginx's algorithm): over any `sum(weights)` consecutive picks
/// from an unchanged set, each member is picked exactly `weight` times, spread out rather than
/// in runs.
///
/// Each pick adds every candidate's weight to its running score, picks the highest score and
/// subtracts the total weight from it. A member that is not offered keeps its score untouched,
/// as nginx does for peers that are down or already tried, so a failover does not reshuffle
/// everyone else's turns.
#[derive(Debug, Clone, Default)]
pub struct WeightedRoundRobin {
    current: HashMap<usize, i64>,
}

impl Strategy for WeightedRoundRobin {
    fn pick(&mut self, candidates: &[Candidate], _random: u64) -> Option<usize> {
        let mut total: i64 = 0;
        let mut best: Option<(usize, i64)> = None;
        for c in eligible(candidates) {
            // weight() is at most u32::MAX, so this conversion cannot fail.
            let w = i64::try_from(weight(c)).unwrap_or(i64::MAX);
            total = total.saturating_add(w);
            let score = self.current.entry(c.index).or_insert(0);
            *score = score.saturating_add(w);
            // Ties go to the lower member index so the order does not depend on the slice's.
            let better = best.is_none_or(|(bi, bs)| *score > bs || (*score == bs && c.index < bi));
            if better {
                best = Some((c.index, *score));
            }
        }
        let (index, _) = best?;
        if let Some(score) = self.current.get_mut(&index) {
            *score = score.saturating_sub(total);
        }
        Some(index)
    }

    fn name(&self) -> &'static str {
        "weighted_round_robin"
    }
}

/// The candidate with the fewest calls in flight; ties are taken in turn, so idle members share
/// the load instead of the first one taking it all.
#[derive(Debug, Clone, Default)]
pub struct LeastConnections {
    cursor: Cursor,
}

impl Strategy for LeastConnections {
    fn pick(&mut self, candidates: &[Candidate], _random: u64) -> Option<usize> {
        let fewest = eligible(candidates).map(|c| c.in_flight).min()?;
        self.cursor
            .next(eligible(candidates).filter(|c| c.in_flight == fewest))
    }

    fn name(&self) -> &'static str {
        "least_connections"
    }
}

/// A random candidate, with probability proportional to its weight. Stateless.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeightedRandom;

impl Strategy for WeightedRandom {
    fn pick(&mut self, candidates: &[Candidate], random: u64) -> Option<usize> {
        let total: u64 = eligible(candidates).map(weight).sum();
        // Scales `random` into 0..total by multiply-and-shift: no modulo bias worth measuring at
        // these totals, and it uses the high bits, which are the good ones in weak generators.
        let mut target = ((u128::from(random) * u128::from(total)) >> 64) as u64;
        let mut last = None;
        for c in eligible(candidates) {
            let w = weight(c);
            if target < w {
                return Some(c.index);
            }
            target -= w;
            last = Some(c.index);
        }
        last
    }

    fn name(&self) -> &'static str {
        "random"
    }
}

/// The candidate with the lowest priority number; equal priorities are taken in turn. A higher
/// number is picked only when no lower one is offered — that is how a standby takes over, and
/// how traffic fails back once the primary is in the rotation and past its failback delay.
#[derive(Debug, Clone, Default)]
pub struct Priority {
    cursor: Cursor,
}

impl Strategy for Priority {
    fn pick(&mut self, candidates: &[Candidate], _random: u64) -> Option<usize> {
        let best = eligible(candidates).map(|c| c.priority).min()?;
        self.cursor
            .next(eligible(candidates).filter(|c| c.priority == best))
    }

    fn name(&self) -> &'static str {
        "priority"
    }
}

/// The native strategy a group's config names; `None` for `plugin:NAME`.
pub fn for_config(strategy: &crate::config::GroupStrategy) -> Option<Box<dyn Strategy>> {
    use crate::config::GroupStrategy as G;
    Some(match strategy {
        G::RoundRobin => Box::new(RoundRobin::default()),
        G::WeightedRoundRobin => Box::new(WeightedRoundRobin::default()),
        G::LeastConnections => Box::new(LeastConnections::default()),
        G::Random => Box::new(WeightedRandom),
        G::Priority => Box::new(Priority::default()),
        G::Plugin(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    // Our `Strategy` by name, proptest's only for its methods: both traits are in the globs.
    use super::Strategy;
    use proptest::prelude::*;
    use proptest::strategy::Strategy as _;
    use std::collections::HashSet;

    const NAMES: [&str; 5] = [
        "round_robin",
        "weighted_round_robin",
        "least_connections",
        "random",
        "priority",
    ];

    fn member(index: usize, weight: u32) -> Candidate {
        Candidate {
            index,
            weight,
            priority: 1,
            in_flight: 0,
            warming: false,
        }
    }

    fn weighted(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| member(i, w))
            .collect()
    }

    fn picks(s: &mut dyn Strategy, candidates: &[Candidate], n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| s.pick(candidates, 0).expect("a candidate"))
            .collect()
    }

    fn counts(picks: &[usize], members: usize) -> Vec<usize> {
        let mut counts = vec![0; members];
        for &p in picks {
            counts[p] += 1;
        }
        counts
    }

    /// splitmix64: a fixed, dependency-free sequence of well-mixed numbers.
    fn random_sequence(seed: u64) -> impl Iterator<Item = u64> {
        let mut state = seed;
        std::iter::repeat_with(move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    }

    #[test]
    fn by_name_knows_the_five_native_strategies_and_nothing_else() {
        for name in NAMES {
            let s = by_name(name).expect(name);
            assert_eq!(s.name(), name);
        }
        assert!(by_name("plugin:sticky").is_none());
        assert!(by_name("Round_Robin").is_none());
        assert!(by_name(std::borrow::Cow::Borrowed("priority")).is_some());
    }

    #[test]
    fn weighted_round_robin_interleaves_like_nginx() {
        // nginx's documented sequence for weights 5, 1, 1: a a b a c a a.
        let mut s = WeightedRoundRobin::default();
        let seq = picks(&mut s, &weighted(&[5, 1, 1]), 14);
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn weighted_round_robin_over_1000_picks_matches_weights() {
        // 1 + 3 + 4 + 2 = 10 divides 1000: exact.
        let mut s = WeightedRoundRobin::default();
        let c = weighted(&[1, 3, 4, 2]);
        assert_eq!(counts(&picks(&mut s, &c, 1000), 4), [100, 300, 400, 200]);
        // 7 + 5 + 3 = 15 does not: each within 1 of 1000 * w / 15.
        let mut s = WeightedRoundRobin::default();
        let got = counts(&picks(&mut s, &weighted(&[7, 5, 3]), 1000), 3);
        for (count, w) in got.iter().zip([7.0, 5.0, 3.0]) {
            assert!((*count as f64 - 1000.0 * w / 15.0).abs() <= 1.0, "{got:?}");
        }
    }

    #[test]
    fn weighted_round_robin_recovers_its_shares_after_a_member_leaves_and_rejoins() {
        let mut s = WeightedRoundRobin::default();
        let all = weighted(&[3, 2, 1]);
        picks(&mut s, &all, 100);
        let without_first = &all[1..];
        let meanwhile = counts(&picks(&mut s, without_first, 37), 3);
        assert_eq!(
            meanwhile[0], 0,
            "a member that is not offered is not picked"
        );
        let after = counts(&picks(&mut s, &all, 600), 3);
        for (count, expected) in after.iter().zip([300, 200, 100]) {
            assert!(count.abs_diff(expected) <= 2, "{after:?}");
        }
    }

    #[test]
    fn round_robin_skips_a_member_that_left_and_takes_it_back_in_turn() {
        let mut s = RoundRobin::default();
        let all = weighted(&[1, 1, 1]);
        assert_eq!(picks(&mut s, &all, 2), [0, 1]);
        let without_2 = &all[..2];
        assert_eq!(picks(&mut s, without_2, 3), [0, 1, 0]);
        assert_eq!(picks(&mut s, &all, 4), [1, 2, 0, 1]);
    }

    #[test]
    fn least_connections_spreads_ties_instead_of_piling_on_the_first() {
        let mut s = LeastConnections::default();
        let mut c = weighted(&[1, 1, 1]);
        c[1].in_flight = 4;
        assert_eq!(picks(&mut s, &c, 4), [0, 2, 0, 2]);
    }

    #[test]
    fn priority_fails_over_to_the_standby_and_back() {
        let mut s = Priority::default();
        let mut c = weighted(&[1, 1, 1]);
        c[0].priority = 1;
        c[1].priority = 2;
        c[2].priority = 2;
        assert_eq!(picks(&mut s, &c, 3), [0, 0, 0]);
        assert_eq!(
            picks(&mut s, &c[1..], 3),
            [1, 2, 1],
            "standbys share the load"
        );
        c[0].warming = true;
        assert_eq!(
            picks(&mut s, &c, 2),
            [2, 1],
            "no failback while the primary warms"
        );
        c[0].warming = false;
        assert_eq!(picks(&mut s, &c, 2), [0, 0]);
    }

    #[test]
    fn weighted_random_over_100k_picks_is_within_2_percent_of_weights() {
        let mut s = WeightedRandom;
        let c = weighted(&[10, 20, 30, 40]);
        let n = 100_000;
        let seq: Vec<usize> = random_sequence(0x4d43_5048_414e_4741)
            .take(n)
            .map(|r| s.pick(&c, r).expect("a candidate"))
            .collect();
        for (count, w) in counts(&seq, 4).into_iter().zip([10.0, 20.0, 30.0, 40.0]) {
            let expected = n as f64 * w / 100.0;
            let error = (count as f64 - expected).abs() / expected;
            assert!(
                error < 0.02,
                "weight {w}: {count} picks, {expected} expected"
            );
        }
    }

    #[test]
    fn weighted_random_maps_the_extremes_of_random_to_the_first_and_last() {
        let mut s = WeightedRandom;
        let c = weighted(&[1, 1, 98]);
        assert_eq!(s.pick(&c, 0), Some(0));
        assert_eq!(s.pick(&c, u64::MAX), Some(2));
    }

    #[test]
    fn weighted_random_splits_the_random_range_in_proportion_to_weights() {
        // Weights 1 and 3: the lowest quarter of u64 picks the first, the rest the second.
        let mut s = WeightedRandom;
        let c = weighted(&[1, 3]);
        let quarter = 1u64 << 62;
        assert_eq!(s.pick(&c, quarter - 1), Some(0));
        assert_eq!(s.pick(&c, quarter), Some(1));
        assert_eq!(s.pick(&c, u64::MAX), Some(1));
    }

    /// Up to 8 candidates with distinct member indices (not in slice order) and arbitrary fields.
    fn candidates() -> impl proptest::strategy::Strategy<Value = Vec<Candidate>> {
        proptest::collection::vec(
            (0usize..64, 1u32..=100, 1u32..=100, 0u32..5, any::<bool>()),
            0..8,
        )
        .prop_map(|rows| {
            let mut seen = HashSet::new();
            rows.into_iter()
                .filter(|r| seen.insert(r.0))
                .map(|(index, weight, priority, in_flight, warming)| Candidate {
                    index,
                    weight,
                    priority,
                    in_flight,
                    warming,
                })
                .collect()
        })
    }

    proptest! {
        /// Over 1,000 picks from an unchanged set, each member's count is exactly its share when
        /// 1,000 is a multiple of the weight sum, and within 1 of it otherwise.
        #[test]
        fn weighted_round_robin_counts_match_weights(weights in proptest::collection::vec(1u32..=100, 1..6)) {
            let sum: u32 = weights.iter().sum();
            let mut s = WeightedRoundRobin::default();
            let got = counts(&picks(&mut s, &weighted(&weights), 1000), weights.len());
            for (count, w) in got.iter().zip(&weights) {
                let share = 1000.0 * f64::from(*w) / f64::from(sum);
                if 1000 % sum == 0 {
                    prop_assert_eq!(*count as f64, share);
                } else {
                    prop_assert!((*count as f64 - share).abs() <= 1.0, "{:?} for {:?}", got, weights);
                }
            }
        }

        /// Smoothness: in every prefix of k picks, no member is picked more than
        /// ceil(weight / sum * k) + 1 times, and every window of `sum` consecutive picks holds
        /// each member exactly `weight` times.
        #[test]
        fn weighted_round_robin_is_smooth(weights in proptest::collection::vec(1u32..=20, 1..6)) {
            let sum = weights.iter().sum::<u32>() as usize;
            let mut s = WeightedRoundRobin::default();
            let seq = picks(&mut s, &weighted(&weights), sum * 3);
            let mut seen = vec![0usize; weights.len()];
            for (k, &p) in seq.iter().enumerate() {
                seen[p] += 1;
                let bound = (weights[p] as usize * (k + 1)).div_ceil(sum) + 1;
                prop_assert!(seen[p] <= bound, "member {} picked {} times in {} picks", p, seen[p], k + 1);
            }
            for window in seq.windows(sum) {
                let got = counts(window, weights.len());
                let want: Vec<usize> = weights.iter().map(|&w| w as usize).collect();
                prop_assert_eq!(got, want);
            }
        }

        /// With a fixed set, n consecutive picks visit each of the n candidates once, whatever
        /// order the slice is in.
        #[test]
        fn round_robin_visits_every_candidate_once_per_cycle(
            cs in candidates().prop_filter("non-empty", |c| !c.is_empty()),
            cycles in 1usize..4,
        ) {
            let cs: Vec<Candidate> = cs.into_iter().map(|c| Candidate { warming: false, ..c }).collect();
            let mut s = RoundRobin::default();
            let seq = picks(&mut s, &cs, cs.len() * cycles);
            let everyone: HashSet<usize> = cs.iter().map(|c| c.index).collect();
            for cycle in seq.chunks(cs.len()) {
                let visited: HashSet<usize> = cycle.iter().copied().collect();
                prop_assert_eq!(&visited, &everyone);
            }
        }

        #[test]
        fn least_connections_always_picks_a_minimum_in_flight_candidate(
            rounds in proptest::collection::vec(candidates(), 1..20),
        ) {
            let mut s = LeastConnections::default();
            for cs in rounds {
                let cs: Vec<Candidate> = cs.into_iter().map(|c| Candidate { warming: false, ..c }).collect();
                if let Some(i) = s.pick(&cs, 0) {
                    let fewest = cs.iter().map(|c| c.in_flight).min();
                    let picked = cs.iter().find(|c| c.index == i).map(|c| c.in_flight);
                    prop_assert_eq!(picked, fewest);
                }
            }
        }

        #[test]
        fn priority_never_picks_a_higher_number_while_a_lower_is_offered(
            rounds in proptest::collection::vec(candidates(), 1..20),
        ) {
            let mut s = Priority::default();
            for cs in rounds {
                let cs: Vec<Candidate> = cs.into_iter().map(|c| Candidate { warming: false, ..c }).collect();
                if let Some(i) = s.pick(&cs, 0) {
                    let best = cs.iter().map(|c| c.priority).min();
                    let picked = cs.iter().find(|c| c.index == i).map(|c| c.priority);
                    prop_assert_eq!(picked, best);
                }
            }
        }

        /// For every strategy and any sequence of changing candidate sets: `None` exactly for an
        /// empty slice, otherwise the index of an offered candidate — a non-warming one whenever
        /// one is offered.
        #[test]
        fn every_strategy_picks_an_offered_candidate_and_warming_ones_only_when_alone(
            rounds in proptest::collection::vec((candidates(), any::<u64>()), 1..30),
        ) {
            for name in NAMES {
                let mut s = by_name(name).expect(name);
                for (cs, random) in &rounds {
                    let picked = s.pick(cs, *random);
                    match picked.and_then(|i| cs.iter().find(|c| c.index == i)) {
                        None => prop_assert!(cs.is_empty() && picked.is_none(), "{}: {:?} from {:?}", name, picked, cs),
                        Some(c) => prop_assert!(
                            !c.warming || cs.iter().all(|c| c.warming),
                            "{}: picked warming {} while {:?} offered", name, c.index, cs
                        ),
                    }
                }
            }
        }
    }
}
