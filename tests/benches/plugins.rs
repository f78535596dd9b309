//! Plugin figures, each beside the native path it replaces, in one run:
//!
//! - a group pick among 8 members: the native `round_robin` strategy vs the bundled
//!   `sticky-session` policy plugin (goal: ≤ 1.5 µs p50 for the plugin);
//! - a call's validation step with ~1 KB of arguments: no validator vs the bundled
//!   `deny-patterns` validator (goal: ≤ 5 µs p50 added). The arguments are encoded once per
//!   call whether or not a validator runs (the request to the provider reuses the validators'
//!   encoding), so the encoding is shown on a row of its own;
//! - the Python and JavaScript example validators, when the tests have built them: load time
//!   and a call on the same arguments;
//! - a hot swap: loading a changed plugin file and swapping it in (compile, type-check,
//!   configure).
//!
//! The host is the hangar's own (`mcp_hangar::plugin`), on a 2-worker tokio runtime as in the
//! hangar. Run: `cargo bench -p hangar-tests --bench plugins` (`-- pick`, `-- validate`,
//! `-- polyglot` or `-- swap` for one part, e.g. under a profiler).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_hangar::bundled;
use mcp_hangar::config::{PluginConfig, PluginKind, PluginSpec};
use mcp_hangar::group::strategy::{self, Candidate};
use mcp_hangar::plugin::{Invocation, Member, Plugin, PluginHost, Verdict};
use serde_json::json;

const PICKS: usize = 100_000;
const VALIDATIONS: usize = 50_000;
const SWAPS: usize = 10;

fn spec(name: &str, kind: PluginKind, path: PathBuf, config: serde_json::Value) -> PluginSpec {
    PluginSpec::new(name, kind, path, PluginConfig::plain(config))
}

/// ~1 KB of realistic arguments: a path, a command, options, a list.
fn one_kb_arguments() -> serde_json::Map<String, serde_json::Value> {
    let value = json!({
        "path": "/data/reports/2024/q3/summary.csv",
        "command": "grep -n 'total' summary.csv | sort -k2 -n | head -20",
        "options": {"encoding": "utf-8", "follow_symlinks": false, "max_bytes": 1048576,
                    "columns": ["region", "quarter", "revenue", "cost", "margin"]},
        "filters": (0..12).map(|i| format!("region-{i:02}=emea-north-{i}")).collect::<Vec<_>>(),
        "note": "x".repeat(460),
    });
    match value {
        serde_json::Value::Object(map) => map,
        _ => unreachable!(),
    }
}

struct Figures {
    p50: Duration,
    p99: Duration,
}

fn figures(mut samples: Vec<Duration>) -> Figures {
    samples.sort();
    Figures {
        p50: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn row(label: &str, f: &Figures) {
    println!(
        "  {label:<44} p50 {:>8.2} µs   p99 {:>8.2} µs",
        us(f.p50),
        us(f.p99)
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run());
}

async fn run() {
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let host = PluginHost::new().expect("the plugin host starts");
    println!(
        "plugin figures (memory reset: {}, {} CPUs)",
        host.memory_reset(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    if part("pick") {
        pick(&host).await;
    }
    if part("validate") {
        validate(&host).await;
    }
    if part("polyglot") {
        polyglot(&host).await;
    }
    if part("swap") {
        swap(&host).await;
    }
}

/// The Python and JavaScript example validators, when the tests have built them
/// (`target/wasm-plugins/{python,js}_validator.wasm`): load time and a call on ~1 KB.
async fn polyglot(host: &PluginHost) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm-plugins");
    let config = json!({
        "forbidden_tools": ["delete_repo", "drop_database"],
        "secret_patterns": {"aws-access-key": "AKIA[0-9A-Z]{16}", "github-token": "gh[pousr]_[A-Za-z0-9]{36}"},
    });
    let arguments = serde_json::to_string(&one_kb_arguments()).unwrap();
    for (label, file) in [
        (
            "python-validator (componentize-py)",
            "python_validator.wasm",
        ),
        ("js-validator (componentize-js)", "js_validator.wasm"),
    ] {
        let path = dir.join(file);
        if !path.is_file() {
            println!("  {label}: not built (run the tests first)");
            continue;
        }
        let mut plugin_spec = spec(label, PluginKind::Validator, path, config.clone());
        plugin_spec.memory_mb = 64;
        plugin_spec.timeout = Duration::from_millis(500);
        let started = Instant::now();
        let plugin = host.load(&plugin_spec).await.expect("loads");
        let load = started.elapsed();
        let mut samples = Vec::with_capacity(2000);
        for _ in 0..2000 {
            let call = Arc::new(Invocation {
                provider: "files".into(),
                tool: "search".into(),
                arguments_json: arguments.clone(),
                session: None,
                meta: Vec::new(),
            });
            let started = Instant::now();
            let verdict = plugin.validate(&call).await;
            samples.push(started.elapsed());
            assert_eq!(verdict, Verdict::Allow);
        }
        println!("{label}: load {:.2} s", load.as_secs_f64());
        row("validation of the same ~1 KB", &figures(samples));
    }
}

async fn pick(host: &PluginHost) {
    // A group pick among 8 members.
    let candidates: Vec<Candidate> = (0..8)
        .map(|index| Candidate {
            index,
            weight: 1,
            priority: 1,
            in_flight: 0,
            warming: false,
        })
        .collect();
    let mut native = strategy::by_name("round_robin").expect("native strategy");
    let mut samples = Vec::with_capacity(PICKS);
    for i in 0..PICKS {
        let started = Instant::now();
        std::hint::black_box(native.pick(std::hint::black_box(&candidates), i as u64));
        samples.push(started.elapsed());
    }
    let native_pick = figures(samples);

    let sticky = host
        .load(&spec(
            "sticky",
            PluginKind::LbPolicy,
            "bundled:sticky-session".into(),
            json!({}),
        ))
        .await
        .expect("sticky-session loads");
    let members: Vec<Member> = (0..8)
        .map(|i| Member {
            ewma_latency_us: 900,
            ..Member::new(format!("member-{i}"))
        })
        .collect();
    let mut samples = Vec::with_capacity(PICKS);
    for i in 0..PICKS {
        let call = Arc::new(Invocation {
            provider: "pool".into(),
            tool: "search".into(),
            arguments_json: "{}".into(),
            session: Some(format!("session-{}", i % 64)),
            meta: Vec::new(),
        });
        let started = Instant::now();
        let picked = sticky.pick(&call, &members).await;
        samples.push(started.elapsed());
        assert!(matches!(picked, Ok(Some(_))), "{picked:?}");
    }
    let plugin_pick = figures(samples);
    println!("group pick, 8 members");
    row("native round_robin", &native_pick);
    row("plugin sticky-session (goal p50 ≤ 1.50 µs)", &plugin_pick);
    if let Some(path) = std::env::var_os("HANGAR_BENCH_BASELINE_WASM") {
        // A plugin that answers at once (examples/plugins/hostile, armed for the tool and session
        // `attack` only): what crossing into a plugin costs.
        let baseline = host
            .load(&spec(
                "calm",
                PluginKind::LbPolicy,
                path.into(),
                json!({"mode": "trap"}),
            ))
            .await
            .expect("the baseline plugin loads");
        let call = Arc::new(Invocation {
            provider: "pool".into(),
            tool: "search".into(),
            arguments_json: "{}".into(),
            session: Some("session-1".into()),
            meta: Vec::new(),
        });
        let mut samples = Vec::with_capacity(PICKS);
        for _ in 0..PICKS {
            let started = Instant::now();
            let picked = baseline.pick(&call, &members).await;
            samples.push(started.elapsed());
            assert!(picked.is_ok(), "{picked:?}");
        }
        row("plugin that answers at once", &figures(samples));
    }
}

async fn validate(host: &PluginHost) {
    // The validation step of one call with ~1 KB of arguments.
    let arguments = one_kb_arguments();
    let size = serde_json::to_string(&arguments).unwrap().len();
    let mut samples = Vec::with_capacity(VALIDATIONS);
    for _ in 0..VALIDATIONS {
        let started = Instant::now();
        // No validator: the arguments go on as they are.
        std::hint::black_box(&arguments);
        samples.push(started.elapsed());
    }
    let no_validator = figures(samples);
    let guard = host
        .load(&spec(
            "guard",
            PluginKind::Validator,
            "bundled:deny-patterns".into(),
            json!({"patterns": ["rm -rf", "DROP TABLE"], "allowed_root": "/data"}),
        ))
        .await
        .expect("deny-patterns loads");
    let with_validator = time_validation(&guard, &arguments).await;
    if let Some(path) = std::env::var_os("HANGAR_BENCH_BASELINE_WASM") {
        let baseline = host
            .load(&spec(
                "calm",
                PluginKind::Validator,
                path.into(),
                json!({"mode": "trap"}),
            ))
            .await
            .expect("the baseline plugin loads");
        row(
            "validator that answers at once",
            &time_validation(&baseline, &arguments).await,
        );
    }
    println!("validation step, {size} bytes of arguments");
    row(
        "encoding them (every call, validator or not)",
        &time_encoding(&arguments),
    );
    row("no validator", &no_validator);
    row("deny-patterns (goal: ≤ 5.00 µs p50 added)", &with_validator);
    println!(
        "  {:<44} p50 {:>8.2} µs",
        "added by the validator",
        us(with_validator.p50.saturating_sub(no_validator.p50))
    );
}

/// The validation step of `VALIDATIONS` calls with `arguments`, as the hangar runs it: the
/// call handed to the plugin (its arguments already encoded, as they are for the request to
/// the provider, which reuses that text) and the plugin's verdict, which must be allow.
async fn time_validation(
    plugin: &Plugin,
    arguments: &serde_json::Map<String, serde_json::Value>,
) -> Figures {
    let mut samples = Vec::with_capacity(VALIDATIONS);
    for _ in 0..VALIDATIONS {
        let encoded = serde_json::to_string(arguments).unwrap();
        let started = Instant::now();
        let call = Arc::new(Invocation {
            provider: "files".into(),
            tool: "search".into(),
            arguments_json: encoded,
            session: Some("session-1".into()),
            meta: vec![("correlation-id".into(), "c-42".into())],
        });
        let verdict = plugin.validate(&call).await;
        samples.push(started.elapsed());
        assert_eq!(verdict, Verdict::Allow);
    }
    figures(samples)
}

/// Encoding the arguments as JSON: what every call pays for its request to the provider,
/// with or without validators (they share the one encoding).
fn time_encoding(arguments: &serde_json::Map<String, serde_json::Value>) -> Figures {
    let mut samples = Vec::with_capacity(VALIDATIONS);
    for _ in 0..VALIDATIONS {
        let started = Instant::now();
        std::hint::black_box(serde_json::to_string(std::hint::black_box(arguments)).unwrap());
        samples.push(started.elapsed());
    }
    figures(samples)
}

async fn swap(host: &PluginHost) {
    // Hot swap: a changed file (same component plus a custom section) loaded and swapped in.
    let dir = std::env::temp_dir().join(format!("hangar-bench-swap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("guard.wasm");
    let bytes = bundled::get("deny-patterns").unwrap();
    std::fs::write(&file, bytes).unwrap();
    let swap_spec = spec(
        "swapped",
        PluginKind::Validator,
        file.clone(),
        json!({"patterns": ["rm -rf"]}),
    );
    let swapped = host.load(&swap_spec).await.expect("loads from a file");
    let mut samples = Vec::with_capacity(SWAPS);
    for n in 0..SWAPS {
        let mut changed = bytes.to_vec();
        // A custom section: id 0, size 7 (name length, the 5-byte name, 1 payload byte).
        changed.extend_from_slice(&[0, 7, 5, b'b', b'e', b'n', b'c', b'h', n as u8]);
        std::fs::write(&file, &changed).unwrap();
        let started = Instant::now();
        swapped.reload().await.expect("the changed file loads");
        samples.push(started.elapsed());
    }
    let swap = figures(samples);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "hot swap of a changed plugin file ({} KiB)",
        bytes.len() / 1024
    );
    println!(
        "  {:<44} p50 {:>8.2} ms   max {:>8.2} ms",
        "compile + type-check + configure + swap",
        swap.p50.as_secs_f64() * 1e3,
        swap.p99.as_secs_f64() * 1e3
    );
}
