//! Both WIT versions on one host: a 0.2.0 plugin reads every part of the call it is lent and
//! every member field where the WIT says it is; a 0.1.0 plugin, built without the SDK against
//! the frozen `wit/0.1.0`, loads and is called with 0.1.0's copied records.

use std::sync::Arc;

use super::{call, host, spec};
use crate::config::PluginKind;
use crate::plugin::{Invocation, Member, Verdict, inspect, member_key};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_reads_every_part_of_the_call_it_is_lent() {
    let echo = host()
        .load(&spec(
            "echo",
            PluginKind::Validator,
            "hostile",
            json!({"mode": "echo"}),
        ))
        .await
        .expect("hostile loads");
    let lent = Arc::new(Invocation {
        session: Some("s-9".into()),
        ..(*call("attack", json!({"path": "/data/x"}))).clone()
    });
    let Verdict::Deny(reason) = echo.validate(&lent).await else {
        panic!("echo denies with what it read");
    };
    assert_eq!(
        reason,
        r#"provider=fs tool=attack arguments={"path":"/data/x"} session=Some("s-9") meta=[("correlation-id", "t-1")] member0=None"#
    );
    // The host holds no share of the call once the plugin answered.
    assert_eq!(Arc::strong_count(&lent), 1);
}

/// Members as `hostile`'s `echo_members_ok` expects them.
fn numbered_members(n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| {
            let i32 = u32::try_from(i).expect("few members");
            Member {
                weight: i32 + 1,
                priority: 100 - i32,
                in_flight: 2 * i32,
                healthy: i % 2 == 0,
                ewma_latency_us: 1000 * u64::from(i32) + 7,
                ..Member::new(format!("member-{i}"))
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_field_reaches_a_policy_where_the_wit_puts_it() {
    let echo = host()
        .load(&spec(
            "echo-pick",
            PluginKind::LbPolicy,
            "hostile",
            json!({"mode": "echo"}),
        ))
        .await
        .expect("hostile loads");
    let attack = super::with_session("attack");
    let members = numbered_members(8);
    assert_eq!(echo.try_pick(&attack, &members).await, Ok(Some(7)));
    // One field off on one member, and the plugin sees it.
    for change in [
        |m: &mut Member| m.weight += 1,
        |m: &mut Member| m.priority += 1,
        |m: &mut Member| m.in_flight += 1,
        |m: &mut Member| m.healthy = !m.healthy,
        |m: &mut Member| m.ewma_latency_us += 1,
        |m: &mut Member| m.key ^= 1,
    ] {
        let mut changed = members.clone();
        change(&mut changed[5]);
        assert_eq!(echo.try_pick(&attack, &changed).await, Ok(None));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_against_wit_0_1_0_still_loads_and_answers() {
    let legacy = host()
        .load(&spec(
            "legacy",
            PluginKind::Validator,
            "legacy-validator",
            json!({}),
        ))
        .await
        .expect("a 0.1.0 validator loads");
    assert_eq!(
        legacy.validate(&call("read", json!({"a": 1}))).await,
        Verdict::Allow
    );
    assert_eq!(
        legacy.validate(&call("forbidden", json!({}))).await,
        Verdict::Deny("legacy-validator: tool forbidden".into())
    );
    let report = inspect::inspect(&super::wasm("legacy-validator")).expect("inspects");
    assert!(report.loadable, "{report:?}");
    assert_eq!(report.wit_versions, ["0.1.0"]);
    assert_eq!(report.supported_wit_versions, ["0.2.0", "0.1.0"]);
}

#[test]
fn member_keys_are_the_ones_the_wit_and_the_sdk_pin() {
    // The same values `hangar-plugin-sdk`'s `member_key` is pinned to (computed apart).
    assert_eq!(member_key(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(member_key("member-0"), 0x3fce_5fa5_1baa_0d6e);
}
