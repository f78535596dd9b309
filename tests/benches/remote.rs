//! Warm `tools/call` latency to a remote provider (the example provider serving streamable
//! HTTP), printed side by side in one run:
//!
//! - direct: an rmcp client straight to the provider over HTTP, with the lifecycle the hangar
//!   uses (`Auto`: it finds the provider's stateless 2026-07-28 revision);
//! - through the hangar's stdio face (`mode: remote` provider): stdio in, HTTP out;
//! - through the hangar's HTTP face: HTTP in, HTTP out.
//!
//! Rounds are interleaved so all paths see the same machine noise; each session starts every
//! process anew. Run: `cargo bench -p hangar-tests --bench remote` (builds release binaries).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use hangar_tests::latency::{percentile, us};
use hangar_tests::{TestClient, TestDir, release_binaries};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, RoleClient, RunningService, serve_client_with_lifecycle};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const CALLS_PER_ROUND: usize = 300;
const ROUNDS_PER_SESSION: usize = 2;
const SESSIONS: usize = 3;
const WARMUP: usize = 200;

type Client = RunningService<RoleClient, TestClient>;

async fn call_once(client: &Client, tool: &str) -> Result<Duration> {
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(
        json!({"text": "x"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let t = Instant::now();
    let r = client.peer().call_tool(params).await?;
    let took = t.elapsed();
    if r.is_error == Some(true) {
        bail!("{tool} failed: {r:?}");
    }
    Ok(took)
}

/// An rmcp client over streamable HTTP with the hangar's lifecycle for remote providers.
async fn http_client(url: &str) -> Result<Client> {
    let transport = StreamableHttpClientTransport::from_uri(url.to_string());
    let lifecycle = ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::LATEST],
        legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
    };
    Ok(serve_client_with_lifecycle(TestClient::default(), transport, lifecycle).await?)
}

/// Reads stream lines until one contains `marker`; returns that line.
async fn line_with(
    lines: &mut tokio::io::Lines<BufReader<impl tokio::io::AsyncRead + Unpin>>,
    marker: &str,
) -> Result<String> {
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await? {
            if line.contains(marker) {
                return Ok(line);
            }
        }
        bail!("ended before a line with {marker:?}")
    })
    .await
    .map_err(|_| anyhow!("no line with {marker:?} within 20 s"))?
}

async fn start_provider(bin: &std::path::Path) -> Result<(Child, String)> {
    let mut child = Command::new(bin.join("example-provider"))
        .args(["--name", "bench-remote", "--http", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("provider stdout")?;
    let line = line_with(&mut BufReader::new(stdout).lines(), "listening on ").await?;
    let url = line.trim_start_matches("listening on ").to_string();
    Ok((child, url))
}

async fn start_http_hangar(
    bin: &std::path::Path,
    cfg: &std::path::Path,
) -> Result<(Child, String)> {
    let mut child = Command::new(bin.join("mcp-hangar"))
        .args(["serve", "--http", "--port", "0", "--config"])
        .arg(cfg)
        .env("MCP_HANGAR_LOG", "warn,mcp_hangar::http=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = child.stderr.take().context("hangar stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let line = line_with(&mut lines, "streamable HTTP at ").await?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let url = line
        .split("streamable HTTP at ")
        .nth(1)
        .context("hangar address")?
        .trim()
        .to_string();
    Ok((child, url))
}

#[tokio::main]
async fn main() -> Result<()> {
    let bin = release_binaries()?;
    let sessions: usize = std::env::var("HANGAR_BENCH_SESSIONS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(SESSIONS);
    let (mut direct, mut stdio, mut http) = (Vec::new(), Vec::new(), Vec::new());
    let mut per_session = Vec::new();
    for session in 0..sessions {
        let (_provider, url) = start_provider(&bin).await?;
        let dir = TestDir::new("bench-remote");
        let cfg = dir.write(
            "h.yaml",
            &format!(
                "providers:\n  math:\n    mode: remote\n    endpoint: \"{url}\"\n    health_check_interval_s: 0\n"
            ),
        );
        let to_provider = http_client(&url).await.context("direct client")?;
        let mut hc = Command::new(bin.join("mcp-hangar"));
        hc.args(["serve", "--config"])
            .arg(&cfg)
            .env("MCP_HANGAR_LOG", "warn");
        let (transport, _) = TokioChildProcess::builder(hc)
            .stderr(Stdio::null())
            .spawn()?;
        let via_stdio = TestClient::default().serve(transport).await?;
        let (_http_hangar, hangar_url) = start_http_hangar(&bin, &cfg).await?;
        let via_http = http_client(&hangar_url)
            .await
            .context("client of the HTTP hangar")?;
        for _ in 0..WARMUP {
            call_once(&to_provider, "echo").await?;
            call_once(&via_stdio, "math__echo").await?;
            call_once(&via_http, "math__echo").await?;
        }
        let (mut sd, mut ss, mut sh) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS_PER_SESSION {
            for _ in 0..CALLS_PER_ROUND {
                sd.push(call_once(&to_provider, "echo").await?);
            }
            for _ in 0..CALLS_PER_ROUND {
                ss.push(call_once(&via_stdio, "math__echo").await?);
            }
            for _ in 0..CALLS_PER_ROUND {
                sh.push(call_once(&via_http, "math__echo").await?);
            }
        }
        for v in [&mut sd, &mut ss, &mut sh] {
            v.sort();
        }
        let p50 = |v: &[Duration]| us(percentile(v, 0.5));
        per_session.push(format!(
            "  session {}: direct {:.1}, stdio face +{:.1}, HTTP face +{:.1}",
            session + 1,
            p50(&sd),
            p50(&ss) - p50(&sd),
            p50(&sh) - p50(&sd)
        ));
        direct.extend(sd);
        stdio.extend(ss);
        http.extend(sh);
    }
    for v in [&mut direct, &mut stdio, &mut http] {
        v.sort();
    }
    hangar_tests::latency::print_table(
        &format!(
            "warm tools/call latency to a remote provider (example provider, streamable HTTP), {} calls each:",
            direct.len()
        ),
        40,
        &direct,
        &[
            ("direct (rmcp client over HTTP)", &direct),
            ("through mcp-hangar, stdio face", &stdio),
            ("through mcp-hangar, HTTP face", &http),
        ],
        &[
            ("added by the hangar, stdio face", &stdio),
            ("added by the hangar, HTTP face", &http),
        ],
    );
    println!("  p50 per session (each with its own processes), µs:");
    for line in &per_session {
        println!("  {line}");
    }
    Ok(())
}
