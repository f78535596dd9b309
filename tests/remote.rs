//! Remote providers (`mode: remote`) reached by the real hangar binary: the example provider
//! over streamable HTTP (tools, credentials, refusals, a provider killed and brought back),
//! npm's `@modelcontextprotocol/server-everything` over streamable HTTP and over the legacy
//! HTTP+SSE transport, and the MCP conformance suite's client scenarios run against the
//! hangar's remote backend.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use hangar_tests::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// The example provider serving streamable HTTP on a loopback port.
struct HttpProvider {
    child: Child,
    /// `http://127.0.0.1:PORT/mcp`
    url: String,
    addr: String,
}

impl HttpProvider {
    async fn start(extra: &[&str]) -> Result<Self> {
        Self::start_at("127.0.0.1:0", extra).await
    }

    async fn start_at(addr: &str, extra: &[&str]) -> Result<Self> {
        let mut child = Command::new(provider_bin())
            .args(["--http", addr])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .context("example provider did not announce its address")??
            .ok_or_else(|| anyhow!("example provider exited before listening"))?;
        let url = line
            .strip_prefix("listening on ")
            .ok_or_else(|| anyhow!("unexpected first line {line:?}"))?
            .to_string();
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .to_string();
        Ok(Self { child, url, addr })
    }

    async fn kill(&mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// A remote provider entry for a config.
fn remote_yaml(id: &str, endpoint: &str, extra_yaml: &str) -> String {
    let mut s = format!("  {id}:\n    mode: remote\n    endpoint: \"{endpoint}\"\n");
    for line in extra_yaml.lines().filter(|l| !l.trim().is_empty()) {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

async fn hangar_with(label: &str, providers: &[String]) -> Result<(TestDir, Hangar)> {
    let dir = TestDir::new(label);
    let cfg = dir.write("h.yaml", &format!("providers:\n{}", providers.concat()));
    let hangar = Hangar::stdio(&cfg).await?;
    Ok((dir, hangar))
}

async fn details(h: &Hangar, provider: &str) -> Result<Value> {
    h.call_ok("registry_details", json!({ "provider": provider }))
        .await
}

/// Polls `registry_details` until `check` holds or `timeout` passes; returns the last details.
async fn wait_for_details(
    h: &Hangar,
    provider: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let d = details(h, provider).await?;
        if check(&d) {
            return Ok(d);
        }
        if Instant::now() >= deadline {
            bail!("timed out; last details: {d:#}\nlog:\n{}", h.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_provider_is_listed_and_called_through_the_hangar() -> Result<()> {
    let provider = HttpProvider::start(&[]).await?;
    // A secret-looking query parameter and userinfo must not show up in status output.
    let endpoint = provider
        .url
        .replace("http://", "http://user:pw@")
        .replace("/mcp", "/mcp?api_key=k3y&region=eu");
    let (_dir, h) = hangar_with("remote-basic", &[remote_yaml("math", &endpoint, "")]).await?;

    let sum = h.call_ok("math__add", json!({"a": 20, "b": 22})).await?;
    assert_eq!(sum, json!({"result": 42}));
    let tools = h.tool_names().await?;
    assert!(tools.contains(&"math__echo".to_string()), "{tools:?}");
    let echo = h.call("math__echo", json!({"text": "over http"})).await?;
    assert_eq!(text(&echo), "over http");

    let d = details(&h, "math").await?;
    assert_eq!(d["state"], "ready", "{d:#}");
    assert_eq!(d["mode"], "remote");
    assert_eq!(
        d["location"],
        format!("{}?region=eu", provider.url),
        "userinfo and the secret query parameter are not shown: {d:#}"
    );
    // rmcp serves the stateless revision, which the hangar's Auto lifecycle finds.
    assert_eq!(d["protocol_version"], "2026-07-28", "{d:#}");
    assert!(!h.log().contains("k3y"), "the API key leaked into the log");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_reach_the_provider_and_wrong_ones_are_refused_saying_what_was_sent()
-> Result<()> {
    let bearer =
        HttpProvider::start(&["--require-header", "Authorization: Bearer s3cret-token"]).await?;
    let api_key = HttpProvider::start(&[
        "--require-header",
        "X-Api-Key: k3y-value",
        "--require-header",
        "X-Tenant: blue",
    ])
    .await?;
    // base64("alice:pa55word")
    let basic = HttpProvider::start(&[
        "--require-header",
        "Authorization: Basic YWxpY2U6cGE1NXdvcmQ=",
    ])
    .await?;
    let (_dir, h) = hangar_with(
        "remote-auth",
        &[
            remote_yaml(
                "bearer",
                &bearer.url,
                "auth: {type: bearer, bearer_token: s3cret-token}",
            ),
            remote_yaml(
                "apikey",
                &api_key.url,
                "auth: {type: api_key, api_key: k3y-value, api_key_header: X-Api-Key}\nhttp: {headers: {X-Tenant: blue}}",
            ),
            remote_yaml(
                "basic",
                &basic.url,
                "auth: {type: basic, username: alice, password: pa55word}",
            ),
            remote_yaml(
                "wrong",
                &bearer.url,
                "auth: {type: bearer, token: not-the-token}\nhttp: {max_retries: 0}",
            ),
            remote_yaml(
                "missing",
                &api_key.url,
                "http: {max_retries: 0}",
            ),
        ],
    )
    .await?;
    for id in ["bearer", "apikey", "basic"] {
        let sum = h
            .call_ok(&format!("{id}__add"), json!({"a": 1, "b": 2}))
            .await?;
        assert_eq!(sum, json!({"result": 3}), "{id}");
    }

    let refused = h.call("wrong__add", json!({"a": 1, "b": 2})).await?;
    let why = text(&refused);
    assert_eq!(refused.is_error, Some(true), "{why}");
    assert!(why.contains("HTTP 401"), "{why}");
    assert!(why.contains("a bearer token in `Authorization`"), "{why}");
    assert!(why.contains("check the credentials"), "{why}");

    let refused = h.call("missing__add", json!({"a": 1, "b": 2})).await?;
    let why = text(&refused);
    assert!(
        why.contains("HTTP 401") && why.contains("no credentials"),
        "{why}"
    );

    let log = h.log();
    for secret in ["s3cret-token", "k3y-value", "pa55word", "not-the-token"] {
        assert!(
            !log.contains(secret),
            "`{secret}` leaked into the log:\n{log}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_and_a_non_mcp_server_fail_the_start_with_what_to_check() -> Result<()>
{
    // A port nothing listens on: bind one, then let it go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    // A web server that is not an MCP server: HTML to every request.
    let web = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let web_addr = web.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = web.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                let body = "<html><body>It works!</body></html>";
                let _ = socket
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    let (_dir, h) = hangar_with(
        "remote-refused",
        &[
            remote_yaml(
                "down",
                &format!("http://{closed}/mcp"),
                "http: {max_retries: 1, retry_backoff_factor: 0.1}\nrecovery: {max_retries: 0}",
            ),
            remote_yaml(
                "web",
                &format!("http://{web_addr}/"),
                "recovery: {max_retries: 0}",
            ),
        ],
    )
    .await?;
    let started = Instant::now();
    let r = h
        .call("registry_start", json!({"provider": "down"}))
        .await?;
    let why = text(&r);
    assert_eq!(r.is_error, Some(true), "{why}");
    assert!(
        why.contains(&format!("cannot connect to http://{closed}/mcp")),
        "{why}"
    );
    assert!(why.contains("check that the server is running"), "{why}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "one retry after 0.1 s, not a long wait: {:?}",
        started.elapsed()
    );
    let d = details(&h, "down").await?;
    assert_eq!(d["state"], "dead", "{d:#}");

    let r = h.call("registry_start", json!({"provider": "web"})).await?;
    let why = text(&r);
    assert_eq!(r.is_error, Some(true), "{why}");
    assert!(why.contains("did not answer as an MCP server"), "{why}");
    assert!(why.contains("text/html"), "{why}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_remote_provider_goes_dead_and_is_reachable_again_after_recovery() -> Result<()> {
    let mut provider = HttpProvider::start(&[]).await?;
    let (_dir, h) = hangar_with(
        "remote-recovery",
        &[remote_yaml(
            "math",
            &provider.url,
            "health_check_interval_s: 1\nhttp: {max_retries: 0}\ncircuit_breaker: {failure_threshold: 100}\nrecovery: {base_delay_s: 0.3, max_delay_s: 1, max_retries: 50}",
        )],
    )
    .await?;
    assert_eq!(
        h.call_ok("math__add", json!({"a": 1, "b": 1})).await?,
        json!({"result": 2})
    );
    provider.kill().await?;
    let dead = wait_for_details(&h, "math", Duration::from_secs(10), |d| {
        d["state"] == "dead" || d["recovery"]["attempts"].as_u64() > Some(0)
    })
    .await?;
    assert!(
        h.log().contains("cannot connect to"),
        "the end says the endpoint was unreachable; details {dead:#}\nlog:\n{}",
        h.log()
    );

    let _back = HttpProvider::start_at(&provider.addr, &[]).await?;
    wait_for_details(&h, "math", Duration::from_secs(15), |d| {
        d["state"] == "ready"
    })
    .await?;
    assert_eq!(
        h.call_ok("math__add", json!({"a": 2, "b": 3})).await?,
        json!({"result": 5})
    );
    Ok(())
}
