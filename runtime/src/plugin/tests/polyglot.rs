//! Validators written in Python (componentize-py) and JavaScript (componentize-js), built by
//! their own build scripts (`examples/plugins/{python,js}-validator/build.sh`, which install
//! the pinned toolchain under `target/` or `node_modules/` on first use) and loaded by this
//! host like any other plugin: the proof that the contract is the WIT, not the language.
//!
//! These components carry an interpreter (CPython ~18 MB, SpiderMonkey ~12 MB), so they are
//! what the pool limits in `engine.rs` and the memory and timeout figures in
//! `sdk/guides/{python,javascript}.md` are measured against. Their figures are printed by
//! `cargo bench -p hangar-tests --bench plugins -- polyglot`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;
use tokio::sync::OnceCell;

use super::{REPO, TARGET, call, host};
use crate::config::{OnError, PluginConfig, PluginKind, PluginSpec};
use crate::plugin::{Invocation, Plugin, PluginErrorKind, Verdict};

/// One of the interpreted example validators.
#[derive(Clone, Copy, Debug)]
enum Guest {
    Python,
    JavaScript,
}

impl Guest {
    const ALL: [Self; 2] = [Self::Python, Self::JavaScript];

    /// The plugin's name in the specs below.
    fn name(self) -> &'static str {
        match self {
            Self::Python => "python-guard",
            Self::JavaScript => "js-guard",
        }
    }

    /// The component, built by its example's build script (once per test process; the
    /// script itself skips the build when the file is newer than its sources).
    fn wasm(self) -> PathBuf {
        static PYTHON: OnceLock<PathBuf> = OnceLock::new();
        static JAVASCRIPT: OnceLock<PathBuf> = OnceLock::new();
        let (cell, dir, file) = match self {
            Self::Python => (&PYTHON, "python-validator", "python_validator.wasm"),
            Self::JavaScript => (&JAVASCRIPT, "js-validator", "js_validator.wasm"),
        };
        cell.get_or_init(|| {
            let out = Path::new(TARGET).join(file);
            let script = Path::new(REPO)
                .join("examples/plugins")
                .join(dir)
                .join("build.sh");
            let status = Command::new("bash")
                .arg(&script)
                .arg(&out)
                .status()
                .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
            assert!(status.success(), "{} failed", script.display());
            out
        })
        .clone()
    }

    fn spec(self, config: serde_json::Value) -> PluginSpec {
        PluginSpec {
            name: self.name().to_owned(),
            kind: PluginKind::Validator,
            defined_at: None,
            path: self.wasm(),
            config: PluginConfig::plain(config),
            timeout: TIMEOUT,
            memory_mb: MEMORY_MB,
            fuel: None,
            on_error: OnError::FailClosed,
            grants: Vec::new(),
            preopens: Vec::new(),
            grant_settings: crate::config::GrantSettings::default(),
        }
    }
}

/// What the guides tell authors of interpreted plugins to start from.
const MEMORY_MB: u32 = 64;
const TIMEOUT: Duration = Duration::from_millis(500);

fn policy() -> serde_json::Value {
    json!({
        "forbidden_tools": ["delete_repo", "drop_database"],
        "secret_patterns": {
            "aws-access-key": "AKIA[0-9A-Z]{16}",
            "github-token": "gh[pousr]_[A-Za-z0-9]{36}",
        },
    })
}

const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

/// The guest loaded with `policy()`, once per test process: compiling a component with an
/// interpreter in it takes seconds (tens of them in a debug build), and every test here needs
/// the same one. Config refusals reload it (`reload_with`), which reuses the compilation.
async fn loaded(guest: Guest) -> &'static Plugin {
    static PYTHON: OnceCell<Plugin> = OnceCell::const_new();
    static JAVASCRIPT: OnceCell<Plugin> = OnceCell::const_new();
    let cell = match guest {
        Guest::Python => &PYTHON,
        Guest::JavaScript => &JAVASCRIPT,
    };
    cell.get_or_init(|| async {
        host()
            .load(&guest.spec(policy()))
            .await
            .unwrap_or_else(|err| panic!("{guest:?}: {err}"))
    })
    .await
}

async fn validate(guest: Guest, invocation: &std::sync::Arc<Invocation>) -> Verdict {
    loaded(guest).await.validate(invocation).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_call_is_allowed_by_both() {
    for guest in Guest::ALL {
        let clean = call(
            "read_file",
            json!({"path": "/data/q3.csv", "options": {"lines": [1, 2], "note": "AKIA-short"}}),
        );
        assert_eq!(validate(guest, &clean).await, Verdict::Allow, "{guest:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_tool_is_denied_by_name() {
    for guest in Guest::ALL {
        match validate(guest, &call("delete_repo", json!({"repo": "hangar"}))).await {
            Verdict::Deny(reason) => assert_eq!(
                reason, "tool `delete_repo` is forbidden (`forbidden_tools`)",
                "{guest:?}"
            ),
            other => panic!("{guest:?}: expected a denial, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_secret_is_denied_naming_where_and_which_pattern_but_not_the_secret() {
    for guest in Guest::ALL {
        let arguments =
            json!({"steps": [{"run": "ls"}, {"env": {"KEY": format!("id={AWS_KEY}")}}]});
        match validate(guest, &call("run", arguments)).await {
            Verdict::Deny(reason) => {
                assert!(
                    reason.contains("argument `/steps/1/env/KEY` of `run`")
                        && reason.contains("(pattern `aws-access-key`)"),
                    "{guest:?}: {reason}"
                );
                assert!(!reason.contains(AWS_KEY), "{guest:?} leaked it: {reason}");
            }
            other => panic!("{guest:?}: expected a denial, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_and_concurrent_calls_get_the_same_answers() {
    for guest in Guest::ALL {
        let plugin = loaded(guest).await;
        // Eight tasks on two workers, ten rounds each: calls overlap, so the host takes idle
        // instances and makes new ones (each configured before its first call). Whichever
        // instance answers, and however often it answered before, the answers are the same.
        let tasks = (0..8).map(|task| {
            tokio::spawn(async move {
                let secret = call("t", json!({"token": format!("ghp_{}", "a".repeat(36))}));
                let clean = call("t", json!({"token": format!("task {task}")}));
                for _ in 0..10 {
                    let denied = plugin.validate(&secret).await;
                    assert!(
                        matches!(&denied, Verdict::Deny(r) if r.contains("(pattern `github-token`)")),
                        "{guest:?}: {denied:?}"
                    );
                    assert_eq!(plugin.validate(&clean).await, Verdict::Allow, "{guest:?}");
                }
            })
        });
        for task in futures::future::join_all(tasks).await {
            task.expect("no call panicked");
        }
        assert_eq!(plugin.stats().failures_total(), 0, "{guest:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_the_plugin_refuses_is_a_configure_error_naming_the_problem() {
    for guest in Guest::ALL {
        let plugin = loaded(guest).await;
        let cases = [
            (
                json!({"forbiden_tools": ["x"]}),
                "unknown config key `forbiden_tools`",
            ),
            (
                json!({"secret_patterns": {"broken": "([a-z"}}),
                "secret pattern `broken` is not a valid regular expression",
            ),
            (
                json!({"forbidden_tools": "delete_repo"}),
                "`forbidden_tools` must be a list of tool names",
            ),
        ];
        for (config, expected) in cases {
            let err = plugin
                .reload_with(&guest.spec(config.clone()))
                .await
                .expect_err("the config is refused");
            assert_eq!(err.kind, PluginErrorKind::Configure, "{guest:?} {config}");
            assert!(err.message.contains(expected), "{guest:?}: {err}");
        }
        // The version in service keeps its policy.
        let denied = plugin.validate(&call("drop_database", json!({}))).await;
        assert!(matches!(denied, Verdict::Deny(_)), "{guest:?}: {denied:?}");
    }
}
