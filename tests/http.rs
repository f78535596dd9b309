//! The hangar over streamable HTTP: health and readiness endpoints, MCP at /mcp with a real
//! rmcp client, list_changed on the session, and SIGTERM leaving nothing behind.

use std::time::Duration;

use anyhow::Result;
use hangar_tests::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn http_serves_mcp_health_and_ready_and_shuts_down_cleanly() -> Result<()> {
    let dir = TestDir::new("http");
    let token = unique_token("http");
    let cfg = dir.write(
        "h.yaml",
        &format!("providers:\n{}", provider_yaml("math", &token, &[], "")),
    );
    let h = HttpHangar::start(&cfg).await?;
    let http = reqwest::Client::new();
    let health = http.get(format!("{}/health", h.base)).send().await?;
    assert_eq!(health.status(), 200);
    let ready = http.get(format!("{}/ready", h.base)).send().await?;
    assert_eq!(ready.status(), 200);

    let client = h.client().await?;
    let tools = tool_names(&client).await?;
    assert!(tools.contains(&"registry_invoke".to_string()));
    let r = call(&client, "math__add", json!({"a": 20, "b": 22})).await?;
    assert_eq!(
        r.structured_content,
        Some(json!({"result": 42})),
        "{}",
        text(&r)
    );
    assert_eq!(count_processes(&token), 1);
    let changed = client.service().list_changed.clone();
    assert!(
        wait_until(Duration::from_secs(5), || changed
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1)
        .await,
        "list_changed reached the HTTP session when the provider started"
    );

    // A second session sees the same providers (shared registry).
    let second = h.client().await?;
    let r = call(&second, "registry_list", json!({"state_filter": "ready"})).await?;
    assert_eq!(
        r.structured_content
            .map(|v| v["providers"].as_array().map(Vec::len)),
        Some(Some(1))
    );

    sigterm(h.pid());
    assert!(
        wait_until(Duration::from_secs(10), || count_processes(&token) == 0).await,
        "provider left running; log:\n{}",
        read_log(&h.log)
    );
    let mut child = h.child;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
    assert!(status.success(), "hangar exit status {status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_loopback_bind_without_auth_is_refused() -> Result<()> {
    let dir = TestDir::new("bind");
    let cfg = dir.write("h.yaml", "providers: {}\n");
    let out = tokio::process::Command::new(hangar_bin())
        .args([
            "serve", "--http", "--host", "0.0.0.0", "--port", "0", "--config",
        ])
        .arg(&cfg)
        .output()
        .await?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without authentication"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_turns_503_while_the_hangar_shuts_down() -> Result<()> {
    let dir = TestDir::new("ready");
    let token = unique_token("ready");
    // A provider that ignores SIGTERM keeps the shutdown going for its shutdown_timeout_s.
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "providers:\n{}",
            provider_yaml("slow", &token, &["--stubborn"], "shutdown_timeout_s: 3")
        ),
    );
    let h = HttpHangar::start(&cfg).await?;
    let http = reqwest::Client::new();
    let client = h.client().await?;
    let r = call(&client, "registry_start", json!({"provider": "slow"})).await?;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(
        http.get(format!("{}/ready", h.base)).send().await?.status(),
        200
    );
    sigterm(h.pid());
    let mut saw_503 = false;
    for _ in 0..50 {
        match http.get(format!("{}/ready", h.base)).send().await {
            Ok(resp) if resp.status() == 503 => {
                saw_503 = true;
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(_) => break,
        }
    }
    assert!(saw_503, "/ready answered 503 during shutdown");
    assert_eq!(
        http.get(format!("{}/health", h.base))
            .send()
            .await?
            .status(),
        200,
        "/health stays 200 while the process runs"
    );
    assert!(wait_until(Duration::from_secs(10), || count_processes(&token) == 0).await);
    Ok(())
}

/// Posts an `initialize` to /mcp with `origin` (if any) and returns the status.
async fn initialize_status(base: &str, origin: Option<&str>) -> Result<reqwest::StatusCode> {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "origin-test", "version": "0"}}})
            .to_string(),
        );
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    Ok(request.send().await?.status())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_browser_origin_is_refused_and_an_allowed_one_served() -> Result<()> {
    let dir = TestDir::new("origin");
    let cfg = dir.write("h.yaml", "providers: {}\n");
    let h = HttpHangar::start(&cfg).await?;
    // Non-browser clients send no Origin and are served; pages on this machine are too.
    assert_eq!(initialize_status(&h.base, None).await?, 200);
    assert_eq!(
        initialize_status(&h.base, Some("http://localhost:5173")).await?,
        200
    );
    // A page on another site, driving a visitor's browser, is not.
    assert_eq!(
        initialize_status(&h.base, Some("https://evil.example")).await?,
        403
    );
    drop(h);

    let h =
        HttpHangar::start_with_args(&cfg, &["--allowed-origin", "https://app.example.com"]).await?;
    assert_eq!(
        initialize_status(&h.base, Some("https://app.example.com")).await?,
        200
    );
    assert_eq!(
        initialize_status(&h.base, Some("https://evil.example")).await?,
        403
    );
    assert_eq!(
        initialize_status(&h.base, Some("http://localhost:5173")).await?,
        403,
        "a configured list replaces the loopback default"
    );
    Ok(())
}

/// `in_flight` of `provider` as `registry_list` shows it.
async fn listed_in_flight(
    client: &rmcp::service::RunningService<rmcp::RoleClient, TestClient>,
    provider: &str,
) -> Result<u64> {
    let list = call(client, "registry_list", json!({})).await?;
    let list = list.structured_content.unwrap_or_default();
    list["providers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["provider"] == provider))
        .and_then(|p| p["in_flight"].as_u64())
        .ok_or_else(|| anyhow::anyhow!("no in_flight for `{provider}` in {list}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_the_client_cancels_gives_its_slot_back_at_once() -> Result<()> {
    use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest};
    use rmcp::service::PeerRequestOptions;
    let dir = TestDir::new("http-cancel");
    let token = unique_token("http-cancel");
    // One slot and no queue: while the slow call holds the slot, any other call is refused.
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "providers:\n{}",
            provider_yaml("slow", &token, &[], "max_concurrency: 1\nmax_queue: 0")
        ),
    );
    let h = HttpHangar::start(&cfg).await?;
    let client = h.client().await?;
    let params = CallToolRequestParams::new("slow__sleep").with_arguments(
        json!({"ms": 60_000})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let slow = client
        .peer()
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(params)),
            PeerRequestOptions::no_options(),
        )
        .await?;
    let busy = wait_until_async(Duration::from_secs(20), || async {
        (listed_in_flight(&client, "slow").await.ok() == Some(1)).then_some(())
    })
    .await;
    assert!(busy.is_some(), "the slow call never got in flight");
    slow.cancel(Some("the test gave up".into())).await?;
    // Well before the provider's 60 s sleep would end.
    let freed = wait_until_async(Duration::from_secs(5), || async {
        (listed_in_flight(&client, "slow").await.ok() == Some(0)).then_some(())
    })
    .await;
    assert!(
        freed.is_some(),
        "the cancelled call still holds its in-flight place; log:\n{}",
        read_log(&h.log)
    );
    let next = call(&client, "slow__sleep", json!({"ms": 10})).await?;
    assert_ne!(
        next.is_error,
        Some(true),
        "the slot was not given back: {}",
        text(&next)
    );
    assert_eq!(text(&next), "slept 10 ms");
    let metrics = call(&client, "registry_metrics", json!({})).await?;
    let metrics = metrics.structured_content.unwrap_or_default();
    assert_eq!(metrics["providers"]["slow"]["in_flight"], 0, "{metrics}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_http_call_in_flight_finish_then_exits() -> Result<()> {
    let dir = TestDir::new("http-drain");
    let token = unique_token("http-drain");
    let cfg = dir.write(
        "h.yaml",
        &format!("providers:\n{}", provider_yaml("math", &token, &[], "")),
    );
    let mut h = HttpHangar::start(&cfg).await?;
    let client = h.client().await?;
    let r = call(&client, "registry_start", json!({"provider": "math"})).await?;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let slow = tokio::spawn(async move {
        let answer = call(&client, "math__sleep", json!({"ms": 1500})).await;
        (answer, client)
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    sigterm(h.pid());
    let (answer, _client) = tokio::time::timeout(Duration::from_secs(15), slow).await??;
    let answer = answer?;
    assert_eq!(
        text(&answer),
        "slept 1500 ms",
        "the call in flight was not let finish; log:\n{}",
        read_log(&h.log)
    );
    let status = tokio::time::timeout(Duration::from_secs(15), h.child.wait()).await??;
    assert!(status.success(), "{status}");
    assert_eq!(count_processes(&token), 0, "providers left running");
    Ok(())
}
