//! Core figures of the hangar, printed side by side with the direct path in one run:
//!
//! - warm `tools/call` latency, the same client calling the same example provider directly and
//!   through the hangar over stdio (p50, p99, and what the hangar adds), and — as the floor any
//!   stdio gateway pays on this machine — through a relay that only copies lines between two
//!   pipes with blocking reads (no parsing, no async runtime);
//! - time from process start to answering `tools/list` with 100 configured lazy providers;
//! - RSS of that idle process;
//! - instructions per call executed by the process in the middle (the hangar, and both relays
//!   for comparison), counted by callgrind: unlike the latencies, the same on a noisy machine
//!   as on a quiet one, so a change in the hangar's own work shows up at once. Needs
//!   `valgrind` on PATH (skipped otherwise).
//!
//! Run: `cargo bench -p hangar-tests --bench core` (builds the release binaries first).
//!
//! For profiling: `HANGAR_BENCH_SESSIONS=0` skips the latency part, `HANGAR_BENCH_COUNT=traces`
//! counts instructions only for the rows whose name contains that text, and
//! `HANGAR_BENCH_CALLGRIND_DIR=<dir>` keeps each callgrind profile there
//! (`<row>-200.out`, `<row>-1200.out`) for `callgrind_annotate`.
//! `HANGAR_BENCH_STORE_SETTLE_MS=<ms>` pauses after each event-store block so its writer's
//! flush does not land on the block after it (the traced hangar's).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hangar_tests::latency::{percentile, us};
use hangar_tests::{TestClient, TestDir, release_binaries};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, MetaObject, RequestMetaObject};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use tokio::process::Command;

const CALLS_PER_ROUND: usize = 500;
const SESSIONS: usize = 6;
const ROUNDS_PER_SESSION: usize = 2;
const STARTS: usize = 15;
const LAZY_PROVIDERS: usize = 100;

async fn connect(cmd: Command) -> Result<RunningService<RoleClient, TestClient>> {
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()?;
    Ok(TestClient::default().serve(transport).await?)
}

async fn call_once(
    client: &RunningService<RoleClient, TestClient>,
    tool: &str,
) -> Result<Duration> {
    call(client, tool, false).await
}

/// A client's W3C trace context, as a traced client sends it in `_meta`.
const CLIENT_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// One call, with the client's trace context in `_meta` if `traced_client`.
async fn call(
    client: &RunningService<RoleClient, TestClient>,
    tool: &str,
    traced_client: bool,
) -> Result<Duration> {
    let args = json!({"text": "x"});
    let mut params = CallToolRequestParams::new(tool.to_string())
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    if traced_client {
        let mut meta = serde_json::Map::new();
        meta.insert("traceparent".into(), json!(CLIENT_TRACEPARENT));
        params.meta = Some(RequestMetaObject(MetaObject(meta)));
    }
    let t = Instant::now();
    let r = client.peer().call_tool(params).await?;
    let took = t.elapsed();
    if r.is_error == Some(true) {
        bail!("{tool} failed: {r:?}");
    }
    Ok(took)
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn lazy_config(dir: &TestDir, provider: &Path) -> PathBuf {
    // The store is on by default; here it writes beside the config, not into the home.
    let mut yaml = String::from("event_store: {path: lazy-events.db}\nproviders:\n");
    for i in 0..LAZY_PROVIDERS {
        yaml.push_str(&format!(
            "  p{i}:\n    command: [\"{}\", --name, p{i}]\n    tools:\n      - name: add\n        description: Add two numbers\n        inputSchema: {{type: object, properties: {{a: {{type: number}}, b: {{type: number}}}}, required: [a, b]}}\n      - name: echo\n        inputSchema: {{type: object, properties: {{text: {{type: string}}}}}}\n",
            provider.display()
        ));
    }
    dir.write("lazy.yaml", &yaml)
}

/// The floor: copies each line from stdin to the child and the child's answer back. MCP over
/// stdio is one JSON-RPC message per line and the benchmark is strictly request/response, so
/// this forwards it correctly while doing nothing a real gateway must do.
fn relay(argv: &[String]) -> Result<()> {
    use std::io::{BufRead, BufReader, Write};
    let (program, args) = argv.split_first().context("relay needs a command")?;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut to_child = child.stdin.take().context("child stdin")?;
    let mut from_child = BufReader::new(child.stdout.take().context("child stdout")?);
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    let mut line = String::new();
    for request in stdin.lock().lines() {
        let request = request?;
        writeln!(to_child, "{request}")?;
        to_child.flush()?;
        // Notifications (no "id") get no answer.
        if !request.contains("\"id\"") {
            continue;
        }
        line.clear();
        if from_child.read_line(&mut line)? == 0 {
            break;
        }
        stdout.write_all(line.as_bytes())?;
        stdout.flush()?;
    }
    Ok(())
}

/// The same relay on tokio (non-blocking pipes, a current-thread runtime): what the async stack
/// itself costs before any MCP processing.
fn async_relay(argv: &[String]) -> Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (program, args) = argv.split_first().context("relay needs a command")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut to_child = child.stdin.take().context("child stdin")?;
        let mut from_child = BufReader::new(child.stdout.take().context("child stdout")?).lines();
        let (stdin, mut stdout) = rmcp::transport::stdio_pipes();
        let mut requests = BufReader::new(stdin).lines();
        while let Some(request) = requests.next_line().await? {
            to_child.write_all(request.as_bytes()).await?;
            to_child.write_all(b"\n").await?;
            to_child.flush().await?;
            if !request.contains("\"id\"") {
                continue;
            }
            let Some(answer) = from_child.next_line().await? else {
                break;
            };
            stdout.write_all(answer.as_bytes()).await?;
            stdout.write_all(b"\n").await?;
            stdout.flush().await?;
        }
        Ok(())
    })
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--relay") {
        return relay(&argv[2..]);
    }
    if argv.get(1).map(String::as_str) == Some("--async-relay") {
        return async_relay(&argv[2..]);
    }
    tokio::runtime::Runtime::new()?.block_on(bench())
}

async fn bench() -> Result<()> {
    let bin = release_binaries()?;
    let hangar = bin.join("mcp-hangar");
    let provider = bin.join("example-provider");
    let dir = TestDir::new("bench");
    // The same provider with the event store off and on (the store is on by default; it
    // writes beside the config here, not into the home).
    let math = format!(
        "providers:\n  math:\n    command: [\"{}\", --name, bench]\n",
        provider.display()
    );
    let cfg = dir.write(
        "h.yaml",
        &format!("event_store: {{enabled: false}}\n{math}"),
    );
    let cfg_store = dir.write(
        "h-store.yaml",
        &format!("event_store: {{path: events.db}}\n{math}"),
    );
    // The same hangar exporting a span per call (sample rate 1) over OTLP/gRPC to a receiver
    // in this process that decodes every request (and flattens the spans only when asked, after
    // the timing).
    let (collector, spans) = hangar_tests::otlp::grpc_receiver().await?;
    let traced_cfg = dir.write(
        "traced.yaml",
        &format!(
            "event_store: {{enabled: false}}\nobservability:\n  tracing:\n    \
             otlp_endpoint: http://{collector}\n    sample_rate: 1\n{math}"
        ),
    );

    // 1. Warm call latency, direct and through the hangar, interleaved round by round so both
    //    see the same machine noise. Where the kernel places the processes on 2 cores changes
    //    every figure by tens of µs for the life of a process, so each session starts all four
    //    anew, and the figures are over all sessions.
    let sessions: usize = std::env::var("HANGAR_BENCH_SESSIONS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(SESSIONS);
    // More rounds (HANGAR_BENCH_ROUNDS) give a profiler time to attach.
    let rounds: usize = std::env::var("HANGAR_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS_PER_SESSION);
    let store_settle = Duration::from_millis(
        std::env::var("HANGAR_BENCH_STORE_SETTLE_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0),
    );
    let (mut d, mut r, mut a, mut h) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if sessions == 0 {
        return counts(&dir, &provider, &hangar, [&cfg, &cfg_store, &traced_cfg]).await;
    }
    let mut hs = Vec::new();
    let mut t = Vec::new();
    // The same two hangars called by a client that sends its trace context: the provider gets
    // a `_meta` either way (the client's, or the hangar's), so the difference is the hangar's.
    let (mut hx, mut tx) = (Vec::new(), Vec::new());
    let mut per_session = Vec::new();
    for session in 0..sessions {
        let mut pc = Command::new(&provider);
        pc.args(["--name", "bench-direct"]);
        let direct = connect(pc).await.context("direct provider")?;
        let mut rc = Command::new(std::env::current_exe()?);
        rc.arg("--relay")
            .arg(&provider)
            .args(["--name", "bench-relay"]);
        let relayed = connect(rc).await.context("relay")?;
        let mut ac = Command::new(std::env::current_exe()?);
        ac.arg("--async-relay")
            .arg(&provider)
            .args(["--name", "bench-async-relay"]);
        let async_relayed = connect(ac).await.context("async relay")?;
        let mut hc = Command::new(&hangar);
        hc.args(["serve", "--config"])
            .arg(&cfg)
            .env("MCP_HANGAR_LOG", "warn");
        let through = connect(hc).await.context("hangar")?;
        let mut sc = Command::new(&hangar);
        sc.args(["serve", "--config"])
            .arg(&cfg_store)
            .env("MCP_HANGAR_LOG", "warn");
        let stored = connect(sc).await.context("hangar with the event store")?;
        let mut tc = Command::new(&hangar);
        tc.args(["serve", "--config"])
            .arg(&traced_cfg)
            .env("MCP_HANGAR_LOG", "warn");
        let traced = connect(tc).await.context("hangar with tracing")?;
        for _ in 0..200 {
            call(&through, "math__echo", true).await?;
            call(&traced, "math__echo", true).await?;
            call_once(&direct, "echo").await?;
            call_once(&relayed, "echo").await?;
            call_once(&async_relayed, "echo").await?;
            call_once(&through, "math__echo").await?;
            call_once(&stored, "math__echo").await?;
            call_once(&traced, "math__echo").await?;
        }
        let (mut sd, mut sa, mut sh, mut ss) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut st = Vec::new();
        let (mut shc, mut stc) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            for _ in 0..CALLS_PER_ROUND {
                sd.push(call_once(&direct, "echo").await?);
            }
            for _ in 0..CALLS_PER_ROUND {
                r.push(call_once(&relayed, "echo").await?);
            }
            for _ in 0..CALLS_PER_ROUND {
                sa.push(call_once(&async_relayed, "echo").await?);
            }
            for _ in 0..CALLS_PER_ROUND {
                sh.push(call_once(&through, "math__echo").await?);
            }
            for _ in 0..CALLS_PER_ROUND {
                ss.push(call_once(&stored, "math__echo").await?);
            }
            // The store's writer flushes what the block queued up to 100 ms later, in its own
            // thread; on 2 cores that lands on the next block (the traced hangar's) unless it
            // is let finish first (HANGAR_BENCH_STORE_SETTLE_MS, e.g. 300).
            tokio::time::sleep(store_settle).await;
            for _ in 0..CALLS_PER_ROUND {
                st.push(call_once(&traced, "math__echo").await?);
            }
            for _ in 0..CALLS_PER_ROUND {
                shc.push(call(&through, "math__echo", true).await?);
            }
            for _ in 0..CALLS_PER_ROUND {
                stc.push(call(&traced, "math__echo", true).await?);
            }
        }
        for v in [
            &mut sd, &mut sa, &mut sh, &mut ss, &mut st, &mut shc, &mut stc,
        ] {
            v.sort();
        }
        let p50 = |v: &[Duration]| us(percentile(v, 0.5));
        per_session.push(format!(
            "  session {}: tokio relay +{:.1}, hangar +{:.1}, with the event store +{:.1}, with traces +{:.1}; traces over no traces {:+.1}, with a traced client {:+.1}",
            session + 1,
            p50(&sa) - p50(&sd),
            p50(&sh) - p50(&sd),
            p50(&ss) - p50(&sd),
            p50(&st) - p50(&sd),
            p50(&st) - p50(&sh),
            p50(&stc) - p50(&shc)
        ));
        d.extend(sd);
        a.extend(sa);
        h.extend(sh);
        hs.extend(ss);
        t.extend(st);
        hx.extend(shc);
        tx.extend(stc);
    }
    for v in [
        &mut d, &mut r, &mut a, &mut h, &mut hs, &mut t, &mut hx, &mut tx,
    ] {
        v.sort();
    }
    hangar_tests::latency::print_table(
        &format!(
            "warm tools/call latency, {} calls each (echo, stdio):",
            d.len()
        ),
        42,
        &d,
        &[
            ("direct to provider", &d),
            ("through a bare line relay (floor)", &r),
            ("through a tokio line relay", &a),
            ("through mcp-hangar (stdio)", &h),
            ("through mcp-hangar, event store on", &hs),
            ("through mcp-hangar, OTLP traces at 1", &t),
            ("through mcp-hangar, traced client", &hx),
            ("through mcp-hangar, traces, traced client", &tx),
        ],
        &[
            ("added by the bare relay", &r),
            ("added by the tokio relay", &a),
            ("added by the hangar", &h),
            ("added by the hangar, store on", &hs),
            ("added by the hangar, traces on", &t),
        ],
    );
    println!(
        "  traces: p50 {:+.1} µs over the same hangar without them ({} spans received over OTLP/gRPC)",
        us(percentile(&t, 0.5)) - us(percentile(&h, 0.5)),
        spans.span_count()
    );
    println!(
        "  traces, client sending a traceparent to both: p50 {:+.1} µs (the provider reads a `_meta` in both)",
        us(percentile(&tx, 0.5)) - us(percentile(&hx, 0.5)),
    );
    println!("  added p50 per session (each with its own processes):");
    for line in &per_session {
        println!("  {line}");
    }

    // 2. Start to first tools/list with 100 lazy providers, and the idle RSS.
    let lazy = lazy_config(&dir, &provider);
    let mut starts = Vec::new();
    let mut rss = Vec::new();
    let mut tools_seen = 0;
    for _ in 0..STARTS {
        let mut cmd = Command::new(&hangar);
        cmd.args(["serve", "--config"])
            .arg(&lazy)
            .env("MCP_HANGAR_LOG", "warn");
        let t = Instant::now();
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(Stdio::null())
            .spawn()?;
        let pid = transport.id().unwrap_or(0);
        let client = TestClient::default().serve(transport).await?;
        let tools = client.peer().list_all_tools().await?;
        starts.push(t.elapsed());
        tools_seen = tools.len();
        tokio::time::sleep(Duration::from_millis(200)).await;
        rss.extend(rss_kb(pid));
        drop(client);
    }
    starts.sort();
    rss.sort();
    println!();
    println!(
        "start to tools/list answered, {LAZY_PROVIDERS} lazy providers with predefined tools ({tools_seen} tools), {STARTS} starts:"
    );
    println!(
        "  p50 {:.1} ms, min {:.1} ms, max {:.1} ms",
        percentile(&starts, 0.5).as_secs_f64() * 1e3,
        starts[0].as_secs_f64() * 1e3,
        starts[starts.len() - 1].as_secs_f64() * 1e3
    );
    if let Some(mid) = rss.get(rss.len() / 2) {
        println!("  idle RSS (VmRSS) p50 {:.1} MB", *mid as f64 / 1024.0);
    }

    println!();
    counts(&dir, &provider, &hangar, [&cfg, &cfg_store, &traced_cfg]).await
}

/// 3. Instructions per call of each process in the middle, and of the provider itself.
async fn counts(
    dir: &TestDir,
    provider: &Path,
    hangar: &Path,
    [cfg, cfg_store, traced_cfg]: [&PathBuf; 3],
) -> Result<()> {
    let only = std::env::var("HANGAR_BENCH_COUNT").unwrap_or_default();
    let keep = std::env::var_os("HANGAR_BENCH_CALLGRIND_DIR").map(PathBuf::from);
    if std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("instructions per call: skipped (valgrind is not on PATH)");
        return Ok(());
    }
    println!(
        "instructions per call (callgrind, user space, {COUNTED_CALLS} warm calls), of the process the client talks to:"
    );
    let me = std::env::current_exe()?;
    let relay = |mode: &str| -> Vec<std::ffi::OsString> {
        vec![
            me.clone().into(),
            mode.into(),
            provider.into(),
            "--name".into(),
            "d".into(),
        ]
    };
    let paths: [(&str, Vec<std::ffi::OsString>, &str); 6] = [
        (
            "the provider itself (direct)",
            vec![provider.into(), "--name".into(), "d".into()],
            "echo",
        ),
        ("bare line relay", relay("--relay"), "echo"),
        ("tokio line relay", relay("--async-relay"), "echo"),
        (
            "mcp-hangar",
            vec![hangar.into(), "serve".into(), "--config".into(), cfg.into()],
            "math__echo",
        ),
        (
            "mcp-hangar, event store on",
            vec![
                hangar.into(),
                "serve".into(),
                "--config".into(),
                cfg_store.into(),
            ],
            "math__echo",
        ),
        (
            "mcp-hangar, OTLP traces at 1",
            vec![
                hangar.into(),
                "serve".into(),
                "--config".into(),
                traced_cfg.into(),
            ],
            "math__echo",
        ),
    ];
    for (name, argv, tool) in paths {
        if !name.contains(only.as_str()) {
            continue;
        }
        let per_call = instructions_per_call(dir, &argv, tool, keep.as_deref(), name).await?;
        println!("  {name:<34} {:>8.1} k", per_call / 1e3);
    }
    Ok(())
}

/// Warm calls whose instructions are counted: the count of a run with this many more calls,
/// less that of a run without them, so start-up and shutdown cancel out.
const COUNTED_CALLS: u64 = 1000;

/// User-space instructions the process `argv` starts executes per warm `tools/call`.
async fn instructions_per_call(
    dir: &TestDir,
    argv: &[std::ffi::OsString],
    tool: &str,
    keep: Option<&Path>,
    name: &str,
) -> Result<f64> {
    let mut totals = Vec::new();
    for (run, calls) in [200, 200 + COUNTED_CALLS].into_iter().enumerate() {
        let out = dir.path().join(format!("callgrind-{run}.out"));
        let _ = std::fs::remove_file(&out);
        let mut cmd = Command::new("valgrind");
        cmd.arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .args(argv)
            .env("MCP_HANGAR_LOG", "warn");
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(Stdio::null())
            .spawn()?;
        let client = TestClient::default().serve(transport).await?;
        for _ in 0..calls {
            call_once(&client, tool).await?;
        }
        // Closing stdin ends the process; callgrind writes its count as it exits.
        client.cancel().await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let total = loop {
            if let Some(t) = std::fs::read_to_string(&out).ok().and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("totals: "))
                    .and_then(|t| t.trim().parse::<u64>().ok())
            }) {
                break t;
            }
            if Instant::now() > deadline {
                bail!("callgrind wrote no count to {}", out.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        totals.push(total);
        if let Some(keep) = keep {
            let file: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            std::fs::create_dir_all(keep)?;
            std::fs::copy(&out, keep.join(format!("{file}-{calls}.out")))?;
        }
    }
    Ok((totals[1] as f64 - totals[0] as f64) / COUNTED_CALLS as f64)
}
