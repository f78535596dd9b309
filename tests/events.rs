//! The event store end to end, through the real binary: calls are recorded with the digest of
//! their arguments (never the values), `mcp-hangar events` shows them, and a hangar killed with
//! SIGKILL in the middle of a load leaves a sound file whose numbering a restart continues.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hangar_tests::{Hangar, data_home, default_event_db, hangar_bin, wait_until_async};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// `mcp-hangar events ARGS`: stdout, or the failure with stderr.
fn events(args: &[&str], config: &Path) -> Result<String> {
    let out = Command::new(hangar_bin())
        .arg("events")
        .args(args)
        .env("XDG_DATA_HOME", data_home(config))
        .env_remove("MCP_HANGAR_CONFIG")
        .output()?;
    if !out.status.success() {
        bail!(
            "mcp-hangar events {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn json_lines(text: &str) -> Result<Vec<Value>> {
    text.lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn count(db: &Path, sql: &str) -> Option<i64> {
    let conn = rusqlite::Connection::open(db).ok()?;
    conn.query_row(sql, [], |r| r.get(0)).ok()
}

async fn echo(hangar: &Hangar, text: &str) -> Result<()> {
    let r = hangar.call("math__echo", json!({ "text": text })).await?;
    if r.is_error == Some(true) {
        bail!("echo failed: {r:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_are_recorded_with_argument_digests_and_the_cli_shows_them() -> Result<()> {
    let (dir, hangar) = Hangar::one_provider("events-calls", &[], "").await?;
    let cfg = dir.path().join("h.yaml");
    let secret = "s3cr3t-value-in-arguments";
    echo(&hangar, secret).await?;
    echo(&hangar, secret).await?;
    let r = hangar
        .call("math__fail", json!({"message": "told to fail"}))
        .await?;
    assert_eq!(r.is_error, Some(true));

    // The store commits every 100 ms; the CLI reads the default store under XDG_DATA_HOME.
    let args = [
        "--json",
        "--provider",
        "math",
        "--type",
        "tool_invocation_*",
    ];
    let at = cfg.as_path();
    let calls = wait_until_async(Duration::from_secs(10), move || async move {
        let lines = json_lines(&events(&args, at).ok()?).ok()?;
        let completed = lines
            .iter()
            .filter(|e| e["type"] == "tool_invocation_completed")
            .count();
        (completed == 3).then_some(lines)
    })
    .await
    .with_context(|| {
        format!(
            "three completed calls were not recorded; log:\n{}",
            hangar.log()
        )
    })?;

    let digest = sha256_hex(serde_json::to_string(&json!({ "text": secret }))?.as_bytes());
    let requested: Vec<&Value> = calls
        .iter()
        .filter(|e| e["type"] == "tool_invocation_requested")
        .collect();
    assert_eq!(requested.len(), 3, "{calls:#?}");
    for e in &requested[..2] {
        assert_eq!(e["tool"], "echo");
        assert_eq!(e["arguments_sha256"], digest.as_str(), "{e}");
        assert!(e.get("arguments").is_none(), "values are not recorded: {e}");
    }
    let ids: Vec<i64> = calls.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let failed_tool = calls
        .iter()
        .find(|e| e["type"] == "tool_invocation_completed" && e["tool"] == "fail")
        .context("the failing tool's call")?;
    assert_eq!(failed_tool["is_error"], true);
    // Each call's events share its correlation id.
    let corr = &requested[0]["correlation_id"];
    assert!(corr.is_string());
    assert!(
        calls
            .iter()
            .any(|e| e["type"] == "tool_invocation_completed" && &e["correlation_id"] == corr)
    );

    // The values are nowhere in the files, the write-ahead log included.
    let db = default_event_db(&cfg);
    for file in [db.clone(), db.with_extension("db-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds an argument value",
            file.display()
        );
    }

    // Text output through the config, one line per event, with the lifecycle around the calls.
    let text = events(
        &["--config", &cfg.display().to_string(), "--limit", "0"],
        &cfg,
    )?;
    for expected in [
        "config_loaded",
        "state_changed",
        "provider_started",
        "tool_invocation_completed",
    ] {
        assert!(text.contains(expected), "no {expected} in:\n{text}");
    }
    let line = text
        .lines()
        .find(|l| l.contains("tool_invocation_requested"))
        .context("a requested line")?;
    assert!(line.contains(" math ") && line.contains(&digest), "{line}");
    let one = events(&["--limit", "1", "--type", "provider_started"], &cfg)?;
    assert_eq!(one.lines().count(), 1, "{one}");
    let future = events(&["--since", "2999-01-01T00:00:00Z"], &cfg)?;
    assert!(future.is_empty(), "{future}");

    // The hangar's stop is the last thing recorded.
    drop(hangar);
    let stopped = wait_until_async(Duration::from_secs(15), move || async move {
        let last = json_lines(&events(&["--json", "--limit", "1"], at).ok()?).ok()?;
        (last.first()?["type"] == "hangar_stopped").then_some(())
    })
    .await;
    assert!(stopped.is_some(), "hangar_stopped was not recorded last");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_mid_load_leaves_a_sound_store_and_a_restart_continues_the_numbering()
-> Result<()> {
    let (dir, hangar) = Hangar::one_provider("events-kill", &[], "").await?;
    let cfg = dir.path().join("h.yaml");
    let db = default_event_db(&cfg);
    let answered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let peer = hangar.client.peer().clone();
        let (answered, stop) = (answered.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let params = CallToolRequestParams::new("math__echo".to_string()).with_arguments(
                    json!({"text": "load"})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                );
                match peer.call_tool(params).await {
                    Ok(r) if r.is_error != Some(true) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => break,
                }
            }
        }));
    }
    let at = db.as_path();
    let loaded = wait_until_async(Duration::from_secs(20), move || async move {
        (count(at, "SELECT count(*) FROM events")? > 400).then_some(())
    })
    .await;
    assert!(loaded.is_some(), "no load recorded; log:\n{}", hangar.log());
    // Calls answered this long before the kill must all be on disk: the store commits every
    // 100 ms, so a SIGKILL loses at most the last batch.
    let answered_early = answered.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(400)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hangar.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    drop(hangar);

    let conn = rusqlite::Connection::open(&db)?;
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    assert_eq!(check, "ok");
    let completed: i64 = conn.query_row(
        "SELECT count(*) FROM events WHERE type = 'tool_invocation_completed'",
        [],
        |r| r.get(0),
    )?;
    assert!(
        completed as usize >= answered_early,
        "{completed} completed calls on disk, {answered_early} were answered 400 ms before the kill"
    );
    let before: i64 = conn.query_row("SELECT max(id) FROM events", [], |r| r.get(0))?;
    let stopped: i64 = conn.query_row(
        "SELECT count(*) FROM events WHERE type = 'hangar_stopped'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(stopped, 0, "a killed hangar records no stop");
    drop(conn);

    // A new hangar on the same store numbers on from where the killed one stopped.
    let hangar = Hangar::stdio(&cfg).await?;
    echo(&hangar, "after restart").await?;
    let after = wait_until_async(Duration::from_secs(10), move || async move {
        let conn = rusqlite::Connection::open(at).ok()?;
        let mut stmt = conn
            .prepare("SELECT id, type FROM events WHERE id > ?1 ORDER BY id")
            .ok()?;
        let rows: Vec<(i64, String)> = stmt
            .query_map([before], |r| Ok((r.get(0)?, r.get(1)?)))
            .ok()?
            .collect::<Result<_, _>>()
            .ok()?;
        rows.iter()
            .any(|(_, t)| t == "tool_invocation_completed")
            .then_some(rows)
    })
    .await
    .with_context(|| {
        format!(
            "the restarted hangar recorded no call; log:\n{}",
            hangar.log()
        )
    })?;
    assert_eq!(after[0].1, "config_loaded", "{after:?}");
    assert!(after[0].0 > before);
    let total: i64 = rusqlite::Connection::open(&db)?.query_row(
        "SELECT count(*) FROM events WHERE id <= ?1",
        [before],
        |r| r.get(0),
    )?;
    assert!(total > 0, "the killed hangar's events are still there");
    Ok(())
}
