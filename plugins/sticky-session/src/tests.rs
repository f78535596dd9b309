//! The policy through the SDK's harness, as the hangar calls it (the host's own end-to-end
//! tests of the built component are in `runtime/src/plugin/tests/sticky_session.rs`).

use std::collections::HashMap;

use hangar_plugin_sdk::testing::LbPolicyHarness;
use hangar_plugin_sdk::{Invocation, Member};
use serde_json::json;

use super::{StickySession, draw, eligible, score, session_hash};

fn members(n: usize) -> Vec<(String, Member)> {
    (0..n)
        .map(|i| {
            let id = format!("member-{i}");
            let member = Member::new(&id);
            (id, member)
        })
        .collect()
}

fn session(id: &str) -> Invocation<'static> {
    Invocation::new("pool", "echo").with_session(id)
}

fn sticky() -> LbPolicyHarness<StickySession> {
    LbPolicyHarness::new()
}

#[test]
fn one_session_stays_on_one_member_across_100_picks() {
    let mut policy = sticky();
    let members = members(8);
    let first = policy.pick(&session("client-42"), &members);
    assert!(first.is_some_and(|i| i < 8), "{first:?}");
    for _ in 0..100 {
        assert_eq!(policy.pick(&session("client-42"), &members), first);
    }
}

#[test]
fn sessions_spread_evenly_over_members_of_one_weight() {
    let mut policy = sticky();
    let members = members(8);
    let mut per_member: HashMap<usize, u32> = HashMap::new();
    for s in 0..800 {
        let index = policy
            .pick(&session(&format!("session-{s}")), &members)
            .expect("a session gets a member");
        *per_member.entry(index).or_default() += 1;
    }
    assert_eq!(per_member.len(), 8, "{per_member:?}");
    for (member, count) in &per_member {
        // 100 expected each; 50..150 is > 5 standard deviations either side.
        assert!((50..150).contains(count), "member {member} took {count}");
    }
}

#[test]
fn sessions_spread_in_proportion_to_the_weights() {
    let mut policy = sticky();
    let mut members = members(3);
    for (weight, (_, member)) in [1, 2, 5].into_iter().zip(&mut members) {
        member.weight = weight;
    }
    let mut per_member = [0u32; 3];
    for s in 0..4000 {
        let index = policy
            .pick(&session(&format!("s-{s}")), &members)
            .expect("a session gets a member");
        per_member[index] += 1;
    }
    // 500, 1000 and 2500 expected: each bound is > 5 standard deviations away.
    for (count, expected) in per_member.into_iter().zip([500u32, 1000, 2500]) {
        assert!(
            count.abs_diff(expected) < expected / 5,
            "{per_member:?} for weights 1, 2, 5"
        );
    }
}

#[test]
fn an_unhealthy_member_loses_only_its_own_sessions() {
    let mut policy = sticky();
    let all = members(8);
    let before: Vec<_> = (0..300)
        .map(|s| policy.pick(&session(&format!("s{s}")), &all))
        .collect();
    assert!(before.contains(&Some(3)), "member 3 had sessions to lose");
    let mut degraded = all.clone();
    degraded[3].1.healthy = false;
    for (s, was) in before.iter().enumerate() {
        let now = policy.pick(&session(&format!("s{s}")), &degraded);
        assert_ne!(now, Some(3), "an unhealthy member is never picked");
        if *was != Some(3) {
            assert_eq!(now, *was, "session s{s} moved although its member stayed");
        }
    }
}

#[test]
fn a_member_that_joins_takes_sessions_from_others_and_moves_no_other() {
    let mut policy = sticky();
    let seven = members(7);
    let eight = members(8);
    let mut taken = 0;
    for s in 0..400 {
        let call = session(&format!("s{s}"));
        let was = policy.pick(&call, &seven);
        let now = policy.pick(&call, &eight);
        if now == Some(7) {
            taken += 1;
        } else {
            assert_eq!(now, was, "session s{s} moved between old members");
        }
    }
    // 50 expected (1/8 of 400).
    assert!((20..90).contains(&taken), "the new member took {taken}");
}

#[test]
fn a_member_of_weight_zero_is_never_picked() {
    let mut policy = sticky();
    let mut members = members(4);
    members[1].1.weight = 0;
    for s in 0..200 {
        assert_ne!(policy.pick(&session(&format!("s{s}")), &members), Some(1));
    }
    for (_, member) in &mut members {
        member.weight = 0;
    }
    assert_eq!(policy.pick(&session("a"), &members), None);
}

#[test]
fn no_session_an_empty_one_or_no_healthy_member_leaves_the_choice_to_the_group() {
    let mut policy = sticky();
    let members = members(4);
    assert_eq!(
        policy.pick(&Invocation::new("pool", "echo"), &members),
        None
    );
    assert_eq!(policy.pick(&session(""), &members), None);
    let mut down = members.clone();
    for (_, member) in &mut down {
        member.healthy = false;
    }
    assert_eq!(policy.pick(&session("a"), &down), None);
    assert_eq!(policy.pick::<String>(&session("a"), &[]), None);
}

#[test]
fn the_seed_gives_a_group_its_own_placement() {
    let members = members(8);
    let placement = |seed: u64| {
        let mut policy = sticky();
        policy.configure(json!({"seed": seed})).unwrap();
        (0..100)
            .map(|s| policy.pick(&session(&format!("s{s}")), &members))
            .collect::<Vec<_>>()
    };
    assert_eq!(placement(7), placement(7));
    let (a, b) = (placement(7), placement(8));
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    // About 1/8 agree by chance.
    assert!(same < 40, "{same} of 100 sessions on the same member");
}

#[test]
fn a_config_with_an_unknown_key_is_refused() {
    let err = sticky().configure(json!({"sede": 1})).unwrap_err();
    assert!(
        err.starts_with("sticky-session: invalid config: unknown field `sede`"),
        "{err}"
    );
}

#[test]
fn with_one_weight_the_best_draw_is_the_best_score() {
    // The shortcut of `pick` for equal weights against the general formula.
    let members = members(8);
    let mut policy = sticky();
    for s in 0..2000 {
        let id = format!("s{s}");
        let hash = session_hash(0, id.as_bytes());
        let mut best: Option<(f64, usize)> = None;
        for (index, (_, member)) in members.iter().enumerate() {
            if eligible(member) {
                let score = score(draw(hash, member.key), member.weight);
                if best.is_none_or(|(top, _)| score > top) {
                    best = Some((score, index));
                }
            }
        }
        assert_eq!(policy.pick(&session(&id), &members), best.map(|(_, i)| i));
    }
}

#[test]
fn the_placement_is_stable_across_builds() {
    // Pinned (and computed apart, in Python, from the definitions in lib.rs): a change here
    // moves every session of every group when the hangar is upgraded.
    let members = members(8);
    let mut policy = sticky();
    let picks: Vec<_> = ["alpha", "beta", "gamma", "delta"]
        .into_iter()
        .map(|s| policy.pick(&session(s), &members))
        .collect();
    assert_eq!(picks, [Some(2), Some(5), Some(6), Some(2)]);
}
