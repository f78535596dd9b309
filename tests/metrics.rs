//! Prometheus metrics end to end: the real hangar binary serving `/metrics` on its HTTP face
//! and on a listener of its own beside stdio, scraped by a real Prometheus (Debian's
//! `prometheus`, which the test installs with `.ci/prometheus` when missing) whose query API must then show the calls made.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use hangar_tests::{
    Hangar, HttpHangar, TestDir, call, provider_yaml, read_log, text, unique_token,
    wait_until_async, workspace_root,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// The text format, parsed here so the test does not trust the code it checks
// ---------------------------------------------------------------------------------------------

/// One scrape: `# TYPE` per family, and every sample by name and sorted labels.
#[derive(Default, Debug)]
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    fn parse(body: &str) -> Result<Self> {
        let mut out = Scrape::default();
        for (n, line) in body.lines().enumerate() {
            let at = || format!("line {}: {line}", n + 1);
            if line.is_empty() || line.starts_with("# HELP ") {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or_else(|| anyhow!("{}", at()))?;
                out.types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') {
                bail!("unexpected comment, {}", at());
            }
            let (name, labels, rest) = match line.find('{') {
                Some(open) => {
                    let close = line
                        .rfind('}')
                        .ok_or_else(|| anyhow!("no `}}`, {}", at()))?;
                    (
                        &line[..open],
                        parse_labels(&line[open + 1..close]).with_context(at)?,
                        &line[close + 1..],
                    )
                }
                None => {
                    let (name, rest) = line.split_once(' ').ok_or_else(|| anyhow!("{}", at()))?;
                    (name, BTreeMap::new(), rest)
                }
            };
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            {
                bail!("invalid metric name, {}", at());
            }
            let value = rest.trim().split(' ').next().unwrap_or_default();
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().with_context(|| format!("value, {}", at()))?,
            };
            out.samples.push((name.to_owned(), labels, value));
        }
        Ok(out)
    }

    /// The value of the one sample `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
            .collect();
        match found.as_slice() {
            [v] => Some(*v),
            _ => None,
        }
    }
}

fn parse_labels(text: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek() == Some(&',') || chars.peek() == Some(&' ') {
            chars.next();
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if name.is_empty() {
            break;
        }
        if chars.next() != Some('=') || chars.next() != Some('"') {
            bail!("label `{name}` has no quoted value");
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => bail!("dangling escape"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => bail!("unterminated value of `{name}`"),
            }
        }
        out.insert(name, value);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// A hangar with calls of every outcome
// ---------------------------------------------------------------------------------------------

/// `math`: the example provider, rate limited to a burst of 3 calls (refilling one per 100 s,
/// so a fourth call within the test is always refused).
fn config(dir: &TestDir, extra_top: &str) -> PathBuf {
    let token = unique_token("metrics");
    dir.write(
        "h.yaml",
        &format!(
            "{extra_top}mcp_servers:\n{}",
            provider_yaml(
                "math",
                &token,
                &[],
                "rate_limit: {requests_per_second: 0.01, burst: 3}\nhealth_check_interval_s: 1",
            )
        ),
    )
}

/// Two echoes (success), one `fail` (the tool's own error), one refused by the rate limit.
async fn make_calls(
    client: &rmcp::service::RunningService<rmcp::service::RoleClient, hangar_tests::TestClient>,
) -> Result<()> {
    for _ in 0..2 {
        let r = call(client, "math__echo", json!({"text": "hi"})).await?;
        anyhow::ensure!(r.is_error != Some(true), "echo failed: {}", text(&r));
    }
    let r = call(client, "math__fail", json!({"message": "no"})).await?;
    anyhow::ensure!(r.is_error == Some(true), "fail did not fail: {r:?}");
    let r = call(client, "math__echo", json!({"text": "one too many"})).await?;
    anyhow::ensure!(
        r.is_error == Some(true) && text(&r).contains("rate limit"),
        "the fourth call was not rate limited: {}",
        text(&r)
    );
    Ok(())
}

/// The families a scrape of a hangar with one rate-limited provider that has been called
/// must have, with their types.
const FAMILIES: &[(&str, &str)] = &[
    ("mcp_hangar_build_info", "gauge"),
    ("mcp_hangar_providers", "gauge"),
    ("mcp_hangar_provider_state", "gauge"),
    ("mcp_hangar_provider_up", "gauge"),
    ("mcp_hangar_provider_in_flight", "gauge"),
    ("mcp_hangar_provider_starts_total", "counter"),
    ("mcp_hangar_provider_stops_total", "counter"),
    ("mcp_hangar_provider_cold_start_seconds", "histogram"),
    ("mcp_hangar_tool_calls_total", "counter"),
    ("mcp_hangar_tool_call_duration_seconds", "histogram"),
    ("mcp_hangar_errors_total", "counter"),
    ("mcp_hangar_health_checks_total", "counter"),
    ("mcp_hangar_circuit_breaker_state", "gauge"),
    ("mcp_hangar_rate_limit_hits_total", "counter"),
    ("mcp_hangar_rate_limit_requests_per_second", "gauge"),
    ("mcp_hangar_gc_idle_stops_total", "counter"),
    ("mcp_hangar_gc_idle_ttl_seconds", "gauge"),
];

async fn get(url: &str) -> Result<(u16, String, String)> {
    let resp = reqwest::get(url)
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, ctype, resp.text().await?))
}

#[tokio::test]
async fn metrics_on_the_http_face_parse_and_count_every_outcome() -> Result<()> {
    let dir = TestDir::new("metrics-http");
    let hangar = HttpHangar::start(&config(&dir, "")).await?;
    let client = hangar.client().await?;
    make_calls(&client).await?;

    let (status, ctype, body) = get(&format!("{}/metrics", hangar.base)).await?;
    assert_eq!(status, 200, "{body}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let scrape = Scrape::parse(&body)?;
    for (family, kind) in FAMILIES {
        assert_eq!(
            scrape.types.get(*family).map(String::as_str),
            Some(*kind),
            "family {family} missing or of the wrong type in:\n{body}"
        );
    }
    let echo_ok = [
        ("provider", "math"),
        ("tool", "echo"),
        ("status", "success"),
    ];
    assert_eq!(
        scrape.value("mcp_hangar_tool_calls_total", &echo_ok),
        Some(2.0),
        "{body}"
    );
    let fail = [
        ("provider", "math"),
        ("tool", "fail"),
        ("status", "tool_error"),
    ];
    assert_eq!(
        scrape.value("mcp_hangar_tool_calls_total", &fail),
        Some(1.0),
        "{body}"
    );
    let echo_err = [("provider", "math"), ("tool", "echo"), ("status", "error")];
    assert_eq!(
        scrape.value("mcp_hangar_tool_calls_total", &echo_err),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        scrape.value(
            "mcp_hangar_errors_total",
            &[("provider", "math"), ("kind", "rate_limited")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("mcp_hangar_rate_limit_hits_total", &[("scope", "math")]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "mcp_hangar_tool_call_duration_seconds_count",
            &[("provider", "math"), ("tool", "echo")]
        ),
        Some(3.0),
        "every call of echo is timed, the refused one too"
    );
    assert_eq!(
        scrape.value(
            "mcp_hangar_provider_starts_total",
            &[("provider", "math"), ("result", "success")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "mcp_hangar_provider_cold_start_seconds_count",
            &[("provider", "math")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("mcp_hangar_provider_up", &[("provider", "math")]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "mcp_hangar_provider_state",
            &[("provider", "math"), ("state", "ready")]
        ),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "mcp_hangar_provider_state",
            &[("provider", "math"), ("state", "cold")]
        ),
        Some(0.0)
    );
    assert_eq!(
        scrape.value("mcp_hangar_circuit_breaker_state", &[("provider", "math")]),
        Some(0.0)
    );
    assert_eq!(
        scrape.value(
            "mcp_hangar_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );

    // The same numbers through the management tool, in both formats.
    let r = call(&client, "registry_metrics", json!({})).await?;
    let summary: Value = r
        .structured_content
        .clone()
        .ok_or_else(|| anyhow!("no structured content: {}", text(&r)))?;
    assert_eq!(
        summary["providers"]["math"]["invocations"], 4,
        "{summary:#}"
    );
    assert_eq!(summary["providers"]["math"]["errors"], 2, "{summary:#}");
    assert_eq!(
        summary["tool_calls"]["math.echo"]["count"], 3,
        "{summary:#}"
    );
    assert_eq!(
        summary["tool_calls"]["math.fail"]["errors"], 1,
        "{summary:#}"
    );
    assert_eq!(summary["errors"]["rate_limited"], 1, "{summary:#}");
    assert_eq!(summary["summary"]["total_tool_calls"], 4, "{summary:#}");
    let r = call(&client, "registry_metrics", json!({"format": "prometheus"})).await?;
    let prom = r
        .structured_content
        .as_ref()
        .and_then(|v| v["metrics"].as_str())
        .ok_or_else(|| anyhow!("no `metrics` text: {}", text(&r)))?;
    let again = Scrape::parse(prom)?;
    assert_eq!(
        again.value("mcp_hangar_tool_calls_total", &echo_ok),
        Some(2.0)
    );
    let r = call(&client, "registry_metrics", json!({"format": "xml"})).await;
    assert!(
        r.is_err() || r.as_ref().is_ok_and(|r| r.is_error == Some(true)),
        "an unknown format is refused: {r:?}"
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn metrics_can_be_turned_off() -> Result<()> {
    let dir = TestDir::new("metrics-off");
    let hangar = HttpHangar::start(&config(
        &dir,
        "observability:\n  metrics: {enabled: false}\n",
    ))
    .await?;
    let (status, _, _) = get(&format!("{}/metrics", hangar.base)).await?;
    assert_eq!(status, 404);
    let (status, _, _) = get(&format!("{}/health", hangar.base)).await?;
    assert_eq!(status, 200);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus
// ---------------------------------------------------------------------------------------------

fn prometheus_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("prometheus"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let p = PathBuf::from("/usr/bin/prometheus");
        p.is_file().then_some(p)
    })
}

/// The `prometheus` binary, installed by `.ci/prometheus` (Debian's package) when missing, as
/// the container tests start a Docker engine with `.ci/docker`.
fn ensure_prometheus() -> Result<PathBuf> {
    if let Some(bin) = prometheus_bin() {
        return Ok(bin);
    }
    let script = workspace_root().join(".ci/prometheus");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .status()
        .with_context(|| format!("run {}", script.display()))?;
    prometheus_bin().ok_or_else(|| {
        anyhow!(
            "no `prometheus` binary, and {} could not install one ({status}); install \
             Prometheus or put its binary on PATH",
            script.display()
        )
    })
}

/// The address `serving Prometheus metrics at http://ADDR/metrics` names in the hangar's log.
async fn metrics_address(log: &std::path::Path) -> Result<String> {
    wait_until_async(Duration::from_secs(10), || async {
        read_log(log)
            .lines()
            .find_map(|l| l.split("serving Prometheus metrics at http://").nth(1))
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned)
    })
    .await
    .ok_or_else(|| {
        anyhow!(
            "the hangar did not log its metrics listener:\n{}",
            read_log(log)
        )
    })
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One instant-vector query: the value of each series, by its `job` label.
async fn query(prom: &str, q: &str) -> Result<BTreeMap<String, f64>> {
    let url = reqwest::Url::parse_with_params(&format!("{prom}/api/v1/query"), &[("query", q)])?;
    let body: Value = reqwest::get(url).await?.json().await?;
    if body["status"] != "success" {
        bail!("query `{q}` failed: {body}");
    }
    let mut out = BTreeMap::new();
    for series in body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let job = series["metric"]["job"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let value = series["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no value in {series}"))?;
        out.insert(job, value);
    }
    Ok(out)
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_http_face_and_the_stdio_listener() -> Result<()> {
    let prometheus = ensure_prometheus()?;
    let dir = TestDir::new("metrics-prom");

    // The HTTP face, and a stdio hangar with a metrics listener of its own (port 0: it logs
    // the port it got).
    let http = HttpHangar::start(&config(&dir, "")).await?;
    let stdio_dir = TestDir::new("metrics-prom-stdio");
    let stdio_cfg = config(
        &stdio_dir,
        "observability:\n  metrics:\n    listen: \"127.0.0.1:0\"\n",
    );
    let stdio = Hangar::stdio(&stdio_cfg).await?;
    let stdio_addr = metrics_address(&stdio.log).await?;
    let http_addr = http.base.trim_start_matches("http://").to_owned();

    let port = free_port()?;
    let prom_cfg = dir.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: http\n    static_configs: [{{targets: [\"{http_addr}\"]}}]\n  - job_name: stdio\n    static_configs: [{{targets: [\"{stdio_addr}\"]}}]\n"
        ),
    );
    let prom_log = dir.path().join("prometheus.log");
    let mut prom_child = tokio::process::Command::new(&prometheus)
        .arg(format!("--config.file={}", prom_cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&prom_log)?))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", prometheus.display()))?;
    let prom = format!("http://127.0.0.1:{port}");

    let http_client = http.client().await?;
    make_calls(&http_client).await?;
    make_calls(&stdio.client).await?;

    // Every value below must reach Prometheus from both hangars within a few scrapes.
    let expected: &[(&str, f64)] = &[
        (
            r#"mcp_hangar_tool_calls_total{provider="math",tool="echo",status="success"}"#,
            2.0,
        ),
        (
            r#"mcp_hangar_tool_calls_total{provider="math",tool="fail",status="tool_error"}"#,
            1.0,
        ),
        (
            r#"mcp_hangar_tool_calls_total{provider="math",tool="echo",status="error"}"#,
            1.0,
        ),
        (
            r#"mcp_hangar_errors_total{provider="math",kind="rate_limited"}"#,
            1.0,
        ),
        (r#"mcp_hangar_rate_limit_hits_total{scope="math"}"#, 1.0),
        (r#"mcp_hangar_provider_up{provider="math"}"#, 1.0),
        (
            r#"mcp_hangar_provider_state{provider="math",state="ready"}"#,
            1.0,
        ),
        (
            r#"mcp_hangar_provider_starts_total{provider="math",result="success"}"#,
            1.0,
        ),
        (
            r#"mcp_hangar_tool_call_duration_seconds_count{provider="math",tool="echo"}"#,
            3.0,
        ),
        (r#"up"#, 1.0),
    ];
    let last = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let all_seen = wait_until_async(Duration::from_secs(45), || {
        let last = last.clone();
        let prom = prom.clone();
        async move {
            for (q, want) in expected {
                let got = match query(&prom, q).await {
                    Ok(got) => got,
                    Err(e) => {
                        *last.lock().unwrap_or_else(|e| e.into_inner()) = format!("{e:#}");
                        return None;
                    }
                };
                let both = ["http", "stdio"]
                    .iter()
                    .all(|job| got.get(*job) == Some(want));
                if !both {
                    *last.lock().unwrap_or_else(|e| e.into_inner()) =
                        format!("{q}: want {want} from jobs http and stdio, got {got:?}");
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    if all_seen.is_none() {
        let _ = prom_child.kill().await;
        bail!(
            "Prometheus did not show the calls: {}\nprometheus log:\n{}\nstdio hangar log:\n{}",
            last.lock().unwrap_or_else(|e| e.into_inner()),
            read_log(&prom_log),
            stdio.log()
        );
    }
    // Health checks run every second: Prometheus sees them counted too.
    let checks = wait_until_async(Duration::from_secs(20), || {
        let prom = prom.clone();
        async move {
            let got = query(
                &prom,
                r#"mcp_hangar_health_checks_total{provider="math",result="success"} > 0"#,
            )
            .await
            .ok()?;
            (got.len() == 2).then_some(got)
        }
    })
    .await;
    assert!(checks.is_some(), "health checks never reached Prometheus");
    let _ = prom_child.kill().await;
    http_client.cancel().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// logging:
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn logging_from_the_config_writes_json_lines_to_the_file_at_its_level() -> Result<()> {
    let dir = TestDir::new("metrics-log");
    let cfg = config(
        &dir,
        "logging:\n  level: debug\n  json_format: true\n  file: logs/hangar.log\n",
    );
    let hangar = Hangar::stdio(&cfg).await?;
    let r = call(&hangar.client, "math__echo", json!({"text": "hi"})).await?;
    anyhow::ensure!(r.is_error != Some(true), "echo failed: {}", text(&r));
    let file = dir.path().join("logs/hangar.log");
    let lines = wait_until_async(Duration::from_secs(10), || async {
        let log = read_log(&file);
        let has_debug = log.contains("\"level\":\"DEBUG\"");
        (has_debug && log.contains("serving")).then_some(log)
    })
    .await
    .ok_or_else(|| {
        anyhow!(
            "no DEBUG JSON lines in {}:\n{}",
            file.display(),
            read_log(&file)
        )
    })?;
    for line in lines.lines() {
        let v: Value = serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
    }
    // The same lines go to stderr too.
    assert!(
        hangar.log().contains("\"level\":\"DEBUG\""),
        "{}",
        hangar.log()
    );
    Ok(())
}

#[tokio::test]
async fn a_config_error_is_printed_before_any_log_is_set_up() -> Result<()> {
    let dir = TestDir::new("metrics-log-err");
    let cfg = dir.write(
        "bad.yaml",
        "logging:\n  level: LOUD\nmcp_servers:\n  a: {command: [x]}\n",
    );
    let out = tokio::process::Command::new(hangar_tests::hangar_bin())
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .output()
        .await?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: {}:2:", cfg.display()))
            && stderr.contains("unknown log level `LOUD`"),
        "{stderr}"
    );
    Ok(())
}
