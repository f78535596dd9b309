//! The plugin host's tests, against real plugins: the bundled ones (`plugins/`, built and
//! embedded by `runtime/build.rs`) and the test fixtures of `examples/plugins/`, which these
//! tests build for wasm32-wasip2 first (`cargo build --release --target wasm32-wasip2`, once
//! per test process). The figures are a benchmark: `cargo bench -p hangar-tests --bench plugins`.

mod deny_patterns;
mod entrypoints;
mod hostile;
mod hot_swap;
mod inspect;
mod kubernetes;
mod lifecycle;
mod loading;
mod polyglot;
mod sticky_session;
mod versions;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, LazyLock, OnceLock};

use crate::config::{PluginConfig, PluginKind, PluginSpec};
use crate::plugin::{Invocation, Member, PluginHost};

/// The repository root: `runtime/..`, unless a crate that includes this module from elsewhere
/// says where it is (`HANGAR_REPO_ROOT` at build time).
const REPO: &str = match option_env!("HANGAR_REPO_ROOT") {
    Some(root) => root,
    None => concat!(env!("CARGO_MANIFEST_DIR"), "/.."),
};

/// Where the example plugins are built (`HANGAR_PLUGINS_TARGET` at build time overrides it).
const TARGET: &str = match option_env!("HANGAR_PLUGINS_TARGET") {
    Some(target) => target,
    None => concat!(env!("CARGO_MANIFEST_DIR"), "/../target/wasm-plugins"),
};

/// The plugin `name` as a file: a bundled plugin's embedded bytes, written out when the file
/// does not hold them yet (tests that swap files need one), or an example plugin of
/// `examples/plugins/` built for wasm32-wasip2 (the whole workspace, once per test process).
pub(super) fn wasm(name: &str) -> PathBuf {
    if let Some(bytes) = crate::bundled::get(name) {
        let dir = Path::new(TARGET).join("bundled-for-tests");
        let file = dir.join(format!("{name}.wasm"));
        if std::fs::read(&file).ok().as_deref() != Some(bytes) {
            // A file of this process first, then a rename: a test never reads half a file.
            std::fs::create_dir_all(&dir).expect("the plugin target dir is writable");
            let partial = dir.join(format!("{name}.{}.partial", std::process::id()));
            std::fs::write(&partial, bytes).expect("the plugin target dir is writable");
            std::fs::rename(&partial, &file).expect("the plugin target dir is writable");
        }
        return file;
    }
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let manifest = Path::new(REPO).join("examples/plugins/Cargo.toml");
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--quiet",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", TARGET)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building {} failed", manifest.display());
    });
    Path::new(TARGET)
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")))
}

/// A spec of the plugin `plugin` (bundled: `path: bundled:NAME`, as a config names it; an
/// example: its built file) loaded as `name` of `kind`.
pub(super) fn spec(
    name: &str,
    kind: PluginKind,
    plugin: &str,
    config: serde_json::Value,
) -> PluginSpec {
    let path = if crate::bundled::get(plugin).is_some() {
        PathBuf::from(format!("{}{plugin}", crate::config::BUNDLED_PREFIX))
    } else {
        wasm(plugin)
    };
    PluginSpec::new(name, kind, path, PluginConfig::plain(config))
}

/// One host for every test of the process (no fuel), as the hangar has one per process.
pub(super) fn host() -> &'static PluginHost {
    static HOST: LazyLock<PluginHost> =
        LazyLock::new(|| PluginHost::new().expect("the plugin host starts"));
    &HOST
}

pub(super) fn call(tool: &str, arguments: serde_json::Value) -> Arc<Invocation> {
    Arc::new(Invocation {
        provider: "fs".into(),
        tool: tool.into(),
        arguments_json: arguments.to_string(),
        session: None,
        meta: vec![("correlation-id".into(), "t-1".into())],
    })
}

pub(super) fn with_session(session: &str) -> Arc<Invocation> {
    Arc::new(Invocation {
        provider: "pool".into(),
        tool: "echo".into(),
        arguments_json: "{}".into(),
        session: Some(session.into()),
        meta: Vec::new(),
    })
}

pub(super) fn members(n: usize) -> Vec<Member> {
    (0..n)
        .map(|i| Member {
            ewma_latency_us: 1000,
            ..Member::new(format!("member-{i}"))
        })
        .collect()
}

pub(super) fn deny_patterns_config() -> serde_json::Value {
    serde_json::json!({"patterns": ["rm -rf", "DROP TABLE"], "allowed_root": "/data"})
}

#[test]
fn plugins_and_hosts_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<crate::plugin::Plugin>();
    shareable::<PluginHost>();
}

#[test]
fn a_discovered_providers_env_values_are_never_shown() {
    let found = crate::plugin::DiscoveredProvider {
        name: "db".into(),
        mode: "remote".into(),
        command: Vec::new(),
        image: None,
        endpoint: Some("http://127.0.0.1:9/mcp".into()),
        env: vec![("API_TOKEN".into(), "tok-123-secret".into())],
        group: None,
        labels: Vec::new(),
        description: None,
        idle_ttl: None,
        tools_json: None,
    };
    let shown = format!("{found:?}");
    assert!(
        shown.contains("API_TOKEN") && !shown.contains("tok-123-secret"),
        "{shown}"
    );
}
