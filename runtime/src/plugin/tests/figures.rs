//! Figures: what a validator call, a pick and a hot swap cost. An ignored test, meant for a
//! release build:
//! `cargo test --release -p mcp-hangar plugin::tests::figures -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{spec, wasm};
use crate::config::{PluginConfig, PluginKind};
use crate::plugin::{Invocation, Member, Plugin, PluginHost, Verdict};

/// ~1 KB of realistic arguments: a path, a command, a nested options object, a list.
fn one_kb_call() -> Invocation {
    let arguments = serde_json::json!({
        "path": "/data/reports/2024/q3/summary.csv",
        "command": "grep -n 'total' summary.csv | sort -k2 -n | head -20",
        "options": {"encoding": "utf-8", "follow_symlinks": false, "max_bytes": 1048576,
                    "columns": ["region", "quarter", "revenue", "cost", "margin"]},
        "filters": (0..12).map(|i| format!("region-{i:02}=emea-north-{i}")).collect::<Vec<_>>(),
        "note": "x".repeat(300),
    })
    .to_string();
    Invocation {
        provider: "files".into(),
        tool: "search".into(),
        arguments_json: arguments,
        session: Some("session-1234".into()),
        meta: vec![("correlation-id".into(), "c-42".into())],
    }
}

struct Summary {
    mean: Duration,
    p50: Duration,
    p99: Duration,
}

fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let total: Duration = samples.iter().sum();
    Summary {
        mean: total / u32::try_from(samples.len()).unwrap(),
        p50: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
    }
}

fn show(label: &str, s: &Summary) {
    println!(
        "{label:<58} mean {:>9.2?}  p50 {:>9.2?}  p99 {:>9.2?}",
        s.mean, s.p50, s.p99
    );
}

async fn time_validate(plugin: &Plugin, call: &Invocation, n: usize) -> Summary {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let verdict = plugin.validate(call).await;
        samples.push(started.elapsed());
        std::hint::black_box(verdict);
    }
    summarize(samples)
}

fn rss_and_virtual() -> (String, String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_owned())
            .unwrap_or_default()
    };
    (field("VmRSS:"), field("VmSize:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures, not a check: run in release with --ignored --nocapture"]
async fn figures() {
    let n = 20_000;
    let host = PluginHost::new().expect("host");
    let call = one_kb_call();
    println!(
        "plugin host figures (release, {} cores, {n} sequential calls each, arguments {} bytes)\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        call.arguments_json.len()
    );

    // No validator: what the call path does instead (nothing but a clone of the call).
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let copy = std::hint::black_box(call.clone());
        let verdict = std::hint::black_box(Verdict::Allow);
        samples.push(started.elapsed());
        drop((copy, verdict));
    }
    show("no validator (clone of the call)", &summarize(samples));

    let started = Instant::now();
    let deny = host
        .load(&spec(
            "deny",
            PluginKind::Validator,
            "deny-patterns",
            serde_json::json!({"patterns": ["rm -rf", "DROP TABLE", "mkfs", ":(){"], "allowed_root": "/data"}),
        ))
        .await
        .expect("deny-patterns loads");
    let load_time = started.elapsed();
    assert_eq!(deny.validate(&call).await, Verdict::Allow);
    show(
        "deny-patterns validate, 1 KB args, fresh instance per call",
        &time_validate(&deny, &call, n).await,
    );
    let calm = host
        .load(&spec(
            "calm",
            PluginKind::Validator,
            "hostile",
            serde_json::json!({"mode": "trap"}),
        ))
        .await
        .expect("hostile loads");
    let tiny = Invocation {
        arguments_json: "{}".into(),
        ..call.clone()
    };
    show(
        "minimal validator (allows at once), `{}` args: fixed cost",
        &time_validate(&calm, &tiny, n).await,
    );

    // Throughput with callers on both workers.
    let deny = Arc::new(deny);
    let started = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (deny, call) = (deny.clone(), call.clone());
            tokio::spawn(async move {
                for _ in 0..n / 4 {
                    std::hint::black_box(deny.validate(&call).await);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "{:<58} {:.0} calls/s",
        "deny-patterns, 4 concurrent callers on 2 workers",
        n as f64 / elapsed.as_secs_f64()
    );

    // Sticky-session pick, 8 members, through the policy's task.
    let sticky = host
        .load(&spec(
            "sticky",
            PluginKind::LbPolicy,
            "sticky-session",
            serde_json::json!({}),
        ))
        .await
        .expect("sticky loads");
    let members: Vec<Member> = (0..8)
        .map(|i| Member {
            id: format!("math-{i}"),
            weight: 1 + i % 3,
            priority: 1,
            in_flight: i,
            healthy: i != 5,
            ewma_latency_us: 900 + u64::from(i) * 10,
        })
        .collect();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let call = Invocation {
            session: Some(format!("session-{}", i % 500)),
            ..tiny.clone()
        };
        let started = Instant::now();
        let picked = sticky.pick(&call, &members).await;
        samples.push(started.elapsed());
        assert!(matches!(picked, Ok(Some(_))));
    }
    show(
        "sticky-session pick, 8 members, 2-worker runtime",
        &summarize(samples),
    );
    // The same on a current-thread runtime: the hop to the policy's task costs no thread
    // wake-up there, so this is closer to the pick itself.
    let (host2, members2) = (host.clone(), members.clone());
    let single = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let sticky = host2
                .load(&spec(
                    "sticky",
                    PluginKind::LbPolicy,
                    "sticky-session",
                    serde_json::json!({}),
                ))
                .await
                .unwrap();
            let mut samples = Vec::with_capacity(n);
            for i in 0..n {
                let call = Invocation {
                    session: Some(format!("session-{}", i % 500)),
                    ..Default::default()
                };
                let started = Instant::now();
                let picked = sticky.pick(&call, &members2).await;
                samples.push(started.elapsed());
                assert!(matches!(picked, Ok(Some(_))));
            }
            summarize(samples)
        })
    });
    show(
        "sticky-session pick, 8 members, current-thread runtime",
        &single.join().unwrap(),
    );

    // Hot swap: a new file (compile + type-check + configure), and a config-only change.
    let mut reload_new_file = Vec::new();
    let mut reload_config = Vec::new();
    let dir = std::env::temp_dir().join(format!("hangar-plugin-figures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let live = dir.join("deny.wasm");
    let mut live_spec = spec(
        "deny",
        PluginKind::Validator,
        "deny-patterns",
        serde_json::json!({"patterns": ["a"]}),
    );
    live_spec.path = live.clone();
    std::fs::copy(wasm("deny-patterns"), &live).unwrap();
    let swapped = host.load(&live_spec).await.unwrap();
    for i in 0..10 {
        // Same code, different bytes: append a custom section so the file really changed.
        let mut bytes = std::fs::read(wasm("deny-patterns")).unwrap();
        bytes.extend_from_slice(&[0, 3, 1, b'x', i as u8]);
        std::fs::write(&live, &bytes).unwrap();
        let started = Instant::now();
        swapped.reload().await.expect("reload");
        reload_new_file.push(started.elapsed());
        live_spec.config = PluginConfig::plain(serde_json::json!({"patterns": [format!("p{i}")]}));
        let started = Instant::now();
        swapped.reload_with(&live_spec).await.expect("reload");
        reload_config.push(started.elapsed());
    }
    println!(
        "{:<58} {load_time:>9.2?}",
        "first load of deny-patterns (compile + configure)"
    );
    show(
        "hot swap, changed file (compile + type-check + configure)",
        &summarize(reload_new_file),
    );
    show(
        "hot swap, same file, new config (no compile)",
        &summarize(reload_config),
    );

    println!("\nmemory reset between instances: {}", host.memory_reset());
    let (rss, virt) = rss_and_virtual();
    println!(
        "process memory after all of the above: RSS {rss}, virtual {virt} (the pool's reservation)"
    );
}
