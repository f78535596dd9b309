//! Discovery figures, each beside a static config of the same size:
//!
//! - one reconcile cycle that finds 1,000 providers (the bundled filesystem source reading
//!   1,000 files through its preopen, spec checks, fingerprints, one `Registry::apply`),
//!   beside loading a config file with the same 1,000 providers and building its registry;
//! - aggregated `tools/list` with 1,000 providers × 10 predefined tools (10,000 tools),
//!   discovered beside static: the stdio fast path's work (the catalog's list, encoded once per
//!   catalog, copied into the answer line), and the rmcp path's (copy the tools, encode them).
//!
//! Run: `cargo bench --workspace --bench discovery`.

use std::path::Path;
use std::time::{Duration, Instant};

use hangar_tests::TestDir;
use mcp_hangar::config::{self, DiscoverySpec, SourceMode, SourceSpec, SourceType};
use mcp_hangar::discovery::Discovery;
use mcp_hangar::events::EventBus;
use mcp_hangar::gateway::Gateway;
use mcp_hangar::plugin::PluginSet;
use mcp_hangar::registry::Registry;
use rmcp::model::ListToolsResult;

const PROVIDERS: usize = 1000;
const TOOLS: usize = 10;
const LIST_ROUNDS: usize = 200;

fn tools_yaml(indent: &str) -> String {
    let mut s = format!("{indent}tools:\n");
    for t in 0..TOOLS {
        s.push_str(&format!(
            "{indent}  - {{name: tool{t}, description: Tool number {t} of this provider, inputSchema: {{type: object, properties: {{a: {{type: number}}}}}}}}\n"
        ));
    }
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// What the stdio fast path does per `tools/list`: the catalog's list, encoded once per
/// catalog, copied into a JSON-RPC answer line (`wire::Reply::result`).
fn fast_list_time(gw: &Gateway) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..LIST_ROUNDS {
        let t = Instant::now();
        let catalog = gw.catalog();
        let result = catalog.legacy_list_result();
        let mut line = Vec::with_capacity(result.len() + 48);
        line.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":");
        line.extend_from_slice(result);
        line.extend_from_slice(b"}\n");
        bytes = std::hint::black_box(line).len();
        times.push(t.elapsed());
    }
    (median(times), bytes)
}

fn list_time(gw: &Gateway) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..LIST_ROUNDS {
        let t = Instant::now();
        let result = ListToolsResult::with_all_items(gw.tools().as_ref().clone());
        let encoded = serde_json::to_vec(&result).expect("encodes");
        bytes = encoded.len();
        times.push(t.elapsed());
    }
    (median(times), bytes)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = TestDir::new("bench-discovery");
    let files = dir.path().join("providers.d");
    std::fs::create_dir_all(&files).expect("dir");
    let mut static_yaml = String::from("mcp_servers:\n");
    for i in 0..PROVIDERS {
        std::fs::write(
            files.join(format!("p{i:04}.yaml")),
            format!(
                "name: p{i:04}\nconnection:\n  command: [/bin/true, --n, '{i}']\n{}",
                tools_yaml("")
            ),
        )
        .expect("write");
        static_yaml.push_str(&format!(
            "  p{i:04}:\n    command: [/bin/true, --n, '{i}']\n{}",
            tools_yaml("    ")
        ));
    }
    let static_path = dir.write("static.yaml", &static_yaml);

    // Static: parse + registry build.
    let mut static_times = Vec::new();
    let mut static_config = None;
    for _ in 0..5 {
        let t = Instant::now();
        let c = config::load(&static_path).expect("static config loads");
        let r = Registry::new(&c, EventBus::new());
        static_times.push(t.elapsed());
        drop(r);
        static_config = Some(c);
    }
    let static_config = static_config.expect("loaded");

    // Discovered: one full cycle into an empty registry, 5 times (fresh registry each).
    let mut spec = DiscoverySpec::default();
    spec.security.max_providers_per_source = PROVIDERS * 2;
    spec.security.max_registration_rate = config::RegistrationRate {
        count: 1_000_000,
        per: Duration::from_secs(1),
    };
    // The source reads `live.d`; the 1,000 files are copied in after the warm-up cycle.
    let live = dir.path().join("live.d");
    std::fs::create_dir_all(&live).expect("dir");
    let templates: Vec<_> = std::fs::read_dir(&files)
        .expect("files")
        .map(|e| e.expect("entry").path())
        .collect();
    let mut source_config = serde_json::Map::new();
    source_config.insert("path".into(), live.display().to_string().into());
    spec.sources = vec![SourceSpec {
        name: "filesystem".into(),
        kind: SourceType::Bundled("filesystem".into()),
        mode: SourceMode::Authoritative,
        config: source_config,
        defined_at: None,
    }];
    let empty = config::parse("discovery: {}\n", &dir.path().join("d.yaml"), &|_| None)
        .expect("empty config");
    let mut cycle_times = Vec::new();
    let mut unchanged_times = Vec::new();
    let mut phases = Vec::new();
    let mut load_times = Vec::new();
    let mut discovered_registry = None;
    for _ in 0..5 {
        for f in std::fs::read_dir(&live).expect("live") {
            std::fs::remove_file(f.expect("entry").path()).expect("remove");
        }
        let registry = Registry::new(&empty, EventBus::new());
        let (engine, _rx) =
            Discovery::new(spec.clone(), &empty.path, &registry, PluginSet::empty());
        // A fresh engine's first cycle loads (compiles) the bundled plugin, once per hangar
        // run: done here on the empty directory, and shown on its own.
        let t = Instant::now();
        let warm = engine.cycle().await;
        load_times.push(t.elapsed());
        assert!(warm.added.is_empty(), "{:?}", warm.errors);
        for f in &templates {
            std::fs::copy(f, live.join(f.file_name().expect("name"))).expect("copy");
        }
        let t = Instant::now();
        let report = engine.cycle().await;
        cycle_times.push(t.elapsed());
        assert_eq!(report.added.len(), PROVIDERS, "{:?}", report.errors);
        phases.push((report.sources_ms, report.checks_ms, report.apply_ms));
        let t = Instant::now();
        let again = engine.cycle().await;
        unchanged_times.push(t.elapsed());
        assert!(again.added.is_empty() && again.updated.is_empty());
        discovered_registry = Some(registry);
    }
    let discovered_registry = discovered_registry.expect("built");

    println!("discovery: {PROVIDERS} providers");
    println!(
        "  reconcile ({PROVIDERS} new; includes the source reading {PROVIDERS} files)  median {:>8.1} ms   (goal ≤ 1000 ms)",
        median(cycle_times).as_secs_f64() * 1e3
    );
    phases.sort_by(|a, b| (a.0 + a.1 + a.2).total_cmp(&(b.0 + b.1 + b.2)));
    let (src, chk, app) = phases[phases.len() / 2];
    println!(
        "    of which: source answers {src:.1} ms, spec checks {chk:.1} ms, registry apply {app:.1} ms"
    );
    println!(
        "  reconcile (next cycle, nothing changed)                                  median {:>8.1} ms",
        median(unchanged_times).as_secs_f64() * 1e3
    );
    println!(
        "  static: load the same {PROVIDERS} providers from a config file + build   median {:>8.1} ms",
        median(static_times).as_secs_f64() * 1e3
    );
    println!(
        "  once per hangar run: the first cycle loads (compiles) the bundled plugin   median {:>8.1} ms",
        median(load_times).as_secs_f64() * 1e3
    );

    let static_registry = Registry::new(&static_config, EventBus::new());
    let static_gw = Gateway::new(static_registry).expect("static gateway");
    let disc_gw = Gateway::new(discovered_registry).expect("discovered gateway");
    // The first fast-path list of a catalog encodes it (what a discovery cycle's change costs
    // the next list once); every later one copies.
    let t = Instant::now();
    disc_gw.catalog().legacy_list_result();
    let first_encode = t.elapsed();
    static_gw.catalog().legacy_list_result();
    let (fd, fd_bytes) = fast_list_time(&disc_gw);
    let (fs, _) = fast_list_time(&static_gw);
    let (d, d_bytes) = list_time(&disc_gw);
    let (s, _) = list_time(&static_gw);
    println!(
        "tools/list, {PROVIDERS} providers x {TOOLS} tools ({} tools offered):",
        disc_gw.tools().len()
    );
    println!(
        "  stdio fast path (encoded once per catalog)  discovered median {:>7.3} ms  static {:>7.3} ms  ({fd_bytes} bytes)   (goal ≤ 5 ms)",
        fd.as_secs_f64() * 1e3,
        fs.as_secs_f64() * 1e3
    );
    println!(
        "    the one encoding after a catalog change: {:.2} ms",
        first_encode.as_secs_f64() * 1e3
    );
    println!(
        "  rmcp path (copy + encode per list; HTTP, 2026-07-28 sessions)  discovered median {:>7.2} ms  static {:>7.2} ms  ({d_bytes} bytes)",
        d.as_secs_f64() * 1e3,
        s.as_secs_f64() * 1e3
    );

    let _ = Path::new(".");
}
