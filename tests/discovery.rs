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

fn group_names(list: &Value) -> Vec<String> {
    list["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["group_id"].as_str().map(str::to_string))
        .collect()
}

/// The pids of `calls` calls of `tool` (each must succeed).
async fn pids(h: &Hangar, tool: &str, calls: usize) -> Result<std::collections::BTreeSet<String>> {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..calls {
        let r = h.call(tool, json!({})).await?;
        if r.is_error == Some(true) {
            bail!("{tool} failed: {}; log:\n{}", text(&r), h.log());
        }
        seen.insert(text(&r));
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn discovered_providers_naming_a_group_make_it_join_it_and_take_it_away() -> Result<()> {
    let dir = TestDir::new("disc-group");
    let (ta, tb, tc, ts) = (
        unique_token("grp-a"),
        unique_token("grp-b"),
        unique_token("grp-c"),
        unique_token("grp-s"),
    );
    std::fs::create_dir_all(dir.path().join("providers.d"))?;
    dir.write(
        "providers.d/pool-a.yaml",
        &provider_file(&ta, "group: pool\n"),
    );
    dir.write(
        "providers.d/pool-b.yaml",
        &provider_file(&tb, "group: pool\nweight: 2\n"),
    );
    // One more joins a group of the config file, next to its static member.
    dir.write(
        "providers.d/team-c.yaml",
        &provider_file(&tc, "group: team\n"),
    );
    let top = format!(
        "providers:\n  team:\n    mode: group\n    members:\n      - id: team-s\n        command: [{:?}, --name, {ts:?}]\n",
        provider_bin().display().to_string()
    );
    let cfg = dir.write("h.yaml", &hangar_config(&dir, "authoritative", &top, ""));
    let h = Hangar::stdio(&cfg).await?;
    for name in ["pool-a", "pool-b", "team-c"] {
        wait_registered(&h, name, true).await?;
    }

    // The group is offered; its members offer their tools only through it.
    let tools = h.tool_names().await?;
    assert!(tools.contains(&"pool__pid".to_string()), "{tools:?}");
    assert!(
        !tools.iter().any(|t| t.starts_with("pool-a__")),
        "{tools:?}"
    );
    let v = discovered(&h).await?;
    let b = v["registered"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "pool-b")
        .cloned()
        .unwrap_or_default();
    assert_eq!(b["group"], "pool", "{v}");
    assert_eq!(b["weight"], 2, "{v}");
    let sources = h.call_ok("registry_sources", json!({})).await?;
    assert_eq!(
        sources["sources"][0]["groups"]["pool"],
        json!(["pool-a", "pool-b"]),
        "{sources}"
    );
    let list = h.call_ok("registry_list", json!({})).await?;
    let pool = list["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["group_id"] == "pool")
        .cloned()
        .unwrap_or_default();
    assert_eq!(pool["source"], "discovery", "{list}");
    assert_eq!(pool["total_members"], 2, "{list}");
    assert_eq!(
        pool["strategy"], "round_robin",
        "the default strategy: {list}"
    );
    let details = h
        .call_ok("registry_details", json!({"provider": "pool-a"}))
        .await?;
    assert_eq!(details["group"], "pool", "{details}");
    assert_eq!(details["source"], "filesystem", "{details}");

    // Calls reach both members (round robin), each its own process.
    let both = pids(&h, "pool__pid", 6).await?;
    assert_eq!(both.len(), 2, "two members answered: {both:?}");
    assert_eq!(count_processes(&ta), 1);
    assert_eq!(count_processes(&tb), 1);
    // The config group has both its static and its discovered member.
    let team = h
        .call_ok("registry_details", json!({"provider": "team"}))
        .await?;
    let members: Vec<&str> = team["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(members, ["team-s", "team-c"], "{team}");
    assert_eq!(team["source"], "config", "{team}");
    assert_eq!(team["members"][1]["source"], "discovery", "{team}");
    // Group membership reaches the metrics.
    let metrics = h
        .call_ok("registry_metrics", json!({"format": "prometheus"}))
        .await?;
    let exposition = metrics["metrics"].as_str().unwrap_or_default();
    for line in [
        "mcp_hangar_group_members{group=\"pool\"} 2",
        "mcp_hangar_group_members{group=\"team\"} 2",
    ] {
        assert!(
            exposition.lines().any(|l| l == line),
            "no `{line}` in:\n{exposition}"
        );
    }

    // One file goes: the group keeps working with the other member; the one that left stops.
    let before = h.list_changed_count();
    std::fs::remove_file(dir.path().join("providers.d/pool-a.yaml"))?;
    std::fs::remove_file(dir.path().join("providers.d/team-c.yaml"))?;
    wait_registered(&h, "pool-a", false).await?;
    wait_registered(&h, "team-c", false).await?;
    let one = pids(&h, "pool__pid", 4).await?;
    assert_eq!(one.len(), 1, "one member left: {one:?}");
    assert!(
        wait_until(WAIT, || count_processes(&ta) == 0).await,
        "the member that left was stopped after draining"
    );
    assert_eq!(count_processes(&tb), 1);
    let team = h
        .call_ok("registry_details", json!({"provider": "team"}))
        .await?;
    assert_eq!(team["total_members"], 1, "the static member stays: {team}");
    assert_eq!(team["members"][0]["id"], "team-s", "{team}");

    // The last member goes: so does the group, and clients hear of it.
    std::fs::remove_file(dir.path().join("providers.d/pool-b.yaml"))?;
    wait_registered(&h, "pool-b", false).await?;
    let gone = wait_until_async(WAIT, || async {
        let tools = h.tool_names().await.ok()?;
        (!tools.iter().any(|t| t.starts_with("pool__"))).then_some(())
    })
    .await;
    assert!(gone.is_some(), "pool__pid still listed; log:\n{}", h.log());
    assert!(h.list_changed_count() > before, "no tools/list_changed");
    let list = h.call_ok("registry_list", json!({})).await?;
    assert_eq!(group_names(&list), ["team"], "{list}");
    assert!(wait_until(WAIT, || count_processes(&tb) == 0).await);
    match h.call("pool__pid", json!({})).await {
        Err(e) => assert!(e.to_string().contains("unknown tool `pool__pid`"), "{e}"),
        Ok(r) => panic!("the group's tool is gone, yet it answered: {}", text(&r)),
    }

    // The audit trail has the membership events, with the member or group as their subject.
    let db = default_event_db(&cfg);
    let recorded = |kind: &str, subject: &str| -> i64 {
        rusqlite::Connection::open(&db)
            .and_then(|c| {
                c.query_row(
                    "SELECT count(*) FROM events WHERE type = ?1 AND provider = ?2",
                    [kind, subject],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0)
    };
    for (kind, subject) in [
        ("group_created", "pool"),
        ("group_member_joined", "pool-a"),
        ("group_member_joined", "team-c"),
        ("group_member_left", "pool-a"),
        ("group_member_left", "team-c"),
        ("group_removed", "pool"),
    ] {
        assert!(
            wait_until(WAIT, || recorded(kind, subject) == 1).await,
            "no `{kind}` event for `{subject}` in {}",
            db.display()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_of_groups_and_providers_stay_apart() -> Result<()> {
    let dir = TestDir::new("disc-group-ids");
    std::fs::create_dir_all(dir.path().join("providers.d"))?;
    // A provider named like the config group, one whose group is the config provider, and
    // one whose weight is out of range.
    dir.write(
        "providers.d/team.yaml",
        &provider_file(&unique_token("gi-a"), ""),
    );
    dir.write(
        "providers.d/x.yaml",
        &provider_file(&unique_token("gi-b"), "group: math\n"),
    );
    dir.write(
        "providers.d/y.yaml",
        &provider_file(&unique_token("gi-c"), "group: pool\nweight: 500\n"),
    );
    let top = format!(
        "providers:\n{}  team:\n    mode: group\n    members:\n      - id: math\n",
        provider_yaml("math", &unique_token("gi-m"), &[], "")
    );
    let cfg = dir.write("h.yaml", &hangar_config(&dir, "authoritative", &top, ""));
    let h = Hangar::stdio(&cfg).await?;
    h.call_ok("registry_discover", json!({})).await?;
    let q = h.call_ok("registry_quarantine", json!({})).await?;
    let held = |name: &str| {
        q["quarantined"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(held("team")["reason"], "failed_source", "{q}");
    assert!(held("team")["detail"].to_string().contains("group"), "{q}");
    assert_eq!(held("x")["reason"], "failed_schema", "{q}");
    assert!(
        held("x")["detail"]
            .to_string()
            .contains("`math` is a provider"),
        "{q}"
    );
    assert_eq!(held("x")["group"], "math", "{q}");
    assert_eq!(held("y")["reason"], "failed_schema", "{q}");
    assert!(
        held("y")["detail"].to_string().contains("hangar.weight"),
        "{q}"
    );
    assert!(registered_names(&discovered(&h).await?).is_empty());
    Ok(())
}
