//! WebAssembly plugins on the real call path: the real hangar binary with the bundled
//! `deny-patterns` validator and `sticky-session` policy, real example providers, and plugin
//! files that are broken, fixed and swapped while the hangar serves.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use hangar_tests::*;
use serde_json::{Value, json};

/// The bundled deny-patterns component, as a file (tests that swap plugin files need one).
fn deny_patterns_bytes() -> &'static [u8] {
    mcp_hangar::bundled::get("deny-patterns").expect("deny-patterns is bundled")
}

/// The same component with a custom section appended: a different file that behaves the
/// same, so writing it makes the hangar compile and swap in a new version.
fn deny_patterns_variant(n: u8) -> Vec<u8> {
    let mut bytes = deny_patterns_bytes().to_vec();
    let name = b"hangar-test";
    let payload = [n; 16];
    bytes.push(0); // custom section id
    bytes.push((1 + name.len() + payload.len()) as u8); // size (LEB128, < 128)
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(&payload);
    bytes
}

/// Writes `bytes` to `path` the way an operator's `cp` of a new build would: a new file moved
/// over the old one, so the hangar never reads half a file.
fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Calls an `echo` tool that must succeed; returns its text.
async fn echo_ok(hangar: &Hangar, tool: &str, args: Value) -> Result<String> {
    let r = hangar.call(tool, args.clone()).await?;
    if r.is_error == Some(true) {
        bail!("{tool}({args}) failed: {}", text(&r));
    }
    Ok(text(&r))
}

#[tokio::test]
async fn a_validator_refuses_matching_calls_before_the_provider_sees_them() -> Result<()> {
    let dir = TestDir::new("plugin-deny");
    let token = unique_token("plugin-deny");
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "plugins:\n  guard:\n    kind: validator\n    path: bundled:deny-patterns\n    config: {{patterns: [\"rm -rf\", \"DROP TABLE\"]}}\nproviders:\n{}{}",
            provider_yaml("math", &token, &[], "validators: [guard]"),
            provider_yaml("free", &token, &[], ""),
        ),
    );
    let hangar = Hangar::stdio(&cfg).await?;

    let clean = echo_ok(&hangar, "math__echo", json!({"text": "ls -la /tmp"})).await?;
    assert!(clean.to_string().contains("ls -la /tmp"), "{clean}");

    let refused = hangar
        .call("math__echo", json!({"text": "please rm -rf / now"}))
        .await?;
    assert_eq!(refused.is_error, Some(true), "{}", text(&refused));
    let message = text(&refused);
    assert!(
        message.contains("refused by validator plugin `guard`") && message.contains("rm -rf"),
        "the client is told which plugin refused and which pattern matched: {message}"
    );
    let details = refused.structured_content.clone().unwrap_or_default();
    assert_eq!(details["type"], "PolicyDeniedError", "{details}");
    assert_eq!(details["details"]["plugin"], "guard", "{details}");

    // The same text to a provider without the validator goes through.
    let other = echo_ok(
        &hangar,
        "free__echo",
        json!({"text": "please rm -rf / now"}),
    )
    .await?;
    assert!(other.to_string().contains("rm -rf"), "{other}");

    let status = plugin_status(&hangar, "guard").await?;
    assert_eq!(status["loaded"], true, "{status}");
    assert_eq!(status["stats"]["calls"], 2, "{status}");
    assert_eq!(status["stats"]["denials"], 1, "{status}");
    assert_eq!(status["path"], "bundled:deny-patterns", "{status}");
    Ok(())
}

#[tokio::test]
async fn a_plugin_that_does_not_load_refuses_its_calls_and_spares_the_others() -> Result<()> {
    let dir = TestDir::new("plugin-broken");
    let token = unique_token("plugin-broken");
    dir.write("broken.wasm", "this is not WebAssembly\n");
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "plugins:\n  broken:\n    kind: validator\n    path: broken.wasm\n    on_error: fail_closed\nproviders:\n{}{}",
            provider_yaml("guarded", &token, &[], "validators: [broken]"),
            provider_yaml("free", &token, &[], ""),
        ),
    );

    // `check` names the file, the line and the plugin.
    let out = std::process::Command::new(hangar_bin())
        .args(["check", "--config"])
        .arg(&cfg)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check must fail: {stderr}");
    assert!(
        stderr.contains(&format!("{}:2:", cfg.display()))
            && stderr.contains("plugins.broken")
            && stderr.contains("not a WebAssembly component"),
        "{stderr}"
    );

    let hangar = Hangar::stdio(&cfg).await?;
    let refused = hangar.call("guarded__add", json!({"a": 1, "b": 2})).await?;
    assert_eq!(refused.is_error, Some(true));
    let message = text(&refused);
    assert!(
        message.contains("`broken`") && message.contains("not a WebAssembly component"),
        "{message}"
    );
    let sum = hangar.call_ok("free__add", json!({"a": 1, "b": 2})).await?;
    assert!(sum.to_string().contains('3'), "{sum}");
    let status = plugin_status(&hangar, "broken").await?;
    assert_eq!(status["loaded"], false, "{status}");
    Ok(())
}

#[tokio::test]
async fn a_changed_plugin_file_is_swapped_in_without_losing_a_call() -> Result<()> {
    let dir = TestDir::new("plugin-swap");
    let token = unique_token("plugin-swap");
    let wasm = dir.path().join("guard.wasm");
    std::fs::write(&wasm, "not yet built\n")?;
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "plugins:\n  guard:\n    kind: validator\n    path: guard.wasm\n    on_error: fail_closed\n    config: {{patterns: [forbidden]}}\nproviders:\n{}",
            provider_yaml("math", &token, &[], "validators: [guard]"),
        ),
    );
    let hangar = Hangar::stdio(&cfg).await?;
    let refused = hangar.call("math__echo", json!({"text": "hi"})).await?;
    assert_eq!(
        refused.is_error,
        Some(true),
        "no plugin yet: {}",
        text(&refused)
    );

    // The operator drops a good build in place: it is loaded without a restart.
    replace_file(&wasm, &deny_patterns_variant(1));
    let loaded = wait_for_version(&hangar, "guard", 1).await?;
    assert_eq!(loaded["last_error"], Value::Null, "{loaded}");
    echo_ok(&hangar, "math__echo", json!({"text": "hi"})).await?;
    let denied = hangar
        .call("math__echo", json!({"text": "forbidden"}))
        .await?;
    assert_eq!(denied.is_error, Some(true));

    // A broken build is refused; the version in service goes on.
    replace_file(&wasm, b"\0asm\x0d\0\x01\0garbage");
    let status = wait_for(&hangar, "guard", |s| !s["last_error"].is_null()).await?;
    assert_eq!(status["version"], 1, "{status}");
    echo_ok(&hangar, "math__echo", json!({"text": "still up"})).await?;

    // Swaps under load: four callers, three swaps; every call is answered by some version.
    let callers = (0..4).map(|c| {
        let hangar = &hangar;
        async move {
            let mut answered = 0;
            for i in 0..40 {
                let r = hangar
                    .call(
                        "math__echo",
                        json!({"text": format!("caller {c} call {i}")}),
                    )
                    .await?;
                if r.is_error == Some(true) {
                    bail!("call {i} of caller {c} failed during a swap: {}", text(&r));
                }
                answered += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok::<_, anyhow::Error>(answered)
        }
    });
    let swaps = async {
        for n in 2..=4u8 {
            replace_file(&wasm, &deny_patterns_variant(n));
            wait_for(&hangar, "guard", |s| {
                s["version"].as_u64().is_some_and(|v| v >= u64::from(n))
            })
            .await?;
        }
        Ok::<_, anyhow::Error>(())
    };
    let (answered, swapped) = tokio::join!(futures::future::join_all(callers), swaps);
    swapped?;
    for a in answered {
        assert_eq!(a?, 40);
    }
    let status = plugin_status(&hangar, "guard").await?;
    assert!(status["version"].as_u64() >= Some(2), "{status}");
    assert_eq!(status["last_error"], Value::Null, "{status}");
    Ok(())
}

async fn wait_for_version(hangar: &Hangar, name: &str, version: u64) -> Result<Value> {
    wait_for(hangar, name, |s| s["version"].as_u64() >= Some(version)).await
}

/// Polls `registry_plugins` until `name`'s status satisfies `check` (10 s at most).
async fn wait_for(hangar: &Hangar, name: &str, check: impl Fn(&Value) -> bool) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = plugin_status(hangar, name).await?;
        if check(&status) {
            return Ok(status);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("plugin `{name}` never reached the expected state: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_sticky_session_group_keeps_each_session_on_one_member() -> Result<()> {
    let dir = TestDir::new("plugin-sticky");
    let token = unique_token("plugin-sticky");
    let member = |id: &str| {
        format!(
            "      - id: {id}\n        command: [\"{}\", --name, \"{token}\"]\n",
            provider_bin().display()
        )
    };
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "plugins:\n  sticky:\n    kind: lb_policy\n    path: bundled:sticky-session\nproviders:\n  pool:\n    mode: group\n    strategy: plugin:sticky\n    members:\n{}{}{}",
            member("a"),
            member("b"),
            member("c"),
        ),
    );
    let hangar = HttpHangar::start(&cfg).await?;

    // Each session sees one pid over many calls; the sessions spread over the members.
    let mut by_session: Vec<(u32, _)> = Vec::new();
    for _ in 0..8 {
        let client = hangar.client().await?;
        let mut pids = HashSet::new();
        for _ in 0..6 {
            pids.insert(pid_of(&client).await?);
        }
        assert_eq!(pids.len(), 1, "one session, one member: {pids:?}");
        by_session.push((pids.into_iter().next().unwrap(), client));
    }
    let members: HashSet<u32> = by_session.iter().map(|(pid, _)| *pid).collect();
    assert!(
        members.len() >= 2,
        "8 sessions all hashed to one of 3 members: {members:?}"
    );

    // Its member's process killed, the session is still served (the member is restarted
    // on the call, or the call fails over) and settles on one process again; sessions on
    // the other members do not move.
    let (gone, moved_client) = &by_session[0];
    let gone = *gone;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gone as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let mut after = Vec::new();
    for _ in 0..6 {
        after.push(pid_of(moved_client).await?);
    }
    assert!(!after.contains(&gone), "{after:?}");
    assert!(
        after[1..].iter().all(|p| *p == after[1]),
        "the session settles on one member: {after:?}"
    );
    for (pid, client) in by_session.iter().skip(1).filter(|(pid, _)| *pid != gone) {
        assert_eq!(
            pid_of(client).await?,
            *pid,
            "a session on a healthy member moved"
        );
    }
    Ok(())
}

async fn pid_of(
    client: &rmcp::service::RunningService<rmcp::RoleClient, TestClient>,
) -> Result<u32> {
    let r = call(client, "pool__pid", json!({})).await?;
    if r.is_error == Some(true) {
        bail!("pool__pid failed: {}", text(&r));
    }
    text(&r)
        .trim()
        .parse()
        .map_err(|e| anyhow!("pid answer {:?}: {e}", text(&r)))
}

#[tokio::test]
async fn a_groups_validators_check_every_call_through_the_group() -> Result<()> {
    let dir = TestDir::new("plugin-group");
    let token = unique_token("plugin-group");
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "plugins:\n  guard:\n    kind: validator\n    path: bundled:deny-patterns\n    config: {{patterns: [\"rm -rf\"]}}\nproviders:\n{}  pool:\n    mode: group\n    validators: [guard]\n    members:\n      - id: math\n",
            provider_yaml("math", &token, &[], ""),
        ),
    );
    let hangar = Hangar::stdio(&cfg).await?;

    let clean = echo_ok(&hangar, "pool__echo", json!({"text": "ls"})).await?;
    assert_eq!(clean, "ls");
    let refused = hangar
        .call("pool__echo", json!({"text": "rm -rf /"}))
        .await?;
    assert_eq!(refused.is_error, Some(true), "{}", text(&refused));
    let details = refused.structured_content.clone().unwrap_or_default();
    assert_eq!(details["type"], "PolicyDeniedError", "{details}");
    assert_eq!(
        details["provider"], "pool",
        "refused as the group's: {details}"
    );
    // The member's own tools, called directly, are the member's business: no validator there.
    let direct = echo_ok(&hangar, "math__echo", json!({"text": "rm -rf /"})).await?;
    assert_eq!(direct, "rm -rf /");
    let d = hangar
        .call_ok("registry_details", json!({"provider": "math"}))
        .await?;
    assert_eq!(
        d["health"]["total_invocations"], 2,
        "the refused call never reached the member: {d}"
    );
    Ok(())
}

/// The plugin crates' own unit tests (label parsing, file formats, caches), built natively from
/// the `plugins/` workspace: the bundled plugins are built for wasm by `runtime/build.rs`, which
/// runs no tests, so without this they would never run.
#[test]
fn the_plugin_crates_unit_tests_pass() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = workspace_root().join("plugins/Cargo.toml");
    let out = std::process::Command::new(cargo)
        .args(["test", "--quiet", "--manifest-path"])
        .arg(&manifest)
        // Its own target directory: one shared with the running test would wait on its lock.
        .env("CARGO_TARGET_DIR", workspace_root().join("plugins/target"))
        .output()?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "cargo test of plugins/ failed:\n{report}"
    );
    let passed: usize = report
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(passed >= 40, "only {passed} plugin tests ran:\n{report}");
    Ok(())
}
