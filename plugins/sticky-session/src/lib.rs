//! `sticky-session`: a load-balancing policy plugin for the hangar (WIT
//! `hangar:plugin@0.2.0`, world `lb-policy-plugin`).
//!
//! Calls of one client session go to one member for as long as that member is healthy, by
//! weighted rendezvous (highest-random-weight) hashing of the session id against each healthy
//! member's key. When a member leaves, only its sessions move; when one joins, it takes about its
//! weight's share of the sessions and no other session moves. A call without a session (or with
//! an empty one), or a group with no healthy member of weight > 0, is left to the group's native
//! strategy (`pick` answers none).
//!
//! Config: `{}`, or `{"seed": 42}` to give this group a placement of its own (two groups with the
//! same members and different seeds do not put a session on the same-named member).
//!
//! Cost of a pick: the session is the only part of the call it reads (one string copied in), the
//! seed and the session are hashed once, then each member's draw is its `key` (a hash of its id
//! the hangar sends as a number) mixed with that. With equal weights the best draw wins outright;
//! only mixed weights pay a logarithm per member.
//!
//! Build: `cargo build --release --target wasm32-wasip2`.

use hangar_plugin_sdk::{Config as PluginConfig, Invocation, LbPolicy, Member};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    seed: u64,
}

#[derive(Default)]
struct StickySession {
    seed: u64,
}

impl LbPolicy for StickySession {
    fn configure(&mut self, config: &PluginConfig) -> Result<(), String> {
        let config: Config = config
            .parse()
            .map_err(|err| format!("sticky-session: {err}"))?;
        self.seed = config.seed;
        Ok(())
    }

    fn pick(&mut self, call: &Invocation, members: &[Member]) -> Option<usize> {
        let session = call.session().filter(|s| !s.is_empty())?;
        pick(session_hash(self.seed, session.as_bytes()), members)
    }
}

/// Only healthy members of weight > 0 take sessions.
fn eligible(member: &Member) -> bool {
    member.healthy && member.weight > 0
}

/// The winner of the weighted rendezvous for the session hashed to `session`; the first of
/// equal scores, so the answer depends on the members only, never on chance.
fn pick(session: u64, members: &[Member]) -> Option<usize> {
    let mut candidates = members.iter().filter(|m| eligible(m));
    let weight = candidates.next()?.weight;
    if candidates.all(|m| m.weight == weight) {
        // `-w / ln(u)` grows with `u` for a fixed `w`, and `u` with the draw: with one weight the
        // highest draw has the highest score, so no logarithm is needed.
        let mut best: Option<(u64, usize)> = None;
        for (index, member) in members.iter().enumerate() {
            if eligible(member) {
                let draw = draw(session, member.key) >> 11;
                if best.is_none_or(|(top, _)| draw > top) {
                    best = Some((draw, index));
                }
            }
        }
        return best.map(|(_, index)| index);
    }
    let mut best: Option<(f64, usize)> = None;
    for (index, member) in members.iter().enumerate() {
        if eligible(member) {
            let score = score(draw(session, member.key), member.weight);
            if best.is_none_or(|(top, _)| score > top) {
                best = Some((score, index));
            }
        }
    }
    best.map(|(_, index)| index)
}

/// Weighted rendezvous score: `-weight / ln(u)` with `u` in (0, 1) from the top 53 bits of the
/// draw. The member with the highest score wins; each member wins with probability
/// proportional to its weight.
fn score(draw: u64, weight: u32) -> f64 {
    // Never 0, so ln(u) is finite and negative.
    let u = ((draw >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(weight) / u.ln()
}

/// The seed and the session hashed together, once per pick: FNV-1a over the session's bytes
/// from a basis that depends on the seed, then mixed. Stable across builds and hosts (unlike
/// `std`'s hasher), so a session keeps its member when the plugin is rebuilt or moved.
fn session_hash(seed: u64, session: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325 ^ mix(seed);
    for &byte in session {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(hash)
}

/// One member's draw for one session. The key is mixed on its own first: keys of ids that differ
/// in one character (`member-0`, `member-1`) differ in few bits, and the draws of one session
/// must look independent across members.
fn draw(session: u64, key: u64) -> u64 {
    mix(session ^ mix(key))
}

/// splitmix64's finaliser: every input bit reaches every output bit.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

hangar_plugin_sdk::export_lb_policy!(StickySession);

#[cfg(test)]
mod tests;
