//! Discovery end to end: the real binary with the bundled filesystem source reading a real
//! directory, real example providers started from what it finds.

use std::time::Duration;

use anyhow::{Result, bail};
use hangar_tests::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

/// A provider file in the filesystem source's format: the example provider with `--name token`,
/// and a predefined `pid` tool so it shows in tools/list before it starts.
fn provider_file(token: &str, extra: &str) -> String {
    format!(
        "connection:\n  command: [{:?}, --name, {token:?}]\n{extra}tools:\n  - {{name: pid, description: pid, inputSchema: {{type: object}}}}\n",
        provider_bin().display().to_string()
    )
}

fn hangar_config(dir: &TestDir, mode: &str, extra_top: &str, extra_discovery: &str) -> String {
    format!(
        "{extra_top}discovery:\n  refresh_interval_s: 3600\n  lifecycle: {{default_ttl_s: 0, check_interval_s: 1, drain_timeout_s: 2}}\n{extra_discovery}  sources:\n    - {{type: filesystem, mode: {mode}, path: {:?}}}\n",
        dir.path().join("providers.d").display().to_string()
    )
}

async fn discovered(h: &Hangar) -> Result<Value> {
    h.call_ok("registry_discovered", json!({})).await
}

fn registered_names(v: &Value) -> Vec<String> {
    v["registered"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect()
}

async fn wait_registered(h: &Hangar, name: &str, present: bool) -> Result<Value> {
    let found = wait_until_async(WAIT, || async {
        let v = discovered(h).await.ok()?;
        (registered_names(&v).iter().any(|n| n == name) == present).then_some(v)
    })
    .await;
    match found {
        Some(v) => Ok(v),
        None => bail!(
            "`{name}` registered={present} not reached in {WAIT:?}; log:\n{}",
            h.log()
        ),
    }
}

fn fingerprint(v: &Value, name: &str) -> String {
    v["registered"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == name)
        .and_then(|r| r["fingerprint"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn files_are_added_edited_and_deleted_while_the_hangar_runs() -> Result<()> {
    let dir = TestDir::new("disc-fs");
    let token = unique_token("disc-fs");
    std::fs::create_dir_all(dir.path().join("providers.d"))?;
    dir.write("providers.d/echo.yaml", &provider_file(&token, ""));
    dir.write(
        "providers.d/broken.yaml",
        "name: broken\nconnection:\n  comand: [x]\n",
    );
    let cfg = dir.write("h.yaml", &hangar_config(&dir, "authoritative", "", ""));
    let h = Hangar::stdio(&cfg).await?;

    // Added at start; the malformed file is reported with its line and does not stop the rest.
    let v = wait_registered(&h, "echo", true).await?;
    assert!(!registered_names(&v).contains(&"broken".to_string()));
    let sources = h.call_ok("registry_sources", json!({})).await?;
    let errors = sources["sources"][0]["errors"].to_string();
    assert!(errors.contains("broken.yaml:3:"), "{sources}");
    assert!(errors.contains("comand"), "{sources}");
    assert_eq!(sources["sources"][0]["mode"], "authoritative");
    assert_eq!(sources["sources"][0]["healthy"], true);
    assert!(h.tool_names().await?.contains(&"echo__pid".to_string()));
    // The source is visible to Prometheus too.
    let metrics = h
        .call_ok("registry_metrics", json!({"format": "prometheus"}))
        .await?;
    let exposition = metrics["metrics"].as_str().unwrap_or_default();
    for line in [
        "mcp_hangar_discovery_source_up{source=\"filesystem\",type=\"filesystem\",mode=\"authoritative\"} 1",
        "mcp_hangar_discovery_source_registered{source=\"filesystem\"} 1",
        "mcp_hangar_discovery_source_failures_total{source=\"filesystem\"} 0",
    ] {
        assert!(
            exposition.lines().any(|l| l == line),
            "no `{line}` in:\n{exposition}"
        );
    }
    let pid1 = text(&h.call("echo__pid", json!({})).await?);
    assert_eq!(count_processes(&token), 1);

    // A second file appears: the watcher triggers a cycle at once and the client hears of it.
    let before = h.list_changed_count();
    let token2 = unique_token("disc-fs2");
    dir.write("providers.d/second.yml", &provider_file(&token2, ""));
    wait_registered(&h, "second", true).await?;
    assert!(
        wait_until(WAIT, || h.list_changed_count() > before).await,
        "no tools/list_changed after a provider was discovered"
    );
    assert!(h.tool_names().await?.contains(&"second__pid".to_string()));

    // Edit: the fingerprint changes and the provider is restarted (another process).
    let fp1 = fingerprint(&discovered(&h).await?, "echo");
    dir.write(
        "providers.d/echo.yaml",
        &provider_file(&token, "description: edited\n"),
    );
    let changed = wait_until_async(WAIT, || async {
        let v = discovered(&h).await.ok()?;
        let fp = fingerprint(&v, "echo");
        (!fp.is_empty() && fp != fp1).then_some(())
    })
    .await;
    assert!(
        changed.is_some(),
        "fingerprint did not change; log:\n{}",
        h.log()
    );
    let pid2 = text(&h.call("echo__pid", json!({})).await?);
    assert_ne!(pid1, pid2, "an edited provider runs in a new process");
    assert!(
        wait_until(WAIT, || count_processes(&token) == 1).await,
        "the old process was stopped after draining"
    );

    // Delete (authoritative): removed, its process stopped.
    std::fs::remove_file(dir.path().join("providers.d/echo.yaml"))?;
    wait_registered(&h, "echo", false).await?;
    assert!(wait_until(WAIT, || count_processes(&token) == 0).await);
    let list = h.call_ok("registry_list", json!({})).await?;
    assert!(!list.to_string().contains("\"echo\""), "{list}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_additive_source_keeps_what_it_no_longer_reports() -> Result<()> {
    let dir = TestDir::new("disc-add");
    let token = unique_token("disc-add");
    std::fs::create_dir_all(dir.path().join("providers.d"))?;
    dir.write("providers.d/keep.yaml", &provider_file(&token, ""));
    let cfg = dir.write("h.yaml", &hangar_config(&dir, "additive", "", ""));
    let h = Hangar::stdio(&cfg).await?;
    wait_registered(&h, "keep", true).await?;
    std::fs::remove_file(dir.path().join("providers.d/keep.yaml"))?;
    let report = h.call_ok("registry_discover", json!({})).await?;
    assert_eq!(report["removed"], json!([]), "{report}");
    tokio::time::sleep(Duration::from_millis(1500)).await; // past the TTL check interval
    assert!(registered_names(&discovered(&h).await?).contains(&"keep".to_string()));
    let r = h.call("keep__pid", json!({})).await?;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn over_the_registration_rate_is_quarantined_until_approved() -> Result<()> {
    let dir = TestDir::new("disc-q");
    std::fs::create_dir_all(dir.path().join("providers.d"))?;
    dir.write(
        "providers.d/a.yaml",
        &provider_file(&unique_token("qa"), ""),
    );
    dir.write(
        "providers.d/b.yaml",
        &provider_file(&unique_token("qb"), ""),
    );
    let cfg = dir.write(
        "h.yaml",
        &hangar_config(
            &dir,
            "authoritative",
            "",
            "  security: {max_registration_rate: 1/hour}\n",
        ),
    );
    let h = Hangar::stdio(&cfg).await?;
    wait_registered(&h, "a", true).await?;
    let q = h.call_ok("registry_quarantine", json!({})).await?;
    let held = &q["quarantined"][0];
    assert_eq!(held["name"], "b", "{q}");
    assert_eq!(held["reason"], "failed_rate_limit", "{q}");
    assert!(
        held["detail"].as_str().unwrap_or("").contains("1/hour"),
        "{q}"
    );
    // Another cycle does not let it in by itself.
    h.call_ok("registry_discover", json!({})).await?;
    assert!(!registered_names(&discovered(&h).await?).contains(&"b".to_string()));

    let r = h
        .call_ok("registry_approve", json!({"provider": "b"}))
        .await?;
    assert_eq!(r["status"], "registered");
    wait_registered(&h, "b", true).await?;
    let r = h.call("b__pid", json!({})).await?;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let q = h.call_ok("registry_quarantine", json!({})).await?;
    assert_eq!(q["quarantined"], json!([]), "{q}");
    let r = h
        .call("registry_approve", json!({"provider": "nope"}))
        .await?;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("no held provider `nope`"), "{}", text(&r));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_provider_wins_a_conflict_and_a_bad_spec_is_quarantined() -> Result<()> {
    let dir = TestDir::new("disc-static");
    let static_token = unique_token("static");
    std::fs::create_dir_all(dir.path().join("providers.d"))?;
    dir.write(
        "providers.d/math.yaml",
        &provider_file(&unique_token("dyn"), ""),
    );
    dir.write(
        "providers.d/remote.yaml",
        "name: remote-bad\nmode: remote\nconnection: {command: [x]}\n",
    );
    let top = format!(
        "providers:\n{}",
        provider_yaml("math", &static_token, &[], "")
    );
    let cfg = dir.write("h.yaml", &hangar_config(&dir, "authoritative", &top, ""));
    let h = Hangar::stdio(&cfg).await?;
    let report = h.call_ok("registry_discover", json!({})).await?;
    assert!(
        report["errors"]
            .to_string()
            .contains("`math` is defined in the config file"),
        "{report}"
    );
    assert!(!registered_names(&discovered(&h).await?).contains(&"math".to_string()));
    h.call_ok("math__pid", json!({})).await.ok();
    assert_eq!(count_processes(&static_token), 1, "the static math serves");

    let q = h.call_ok("registry_quarantine", json!({})).await?;
    let held = &q["quarantined"][0];
    assert_eq!(held["name"], "remote-bad", "{q}");
    assert_eq!(held["reason"], "failed_schema", "{q}");
    // The same text a config file gets, located in the spec's own document.
    assert!(
        held["detail"]
            .as_str()
            .unwrap_or("")
            .contains("discovery:filesystem:remote-bad:"),
        "{q}"
    );
    let r = h
        .call("registry_approve", json!({"provider": "remote-bad"}))
        .await?;
    assert_eq!(r.is_error, Some(true), "an invalid spec cannot be approved");
    Ok(())
}
