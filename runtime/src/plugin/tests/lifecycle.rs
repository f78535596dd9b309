//! Nothing is left behind: a configured instance is kept for the next call while it behaves,
//! a failed one is dropped at once, and every instance ends with its plugin.

use std::time::Duration;

use super::{call, members, spec, with_session};
use crate::config::PluginKind;
use crate::plugin::{HostOptions, PluginHost, Verdict};
use serde_json::json;

/// A host of its own, so no other test's instances are counted.
fn own_host() -> PluginHost {
    PluginHost::with_options(&HostOptions {
        fuel: false,
        max_live_instances: 16,
    })
    .expect("host")
}

async fn settled(host: &PluginHost) -> u64 {
    // A policy's task ends on its next poll after its last handle is dropped.
    for _ in 0..100 {
        if host.live_instances().0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    host.live_instances().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_reused_while_they_behave_and_end_with_their_plugin() {
    let host = own_host();
    let deny = host
        .load(&spec(
            "deny",
            PluginKind::Validator,
            "deny-patterns",
            json!({}),
        ))
        .await
        .expect("loads");
    assert_eq!(
        host.live_instances().0,
        1,
        "the instance that proved the config is kept for the first call"
    );
    for _ in 0..5 {
        assert_eq!(deny.validate(&call("t", json!({}))).await, Verdict::Allow);
    }
    assert_eq!(
        host.live_instances().0,
        1,
        "calls one after another reuse one instance"
    );

    let hostile = host
        .load(&spec(
            "h",
            PluginKind::Validator,
            "hostile",
            json!({"mode": "loop"}),
        ))
        .await
        .expect("loads");
    assert_eq!(host.live_instances().0, 2);
    assert!(
        hostile
            .try_validate(&call("attack", json!({})))
            .await
            .is_err()
    );
    assert_eq!(
        host.live_instances().0,
        1,
        "a stopped instance is dropped at once, not put back"
    );

    let sticky = host
        .load(&spec(
            "s",
            PluginKind::LbPolicy,
            "sticky-session",
            json!({}),
        ))
        .await
        .expect("loads");
    assert!(sticky.pick(&with_session("a"), &members(3)).await.is_ok());
    assert_eq!(host.live_instances().0, 2, "a policy keeps its instance");
    drop((deny, hostile, sticky));
    assert_eq!(
        settled(&host).await,
        0,
        "and every instance ends with its plugin"
    );
}
