//! `sticky-session`: a load-balancing policy plugin for the hangar (WIT
//! `hangar:plugin@0.1.0`, world `lb-policy-plugin`).
//!
//! Calls of one client session go to one member for as long as that member is healthy, by
//! weighted rendezvous (highest-random-weight) hashing of the session id against each healthy
//! member's id. When a member leaves, only its sessions move; when one joins, it takes about its
//! weight's share of the sessions and no other session moves. A call without a session, or a
//! group with no healthy member, is left to the group's native strategy (`pick` answers none).
//!
//! Config: `{}`, or `{"seed": 42}` to give this group a placement of its own (two groups with the
//! same members and different seeds do not put a session on the same-named member).
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
        let session = call.session.as_deref().filter(|s| !s.is_empty())?;
        let mut best: Option<(f64, usize)> = None;
        for (index, member) in members.iter().enumerate() {
            if !member.healthy || member.weight == 0 {
                continue;
            }
            let score = score(self.seed, session, &member.id, member.weight);
            if best.is_none_or(|(top, _)| score > top) {
                best = Some((score, index));
            }
        }
        best.map(|(_, index)| index)
    }
}

/// Weighted rendezvous score: `-weight / ln(u)` with `u` in (0, 1) drawn from the hash of
/// (seed, session, member). The member with the highest score wins; each member wins with
/// probability proportional to its weight.
fn score(seed: u64, session: &str, member: &str, weight: u32) -> f64 {
    let hash = mix(fnv1a(seed, session.as_bytes(), member.as_bytes()));
    // 53 random bits into (0, 1): never 0, so ln(u) is finite and negative.
    let u = ((hash >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(weight) / u.ln()
}

/// FNV-1a over seed, session, a separator and the member id: stable across builds and hosts,
/// unlike `std`'s hasher, so a session keeps its member when the plugin is rebuilt.
fn fnv1a(seed: u64, session: &[u8], member: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = seed
        .to_le_bytes()
        .into_iter()
        .chain(session.iter().copied())
        .chain([0xff])
        .chain(member.iter().copied());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// splitmix64's finaliser: FNV's low bits are weak, this spreads every input bit.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

hangar_plugin_sdk::export_lb_policy!(StickySession);
