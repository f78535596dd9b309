//! The hangar over stdio with real example providers: lazy single-flight start, predefined tools,
//! idle collection, the registry tools, aggregated calls, list_changed, errors a person can act
//! on, and shutdown that leaves no process behind.

use std::time::{Duration, Instant};

use anyhow::Result;
use hangar_tests::*;
use serde_json::json;

fn config(providers: &[String]) -> String {
    format!("providers:\n{}", providers.concat())
}

const ADD_PREDEFINED: &str = r#"tools:
  - name: add
    description: Add two numbers (predefined)
    inputSchema: {type: object, properties: {a: {type: number}, b: {type: number}}, required: [a, b]}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_first_calls_start_exactly_one_process() -> Result<()> {
    let dir = TestDir::new("single-flight");
    let token = unique_token("sf");
    let cfg = dir.write("h.yaml", &config(&[provider_yaml("math", &token, &[], "")]));
    let h = Hangar::stdio(&cfg).await?;
    assert_eq!(
        count_processes(&token),
        0,
        "nothing starts before the first call"
    );

    let calls = (0..50).map(|_| h.call("math__pid", json!({})));
    let results = futures::future::join_all(calls).await;
    let mut pids = std::collections::BTreeSet::new();
    for r in results {
        let r = r?;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        pids.insert(text(&r));
    }
    assert_eq!(pids.len(), 1, "all 50 calls reached one process: {pids:?}");
    assert_eq!(count_processes(&token), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn predefined_tools_are_offered_before_start_and_replaced_by_the_live_list() -> Result<()> {
    let dir = TestDir::new("predefined");
    let token = unique_token("pre");
    let cfg = dir.write(
        "h.yaml",
        &config(&[provider_yaml("math", &token, &[], ADD_PREDEFINED)]),
    );
    let h = Hangar::stdio(&cfg).await?;

    let before = h.tool_names().await?;
    assert!(before.contains(&"math__add".to_string()), "{before:?}");
    assert!(
        !before.contains(&"math__echo".to_string()),
        "live tools are not known yet"
    );
    assert!(before.contains(&"registry_list".to_string()));
    let tools = h
        .call_ok("registry_tools", json!({"provider": "math"}))
        .await?;
    assert_eq!(tools["predefined"], true);
    assert_eq!(tools["state"], "cold");
    assert_eq!(
        count_processes(&token),
        0,
        "registry_tools with predefined tools does not start it"
    );

    let r = h.call("math__add", json!({"a": 2, "b": 3})).await?;
    assert_eq!(
        r.structured_content,
        Some(json!({"result": 5})),
        "{}",
        text(&r)
    );
    let after = h.tool_names().await?;
    for t in ["math__add", "math__echo", "math__sleep", "math__fail"] {
        assert!(after.contains(&t.to_string()), "{t} missing from {after:?}");
    }
    assert!(
        wait_until(Duration::from_secs(5), || h.list_changed_count() >= 1).await,
        "the client was told the tool list changed"
    );

    h.call_ok("registry_stop", json!({"provider": "math"}))
        .await?;
    let stopped = h.tool_names().await?;
    assert!(stopped.contains(&"math__add".to_string()));
    assert!(
        !stopped.contains(&"math__echo".to_string()),
        "predefined list restored on stop"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_provider_is_stopped_after_its_ttl() -> Result<()> {
    let dir = TestDir::new("idle");
    let token = unique_token("idle");
    let cfg = dir.write(
        "h.yaml",
        &config(&[provider_yaml("math", &token, &[], "idle_ttl_s: 1")]),
    );
    let h = Hangar::stdio(&cfg).await?;
    h.call_ok("math__add", json!({"a": 1, "b": 1})).await?;
    let used = Instant::now();
    assert_eq!(count_processes(&token), 1);
    assert!(
        wait_until(Duration::from_secs(5), || count_processes(&token) == 0).await,
        "idle provider still running; log:\n{}",
        h.log()
    );
    let after = used.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after <= Duration::from_millis(2600),
        "stopped {after:?} after last use with a 1 s TTL"
    );
    let list = h.call_ok("registry_list", json!({})).await?;
    assert_eq!(list["providers"][0]["state"], "cold");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_tools_manage_the_lifecycle() -> Result<()> {
    let dir = TestDir::new("registry");
    let t1 = unique_token("reg-a");
    let t2 = unique_token("reg-b");
    let cfg = dir.write(
        "h.yaml",
        &config(&[
            provider_yaml("math", &t1, &[], "description: arithmetic"),
            provider_yaml("text", &t2, &[], ""),
        ]),
    );
    let h = Hangar::stdio(&cfg).await?;

    let list = h.call_ok("registry_list", json!({})).await?;
    let providers = list["providers"].as_array().cloned().unwrap_or_default();
    assert_eq!(providers.len(), 2);
    assert_eq!(providers[0]["provider"], "math");
    assert_eq!(providers[0]["alive"], false);
    assert_eq!(providers[0]["state"], "cold");
    assert_eq!(providers[0]["mode"], "subprocess");
    assert_eq!(providers[0]["description"], "arithmetic");

    let started = h
        .call_ok("registry_start", json!({"provider": "math"}))
        .await?;
    assert_eq!(started["state"], "ready");
    assert!(
        started["tools"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("add")))
    );
    let ready = h
        .call_ok("registry_list", json!({"state_filter": "ready"}))
        .await?;
    assert_eq!(ready["providers"].as_array().map(Vec::len), Some(1));

    let invoked = h
        .call(
            "registry_invoke",
            json!({"provider": "math", "tool": "echo", "arguments": {"text": "hello"}}),
        )
        .await?;
    assert_eq!(text(&invoked), "hello");

    let details = h
        .call_ok("registry_details", json!({"provider": "math"}))
        .await?;
    assert_eq!(details["state"], "ready");
    assert!(details["pid"].as_u64().is_some());
    assert!(
        details["protocol_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("20"))
    );
    assert_eq!(details["health"]["total_invocations"], 1);

    let warm = h
        .call_ok("registry_warm", json!({"providers": "math, text"}))
        .await?;
    assert_eq!(warm["warmed"], json!(["text"]));
    assert_eq!(warm["already_warm"], json!(["math"]));
    assert_eq!(count_processes(&t2), 1);
    let many = (0..1001).map(|i| format!("p{i}")).collect::<Vec<_>>();
    let refused = h
        .call("registry_warm", json!({"providers": many.join(",")}))
        .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("at most 1000")),
        "{refused:?}"
    );
    // The bound counts distinct ids: a long list of repeats is two ids, none of them lost.
    let repeats = format!("{},text", vec!["math"; 1500].join(","));
    let warm = h
        .call_ok("registry_warm", json!({ "providers": repeats }))
        .await?;
    assert_eq!(warm["already_warm"], json!(["math", "text"]), "{warm}");

    let status = h.call_ok("registry_status", json!({})).await?;
    assert_eq!(status["summary"]["healthy_providers"], 2, "{status}");
    assert_eq!(status["summary"]["total_providers"], 2, "{status}");
    assert_eq!(status["providers"][0]["indicator"], "✅", "{status}");
    let health = h.call_ok("registry_health", json!({})).await?;
    assert_eq!(health["status"], "healthy");

    let stopped = h
        .call_ok("registry_stop", json!({"provider": "text"}))
        .await?;
    assert_eq!(stopped["stopped"], "text");
    assert!(wait_until(Duration::from_secs(5), || count_processes(&t2) == 0).await);
    assert_eq!(count_processes(&t1), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregated_names_follow_the_provider_or_its_tool_prefix() -> Result<()> {
    let dir = TestDir::new("prefix");
    let cfg = dir.write(
        "h.yaml",
        &config(&[
            provider_yaml("math", &unique_token("p1"), &[], ""),
            provider_yaml("other", &unique_token("p2"), &[], "tool_prefix: calc"),
            provider_yaml(
                "bare",
                &unique_token("p3"),
                &[],
                "tool_prefix: \"\"\ntools:\n  - name: ping_bare",
            ),
        ]),
    );
    let h = Hangar::stdio(&cfg).await?;
    h.call_ok("math__add", json!({"a": 1, "b": 2})).await?;
    let r = h.call("calc__add", json!({"a": 1, "b": 2})).await?;
    assert_eq!(r.structured_content, Some(json!({"result": 3})));
    let names = h.tool_names().await?;
    assert!(names.contains(&"math__add".to_string()));
    assert!(names.contains(&"calc__add".to_string()));
    assert!(!names.iter().any(|n| n.starts_with("other__")));
    assert!(
        names.contains(&"ping_bare".to_string()),
        "empty prefix: bare name"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_changing_its_tools_is_relayed_as_list_changed() -> Result<()> {
    let (_dir, h) = Hangar::one_provider("relay", &[], "").await?;
    h.call_ok("registry_start", json!({"provider": "math"}))
        .await?;
    assert!(wait_until(Duration::from_secs(5), || h.list_changed_count() >= 1).await);
    let before = h.list_changed_count();
    let r = h.call("math__add_tool", json!({"name": "fresh"})).await?;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert!(
        wait_until(Duration::from_secs(5), || h.list_changed_count() > before).await,
        "provider's list_changed relayed"
    );
    let names = h.tool_names().await?;
    assert!(names.contains(&"math__fresh".to_string()), "{names:?}");
    let r = h.call("math__fresh", json!({"x": 1})).await?;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_say_what_failed_and_what_to_do() -> Result<()> {
    let dir = TestDir::new("errors");
    let cfg = dir.write(
        "h.yaml",
        &config(&[
            provider_yaml("math", &unique_token("e1"), &[], ""),
            provider_yaml(
                "broken",
                &unique_token("e2"),
                &["--stderr-lines", "2", "--exit-at-start", "7"],
                "",
            ),
        ]),
    );
    let h = Hangar::stdio(&cfg).await?;

    let r = h
        .call("registry_invoke", json!({"provider": "mth", "tool": "add"}))
        .await?;
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("did you mean `math`"), "{}", text(&r));
    assert_eq!(
        r.structured_content.as_ref().map(|s| s["type"].clone()),
        Some(json!("ProviderNotFoundError"))
    );

    let r = h
        .call("registry_invoke", json!({"provider": "math", "tool": "ad"}))
        .await?;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("`add`"),
        "closest tool named: {}",
        text(&r)
    );

    let r = h
        .call(
            "registry_invoke",
            json!({"provider": "broken", "tool": "add"}),
        )
        .await?;
    assert_eq!(r.is_error, Some(true));
    let msg = text(&r);
    assert!(msg.contains("failed to start"), "{msg}");
    assert!(msg.contains("status 7"), "exit status in the error: {msg}");
    assert!(
        msg.contains("exiting at start with code 7"),
        "stderr tail in the error: {msg}"
    );
    let d = h
        .call_ok("registry_details", json!({"provider": "broken"}))
        .await?;
    assert_eq!(d["state"], "dead");

    let started = Instant::now();
    let r = h
        .call(
            "registry_invoke",
            json!({"provider": "math", "tool": "sleep", "arguments": {"ms": 5000}, "timeout": 0.5}),
        )
        .await?;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(r.is_error, Some(true));
    assert!(text(&r).contains("timed out after 0.5s"), "{}", text(&r));

    let r = h
        .call("math__fail", json!({"message": "tool says no"}))
        .await?;
    assert_eq!(
        r.is_error,
        Some(true),
        "the provider's own isError passes through"
    );
    assert_eq!(text(&r), "tool says no");

    let r = h.call("math__nope", json!({})).await?;
    assert_eq!(r.is_error, Some(true));
    assert!(
        text(&r).contains("tool `nope` not found on provider `math`"),
        "a provider-prefixed name reaches the provider, which lists its tools: {}",
        text(&r)
    );
    let err = h
        .call("nothing_here", json!({}))
        .await
        .expect_err("a name no provider claims is a protocol error");
    assert!(
        err.to_string().contains("unknown tool `nothing_here`"),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_provider_is_dead_with_its_exit_status_and_restarts_on_the_next_call()
-> Result<()> {
    let dir = TestDir::new("crash");
    let token = unique_token("crash");
    // Automatic recovery far off: this test sees the DEAD state, then the restart a call makes.
    let cfg = dir.write(
        "h.yaml",
        &config(&[provider_yaml(
            "math",
            &token,
            &[],
            "recovery: {base_delay_s: 60, max_delay_s: 60}",
        )]),
    );
    let h = Hangar::stdio(&cfg).await?;
    h.call_ok("math__add", json!({"a": 1, "b": 1})).await?;
    let r = h.call("math__crash", json!({"code": 9})).await?;
    assert_eq!(
        r.is_error,
        Some(true),
        "the in-flight call is answered with an error"
    );
    let ok = wait_until(Duration::from_secs(5), || count_processes(&token) == 0).await;
    assert!(ok, "crashed provider still counted; log:\n{}", h.log());
    let d = h
        .call_ok("registry_details", json!({"provider": "math"}))
        .await?;
    assert_eq!(d["state"], "dead");
    assert!(
        d["state_reason"]
            .as_str()
            .is_some_and(|r| r.contains("status 9")),
        "{d}"
    );
    let r = h.call("math__add", json!({"a": 2, "b": 2})).await?;
    assert_eq!(r.structured_content, Some(json!({"result": 4})));
    assert_eq!(count_processes(&token), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_eof_stops_every_provider() -> Result<()> {
    let dir = TestDir::new("eof");
    let token = unique_token("eof");
    let cfg = dir.write(
        "h.yaml",
        &config(&[
            provider_yaml("a", &token, &[], ""),
            provider_yaml("b", &token, &[], ""),
        ]),
    );
    let h = Hangar::stdio(&cfg).await?;
    h.call_ok("registry_warm", json!({})).await?;
    assert_eq!(count_processes(&token), 2);
    let pid = h.pid;
    let mut client = h.client;
    client.close().await?;
    assert!(
        wait_until(Duration::from_secs(10), || count_processes(&token) == 0
            && !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists())
        .await,
        "providers or hangar left running; log:\n{}",
        read_log(&h.log)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_every_provider_including_one_that_ignores_sigterm() -> Result<()> {
    let dir = TestDir::new("sigterm");
    let token = unique_token("term");
    let cfg = dir.write(
        "h.yaml",
        &config(&[
            provider_yaml("a", &token, &[], "shutdown_timeout_s: 2"),
            provider_yaml("b", &token, &["--stubborn"], "shutdown_timeout_s: 1"),
        ]),
    );
    let h = Hangar::stdio(&cfg).await?;
    h.call_ok("registry_warm", json!({})).await?;
    assert_eq!(count_processes(&token), 2);
    sigterm(h.pid);
    assert!(
        wait_until(Duration::from_secs(10), || count_processes(&token) == 0).await,
        "providers left running after SIGTERM; log:\n{}",
        h.log()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2026_client_gets_list_changed_on_its_subscription_and_paged_tools_are_all_listed()
-> Result<()> {
    use rmcp::model::{ProtocolVersion, ServerNotification, SubscriptionFilter};
    use rmcp::service::serve_client_with_lifecycle;
    use rmcp::{ClientLifecycleMode, transport::TokioChildProcess};

    let dir = TestDir::new("listen");
    // The provider pages its tools/list two at a time: the hangar must follow every cursor.
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "providers:\n{}",
            provider_yaml("math", &unique_token("listen"), &["--page-size", "2"], "")
        ),
    );
    let mut cmd = tokio::process::Command::new(hangar_bin());
    cmd.arg("serve")
        .arg("--config")
        .arg(&cfg)
        .env("XDG_DATA_HOME", hangar_tests::data_home(&cfg));
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let client = serve_client_with_lifecycle(
        TestClient::default(),
        transport,
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await?;
    let mut sub = client
        .peer()
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await?;
    let r = call(&client, "math__echo", json!({"text": "x"})).await?;
    assert_eq!(text(&r), "x");
    let note = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a notification within 5 s")?;
    assert!(
        matches!(
            note,
            Some(ServerNotification::ToolListChangedNotification(_))
        ),
        "{note:?}"
    );
    let tools = call(&client, "registry_tools", json!({"provider": "math"})).await?;
    let listed = tools
        .structured_content
        .as_ref()
        .and_then(|s| s["tools"].as_array().map(Vec::len));
    assert_eq!(listed, Some(10), "all pages of the provider's tools/list");
    Ok(())
}

/// A client that writes and reads raw JSON lines, to see exactly what the hangar answers on its
/// fast path for `tools/call`.
struct RawClient {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl RawClient {
    async fn start(config: &std::path::Path) -> Result<Self> {
        use tokio::io::AsyncBufReadExt;
        let log = std::fs::File::create(config.with_extension("log"))?;
        let mut child = tokio::process::Command::new(hangar_bin())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("XDG_DATA_HOME", hangar_tests::data_home(config))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut c = Self {
            child,
            stdin,
            lines,
        };
        c.send(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}),
        )
        .await?;
        let init = c.answer(&json!(0)).await?;
        assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");
        c.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(c)
    }

    async fn send(&mut self, msg: serde_json::Value) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut line = serde_json::to_vec(&msg)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        Ok(())
    }

    /// The next answer (notifications skipped), which must carry `id`.
    async fn answer(&mut self, id: &serde_json::Value) -> Result<serde_json::Value> {
        let got = self.next_answer(Duration::from_secs(10)).await?;
        let got = got.ok_or_else(|| anyhow::anyhow!("no answer to {id}"))?;
        assert_eq!(&got["id"], id, "answers in an unexpected order: {got}");
        Ok(got)
    }

    async fn next_answer(&mut self, wait: Duration) -> Result<Option<serde_json::Value>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Err(_) => return Ok(None),
                Ok(line) => line?.ok_or_else(|| anyhow::anyhow!("the hangar closed stdout"))?,
            };
            let msg: serde_json::Value = serde_json::from_str(&line)?;
            if msg.get("method").is_none() {
                return Ok(Some(msg));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fast_path_keeps_ids_answers_out_of_order_and_honours_cancellation() -> Result<()> {
    let dir = TestDir::new("fast-path");
    let token = unique_token("fast");
    let cfg = dir.write("h.yaml", &config(&[provider_yaml("math", &token, &[], "")]));
    let mut c = RawClient::start(&cfg).await?;

    // A string id and a number id come back exactly as sent, and the provider's result is
    // relayed as it is: no `resultType` for a handshake-era client.
    c.send(json!({"jsonrpc": "2.0", "id": "a-1", "method": "tools/call",
        "params": {"name": "math__echo", "arguments": {"text": "one"}, "_meta": {"progressToken": 9}}}))
        .await?;
    let one = c.answer(&json!("a-1")).await?;
    assert_eq!(one["result"]["content"][0]["text"], "one", "{one}");
    assert!(one["result"].get("resultType").is_none(), "{one}");

    // A slow call does not hold up a quick one behind it.
    c.send(json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
        "params": {"name": "math__sleep", "arguments": {"ms": 600}}}))
        .await?;
    c.send(json!({"jsonrpc": "2.0", "id": 11, "method": "tools/call",
        "params": {"name": "math__echo", "arguments": {"text": "quick"}}}))
        .await?;
    let quick = c.answer(&json!(11)).await?;
    assert_eq!(quick["result"]["content"][0]["text"], "quick", "{quick}");
    let slow = c.answer(&json!(10)).await?;
    assert_eq!(
        slow["result"]["content"][0]["text"], "slept 600 ms",
        "{slow}"
    );

    // Schema errors, tool errors and unknown names answer as on rmcp's path.
    c.send(json!({"jsonrpc": "2.0", "id": 12, "method": "tools/call",
        "params": {"name": "math__add", "arguments": {"a": "x", "b": 1}}}))
        .await?;
    let invalid = c.answer(&json!(12)).await?;
    assert_eq!(invalid["result"]["isError"], true, "{invalid}");
    c.send(json!({"jsonrpc": "2.0", "id": 13, "method": "tools/call",
        "params": {"name": "math__fail", "arguments": {"message": "own error"}}}))
        .await?;
    let failed = c.answer(&json!(13)).await?;
    assert_eq!(failed["result"]["isError"], true, "{failed}");
    assert_eq!(
        failed["result"]["content"][0]["text"], "own error",
        "{failed}"
    );
    c.send(json!({"jsonrpc": "2.0", "id": 14, "method": "tools/call",
        "params": {"name": "math__nope", "arguments": {}}}))
        .await?;
    let unknown = c.answer(&json!(14)).await?;
    assert_eq!(unknown["result"]["isError"], true, "{unknown}");
    assert!(
        unknown["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|m| m.contains("`nope` not found") && m.contains("`echo`")),
        "{unknown}"
    );

    // A cancelled call gets no answer, and the provider hears of the cancellation.
    c.send(
        json!({"jsonrpc": "2.0", "id": "long", "method": "tools/call",
        "params": {"name": "math__sleep", "arguments": {"ms": 5000}}}),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": "long", "reason": "changed my mind"}}),
    )
    .await?;
    c.send(json!({"jsonrpc": "2.0", "id": 15, "method": "tools/call",
        "params": {"name": "math__echo", "arguments": {"text": "after"}}}))
        .await?;
    let after = c.answer(&json!(15)).await?;
    assert_eq!(after["result"]["content"][0]["text"], "after", "{after}");
    let log = cfg.with_extension("log");
    assert!(
        wait_until(Duration::from_secs(5), || read_log(&log)
            .contains("request cancelled by the client"))
        .await,
        "the provider was not told; log:\n{}",
        read_log(&log)
    );
    let late = c.next_answer(Duration::from_millis(500)).await?;
    assert!(late.is_none(), "a cancelled call was answered: {late:?}");

    // The cancelled call gave its in-flight place back: nothing holds the provider busy, so
    // it can still go idle.
    c.send(json!({"jsonrpc": "2.0", "id": 16, "method": "tools/call",
        "params": {"name": "registry_details", "arguments": {"provider": "math"}}}))
        .await?;
    let details = c.answer(&json!(16)).await?;
    let details = &details["result"]["structuredContent"];
    assert_eq!(details["health"]["in_flight"], 0, "{details}");

    c.child.start_kill()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_calls_in_flight_finish_then_stops_providers() -> Result<()> {
    let dir = TestDir::new("drain");
    let token = unique_token("drain");
    let cfg = dir.write("h.yaml", &config(&[provider_yaml("math", &token, &[], "")]));
    let mut c = RawClient::start(&cfg).await?;
    c.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "math__sleep", "arguments": {"ms": 1500}}}))
        .await?;
    assert!(
        wait_until(Duration::from_secs(10), || count_processes(&token) == 1).await,
        "the provider did not start"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(c.child.id().expect("running"));
    let answer = c.answer(&json!(1)).await?;
    assert_eq!(
        answer["result"]["content"][0]["text"], "slept 1500 ms",
        "the call in flight was not let finish: {answer}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || count_processes(&token) == 0).await,
        "providers left running after SIGTERM; log:\n{}",
        read_log(&cfg.with_extension("log"))
    );
    let status = tokio::time::timeout(Duration::from_secs(10), c.child.wait()).await??;
    assert!(status.success(), "{status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_waits_for_a_call_whose_provider_is_still_starting() -> Result<()> {
    let dir = TestDir::new("drain-start");
    let token = unique_token("drain-start");
    // Starts slowly: the call is not at the provider yet (nothing in flight there) when the
    // signal comes, but it is under way and must be answered.
    let script = format!(
        "sleep 1; exec '{}' --name {token}",
        provider_bin().display()
    );
    let cfg = dir.write(
        "h.yaml",
        &config(&[sh_provider_yaml("math", &script, "math")]),
    );
    let mut c = RawClient::start(&cfg).await?;
    c.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "math__echo", "arguments": {"text": "answered"}}}))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(c.child.id().expect("running"));
    let answer = c.answer(&json!(1)).await?;
    assert_eq!(
        answer["result"]["content"][0]["text"],
        "answered",
        "the call under way was not let finish: {answer}\nlog:\n{}",
        read_log(&cfg.with_extension("log"))
    );
    let status = tokio::time::timeout(Duration::from_secs(15), c.child.wait()).await??;
    assert!(status.success(), "{status}");
    assert!(
        wait_until(Duration::from_secs(10), || count_processes(&token) == 0).await,
        "providers left running after SIGTERM"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_line_is_dropped_and_the_session_goes_on() -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let dir = TestDir::new("oversized");
    let token = unique_token("big");
    let cfg = dir.write("h.yaml", &config(&[provider_yaml("math", &token, &[], "")]));
    let mut c = RawClient::start(&cfg).await?;
    // Over the 16 MiB line limit, in pieces, as a client streaming a huge argument would.
    let head = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"math__echo","arguments":{"text":""#;
    c.stdin.write_all(head).await?;
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..17 {
        c.stdin.write_all(&chunk).await?;
    }
    c.stdin.write_all(b"\"}}}\n").await?;
    c.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "math__echo", "arguments": {"text": "small"}}}))
        .await?;
    let next = c.answer(&json!(2)).await?;
    assert_eq!(next["result"]["content"][0]["text"], "small", "{next}");
    let log = read_log(&cfg.with_extension("log"));
    assert!(log.contains("exceeded the maximum line length"), "{log}");
    c.child.start_kill()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_sees_a_base_environment_and_its_own_env_unless_it_inherits_all() -> Result<()> {
    let dir = TestDir::new("env");
    let token = unique_token("env");
    let cfg = dir.write(
        "h.yaml",
        &config(&[
            provider_yaml("plain", &token, &[], "env: {OWN_SETTING: mine}"),
            provider_yaml("inherits", &token, &[], "inherit_env: true"),
        ]),
    );
    let h =
        Hangar::stdio_with_env(&cfg, &[("HANGAR_TEST_CREDENTIAL", "not-for-providers")]).await?;
    let env = |provider: &str, name: &str| {
        let h = &h;
        let tool = format!("{provider}__env");
        let name = name.to_owned();
        async move { h.call(&tool, json!({ "name": name })).await }
    };
    let hidden = env("plain", "HANGAR_TEST_CREDENTIAL").await?;
    assert_eq!(hidden.is_error, Some(true), "{hidden:?}");
    assert!(text(&hidden).contains("is not set"), "{hidden:?}");
    let own = env("plain", "OWN_SETTING").await?;
    assert_eq!(text(&own), "mine");
    let path = env("plain", "PATH").await?;
    assert_ne!(
        path.is_error,
        Some(true),
        "PATH is part of the base environment: {path:?}"
    );
    let inherited = env("inherits", "HANGAR_TEST_CREDENTIAL").await?;
    assert_eq!(text(&inherited), "not-for-providers");
    Ok(())
}

/// The text and structured error of a refused call.
fn refusal(r: &rmcp::model::CallToolResult) -> (String, serde_json::Value) {
    assert_eq!(r.is_error, Some(true), "expected a refusal: {}", text(r));
    (text(r), r.structured_content.clone().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tools_policy_hides_tools_from_every_list_and_refuses_their_calls_on_every_path()
-> Result<()> {
    let dir = TestDir::new("tools-policy");
    let (t1, t2) = (unique_token("deny"), unique_token("allow"));
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "{}  pool:\n    mode: group\n    members:\n      - id: math\n        tools: {{deny_list: [add]}}\n",
            config(&[
                provider_yaml("math", &t1, &[], "tools: {deny_list: [\"fai*\", crash]}"),
                provider_yaml("text", &t2, &[], "tools: {allow_list: [echo]}"),
            ])
        ),
    );
    let h = Hangar::stdio(&cfg).await?;

    // A hidden tool is refused on the config alone: the provider is not even started for it.
    let (message, error) = refusal(&h.call("text__pid", json!({})).await?);
    assert!(
        message.starts_with(
            "tool `pid` of provider `text` is not exposed (matched by no tools.allow_list pattern: `echo`)"
        ),
        "{message}"
    );
    assert_eq!(error["type"], "ToolAccessDeniedError", "{error}");
    assert_eq!(count_processes(&t2), 0, "started for a hidden tool");

    // Lists: tools/list, registry_tools, registry_list's count and registry_details agree.
    h.call_ok("registry_start", json!({"provider": "math"}))
        .await?;
    let names = h.tool_names().await?;
    assert!(names.contains(&"math__add".to_string()), "{names:?}");
    for hidden in ["math__fail", "math__crash", "pool__fail", "pool__add"] {
        assert!(
            !names.contains(&hidden.to_string()),
            "{hidden} offered: {names:?}"
        );
    }
    assert!(names.contains(&"pool__echo".to_string()), "{names:?}");
    let tools = h
        .call_ok("registry_tools", json!({"provider": "math"}))
        .await?;
    let tool_names: Vec<&str> = tools["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        tool_names.contains(&"echo") && !tool_names.contains(&"fail"),
        "{tools}"
    );
    let list = h.call_ok("registry_list", json!({})).await?;
    assert_eq!(list["providers"][0]["provider"], "math", "{list}");
    assert_eq!(
        list["providers"][0]["tools_count"],
        tool_names.len(),
        "{list}"
    );
    let details = h
        .call_ok("registry_details", json!({"provider": "math"}))
        .await?;
    assert_eq!(
        details["tools"].as_array().map(Vec::len),
        Some(tool_names.len())
    );
    let pool_tools = h
        .call_ok("registry_tools", json!({"provider": "pool"}))
        .await?;
    assert_eq!(pool_tools["group"], true, "{pool_tools}");
    assert!(
        !pool_tools["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "add")),
        "{pool_tools}"
    );

    // Calls: the aggregated name, registry_invoke, and the group all refuse, naming the pattern.
    let (message, _) = refusal(&h.call("math__fail", json!({"message": "x"})).await?);
    assert!(
        message.contains("denied by tools.deny_list pattern `fai*`"),
        "{message}"
    );
    let (message, error) = refusal(
        &h.call(
            "registry_invoke",
            json!({"provider": "math", "tool": "crash", "arguments": {}}),
        )
        .await?,
    );
    assert!(message.contains("pattern `crash`"), "{message}");
    assert_eq!(error["details"]["tool"], "crash", "{error}");
    let (message, _) = refusal(&h.call("pool__add", json!({"a": 1, "b": 2})).await?);
    assert!(
        message.contains("provider `pool`")
            && message.contains("`math`: denied by tools.deny_list pattern `add`"),
        "{message}"
    );
    let echoed = h
        .call("pool__echo", json!({"text": "through the group"}))
        .await?;
    assert_eq!(text(&echoed), "through the group");
    assert_eq!(
        count_processes(&t1),
        1,
        "the refused calls left the provider alone"
    );
    let d = h
        .call_ok("registry_details", json!({"provider": "math"}))
        .await?;
    assert_eq!(
        d["health"]["total_invocations"], 1,
        "only the group's echo reached it"
    );
    drop(h);

    // The stdio fast path: a raw handshake-era client gets the same refusal.
    let mut c = RawClient::start(&cfg).await?;
    c.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "math__fail", "arguments": {"message": "x"}}}))
        .await?;
    let answer = c.answer(&json!(1)).await?;
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(
        answer["result"]["content"][0]["text"].as_str().is_some_and(
            |m| m.contains("is not exposed (denied by tools.deny_list pattern `fai*`)")
        ),
        "{answer}"
    );
    c.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "math__echo", "arguments": {"text": "offered"}}}))
        .await?;
    let answer = c.answer(&json!(2)).await?;
    assert_eq!(
        answer["result"]["content"][0]["text"], "offered",
        "{answer}"
    );
    c.child.start_kill()?;
    Ok(())
}

/// Every key the original mcp-hangar 0.1.x put in a management result, by tool.
#[tokio::test(flavor = "multi_thread")]
async fn management_results_carry_every_field_of_the_original() -> Result<()> {
    let dir = TestDir::new("original-fields");
    let (t1, t2) = (unique_token("of-a"), unique_token("of-b"));
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "{}  pool:\n    mode: group\n    description: two of them\n    members:\n      - id: math\n      - id: text\n",
            config(&[
                provider_yaml("math", &t1, &[], "description: arithmetic"),
                provider_yaml("text", &t2, &[], ""),
            ])
        ),
    );
    let h = Hangar::stdio(&cfg).await?;
    let has = |v: &serde_json::Value, keys: &[&str], what: &str| {
        for k in keys {
            assert!(v.get(*k).is_some(), "{what} lacks `{k}`: {v}");
        }
    };

    let start = h
        .call_ok("registry_start", json!({"provider": "math"}))
        .await?;
    has(&start, &["provider", "state", "tools"], "registry_start");
    let list = h.call_ok("registry_list", json!({})).await?;
    has(&list, &["providers", "groups"], "registry_list");
    let math = &list["providers"][0];
    has(
        math,
        &[
            "provider",
            "state",
            "mode",
            "alive",
            "tools_count",
            "health_status",
            "tools_predefined",
            "description",
        ],
        "registry_list provider",
    );
    assert_eq!(
        (&math["provider"], &math["alive"], &math["health_status"]),
        (&json!("math"), &json!(true), &json!("healthy"))
    );
    let group = &list["groups"][0];
    has(
        group,
        &[
            "group_id",
            "description",
            "state",
            "strategy",
            "min_healthy",
            "healthy_count",
            "total_members",
            "is_available",
            "circuit_open",
            "members",
        ],
        "registry_list group",
    );
    has(
        &group["members"][0],
        &[
            "id",
            "state",
            "in_rotation",
            "weight",
            "priority",
            "consecutive_failures",
        ],
        "group member",
    );
    assert_eq!(group["total_members"], 2);

    let details = h
        .call_ok("registry_details", json!({"provider": "math"}))
        .await?;
    has(
        &details,
        &[
            "provider",
            "state",
            "mode",
            "alive",
            "tools",
            "health",
            "idle_time",
            "meta",
        ],
        "registry_details",
    );
    has(
        &details["health"],
        &[
            "consecutive_failures",
            "total_invocations",
            "total_failures",
            "success_rate",
            "can_retry",
            "last_success_ago",
            "last_failure_ago",
        ],
        "registry_details health",
    );
    has(
        &details["tools"][0],
        &["name", "description", "inputSchema"],
        "a tool",
    );
    has(
        &details["meta"],
        &["init_result", "tools_count", "started_at"],
        "meta",
    );
    let tools = h
        .call_ok("registry_tools", json!({"provider": "math"}))
        .await?;
    has(
        &tools,
        &["provider", "state", "predefined", "tools"],
        "registry_tools",
    );
    let group_tools = h
        .call_ok("registry_tools", json!({"provider": "pool"}))
        .await?;
    has(
        &group_tools,
        &["provider", "group", "tools"],
        "registry_tools of a group",
    );

    let status = h.call_ok("registry_status", json!({})).await?;
    has(
        &status,
        &["providers", "groups", "summary", "formatted"],
        "registry_status",
    );
    has(
        &status["providers"][0],
        &["id", "indicator", "state", "mode"],
        "status provider",
    );
    has(
        &status["groups"][0],
        &[
            "id",
            "indicator",
            "state",
            "healthy_members",
            "total_members",
        ],
        "status group",
    );
    has(
        &status["summary"],
        &[
            "healthy_providers",
            "total_providers",
            "uptime",
            "uptime_seconds",
        ],
        "status summary",
    );
    assert_eq!(
        status["providers"][1]["note"], "Will start on first request",
        "{status}"
    );

    let health = h.call_ok("registry_health", json!({})).await?;
    has(
        &health,
        &["status", "providers", "groups", "security"],
        "registry_health",
    );
    has(
        &health["providers"],
        &["total", "by_state"],
        "health providers",
    );
    has(
        &health["groups"],
        &["total", "by_state", "total_members", "healthy_members"],
        "health groups",
    );
    has(
        &health["security"]["rate_limiting"],
        &["active_buckets", "config"],
        "rate_limiting",
    );
    assert_eq!(health["providers"]["by_state"]["ready"], 1, "{health}");

    let warm = h
        .call_ok("registry_warm", json!({"providers": "math,nobody"}))
        .await?;
    has(
        &warm,
        &["warmed", "already_warm", "failed", "summary"],
        "registry_warm",
    );
    assert_eq!(warm["failed"][0]["id"], "nobody", "{warm}");
    assert!(warm["failed"][0]["error"].is_string(), "{warm}");

    let groups = h.call_ok("registry_group_list", json!({})).await?;
    has(
        &groups["groups"][0],
        &["group_id", "healthy_count", "is_available"],
        "group_list",
    );
    let rebalanced = h
        .call_ok("registry_group_rebalance", json!({"group": "pool"}))
        .await?;
    has(
        &rebalanced,
        &[
            "group_id",
            "state",
            "healthy_count",
            "total_members",
            "members_in_rotation",
        ],
        "registry_group_rebalance",
    );
    let group_start = h
        .call_ok("registry_start", json!({"provider": "pool"}))
        .await?;
    has(
        &group_start,
        &[
            "group",
            "state",
            "members_started",
            "healthy_count",
            "total_members",
        ],
        "registry_start of a group",
    );
    assert_eq!(group_start["members_started"], 2, "{group_start}");

    let invoked = h
        .call_ok(
            "registry_invoke_ex",
            json!({"provider": "math", "tool": "add", "arguments": {"a": 1, "b": 2}}),
        )
        .await?;
    has(
        &invoked["_retry_metadata"],
        &["correlation_id", "attempts", "total_time_ms", "retries"],
        "_retry_metadata",
    );
    let failed = h
        .call(
            "registry_invoke_ex",
            json!({"provider": "math", "tool": "nope", "max_retries": 0}),
        )
        .await?;
    let meta = &failed.structured_content.clone().unwrap_or_default()["_retry_metadata"];
    assert_eq!(
        meta["final_error_reason"], "permanent: ToolNotFoundError",
        "{meta}"
    );
    assert!(
        meta["recovery_hints"]
            .as_array()
            .is_some_and(|h| !h.is_empty()),
        "{meta}"
    );

    let stopped = h
        .call_ok("registry_stop", json!({"provider": "math"}))
        .await?;
    has(&stopped, &["stopped", "reason"], "registry_stop");
    assert_eq!(stopped["reason"], "user_request");
    let group_stopped = h
        .call_ok("registry_stop", json!({"provider": "pool"}))
        .await?;
    has(
        &group_stopped,
        &["group", "state", "stopped"],
        "registry_stop of a group",
    );
    assert_eq!(group_stopped["stopped"], true);
    Ok(())
}

/// The most memory the process `pid` has held so far (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/{pid}/status"))
}

/// A provider entry that runs `script` with `sh -c` (one argument after it, `$0`).
fn sh_provider_yaml(id: &str, script: &str, arg: &str) -> String {
    format!(
        "  {id}:\n    command: [sh, -c, {}, {}]\n",
        serde_json::to_string(script).unwrap_or_default(),
        serde_json::to_string(arg).unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_stderr_line_neither_grows_the_hangar_nor_stops_it() -> Result<()> {
    const LINE_MIB: u64 = 96;
    let dir = TestDir::new("endless-stderr");
    let token = unique_token("endless");
    // 96 MiB of stderr without a newline, then the provider fails its start.
    let script = format!(
        "head -c {} /dev/zero | tr '\\0' x >&2; exit 3",
        LINE_MIB * 1024 * 1024
    );
    let cfg = dir.write(
        "h.yaml",
        &config(&[
            sh_provider_yaml("noisy", &script, "noisy"),
            provider_yaml("math", &token, &[], ""),
        ]),
    );
    let h = Hangar::stdio(&cfg).await?;
    let before = peak_rss_kib(h.pid)?;
    let r = h
        .call("registry_start", json!({"provider": "noisy"}))
        .await?;
    assert_eq!(r.is_error, Some(true), "{}", text(&r));
    let d = h
        .call_ok("registry_details", json!({"provider": "noisy"}))
        .await?;
    let tail = d["last_error"]["stderr_tail"].clone();
    let lines: Vec<&str> = tail
        .as_array()
        .map(|a| a.iter().filter_map(|l| l.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(lines.len(), 1, "{d}");
    assert!(
        lines[0].len() <= 4096 + 64 && lines[0].ends_with("[line cut at 4096 bytes]"),
        "the stored line is cut and says so ({} bytes): …{}",
        lines[0].len(),
        &lines[0][lines[0].len().saturating_sub(40)..]
    );
    let after = peak_rss_kib(h.pid)?;
    assert!(
        after < before + LINE_MIB * 1024 / 4,
        "the hangar's peak memory grew from {before} KiB to {after} KiB reading a \
         {LINE_MIB} MiB stderr line"
    );
    let r = h.call("math__echo", json!({"text": "still here"})).await?;
    assert_eq!(text(&r), "still here", "the hangar keeps serving");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_in_the_command_stays_out_of_start_errors_and_the_log() -> Result<()> {
    let dir = TestDir::new("secret-start");
    let secret = "tok-5f3a9c1e77b2";
    // The token is written into a longer argument and printed on its own; `$$` is a literal
    // `$` for the hangar's interpolation.
    let script = "echo \"login refused for token $${0#--token=} (argument $0)\" >&2; exit 3";
    let cfg = dir.write(
        "h.yaml",
        &config(&[sh_provider_yaml("leaky", script, "--token=${SOME_TOKEN}")]),
    );
    let h = Hangar::stdio_with_env(&cfg, &[("SOME_TOKEN", secret)]).await?;
    let started = h
        .call("registry_start", json!({"provider": "leaky"}))
        .await?;
    let called = h
        .call(
            "registry_invoke",
            json!({"provider": "leaky", "tool": "anything"}),
        )
        .await?;
    let details = h
        .call_ok("registry_details", json!({"provider": "leaky"}))
        .await?;
    for (what, shown) in [
        ("registry_start", format!("{started:?}")),
        ("registry_invoke", format!("{called:?}")),
        ("registry_details", details.to_string()),
    ] {
        assert!(!shown.contains(secret), "{what} shows the token: {shown}");
    }
    assert_eq!(started.is_error, Some(true), "{}", text(&started));
    assert!(
        text(&started).contains("login refused for token *** (argument ***)"),
        "the stderr line is shown, the token cut out: {}",
        text(&started)
    );
    // The log is written as the hangar goes; give its last lines a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = h.log();
    assert!(log.contains("login refused for token ***"), "{log}");
    assert!(!log.contains(secret), "the log shows the token:\n{log}");
    Ok(())
}
