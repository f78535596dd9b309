//! The deny-patterns example validator, end to end through the host.

use super::{call, deny_patterns_config, host, spec};
use crate::config::PluginKind;
use crate::plugin::Verdict;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rm_rf_is_denied_with_the_pattern_in_the_reason() {
    let plugin = host()
        .load(&spec(
            "deny",
            PluginKind::Validator,
            "deny-patterns",
            deny_patterns_config(),
        ))
        .await
        .expect("deny-patterns loads");
    let verdict = plugin
        .validate(&call("run", json!({"command": "rm -rf /"})))
        .await;
    let Verdict::Deny(reason) = verdict else {
        panic!("expected a denial, got {verdict:?}");
    };
    assert!(reason.contains("`rm -rf`"), "{reason}");
    assert!(
        reason.contains("`/command`"),
        "the reason names the argument: {reason}"
    );
    let stats = plugin.stats();
    assert_eq!(
        (stats.calls, stats.denials, stats.failures_total()),
        (1, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_call_is_allowed() {
    let plugin = host()
        .load(&spec(
            "deny",
            PluginKind::Validator,
            "deny-patterns",
            deny_patterns_config(),
        ))
        .await
        .expect("deny-patterns loads");
    let clean = call(
        "read_file",
        json!({"path": "/data/reports/q3.csv", "options": {"encoding": "utf-8", "lines": [1, 2]}}),
    );
    assert_eq!(plugin.validate(&clean).await, Verdict::Allow);
    assert_eq!(
        plugin.validate(&call("list", json!({}))).await,
        Verdict::Allow
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_patterns_and_paths_outside_the_root_are_denied() {
    let plugin = host()
        .load(&spec(
            "deny",
            PluginKind::Validator,
            "deny-patterns",
            deny_patterns_config(),
        ))
        .await
        .expect("deny-patterns loads");
    let cases = [
        (
            json!({"sql": ["SELECT 1", "DROP TABLE users"]}),
            "`/sql/1` contains the denied pattern `DROP TABLE`",
        ),
        (
            json!({"path": "/etc/passwd"}),
            "`/etc/passwd`, which is outside `/data`",
        ),
        (json!({"path": "/data/../etc/shadow"}), "outside `/data`"),
        (json!({"target_file": "../secrets"}), "outside `/data`"),
        (json!({"where": "~/.ssh/id_rsa"}), "outside `/data`"),
        (json!({"p": "/database"}), "outside `/data`"),
    ];
    for (arguments, expected) in cases {
        match plugin.validate(&call("t", arguments.clone())).await {
            Verdict::Deny(reason) => assert!(reason.contains(expected), "{arguments}: {reason}"),
            other => panic!("{arguments}: expected a denial, got {other:?}"),
        }
    }
    for allowed in [
        json!({"path": "/data"}),
        json!({"dir": "reports/2024"}),
        json!({"n": 5}),
    ] {
        assert_eq!(
            plugin.validate(&call("t", allowed.clone())).await,
            Verdict::Allow,
            "{allowed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_the_plugin_refuses_is_a_configure_error_at_load() {
    let err = host()
        .load(&spec(
            "deny",
            PluginKind::Validator,
            "deny-patterns",
            json!({"patterns": ["x"], "alowed_root": "/data"}),
        ))
        .await
        .expect_err("an unknown key is refused");
    assert_eq!(err.kind, crate::plugin::PluginErrorKind::Configure);
    assert_eq!(err.plugin, "deny");
    assert!(err.message.contains("unknown field `alowed_root`"), "{err}");
}
