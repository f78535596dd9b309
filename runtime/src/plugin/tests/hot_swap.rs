//! Hot swap: a new version replaces the old atomically; calls in flight finish on the old one;
//! no call is lost; a broken new version leaves the old one in service.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{call, host, members, spec, with_session};
use crate::config::{PluginConfig, PluginKind};
use crate::plugin::{PluginErrorKind, Verdict};
use serde_json::json;

fn patterns(p: &str) -> PluginConfig {
    PluginConfig::plain(json!({"patterns": [p]}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_under_a_stream_of_calls_loses_no_call() {
    let mut spec = spec("deny", PluginKind::Validator, "deny-patterns", json!({}));
    spec.config = patterns("alpha");
    // A validator's 50 ms default bounds a call on a loaded machine too (CI builds beside the
    // tests): here only an answer from neither version counts as lost, not a slow one.
    spec.timeout = Duration::from_secs(10);
    let plugin = Arc::new(host().load(&spec).await.expect("loads"));
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (plugin, stop) = (plugin.clone(), stop.clone());
        callers.push(tokio::spawn(async move {
            let (mut alpha, mut beta) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                // Both versions deny this call, each naming its own pattern: any other answer
                // (an allow, a failure) would be a call lost in the swap.
                match plugin
                    .try_validate(&call("t", json!({"x": "alpha beta"})))
                    .await
                {
                    Ok(Verdict::Deny(r)) if r.contains("`alpha`") => alpha += 1,
                    Ok(Verdict::Deny(r)) if r.contains("`beta`") => beta += 1,
                    other => panic!("a call was lost in a swap: {other:?}"),
                }
            }
            (alpha, beta)
        }));
    }
    let mut swaps = Vec::new();
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        spec.config = patterns(if i % 2 == 0 { "beta" } else { "alpha" });
        let started = Instant::now();
        let version = plugin.reload_with(&spec).await.expect("reloads");
        swaps.push(started.elapsed());
        assert_eq!(version, i + 2);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut alpha, mut beta) = (0, 0);
    for caller in callers {
        let (a, b) = caller.await.expect("caller");
        alpha += a;
        beta += b;
    }
    let stats = plugin.stats();
    eprintln!(
        "{} calls during 10 swaps ({alpha} on alpha versions, {beta} on beta); swap times: {swaps:?}",
        stats.calls
    );
    assert!(
        alpha > 0 && beta > 0,
        "calls ran on both versions: {alpha} / {beta}"
    );
    assert_eq!(stats.calls, alpha + beta);
    assert_eq!(stats.failures_total(), 0, "{stats:?}");
    assert_eq!((stats.reloads, plugin.version()), (10, 11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_finishes_on_the_version_it_started_on() {
    let mut slow = spec(
        "v",
        PluginKind::Validator,
        "hostile",
        json!({"mode": "slow"}),
    );
    slow.timeout = Duration::from_millis(500);
    let plugin = Arc::new(host().load(&slow).await.expect("loads"));
    let in_flight = tokio::spawn({
        let plugin = plugin.clone();
        async move {
            plugin
                .try_validate(&call("attack", json!({"x": "rm -rf"})))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Same name and kind, another file: deny-patterns takes over.
    let next = spec(
        "v",
        PluginKind::Validator,
        "deny-patterns",
        json!({"patterns": ["rm -rf"]}),
    );
    assert_eq!(plugin.reload_with(&next).await, Ok(2));
    let after = plugin
        .try_validate(&call("attack", json!({"x": "rm -rf"})))
        .await;
    assert!(
        matches!(&after, Ok(Verdict::Deny(r)) if r.contains("`rm -rf`")),
        "{after:?}"
    );
    let before = in_flight.await.expect("task");
    assert_eq!(
        before,
        Ok(Verdict::Deny("slow answer".into())),
        "the old version answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_new_file_keeps_the_old_version_in_service() {
    let dir = std::env::temp_dir().join(format!("hangar-plugin-swap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let live = dir.join("live.wasm");
    std::fs::copy(super::wasm("deny-patterns"), &live).unwrap();
    let mut spec = spec(
        "v",
        PluginKind::Validator,
        "deny-patterns",
        json!({"patterns": ["rm -rf"]}),
    );
    spec.path = live.clone();
    let plugin = host().load(&spec).await.expect("loads");
    let denied = || call("t", json!({"cmd": "rm -rf /"}));

    // Garbage, a component of another world, a config the plugin refuses: each is refused,
    // and the version in service keeps answering.
    std::fs::write(&live, b"\0asm garbage").unwrap();
    assert_eq!(
        plugin.reload().await.unwrap_err().kind,
        PluginErrorKind::Load
    );
    std::fs::copy(super::wasm("sticky-session"), &live).unwrap();
    let err = plugin.reload().await.unwrap_err();
    assert!(err.message.contains("`validator-plugin` world"), "{err}");
    std::fs::copy(super::wasm("deny-patterns"), &live).unwrap();
    let mut refused = spec.clone();
    refused.config = PluginConfig::plain(json!({"patterns": [""]}));
    assert_eq!(
        plugin.reload_with(&refused).await.unwrap_err().kind,
        PluginErrorKind::Configure
    );
    assert_eq!(plugin.version(), 1);
    assert!(matches!(plugin.validate(&denied()).await, Verdict::Deny(_)));

    // A good file is swapped in.
    std::fs::copy(super::wasm("hostile"), &live).unwrap();
    let mut hostile = spec.clone();
    hostile.config = PluginConfig::plain(json!({"mode": "trap"}));
    assert_eq!(plugin.reload_with(&hostile).await, Ok(5));
    assert_eq!(
        plugin.validate(&denied()).await,
        Verdict::Allow,
        "hostile allows calm calls"
    );
    let stats = plugin.stats();
    assert_eq!((stats.reloads, stats.reload_failures), (1, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_cannot_change_the_name_or_the_kind() {
    let spec = spec("v", PluginKind::Validator, "deny-patterns", json!({}));
    let plugin = host().load(&spec).await.expect("loads");
    let mut other = spec.clone();
    other.kind = PluginKind::LbPolicy;
    other.path = super::wasm("sticky-session");
    let err = plugin.reload_with(&other).await.unwrap_err();
    assert_eq!(err.kind, PluginErrorKind::WrongKind);
    assert!(
        err.message.contains("a reload keeps the name and the kind"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_swapped_under_picks_answers_every_pick() {
    let mut spec = spec("sticky", PluginKind::LbPolicy, "sticky-session", json!({}));
    // As above: a slow pick on a loaded machine is not a lost one.
    spec.timeout = Duration::from_secs(10);
    let plugin = Arc::new(host().load(&spec).await.expect("loads"));
    let stop = Arc::new(AtomicBool::new(false));
    let picker = tokio::spawn({
        let (plugin, stop) = (plugin.clone(), stop.clone());
        async move {
            let members = members(8);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let picked = plugin
                    .try_pick(&with_session(&format!("s{n}")), &members)
                    .await;
                assert!(matches!(picked, Ok(Some(i)) if i < 8), "{picked:?}");
                n += 1;
            }
            n
        }
    });
    for seed in 1..=5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        spec.config = PluginConfig::plain(json!({"seed": seed}));
        plugin.reload_with(&spec).await.expect("reloads");
    }
    stop.store(true, Ordering::Relaxed);
    let picks = picker.await.expect("picker");
    let stats = plugin.stats();
    assert_eq!((stats.calls, stats.failures_total()), (picks, 0));
    assert_eq!(plugin.version(), 6);
}
