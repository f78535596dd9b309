//! Validators written in Python (componentize-py) and JavaScript (componentize-js) on the real
//! call path: each example is built by its own build script (which installs the pinned
//! toolchain from PyPI or npm on first use), the real hangar loads it from a file named in its
//! config, and real MCP calls through the hangar to the example provider are allowed or refused
//! by it. The proof that operators can write policies in any language that targets the WIT.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Result, bail};
use hangar_tests::*;
use serde_json::json;

/// One of the interpreted example validators.
#[derive(Clone, Copy, Debug)]
enum Guest {
    Python,
    JavaScript,
}

impl Guest {
    /// The plugin's key under `plugins:`, which the hangar names in a refusal.
    fn plugin(self) -> &'static str {
        match self {
            Self::Python => "py-guard",
            Self::JavaScript => "js-guard",
        }
    }

    /// The component, built by its example's build script once per test process (the script
    /// itself skips the build when the file is newer than its sources).
    fn wasm(self) -> Result<PathBuf> {
        static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        static JAVASCRIPT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        let (cell, dir, file) = match self {
            Self::Python => (&PYTHON, "python-validator", "python_validator.wasm"),
            Self::JavaScript => (&JAVASCRIPT, "js-validator", "js_validator.wasm"),
        };
        cell.get_or_init(|| build(dir, file))
            .clone()
            .map_err(anyhow::Error::msg)
    }
}

/// Runs `examples/plugins/<dir>/build.sh <target>/wasm-plugins/<file>`.
fn build(dir: &str, file: &str) -> Result<PathBuf, String> {
    let target = profile_dir()
        .parent()
        .map(Path::to_path_buf)
        .ok_or("the test executable is not under a target directory")?;
    let out = target.join("wasm-plugins").join(file);
    let script = workspace_root()
        .join("examples/plugins")
        .join(dir)
        .join("build.sh");
    let result = std::process::Command::new("bash")
        .arg(&script)
        .arg(&out)
        .output()
        .map_err(|err| format!("cannot run {}: {err}", script.display()))?;
    if !result.status.success() {
        return Err(format!(
            "{} failed:\n{}{}",
            script.display(),
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    Ok(out)
}

const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

/// A hangar with the example provider as `math`, guarded by `guest`, and the same provider as
/// `free` without a validator. Keep the directory alive as long as the hangar.
async fn guarded_hangar(guest: Guest) -> Result<(TestDir, Hangar)> {
    let wasm = guest.wasm()?;
    let label = format!("polyglot-{}", guest.plugin());
    let dir = TestDir::new(&label);
    let token = unique_token(&label);
    let plugin = guest.plugin();
    // memory_mb: both interpreters start at 9-12.4 MiB and stay small for this policy.
    // timeout_ms covers a new instance's start and `configure` as well as the call: far above
    // what either guest needs (see sdk/guides), with room for a busy test machine.
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "plugins:\n  {plugin}:\n    kind: validator\n    path: \"{}\"\n    memory_mb: 32\n    \
             timeout_ms: 250\n    on_error: fail_closed\n    config:\n      forbidden_tools: [add]\n      \
             secret_patterns:\n        aws-access-key: \"AKIA[0-9A-Z]{{16}}\"\nproviders:\n{}{}",
            wasm.display(),
            provider_yaml("math", &token, &[], &format!("validators: [{plugin}]")),
            provider_yaml("free", &token, &[], ""),
        ),
    );
    let hangar = Hangar::stdio(&cfg).await?;
    // Compiling an interpreter takes seconds in a release build and can pass a minute in this
    // debug one on a busy machine. A call that arrives meanwhile waits for the load, and that
    // wait counts against the provider's call timeout (30 s): wait here until it is loaded.
    let started = std::time::Instant::now();
    loop {
        let status = plugin_status(&hangar, plugin).await?;
        if status["loaded"] == true {
            break;
        }
        if !status["last_error"].is_null() {
            bail!("{plugin} did not load: {status}\n{}", hangar.log());
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("{plugin} not loaded after 300 s: {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{plugin}: loaded {:.1?} after the hangar started",
        started.elapsed()
    );
    Ok((dir, hangar))
}

async fn allows_clean_calls_and_refuses_the_policys(guest: Guest) -> Result<()> {
    let plugin = guest.plugin();
    let (_dir, hangar) = guarded_hangar(guest).await?;

    // A clean call goes through and returns the provider's answer.
    let clean = hangar
        .call(
            "math__echo",
            json!({"text": "deploy with key AKIA-not-a-key"}),
        )
        .await?;
    if clean.is_error == Some(true) {
        bail!("{plugin}: a clean call was refused: {}", text(&clean));
    }
    assert_eq!(text(&clean), "deploy with key AKIA-not-a-key", "{plugin}");

    // A secret in the arguments is refused, the reason naming the argument and the pattern.
    let secret = hangar
        .call("math__echo", json!({"text": format!("key={AWS_KEY}")}))
        .await?;
    assert_eq!(secret.is_error, Some(true), "{plugin}: {}", text(&secret));
    let message = text(&secret);
    assert!(
        message.contains(&format!("refused by validator plugin `{plugin}`"))
            && message.contains("argument `/text` of `echo` looks like a secret")
            && message.contains("(pattern `aws-access-key`)"),
        "{plugin}: {message}"
    );
    assert!(!message.contains(AWS_KEY), "{plugin} leaked it: {message}");
    let details = secret.structured_content.clone().unwrap_or_default();
    assert_eq!(details["type"], "PolicyDeniedError", "{plugin}: {details}");
    assert_eq!(details["details"]["plugin"], plugin, "{details}");

    // A forbidden tool is refused by name; the same tool of the unguarded provider works.
    let forbidden = hangar.call("math__add", json!({"a": 1, "b": 2})).await?;
    assert_eq!(
        forbidden.is_error,
        Some(true),
        "{plugin}: {}",
        text(&forbidden)
    );
    assert!(
        text(&forbidden).contains(&format!(
            "refused by validator plugin `{plugin}`: tool `add` is forbidden (`forbidden_tools`)"
        )),
        "{plugin}: {}",
        text(&forbidden)
    );
    let sum = hangar.call_ok("free__add", json!({"a": 1, "b": 2})).await?;
    assert_eq!(sum["result"], 3, "{sum}");
    let free = hangar
        .call("free__echo", json!({"text": format!("key={AWS_KEY}")}))
        .await?;
    assert_ne!(free.is_error, Some(true), "{}", text(&free));
    assert_eq!(
        text(&free),
        format!("key={AWS_KEY}"),
        "only `math` is guarded"
    );

    // The hangar counted what the plugin decided, and the plugin's host.log lines reached the
    // hangar's log under its name.
    let status = plugin_status(&hangar, plugin).await?;
    assert_eq!(status["stats"]["calls"], 3, "{status}");
    assert_eq!(status["stats"]["denials"], 2, "{status}");
    let log = hangar.log();
    assert!(
        log.contains(&format!(
            "plugin `{plugin}`: denied a call to `math`: tool `add` is forbidden"
        )),
        "{plugin}: host.log lines are in the hangar's log:\n{log}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_validator_allows_clean_calls_and_refuses_secrets_and_forbidden_tools()
-> Result<()> {
    allows_clean_calls_and_refuses_the_policys(Guest::Python).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_javascript_validator_allows_clean_calls_and_refuses_secrets_and_forbidden_tools()
-> Result<()> {
    allows_clean_calls_and_refuses_the_policys(Guest::JavaScript).await
}
