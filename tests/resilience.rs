//! Chaos tests with real provider processes: health checks and DEGRADED, the circuit breaker's
//! open / half-open / closed cycle, restarts that really wait their backoff, failover and
//! failback in groups, limits, validation, retries and streamed progress — and no orphans.

use std::time::{Duration, Instant};

use anyhow::Result;
use hangar_tests::*;
use serde_json::{Value, json};

fn config(providers: &[String]) -> String {
    format!("providers:\n{}", providers.concat())
}

fn details_field(v: &Value, path: &[&str]) -> Value {
    path.iter().fold(v.clone(), |v, k| v[*k].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_provider_fails_its_health_checks_goes_degraded_and_is_restarted() -> Result<()> {
    let dir = TestDir::new("health");
    let token = unique_token("hung");
    let cfg = dir.write(
        "h.yaml",
        &config(&[provider_yaml(
            "math",
            &token,
            &[],
            "health_check_interval_s: 1\nmax_consecutive_failures: 2\nrecovery: {base_delay_s: 0.2, max_delay_s: 1, max_retries: 5}",
        )]),
    );
    let h = Hangar::stdio(&cfg).await?;
    let first = h
        .call_ok("registry_start", json!({"provider": "math"}))
        .await?;
    let pid = first["pid"].as_u64().unwrap_or(0) as i32;
    // Freeze the process: it stops answering pings but does not exit.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGSTOP,
    )?;
    let saw_degraded = std::sync::atomic::AtomicBool::new(false);
    let restarted = wait_until_async(Duration::from_secs(15), || async {
        let d = h
            .call_ok("registry_details", json!({"provider": "math"}))
            .await
            .ok()?;
        if d["state"] == "degraded" {
            saw_degraded.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let new_pid = d["pid"].as_u64().map(|p| p as i32);
        (d["state"] == "ready" && new_pid.is_some() && new_pid != Some(pid)).then_some(())
    })
    .await;
    let saw_degraded = saw_degraded.load(std::sync::atomic::Ordering::SeqCst);
    assert!(restarted.is_some(), "not restarted; log:\n{}", h.log());
    assert!(
        saw_degraded || h.log().contains("-> degraded"),
        "went through DEGRADED; log:\n{}",
        h.log()
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists(),
        "the frozen process was killed"
    );
    let r = h.call("math__add", json!({"a": 1, "b": 2})).await?;
    assert_eq!(r.structured_content, Some(json!({"result": 3})));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_breaker_opens_fails_fast_half_opens_and_closes() -> Result<()> {
    let dir = TestDir::new("breaker");
    let token = unique_token("brk");
    std::fs::write(dir.path().join("math.down"), "")?;
    let cfg = dir.write(
        "h.yaml",
        &config(&[flaky_provider_yaml(
            &dir,
            "math",
            &token,
            &[],
            "circuit_breaker: {failure_threshold: 2, reset_timeout_s: 1}\nrecovery: {max_retries: 0}",
        )]),
    );
    let h = Hangar::stdio(&cfg).await?;
    for _ in 0..2 {
        let r = h.call("math__add", json!({"a": 1, "b": 1})).await?;
        assert!(text(&r).contains("failed to start"), "{}", text(&r));
    }
    let opened = Instant::now();
    let r = h.call("math__add", json!({"a": 1, "b": 1})).await?;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("circuit breaker of provider `math` is open"),
        "{}",
        text(&r)
    );
    assert_eq!(
        start_times(&dir, "math").len(),
        2,
        "an open breaker fails fast without starting"
    );
    let d = h
        .call_ok("registry_details", json!({"provider": "math"}))
        .await?;
    assert_eq!(details_field(&d, &["circuit_breaker", "state"]), "open");

    // Half-open after the reset timeout: one probe goes through; it fails, the breaker re-opens.
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(opened.elapsed())).await;
    let r = h.call("math__add", json!({"a": 1, "b": 1})).await?;
    assert!(
        text(&r).contains("failed to start"),
        "the probe reached the provider: {}",
        text(&r)
    );
    assert_eq!(start_times(&dir, "math").len(), 3);
    let r = h.call("math__add", json!({"a": 1, "b": 1})).await?;
    assert!(
        text(&r).contains("is open"),
        "re-opened after the failed probe: {}",
        text(&r)
    );

    // The provider recovers; the next probe succeeds and closes the breaker.
    std::fs::remove_file(dir.path().join("math.down"))?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = h.call("math__add", json!({"a": 1, "b": 1})).await?;
    assert_eq!(
        r.structured_content,
        Some(json!({"result": 2})),
        "{}",
        text(&r)
    );
    let d = h
        .call_ok("registry_details", json!({"provider": "math"}))
        .await?;
    assert_eq!(details_field(&d, &["circuit_breaker", "state"]), "closed");
    assert!(
        h.log().contains("circuit breaker closed -> open"),
        "{}",
        h.log()
    );
    assert!(h.log().contains("half_open -> closed"), "{}", h.log());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_waits_an_exponential_backoff_then_gives_up_and_says_why() -> Result<()> {
    let dir = TestDir::new("backoff");
    let token = unique_token("bo");
    std::fs::write(dir.path().join("math.down"), "")?;
    let cfg = dir.write(
        "h.yaml",
        &config(&[flaky_provider_yaml(
            &dir,
            "math",
            &token,
            &[],
            "circuit_breaker: {failure_threshold: 100}\nrecovery: {base_delay_s: 0.3, max_delay_s: 1, max_retries: 3}",
        )]),
    );
    let h = Hangar::stdio(&cfg).await?;
    let r = h.call("math__add", json!({"a": 1, "b": 1})).await?;
    assert_eq!(r.is_error, Some(true));
    let gave_up = wait_until_async(Duration::from_secs(12), || async {
        let d = h
            .call_ok("registry_details", json!({"provider": "math"}))
            .await
            .ok()?;
        (!d["recovery"]["gave_up"].is_null()).then_some(d)
    })
    .await
    .expect("recovery gave up");
    let starts = start_times(&dir, "math");
    assert_eq!(
        starts.len(),
        4,
        "the call's start plus 3 restarts: {starts:?}"
    );
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // Each delay is base * 2^(n-1), plus up to as much again of jitter, capped at max_delay.
    for (n, (gap, floor)) in gaps.iter().zip([0.3, 0.6, 1.0]).enumerate() {
        assert!(
            *gap >= floor - 0.02,
            "attempt {} came after {gap:.3}s, before its {floor}s backoff",
            n + 1
        );
        assert!(
            *gap <= floor * 2.0 + 0.5,
            "attempt {} came after {gap:.3}s",
            n + 1
        );
    }
    assert_eq!(gave_up["state"], "dead");
    assert!(
        gave_up["recovery"]["gave_up"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("gave up after 3")),
        "{gave_up}"
    );
    assert!(gave_up["recovery"]["gave_up"]["since"].as_f64().is_some());

    // An explicit call resets the count and starts it again.
    std::fs::remove_file(dir.path().join("math.down"))?;
    let r = h.call("math__add", json!({"a": 2, "b": 2})).await?;
    assert_eq!(
        r.structured_content,
        Some(json!({"result": 4})),
        "{}",
        text(&r)
    );
    let d = h
        .call_ok("registry_details", json!({"provider": "math"}))
        .await?;
    assert!(d["recovery"]["gave_up"].is_null());
    assert_eq!(d["recovery"]["attempts"], 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_in_flight_when_the_process_dies_are_answered_at_once() -> Result<()> {
    let dir = TestDir::new("inflight");
    let token = unique_token("infl");
    let cfg = dir.write(
        "h.yaml",
        &config(&[provider_yaml(
            "math",
            &token,
            &[],
            "recovery: {max_retries: 0}",
        )]),
    );
    let h = Hangar::stdio(&cfg).await?;
    h.call_ok("registry_start", json!({"provider": "math"}))
        .await?;
    let started = Instant::now();
    let slow = (0..5).map(|_| h.call("math__sleep", json!({"ms": 20000})));
    let crash = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        h.call("math__crash", json!({})).await
    };
    let (slow, _) = tokio::join!(futures::future::join_all(slow), crash);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered in {:?}",
        started.elapsed()
    );
    for r in slow {
        let r = r?;
        assert_eq!(r.is_error, Some(true));
        assert!(text(&r).contains("provider `math` failed"), "{}", text(&r));
    }
    Ok(())
}

fn group_yaml(dir: &TestDir, token: &str, strategy: &str, extra: &str) -> String {
    let member = |id: &str, priority: u32| {
        let b = dir.path().join(id);
        let script = format!(
            "date +%s.%N >> '{b}.starts'; if [ -e '{b}.down' ]; then exit 3; fi; exec '{p}' --name {token}-{id}",
            b = b.display(),
            p = provider_bin().display(),
        );
        format!(
            "      - id: {id}\n        priority: {priority}\n        command: [sh, -c, {}]\n        health_check_interval_s: 1\n        recovery: {{base_delay_s: 0.2, max_delay_s: 0.5, max_retries: 50}}\n",
            serde_json::to_string(&script).unwrap_or_default()
        )
    };
    format!(
        "providers:\n  pool:\n    mode: group\n    strategy: {strategy}\n    min_healthy: 1\n    failback_delay_s: 1\n    health: {{unhealthy_threshold: 1, healthy_threshold: 1}}\n{extra}    members:\n{}{}",
        member("a", 1),
        member("b", 2)
    )
}

/// Which member answered: the example provider reports its name, `<token>-<member>`.
async fn served_by(h: &Hangar, token: &str) -> Result<String> {
    let r = h.call("pool__pid", json!({})).await?;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let pid: i32 = text(&r).trim().parse()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    for member in ["a", "b"] {
        if cmdline.contains(&format!("{token}-{member}\0")) {
            return Ok(member.into());
        }
    }
    anyhow::bail!("pid {pid} is no member: {cmdline:?}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_priority_group_fails_over_and_fails_back_after_the_delay() -> Result<()> {
    let dir = TestDir::new("failover");
    let token = unique_token("grp");
    let cfg = dir.write("h.yaml", &group_yaml(&dir, &token, "priority", ""));
    let h = Hangar::stdio(&cfg).await?;
    assert_eq!(served_by(&h, &token).await?, "a", "priority 1 first");
    assert_eq!(served_by(&h, &token).await?, "a");

    // `a` dies and cannot start again: the next call fails over to `b`.
    std::fs::write(dir.path().join("a.down"), "")?;
    let pid_a = h
        .call_ok("registry_details", json!({"provider": "a"}))
        .await?["pid"]
        .as_u64()
        .unwrap_or(0);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid_a as i32),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    assert!(
        wait_until(Duration::from_secs(5), || !std::path::Path::new(&format!(
            "/proc/{pid_a}/stat"
        ))
        .exists())
        .await
    );
    assert_eq!(served_by(&h, &token).await?, "b", "failed over");
    let groups = h.call_ok("registry_group_list", json!({})).await?;
    let a = &groups["groups"][0]["members"][0];
    assert_eq!(a["id"], "a");
    assert_eq!(a["in_rotation"], false, "{groups}");
    assert_eq!(groups["groups"][0]["state"], "partial", "{groups}");

    // `a` can start again: recovery brings it back, it rejoins, and after failback_delay_s the
    // group prefers it again.
    std::fs::remove_file(dir.path().join("a.down"))?;
    let rejoined = wait_until_async(Duration::from_secs(10), || async {
        let g = h.call_ok("registry_group_list", json!({})).await.ok()?;
        (g["groups"][0]["members"][0]["in_rotation"] == true).then_some(Instant::now())
    })
    .await
    .expect("a rejoined the rotation");
    let back = wait_until_async(Duration::from_secs(5), || async {
        (served_by(&h, &token).await.ok()? == "a").then_some(Instant::now())
    })
    .await
    .expect("failed back to a");
    assert!(
        back.duration_since(rejoined) >= Duration::from_millis(800),
        "failback honoured failback_delay_s: back after {:?}",
        back.duration_since(rejoined)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_round_robin_group_spreads_calls_over_its_members() -> Result<()> {
    let dir = TestDir::new("rr");
    let token = unique_token("rr");
    let cfg = dir.write("h.yaml", &group_yaml(&dir, &token, "round_robin", ""));
    let h = Hangar::stdio(&cfg).await?;
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(served_by(&h, &token).await?);
    }
    assert_eq!(seen.iter().filter(|s| *s == "a").count(), 3, "{seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "b").count(), 3, "{seen:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_beyond_the_queue_is_refused_and_rate_limits_say_when_to_retry() -> Result<()> {
    let dir = TestDir::new("limits");
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "rate_limit: {{rps: 1000, burst: 1000}}\n{}",
            config(&[
                provider_yaml(
                    "busy",
                    &unique_token("busy"),
                    &[],
                    "max_concurrency: 1\nmax_queue: 1"
                ),
                provider_yaml(
                    "slow",
                    &unique_token("rl"),
                    &[],
                    "rate_limit: {requests_per_second: 1, burst: 2}"
                ),
            ])
        ),
    );
    let h = Hangar::stdio(&cfg).await?;
    h.call_ok("registry_warm", json!({})).await?;
    let calls = (0..3).map(|_| h.call("busy__sleep", json!({"ms": 400})));
    let results = futures::future::join_all(calls).await;
    let refused: Vec<String> = results
        .into_iter()
        .map(|r| r.map(|r| text(&r)))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .filter(|t| t.contains("is busy"))
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "one running, one queued, one refused: {refused:?}"
    );
    assert!(
        refused[0].contains("1 call(s) running") && refused[0].contains("1 queued"),
        "{}",
        refused[0]
    );

    for _ in 0..2 {
        let r = h.call("slow__echo", json!({"text": "x"})).await?;
        assert_eq!(text(&r), "x");
    }
    let r = h.call("slow__echo", json!({"text": "x"})).await?;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("rate limit of provider `slow` exceeded; retry after"),
        "{}",
        text(&r)
    );
    let retry = r
        .structured_content
        .as_ref()
        .map(|s| s["details"]["retry_after_s"].clone());
    assert!(
        retry
            .and_then(|v| v.as_f64())
            .is_some_and(|s| s > 0.0 && s <= 1.0)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_groups_own_concurrency_and_rate_limits_bound_all_its_calls() -> Result<()> {
    let dir = TestDir::new("group-limits");
    let (ta, tb) = (unique_token("gl-a"), unique_token("gl-b"));
    // Two members, each free of limits: only the group's own can refuse a call.
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "{}  pool:\n    mode: group\n    max_concurrency: 1\n    max_queue: 0\n    members: [{{id: a}}, {{id: b}}]\n  paced:\n    mode: group\n    rate_limit: {{requests_per_second: 0.5, burst: 1}}\n    members: [{{id: a}}]\n",
            config(&[
                provider_yaml("a", &ta, &[], ""),
                provider_yaml("b", &tb, &[], ""),
            ])
        ),
    );
    let h = Hangar::stdio(&cfg).await?;
    h.call_ok("registry_warm", json!({})).await?;
    let calls = (0..2).map(|_| h.call("pool__sleep", json!({"ms": 500})));
    let texts: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.map(|r| text(&r)))
        .collect::<Result<_>>()?;
    let refused: Vec<&String> = texts.iter().filter(|t| t.contains("is busy")).collect();
    assert_eq!(
        refused.len(),
        1,
        "one call at a time through the group, though each member is free: {texts:?}"
    );
    assert!(
        refused[0].contains("provider `pool` is busy"),
        "{}",
        refused[0]
    );

    assert_eq!(
        text(&h.call("paced__echo", json!({"text": "x"})).await?),
        "x"
    );
    let r = h.call("paced__echo", json!({"text": "x"})).await?;
    assert_eq!(r.is_error, Some(true), "{}", text(&r));
    assert!(
        text(&r).contains("rate limit of group `paced` exceeded; retry after"),
        "{}",
        text(&r)
    );
    // The member itself is not limited.
    assert_eq!(text(&h.call("a__echo", json!({"text": "y"})).await?), "y");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn arguments_are_validated_before_the_provider_is_called() -> Result<()> {
    let dir = TestDir::new("validate");
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "limits: {{max_argument_bytes: 2000, max_argument_depth: 8}}\n{}",
            config(&[provider_yaml("math", &unique_token("val"), &[], "")])
        ),
    );
    let h = Hangar::stdio(&cfg).await?;
    let r = h.call("math__add", json!({"a": "one"})).await?;
    assert_eq!(r.is_error, Some(true));
    let msg = text(&r);
    assert!(
        msg.contains("/a") && msg.contains("\"b\" is a required property"),
        "every violation with its pointer: {msg}"
    );
    let r = h
        .call("math__echo", json!({"text": "x".repeat(3000)}))
        .await?;
    assert!(text(&r).contains("2000"), "size limit named: {}", text(&r));
    let mut deep = json!(1);
    for _ in 0..10 {
        deep = json!([deep]);
    }
    let r = h.call("math__echo", json!({"text": deep})).await?;
    assert!(text(&r).contains("depth"), "{}", text(&r));
    let d = h
        .call_ok("registry_details", json!({"provider": "math"}))
        .await?;
    assert_eq!(
        d["health"]["total_invocations"], 0,
        "none of these reached the provider"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn invoke_ex_retries_and_reports_what_it_did() -> Result<()> {
    let (_dir, h) = Hangar::one_provider("retry", &["--fail-every", "2"], "").await?;
    h.call_ok("math__add", json!({"a": 1, "b": 1})).await?; // call 1 succeeds; call 2 will fail
    let r = h
        .call_ok(
            "registry_invoke_ex",
            json!({"provider": "math", "tool": "add", "arguments": {"a": 2, "b": 3}, "retry_on_error": true, "correlation_id": "c-42"}),
        )
        .await?;
    assert_eq!(r["result"], 5);
    let meta = &r["_retry_metadata"];
    assert_eq!(meta["attempts"], 2, "{meta}");
    assert_eq!(meta["retries"], json!(["ToolError"]), "{meta}");
    assert_eq!(meta["correlation_id"], "c-42");
    assert!(meta["total_time_ms"].as_u64().is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn invoke_stream_reports_stages_and_relays_the_providers_progress() -> Result<()> {
    use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest};
    use rmcp::service::PeerRequestOptions;
    let (_dir, h) = Hangar::one_provider("stream", &[], "").await?;
    let args =
        json!({"provider": "math", "tool": "progress", "arguments": {"steps": 3, "delay_ms": 10}});
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(
        CallToolRequestParams::new("registry_invoke_stream")
            .with_arguments(args.as_object().cloned().unwrap_or_default()),
    ));
    let handle = h
        .client
        .peer()
        .send_request_with_option(request, PeerRequestOptions::no_options())
        .await?;
    let response = handle.await_response().await?;
    assert!(format!("{response:?}").contains("done 3"), "{response:?}");
    let seen = wait_until(Duration::from_secs(3), || {
        h.handler
            .progress
            .lock()
            // The provider's last progress and the answer travel separately; wait for both.
            .map(|p| {
                p.iter().any(|m| m == "done")
                    && p.iter()
                        .filter(|m| m.starts_with("provider progress"))
                        .count()
                        == 3
            })
            .unwrap_or(false)
    })
    .await;
    let progress = h
        .handler
        .progress
        .lock()
        .map(|p| p.clone())
        .unwrap_or_default();
    assert!(seen, "{progress:?}");
    assert!(
        progress.iter().any(|m| m.starts_with("starting provider")),
        "{progress:?}"
    );
    assert!(
        progress.iter().any(|m| m.starts_with("invoking")),
        "{progress:?}"
    );
    assert_eq!(
        progress
            .iter()
            .filter(|m| m.starts_with("provider progress"))
            .count(),
        3,
        "{progress:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_call_cancels_the_request_at_the_provider() -> Result<()> {
    let (_dir, h) = Hangar::one_provider("cancel", &[], "call_timeout_s: 0.3").await?;
    let started = Instant::now();
    let r = h.call("math__sleep", json!({"ms": 10000})).await?;
    assert!(
        started.elapsed() < Duration::from_millis(1300),
        "answered within timeout + 1 s"
    );
    assert!(text(&r).contains("timed out after 0.3s"), "{}", text(&r));
    assert!(
        wait_until(Duration::from_secs(3), || h
            .log()
            .contains("request cancelled by the client"))
        .await,
        "the provider saw notifications/cancelled; log:\n{}",
        h.log()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_to_a_misbehaving_group_is_answered_in_time_and_nothing_is_left_behind()
-> Result<()> {
    let dir = TestDir::new("chaos");
    let token = unique_token("chaos");
    let member = |id: &str, args: &[&str]| {
        let mut argv = vec![
            format!("\"{}\"", provider_bin().display()),
            "--name".into(),
            format!("\"{token}-{id}\""),
        ];
        argv.extend(args.iter().map(|a| format!("\"{a}\"")));
        format!(
            "      - id: {id}\n        command: [{}]\n        health_check_interval_s: 1\n        recovery: {{base_delay_s: 0.1, max_delay_s: 0.5, max_retries: 1000}}\n",
            argv.join(", ")
        )
    };
    let yaml = format!(
        "providers:\n  pool:\n    mode: group\n    strategy: round_robin\n    call_timeout_s: 2\n    circuit_breaker: {{failure_threshold: 1000}}\n    members:\n{}{}{}{}{}{}",
        member("steady", &[]),
        member("crashy", &["--crash-every", "3"]),
        member("flaky", &["--fail-every", "2"]),
        member("noisy", &["--garbage-stdout"]),
        member("broken", &["--exit-at-start", "1"]),
        member("hung", &["--hang-on-initialize"]),
    );
    let cfg = dir.write("h.yaml", &yaml);
    let h = Hangar::stdio(&cfg).await?;
    let h = &h;
    let mut answered = 0;
    let mut slowest = Duration::ZERO;
    for round in 0..10 {
        let calls = (0..10).map(|i| async move {
            let t = Instant::now();
            let r = h
                .call("pool__echo", json!({"text": format!("{round}-{i}")}))
                .await;
            (r, t.elapsed())
        });
        for (r, took) in futures::future::join_all(calls).await {
            r?; // a protocol-level error would be an unanswered call
            answered += 1;
            slowest = slowest.max(took);
        }
    }
    assert_eq!(answered, 100);
    assert!(
        slowest <= Duration::from_secs(3),
        "slowest call took {slowest:?} (timeout 2 s + 1 s)"
    );
    let pid = h.pid;
    sigterm(pid);
    assert!(
        wait_until(Duration::from_secs(10), || count_processes(&token) == 0).await,
        "left behind: {} processes; log:\n{}",
        count_processes(&token),
        h.log()
    );
    Ok(())
}
