//! The sticky-session example policy, end to end through the host.

use std::collections::HashMap;

use super::{host, members, with_session};
use crate::config::PluginKind;
use crate::plugin::{Invocation, Plugin};
use serde_json::json;

async fn sticky() -> Plugin {
    host()
        .load(&super::spec(
            "sticky",
            PluginKind::LbPolicy,
            "sticky-session",
            json!({}),
        ))
        .await
        .expect("sticky-session loads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_stays_on_one_member_across_100_picks() {
    let plugin = sticky().await;
    let members = members(8);
    let first = plugin
        .pick(&with_session("client-42"), &members)
        .await
        .expect("fail-open");
    assert!(first.is_some_and(|i| i < 8), "{first:?}");
    for _ in 0..100 {
        assert_eq!(
            plugin.pick(&with_session("client-42"), &members).await,
            Ok(first)
        );
    }
    // One instance served every pick (the one that proved the config at load).
    let stats = plugin.stats();
    assert_eq!(
        (stats.calls, stats.instances, stats.failures_total()),
        (101, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_spread_over_the_members() {
    let plugin = sticky().await;
    let members = members(8);
    let mut per_member: HashMap<u32, u32> = HashMap::new();
    for s in 0..800 {
        let picked = plugin
            .pick(&with_session(&format!("session-{s}")), &members)
            .await;
        let index = picked.expect("fail-open").expect("a session gets a member");
        *per_member.entry(index).or_default() += 1;
    }
    assert_eq!(
        per_member.len(),
        8,
        "every member takes sessions: {per_member:?}"
    );
    for (member, count) in &per_member {
        // 100 expected each; 50..150 is > 5 standard deviations either side.
        assert!(
            (50..150).contains(count),
            "member {member} took {count}: {per_member:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_member_loses_only_its_own_sessions() {
    let plugin = sticky().await;
    let all = members(8);
    let mut before = Vec::new();
    for s in 0..200 {
        before.push(
            plugin
                .pick(&with_session(&format!("s{s}")), &all)
                .await
                .ok()
                .flatten(),
        );
    }
    let mut degraded = all.clone();
    degraded[3].healthy = false;
    for (s, was) in before.iter().enumerate() {
        let now = plugin
            .pick(&with_session(&format!("s{s}")), &degraded)
            .await
            .ok()
            .flatten();
        assert_ne!(now, Some(3), "an unhealthy member is never picked");
        if *was != Some(3) {
            assert_eq!(
                now, *was,
                "session s{s} moved although its member stayed healthy"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_or_no_healthy_member_leaves_the_choice_to_the_group() {
    let plugin = sticky().await;
    let members = members(4);
    let anonymous = std::sync::Arc::new(Invocation {
        session: None,
        ..(*with_session("x")).clone()
    });
    assert_eq!(plugin.pick(&anonymous, &members).await, Ok(None));
    let mut down = members.clone();
    for m in &mut down {
        m.healthy = false;
    }
    assert_eq!(plugin.pick(&with_session("a"), &down).await, Ok(None));
    assert_eq!(plugin.pick(&with_session("a"), &[]).await, Ok(None));
}
