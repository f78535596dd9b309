//! The HTTP face's security against the real binary: origins and hosts from the config, API
//! keys and bearer JWTs (signed here, their JWKS served by an in-test server), the 401
//! challenge and the RFC 9728 metadata document, per-key tool lists and rate limits, and the
//! bounds on sessions, connections and slow headers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use hangar_tests::*;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rmcp::RoleClient;
use rmcp::ServiceExt;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"security-test","version":"0"}}}"#;

/// A client that keeps no idle connections (they would count against `max_connections`).
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default()
}

/// POSTs an `initialize` to /mcp with `headers`.
async fn initialize(base: &str, headers: &[(&str, &str)]) -> Result<reqwest::Response> {
    let mut request = http()
        .post(format!("{base}/mcp"))
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .body(INITIALIZE);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    Ok(request.send().await?)
}

async fn client_with_token(
    base: &str,
    token: &str,
) -> Result<RunningService<RoleClient, TestClient>> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(config);
    Ok(TestClient::default().serve(transport).await?)
}

async fn metrics(base: &str, token: Option<&str>) -> Result<String> {
    let mut request = http().get(format!("{base}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    anyhow::ensure!(response.status() == 200, "/metrics: {}", response.status());
    Ok(response.text().await?)
}

/// The value of `mcp_hangar_http_rejections_total{reason="…"}` in `text`.
fn rejections(text: &str, reason: &str) -> u64 {
    let prefix = format!("mcp_hangar_http_rejections_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The JSON-RPC error of a call, as the rmcp client reports it.
async fn call_err(
    client: &RunningService<RoleClient, TestClient>,
    name: &str,
    args: Value,
) -> String {
    match call(client, name, args).await {
        Ok(r) => format!("not refused: {}", text(&r)),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn origins_and_hosts_come_from_the_config_and_the_cli_adds_to_them() -> Result<()> {
    let dir = TestDir::new("sec-origin");
    let cfg = dir.write(
        "h.yaml",
        "http:\n  allowed_origins: [\"https://app.example.com\"]\n  allowed_hosts: [hangar.internal]\nproviders: {}\n",
    );
    let h =
        HttpHangar::start_with_args(&cfg, &["--allowed-origin", "https://cli.example.com"]).await?;
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(initialize(&h.base, &[]).await?), 200);
    for allowed in ["https://app.example.com", "https://cli.example.com"] {
        assert_eq!(
            status(initialize(&h.base, &[("Origin", allowed)]).await?),
            200,
            "{allowed}"
        );
    }
    assert_eq!(
        status(initialize(&h.base, &[("Origin", "https://evil.example")]).await?),
        403
    );
    assert_eq!(
        status(initialize(&h.base, &[("Host", "hangar.internal")]).await?),
        200,
        "a Host the config allows (a proxy's name)"
    );
    assert_eq!(
        status(initialize(&h.base, &[("Host", "rebound.example")]).await?),
        403,
        "a Host nobody allowed (DNS rebinding)"
    );
    let text = metrics(&h.base, None).await?;
    assert_eq!(rejections(&text, "origin_or_host"), 2, "{text}");
    Ok(())
}

/// A hangar with three API keys and the example provider `math`, bound to 0.0.0.0 (allowed
/// because auth is configured); its base URL on loopback.
async fn keyed_hangar(dir: &TestDir, token: &str) -> Result<(HttpHangar, String)> {
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "http:\n  auth:\n    authorization_servers: [\"https://auth.example.com\"]\n    scopes_supported: [mcp]\n    api_keys:\n      - name: ci\n        env: KEY_CI\n        tools: [\"math__ad*\", \"registry_li*\", \"registry_invoke\", \"registry_tools\"]\n      - {{name: ops, env: KEY_OPS}}\n      - {{name: slow, env: KEY_SLOW, rate_limit: {{requests_per_second: 0.2, burst: 2}}}}\nproviders:\n{}",
            provider_yaml("math", token, &[], "")
        ),
    );
    let h = HttpHangar::start_with_env(
        &cfg,
        &["--host", "0.0.0.0"],
        &[
            ("KEY_CI", "ci-key-0123456789"),
            ("KEY_OPS", "ops-key-0123456789"),
            ("KEY_SLOW", "slow-key-0123456789"),
        ],
    )
    .await?;
    let base = h.base.replace("0.0.0.0", "127.0.0.1");
    Ok((h, base))
}

#[tokio::test(flavor = "multi_thread")]
async fn without_credentials_mcp_answers_401_pointing_at_the_metadata_document() -> Result<()> {
    let dir = TestDir::new("sec-401");
    let token = unique_token("sec-401");
    let (_h, base) = keyed_hangar(&dir, &token).await?;

    let r = initialize(&base, &[]).await?;
    assert_eq!(r.status(), 401);
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource");
    assert!(
        challenge.starts_with(&format!("Bearer resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    assert!(!challenge.contains("invalid_token"), "{challenge}");

    let r = initialize(&base, &[("Authorization", "Bearer not-a-key")]).await?;
    assert_eq!(r.status(), 401);
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let doc: Value = http()
            .get(format!("{base}{path}"))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(doc["resource"], format!("{base}/mcp"), "{doc}");
        assert_eq!(
            doc["authorization_servers"],
            json!(["https://auth.example.com"])
        );
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert_eq!(doc["scopes_supported"], json!(["mcp"]));
    }

    // Open: health and readiness. Behind auth: the HTTP face's /metrics.
    assert_eq!(
        http().get(format!("{base}/health")).send().await?.status(),
        200
    );
    assert_eq!(
        http().get(format!("{base}/ready")).send().await?.status(),
        200
    );
    assert_eq!(
        http().get(format!("{base}/metrics")).send().await?.status(),
        401
    );
    // A key, as a bearer token or as X-API-Key.
    assert_eq!(
        initialize(&base, &[("Authorization", "Bearer ops-key-0123456789")])
            .await?
            .status(),
        200
    );
    assert_eq!(
        initialize(&base, &[("X-API-Key", "ci-key-0123456789")])
            .await?
            .status(),
        200
    );
    let text = metrics(&base, Some("ops-key-0123456789")).await?;
    assert!(rejections(&text, "unauthenticated") >= 2, "{text}");
    assert_eq!(rejections(&text, "invalid_token"), 1, "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn each_key_lists_and_calls_only_its_tools_and_keeps_to_its_rate() -> Result<()> {
    let dir = TestDir::new("sec-tools");
    let token = unique_token("sec-tools");
    let (_h, base) = keyed_hangar(&dir, &token).await?;

    let ops = client_with_token(&base, "ops-key-0123456789").await?;
    let r = call(&ops, "registry_start", json!({"provider": "math"})).await?;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let all = tool_names(&ops).await?;
    assert!(all.contains(&"math__sleep".to_string()), "{all:?}");
    assert!(all.contains(&"registry_start".to_string()), "{all:?}");

    let ci = client_with_token(&base, "ci-key-0123456789").await?;
    let mut listed = tool_names(&ci).await?;
    listed.sort();
    assert_eq!(
        listed,
        [
            "math__add",
            "math__add_tool",
            "registry_invoke",
            "registry_list",
            "registry_tools"
        ]
    );
    // What the management tools show of a provider's tools is as filtered.
    let r = call(&ci, "registry_tools", json!({"provider": "math"})).await?;
    let shown: Vec<&str> = r
        .structured_content
        .as_ref()
        .and_then(|v| v["tools"].as_array())
        .map(|tools| tools.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(shown, ["add", "add_tool"], "{}", text(&r));
    let r = call(&ci, "math__add", json!({"a": 2, "b": 3})).await?;
    assert_eq!(
        r.structured_content,
        Some(json!({"result": 5})),
        "{}",
        text(&r)
    );

    let refused = call_err(&ci, "math__echo", json!({"text": "hi"})).await;
    assert!(
        refused.contains("api_key:ci") && refused.contains("math__echo"),
        "{refused}"
    );
    // A name its list allows but nobody offers: the suggestions are only names it may call.
    let unknown = call_err(&ci, "registry_lists", json!({})).await;
    assert!(
        unknown.contains("unknown tool") && unknown.contains("registry_list"),
        "{unknown}"
    );
    assert!(
        !unknown.contains("registry_start") && !unknown.contains("registry_details"),
        "{unknown}"
    );
    let refused = call_err(&ci, "registry_start", json!({"provider": "math"})).await;
    assert!(refused.contains("registry_start"), "{refused}");
    // registry_invoke reaches a provider's tool by its parts: the same list applies.
    let refused = call_err(
        &ci,
        "registry_invoke",
        json!({"provider": "math", "tool": "echo", "arguments": {"text": "hi"}}),
    )
    .await;
    assert!(refused.contains("math__echo"), "{refused}");
    let r = call(
        &ci,
        "registry_invoke",
        json!({"provider": "math", "tool": "add", "arguments": {"a": 1, "b": 1}}),
    )
    .await?;
    assert_eq!(
        r.structured_content,
        Some(json!({"result": 2})),
        "{}",
        text(&r)
    );
    // A tool its list allows that the provider lacks: nothing close, so the provider's tools
    // would be listed; only those it may call are.
    let r = call(
        &ci,
        "registry_invoke",
        json!({"provider": "math", "tool": "adqqqqqq", "arguments": {}}),
    )
    .await?;
    assert_eq!(r.is_error, Some(true));
    let missing = text(&r);
    assert!(
        missing.contains("not found") && missing.contains("`add`"),
        "{missing}"
    );
    assert!(
        !missing.contains("echo") && !missing.contains("sleep"),
        "{missing}"
    );

    // `slow`: a burst of 2, then one request per 5 s.
    let slow = [("Authorization", "Bearer slow-key-0123456789")];
    assert_eq!(initialize(&base, &slow).await?.status(), 200);
    assert_eq!(initialize(&base, &slow).await?.status(), 200);
    let r = initialize(&base, &slow).await?;
    assert_eq!(r.status(), 429);
    let retry_after: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no Retry-After"))?;
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    let body: Value = r.json().await?;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("api_key:slow") && message.contains("retry in"),
        "{body}"
    );
    assert!(
        body["error"]["data"]["retry_after_ms"].as_u64().is_some(),
        "{body}"
    );
    // Other keys are not held back by it.
    assert_eq!(
        initialize(&base, &[("Authorization", "Bearer ops-key-0123456789")])
            .await?
            .status(),
        200
    );
    let text = metrics(&base, Some("ops-key-0123456789")).await?;
    assert_eq!(rejections(&text, "rate_limited"), 1, "{text}");
    Ok(())
}

/// Serves `jwks` at /jwks and counts the fetches.
async fn jwks_server(jwks: Value) -> Result<(String, Arc<AtomicUsize>)> {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = fetches.clone();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                axum::Json(jwks)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/jwks"), fetches))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_jwts_are_checked_against_the_issuers_jwks() -> Result<()> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    let signing = EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes())?;
    let mut jwk = Jwk::from_encoding_key(&signing, Algorithm::RS256)?;
    jwk.common.key_id = Some("k1".into());
    let (jwks_url, fetches) = jwks_server(json!({"keys": [jwk]})).await?;
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    let other = EncodingKey::from_rsa_pem(other.serialize_pem().as_bytes())?;

    let dir = TestDir::new("sec-jwt");
    let token = unique_token("sec-jwt");
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "http:\n  auth:\n    jwt:\n      jwks_url: {jwks_url}\n      issuer: https://issuer.test\n      audience: https://hangar.test/mcp\n      jwks_min_refresh_s: 60\n      tools: [\"math__*\", \"registry_list\"]\nproviders:\n{}",
            provider_yaml("math", &token, &[], "")
        ),
    );
    let h = HttpHangar::start(&cfg).await?;
    let sign = |kid: &str, key: &EncodingKey, claims: Value| -> Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        Ok(jsonwebtoken::encode(&header, &claims, key)?)
    };
    let claims = |aud: &str, exp: u64| json!({"sub": "alice", "iss": "https://issuer.test", "aud": aud, "exp": exp, "iat": now()});
    let valid = sign(
        "k1",
        &signing,
        claims("https://hangar.test/mcp", now() + 300),
    )?;
    let client = client_with_token(&h.base, &valid).await?;
    let listed = tool_names(&client).await?;
    assert_eq!(
        listed,
        ["registry_list"],
        "math is cold: only its list tool"
    );
    let r = call(&client, "math__add", json!({"a": 40, "b": 2})).await?;
    assert_eq!(
        r.structured_content,
        Some(json!({"result": 42})),
        "{}",
        text(&r)
    );
    let refused = call_err(&client, "registry_start", json!({"provider": "math"})).await;
    assert!(refused.contains("jwt:alice"), "{refused}");

    let bearer = |t: &str| format!("Bearer {t}");
    let refused_because = |r: &reqwest::Response| {
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let expired = sign(
        "k1",
        &signing,
        claims("https://hangar.test/mcp", now() - 600),
    )?;
    let r = initialize(&h.base, &[("Authorization", &bearer(&expired))]).await?;
    assert_eq!(r.status(), 401);
    let why = refused_because(&r);
    assert!(
        why.contains("invalid_token") && why.contains("Expired"),
        "{why}"
    );

    let elsewhere = sign(
        "k1",
        &signing,
        claims("https://other.test/mcp", now() + 300),
    )?;
    let r = initialize(&h.base, &[("Authorization", &bearer(&elsewhere))]).await?;
    assert_eq!(r.status(), 401);
    assert!(
        refused_because(&r).contains("Audience"),
        "{}",
        refused_because(&r)
    );

    let forged = sign("k1", &other, claims("https://hangar.test/mcp", now() + 300))?;
    let r = initialize(&h.base, &[("Authorization", &bearer(&forged))]).await?;
    assert_eq!(
        r.status(),
        401,
        "signed by a key the issuer never published"
    );

    let before = fetches.load(Ordering::SeqCst);
    let unknown = sign("k9", &other, claims("https://hangar.test/mcp", now() + 300))?;
    for _ in 0..3 {
        let r = initialize(&h.base, &[("Authorization", &bearer(&unknown))]).await?;
        assert_eq!(r.status(), 401);
        assert!(
            refused_because(&r).contains("k9"),
            "{}",
            refused_because(&r)
        );
    }
    // One fetch for the unknown kid, if the last was long enough ago; none within the floor.
    let after = fetches.load(Ordering::SeqCst);
    assert!(
        after >= 1 && after - before <= 1,
        "fetches {before} -> {after}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_connections_and_slow_headers_are_bounded() -> Result<()> {
    let dir = TestDir::new("sec-bounds");
    let cfg = dir.write(
        "h.yaml",
        "http:\n  max_sessions: 2\n  session_idle_timeout_s: 1.5\n  max_connections: 3\n  header_read_timeout_s: 1.5\nproviders: {}\n",
    );
    let h = HttpHangar::start(&cfg).await?;
    let addr = h.base.trim_start_matches("http://").to_owned();

    // Sessions: of three simultaneous initializes (as many as `max_connections` lets in)
    // exactly two are served; the third, and a later one, are told why not; once the two idle
    // out, there is room again.
    let racing = futures::future::join_all((0..3).map(|_| initialize(&h.base, &[]))).await;
    let mut served = 0;
    for r in racing {
        let r = r?;
        if r.status() == 200 {
            served += 1;
        } else {
            assert_eq!(r.status(), 503);
            let body: Value = r.json().await?;
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("too many sessions")),
                "{body}"
            );
        }
    }
    assert_eq!(served, 2, "max_sessions is 2");
    let r = initialize(&h.base, &[]).await?;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await?;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("too many sessions") && m.contains("max_sessions")),
        "{body}"
    );
    let page = metrics(&h.base, None).await?;
    assert!(page.contains("mcp_hangar_http_sessions 2"), "{page}");
    let freed = wait_until_async(Duration::from_secs(10), || async {
        initialize(&h.base, &[])
            .await
            .ok()
            .filter(|r| r.status() == 200)
    })
    .await;
    assert!(freed.is_some(), "idle sessions were never closed");

    // Connections: three idle ones take every slot; the fourth is answered 503 and closed.
    // Once the earlier requests' connections are gone (the scrape's own is the one left).
    let quiet = wait_until_async(Duration::from_secs(5), || async {
        let page = metrics(&h.base, None).await.ok()?;
        page.contains("mcp_hangar_http_connections 1\n")
            .then_some(())
    })
    .await;
    assert!(quiet.is_some(), "connections stayed open");
    let refused_before = rejections(&metrics(&h.base, None).await?, "max_connections");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(&addr).await?);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = tokio::net::TcpStream::connect(&addr).await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(3), fourth.read_to_string(&mut answer))
        .await
        .context("the refused connection was not closed")??;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many connections"), "{answer}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let page = metrics(&h.base, None).await?;
    assert_eq!(
        rejections(&page, "max_connections"),
        refused_before + 1,
        "{page}"
    );
    assert_eq!(
        http()
            .get(format!("{}/health", h.base))
            .send()
            .await?
            .status(),
        200
    );

    // A client that never finishes its headers is cut off with 408 after the timeout.
    let mut slow = tokio::net::TcpStream::connect(&addr).await?;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await?;
    let started = Instant::now();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), slow.read_to_string(&mut answer))
        .await
        .context("the slow client was never cut off")??;
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        waited >= Duration::from_millis(1200) && waited < Duration::from_secs(4),
        "{waited:?}"
    );

    let page = metrics(&h.base, None).await?;
    // The wait for an idle session to close above was refused some times before that.
    assert!(rejections(&page, "max_sessions") >= 1, "{page}");
    assert_eq!(rejections(&page, "header_timeout"), 1, "{page}");
    Ok(())
}
