//! Resilience figures, printed in one run:
//!
//! - a chaos run: 10,000 calls, 16 at a time, to a round-robin group whose members crash every
//!   50th call, fail every 10th, print garbage on stdout, exit at start, or hang at initialize —
//!   the share of calls answered (a result or an error) within timeout + 1 s, p50/p99 latency,
//!   and the provider processes left after the hangar is stopped;
//! - the cost of schema validation on 1 KB of arguments: the validator alone (the work the call
//!   path gains) beside a warm end-to-end call to a provider whose tool has the same schema.
//!
//! Run: `cargo bench -p hangar-tests --bench chaos` (builds the release binaries first).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hangar_tests::{TestClient, TestDir, count_processes, release_binaries, sigterm, unique_token};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use tokio::process::Command;

const CALLS: usize = 10_000;
const CONCURRENCY: usize = 16;
const TIMEOUT_S: f64 = 2.0;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A ~1 KB arguments object and a realistic schema for it.
fn kilobyte_call() -> (Value, Value) {
    let schema = json!({
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 2000},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
            "sort": {"enum": ["asc", "desc"]},
            "email": {"type": "string", "pattern": "^[^@]+@[^@]+$"},
            "filters": {"type": "object", "properties": {
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 50},
                "since": {"type": "string"},
                "score": {"type": "number", "minimum": 0}
            }, "additionalProperties": false},
            "page": {"type": "integer", "minimum": 0},
            "verbose": {"type": "boolean"},
            "fields": {"type": "array", "items": {"type": "string"}},
            "locale": {"type": "string", "maxLength": 10},
            "note": {"type": "string"}
        },
        "required": ["query", "limit"],
        "additionalProperties": false
    });
    let args = json!({
        "query": "x".repeat(500),
        "limit": 50, "sort": "desc", "email": "ops@example.com",
        "filters": {"tags": (0..20).map(|i| format!("tag-{i}")).collect::<Vec<_>>(), "since": "2026-01-01", "score": 0.5},
        "page": 3, "verbose": true,
        "fields": ["id", "name", "owner", "created", "updated", "size"],
        "locale": "en-GB", "note": "y".repeat(120)
    });
    (args, schema)
}

#[tokio::main]
async fn main() -> Result<()> {
    let bin = release_binaries()?;
    let hangar = bin.join("mcp-hangar");
    let provider = bin.join("example-provider");
    let dir = TestDir::new("chaos-bench");
    let token = unique_token("chaosbench");
    let member = |id: &str, args: &[&str]| {
        let mut argv = vec![
            format!("\"{}\"", provider.display()),
            "--name".into(),
            format!("\"{token}-{id}\""),
        ];
        argv.extend(args.iter().map(|a| format!("\"{a}\"")));
        format!(
            "      - id: {id}\n        command: [{}]\n        health_check_interval_s: 1\n        recovery: {{base_delay_s: 0.1, max_delay_s: 1, max_retries: 100000}}\n",
            argv.join(", ")
        )
    };
    let cfg = dir.write(
        "chaos.yaml",
        &format!(
            "providers:\n  pool:\n    mode: group\n    strategy: round_robin\n    call_timeout_s: {TIMEOUT_S}\n    circuit_breaker: {{failure_threshold: 1000000}}\n    members:\n{}{}{}{}{}{}",
            member("steady", &[]),
            member("crashy", &["--crash-every", "50"]),
            member("flaky", &["--fail-every", "10"]),
            member("noisy", &["--garbage-stdout"]),
            member("broken", &["--exit-at-start", "1"]),
            member("hung", &["--hang-on-initialize"]),
        ),
    );
    let mut cmd = Command::new(&hangar);
    cmd.args(["serve", "--config"])
        .arg(&cfg)
        .env("MCP_HANGAR_LOG", "error");
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()?;
    let hangar_pid = transport.id().unwrap_or(0);
    let client = Arc::new(TestClient::default().serve(transport).await?);

    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers = (0..CONCURRENCY).map(|_| {
        let client = client.clone();
        let next = next.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < CALLS {
                let params = CallToolRequestParams::new("pool__echo").with_arguments(
                    json!({"text": "chaos"})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                );
                let t = Instant::now();
                let limit = Duration::from_secs_f64(TIMEOUT_S + 1.0);
                let r = tokio::time::timeout(limit, client.peer().call_tool(params)).await;
                let outcome = match r {
                    Err(_) => "unanswered",
                    Ok(Err(_)) => "protocol error",
                    Ok(Ok(r)) if r.is_error == Some(true) => "error result",
                    Ok(Ok(_)) => "ok",
                };
                out.push((t.elapsed(), outcome));
            }
            out
        })
    });
    let mut results = Vec::new();
    for w in workers {
        results.extend(w.await?);
    }
    let wall = started.elapsed();
    let mut latencies: Vec<Duration> = results.iter().map(|(d, _)| *d).collect();
    latencies.sort();
    let count = |what: &str| results.iter().filter(|(_, o)| *o == what).count();
    let answered = results.len() - count("unanswered");
    println!(
        "chaos run: {} calls, {CONCURRENCY} at a time, to a group of 6 members (1 steady, crash every 50th, fail every 10th, garbage on stdout, exit at start, hang at initialize); timeout {TIMEOUT_S} s",
        results.len()
    );
    println!(
        "  answered within timeout + 1 s: {answered} ({:.2} %); ok {}, tool/hangar error results {}, protocol errors {}",
        100.0 * answered as f64 / results.len() as f64,
        count("ok"),
        count("error result"),
        count("protocol error")
    );
    println!(
        "  latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.0} calls/s",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies[latencies.len() - 1]),
        results.len() as f64 / wall.as_secs_f64()
    );
    drop(client);
    sigterm(hangar_pid);
    let deadline = Instant::now() + Duration::from_secs(15);
    while count_processes(&token) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "  provider processes left after the hangar stopped: {}",
        count_processes(&token)
    );

    // Schema validation on 1 KB of arguments.
    let (args, schema) = kilobyte_call();
    let schema = Arc::new(schema.as_object().cloned().unwrap_or_default());
    let cache = mcp_hangar::validate::SchemaCache::new();
    let bytes = serde_json::to_vec(&args)?.len();
    for _ in 0..10_000 {
        let _ = cache.validate("p", "t", &schema, &args);
    }
    let n = 100_000;
    let t = Instant::now();
    for _ in 0..n {
        let (r, _) = cache.validate("p", "t", &schema, &args);
        assert!(r.is_ok());
    }
    let per_validation = t.elapsed() / n;
    let limits = mcp_hangar::validate::Limits::default();
    let object = args.as_object().cloned().unwrap_or_default();
    let t = Instant::now();
    for _ in 0..n {
        assert!(mcp_hangar::validate::check_limits(&object, &limits).is_ok());
    }
    let per_limits = t.elapsed() / n;
    // The same 1 KB call end to end, warm, through the hangar to a steady provider.
    let cfg = dir.write(
        "one.yaml",
        &format!(
            "providers:\n  math:\n    command: [\"{}\"]\n",
            provider.display()
        ),
    );
    let mut cmd = Command::new(&hangar);
    cmd.args(["serve", "--config"])
        .arg(&cfg)
        .env("MCP_HANGAR_LOG", "error");
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()?;
    let client = TestClient::default().serve(transport).await?;
    let text = json!({ "text": serde_json::to_string(&args)? });
    let mut e2e = Vec::new();
    for i in 0..5200 {
        let params = CallToolRequestParams::new("math__echo")
            .with_arguments(text.as_object().cloned().unwrap_or_default());
        let t = Instant::now();
        client.peer().call_tool(params).await?;
        if i >= 200 {
            e2e.push(t.elapsed());
        }
    }
    e2e.sort();
    let e2e50 = percentile(&e2e, 0.5);
    let validation = per_validation + per_limits;
    println!();
    println!(
        "schema validation of {bytes} bytes of arguments (10 properties, nested object, enum, pattern), {n} runs each:"
    );
    println!(
        "  size and depth limits            {:>8.2} µs per call",
        per_limits.as_secs_f64() * 1e6
    );
    println!(
        "  JSON Schema check (compiled, cached) {:>4.2} µs per call",
        per_validation.as_secs_f64() * 1e6
    );
    println!(
        "  a warm ~1 KB tools/call through the hangar, validation included: p50 {:.1} µs; validation is {:.2} µs of it ({:.1} %)",
        e2e50.as_secs_f64() * 1e6,
        validation.as_secs_f64() * 1e6,
        100.0 * validation.as_secs_f64() / e2e50.as_secs_f64()
    );
    Ok(())
}
