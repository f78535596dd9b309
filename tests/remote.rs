//! Remote providers (`mode: remote`) reached by the real hangar binary: the example provider
//! over streamable HTTP (tools, credentials, refusals, a provider killed and brought back),
//! npm's `@modelcontextprotocol/server-everything` over streamable HTTP and over the legacy
//! HTTP+SSE transport, and the MCP conformance suite's client scenarios run against the
//! hangar's remote backend.

use std::path::Path;
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
    // A port nothing listens on: bound for the whole test but never listening, so connections
    // are refused and no other process (a provider of a test running beside) can take it.
    let reserved = tokio::net::TcpSocket::new_v4()?;
    reserved.bind("127.0.0.1:0".parse()?)?;
    let closed = reserved.local_addr()?;
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

/// A port nothing listens on right now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Answers HTTP 404 to every request on `addr`: an endpoint that no longer serves MCP.
async fn serve_404(addr: &str) -> Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    }))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_session_is_re_created_once_and_when_that_fails_the_provider_is_dead()
-> Result<()> {
    let mut provider = HttpProvider::start(&["--handshake-only"]).await?;
    let (_dir, h) = hangar_with(
        "remote-session",
        &[remote_yaml(
            "math",
            &provider.url,
            // Retries long enough to ride out the restart below; no background pings.
            "health_check_interval_s: 0\nhttp: {max_retries: 6, retry_backoff_factor: 0.1}\ncircuit_breaker: {failure_threshold: 100}\nrecovery: {max_retries: 0}",
        )],
    )
    .await?;
    assert_eq!(
        h.call_ok("math__add", json!({"a": 1, "b": 1})).await?,
        json!({"result": 2})
    );
    let d = details(&h, "math").await?;
    assert_eq!(
        d["protocol_version"], "2025-11-25",
        "a handshake-era server is reached through initialize: {d:#}"
    );

    // A restarted server has forgotten the session: the next request gets HTTP 404, the
    // session is re-created once, and the call goes through.
    provider.kill().await?;
    let mut provider = HttpProvider::start_at(&provider.addr, &["--handshake-only"]).await?;
    assert_eq!(
        h.call_ok("math__add", json!({"a": 2, "b": 2})).await?,
        json!({"result": 4}),
        "log:\n{}",
        h.log()
    );
    assert!(
        h.log().contains("session re-created after it expired"),
        "{}",
        h.log()
    );
    assert_eq!(details(&h, "math").await?["state"], "ready");

    // Now the endpoint answers 404 to everything: re-creating the session fails, so the
    // provider is gone.
    provider.kill().await?;
    let _not_mcp = serve_404(&provider.addr).await?;
    let r = h.call("math__add", json!({"a": 3, "b": 3})).await?;
    assert_eq!(r.is_error, Some(true), "{}", text(&r));
    let dead = wait_for_details(&h, "math", Duration::from_secs(10), |d| {
        d["state"] == "dead"
    })
    .await?;
    let reason = dead["state_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("session expired (HTTP 404) and re-initializing failed"),
        "{dead:#}"
    );
    Ok(())
}

/// `@modelcontextprotocol/server-everything` in `mode` (`streamableHttp` or `sse`) on a free
/// loopback port, under the npm-installed Node.
struct Everything {
    child: Child,
    port: u16,
    /// Everything it has written to stdout and stderr.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Everything {
    async fn start(mode: &str) -> Result<Self> {
        let npm = npm_packages()?;
        let port = free_port()?;
        let mut child = Command::new(&npm.node)
            .arg(&npm.everything)
            .arg(mode)
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        for pipe in [
            Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(stderr),
        ] {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let server = Self { child, port, log };
        if !wait_until(Duration::from_secs(30), || {
            server.log().contains(&format!("port {port}"))
        })
        .await
        {
            bail!(
                "server-everything did not listen within 30 s:\n{}",
                server.log()
            );
        }
        Ok(server)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_everything_is_called_over_streamable_http_and_over_legacy_sse() -> Result<()> {
    let streamable = Everything::start("streamableHttp").await?;
    let legacy = Everything::start("sse").await?;
    let (_dir, h) = hangar_with(
        "remote-everything",
        &[
            remote_yaml(
                "streamable",
                &format!("http://127.0.0.1:{}/mcp", streamable.port),
                "",
            ),
            // `transport:` left out: an endpoint ending in /sse means the legacy transport.
            remote_yaml(
                "legacy",
                &format!("http://127.0.0.1:{}/sse", legacy.port),
                "",
            ),
        ],
    )
    .await?;
    // A handshake-era server rejects the `server/discover` probe at once: no 10 s stall
    // before the fallback to `initialize`.
    let started = Instant::now();
    let r = h
        .call("registry_start", json!({"provider": "streamable"}))
        .await?;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "start took {:?}",
        started.elapsed()
    );
    for id in ["streamable", "legacy"] {
        let r = h
            .call(
                &format!("{id}__echo"),
                json!({"message": format!("hello {id}")}),
            )
            .await?;
        assert_eq!(
            text(&r),
            format!("Echo: hello {id}"),
            "{id}; log:\n{}",
            h.log()
        );
        let d = details(&h, id).await?;
        assert_eq!(d["state"], "ready", "{d:#}");
        assert!(
            d["protocol_version"]
                .as_str()
                .is_some_and(|v| v.as_bytes()[..4] == *b"2025"),
            "a handshake-era version: {d:#}"
        );
        let sum = h
            .call(&format!("{id}__get-sum"), json!({"a": 2, "b": 40}))
            .await?;
        assert_eq!(text(&sum), "The sum of 2 and 40 is 42.", "{id}");
    }
    let tools = h.tool_names().await?;
    for id in ["streamable", "legacy"] {
        assert!(tools.contains(&format!("{id}__echo")), "{tools:?}");
    }

    // Stopping ends both sessions on the server: DELETE for streamable HTTP, the SSE stream
    // dropped for the legacy transport.
    for (id, server, ended) in [
        (
            "streamable",
            &streamable,
            "Received session termination request",
        ),
        ("legacy", &legacy, "Client Disconnected"),
    ] {
        let r = h.call("registry_stop", json!({"provider": id})).await?;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        assert!(
            wait_until(Duration::from_secs(5), || server.log().contains(ended)).await,
            "{id}: the server did not see its session end:\n{}",
            server.log()
        );
    }

    // An SSE session lives as long as its stream: a server that goes away ends the provider,
    // at once rather than at the next health check.
    let r = h.call("legacy__echo", json!({"message": "again"})).await?;
    assert_eq!(text(&r), "Echo: again");
    let mut legacy = legacy;
    legacy.child.kill().await?;
    let dead = wait_for_details(&h, "legacy", Duration::from_secs(5), |d| {
        d["state"] == "dead"
    })
    .await?;
    let reason = dead["state_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("SSE stream"), "{dead:#}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_conformance_suites_client_scenarios_pass_with_the_remote_backend() -> Result<()> {
    let npm = npm_packages()?;
    let client = Path::new(env!("CARGO_BIN_EXE_conformance-client"));
    let out = TestDir::new("conformance");
    for scenario in ["initialize", "tools_call", "sse-retry"] {
        let run = Command::new(&npm.node)
            .arg(&npm.conformance)
            .args([
                "client",
                "--scenario",
                scenario,
                "--timeout",
                "20000",
                "--command",
            ])
            .arg(client)
            .arg("-o")
            .arg(out.path())
            .stdin(Stdio::null())
            .output();
        let run = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .with_context(|| format!("scenario {scenario} did not finish within 60 s"))??;
        // The suite reports on stderr.
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            run.status.success()
                && report.contains("OVERALL: PASSED")
                && report.contains(", 0 failed, 0 warnings"),
            "scenario {scenario} ({}):\n{report}",
            run.status
        );
    }
    Ok(())
}

/// A private CA with a server certificate for 127.0.0.1 and a client certificate, made afresh
/// for each run.
struct Pki {
    ca_pem: String,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
    client_cert_pem: String,
    client_key_pem: String,
}

fn make_pki() -> Result<Pki> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "hangar test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let server_key = KeyPair::generate()?;
    let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_string()])?;
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server_params.signed_by(&server_key, &ca)?;

    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params
        .distinguished_name
        .push(DnType::CommonName, "mcp-hangar");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca)?;

    Ok(Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        server_chain: vec![server.der().clone()],
        server_key: rustls::pki_types::PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
        client_cert_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    })
}

/// Terminates TLS on a loopback port and relays the bytes to `target` (the example provider's
/// plain HTTP address). With `client_ca`, a client certificate signed by it is required.
async fn tls_front(
    pki: &Pki,
    target: &str,
    client_ca: Option<&rustls::pki_types::CertificateDer<'static>>,
) -> Result<String> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.clone())?;
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    std::sync::Arc::new(roots),
                    provider,
                )
                .build()?,
            )
        }
    };
    let config = builder.with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let target = target.to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, target) = (acceptor.clone(), target.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    Ok(addr)
}

#[tokio::test(flavor = "multi_thread")]
async fn https_providers_need_a_trusted_certificate_and_can_present_a_client_certificate()
-> Result<()> {
    let provider = HttpProvider::start(&[]).await?;
    let pki = make_pki()?;
    let server_tls = tls_front(&pki, &provider.addr, None).await?;
    let mutual_tls = tls_front(&pki, &provider.addr, Some(&pki.ca_der)).await?;
    let dir = TestDir::new("remote-tls");
    let ca = dir.write("ca.pem", &pki.ca_pem);
    let cert = dir.write("client.pem", &pki.client_cert_pem);
    let key = dir.write("client.key", &pki.client_key_pem);
    let (ca, cert, key) = (ca.display(), cert.display(), key.display());
    let once = "http: {max_retries: 0}\nrecovery: {max_retries: 0}\n";
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "providers:\n{}",
            [
                remote_yaml("untrusted", &format!("https://{server_tls}/mcp"), once),
                remote_yaml(
                    "trusted",
                    &format!("https://{server_tls}/mcp"),
                    &format!("tls: {{ca_cert_path: \"{ca}\"}}"),
                ),
                remote_yaml(
                    "unverified",
                    &format!("https://{server_tls}/mcp"),
                    "tls: {verify_ssl: false}",
                ),
                remote_yaml(
                    "mutual",
                    &format!("https://{mutual_tls}/mcp"),
                    &format!(
                        "tls: {{ca_cert_path: \"{ca}\", client_cert: \"{cert}\", client_key: \"{key}\"}}"
                    ),
                ),
                remote_yaml(
                    "anonymous",
                    &format!("https://{mutual_tls}/mcp"),
                    &format!("tls: {{ca_cert_path: \"{ca}\"}}\n{once}"),
                ),
            ]
            .concat()
        ),
    );
    let h = Hangar::stdio(&cfg).await?;
    for id in ["trusted", "unverified", "mutual"] {
        assert_eq!(
            h.call_ok(&format!("{id}__add"), json!({"a": 40, "b": 2}))
                .await
                .with_context(|| format!("{id}; log:\n{}", h.log()))?,
            json!({"result": 42}),
            "{id}"
        );
    }
    let r = h
        .call("registry_start", json!({"provider": "untrusted"}))
        .await?;
    let why = text(&r);
    assert_eq!(r.is_error, Some(true), "{why}");
    assert!(
        why.contains(&format!("TLS with https://{server_tls}/mcp failed")),
        "{why}"
    );
    assert!(why.contains("UnknownIssuer"), "{why}");
    assert!(
        why.contains("`tls.ca_cert_path`") && why.contains("`tls.verify_ssl: false`"),
        "{why}"
    );

    let r = h
        .call("registry_start", json!({"provider": "anonymous"}))
        .await?;
    let why = text(&r);
    assert_eq!(r.is_error, Some(true), "{why}");
    assert!(
        why.contains(&format!("TLS with https://{mutual_tls}/mcp failed"))
            && why.contains("CertificateRequired")
            && why.contains("set `tls.client_cert` and `tls.client_key`"),
        "{why}"
    );
    assert!(
        !why.contains("stderr"),
        "a remote provider has no stderr to show: {why}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_remote_config_checks_clean_with_its_token_redacted() -> Result<()> {
    let example = workspace_root().join("examples/remote.yaml");
    let out = Command::new(hangar_bin())
        .args(["check", "--config"])
        .arg(&example)
        .env("DEMO_TOKEN", "t0k3n-from-env")
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("mode: remote") && stdout.contains("transport: sse"),
        "{stdout}"
    );
    assert!(!stdout.contains("t0k3n-from-env") && !stderr.contains("t0k3n-from-env"));
    assert!(
        !stderr.contains("warning"),
        "the example loads without warnings: {stderr}"
    );
    Ok(())
}
