//! Loading one version of a plugin: read, compile (off the async threads), type-check against
//! its world, and prove its `config:` with a first `configure`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

use super::bindings::{v0_1_0 as v1, v0_2_0 as v2};
use super::engine::Runtime;
use super::error::{PluginError, PluginErrorKind, classify, truncate};
use super::sandbox::{Sandbox, SandboxSpec, arm, new_store};
use super::stats::Stats;
use super::{discovery, lb, validator};
use crate::config::{PluginKind, PluginSpec};

/// The WIT package of the newest version this host loads; named in load errors.
pub(super) const WIT_PACKAGE: &str = "hangar:plugin@0.2.0";

/// Every version of `hangar:plugin` this host loads plugins of, newest first. Released
/// versions are frozen (`wit/README.md`); dropping one breaks the plugins built against it.
pub(super) const WIT_VERSIONS: &[&str] = &["0.2.0", "0.1.0"];

/// The versions this host loads, for messages: `0.2.0 or 0.1.0`.
pub(super) fn supported_versions() -> String {
    WIT_VERSIONS.join(" or ")
}

/// The WIT version of `hangar:plugin` whose `interface` (`validator`, `lb-policy`,
/// `discovery`) the component exports, if it exports one this host knows.
pub(super) fn wit_version(
    engine: &wasmtime::Engine,
    component: &Component,
    interface: &str,
) -> Option<&'static str> {
    let prefix = format!("hangar:plugin/{interface}@");
    component
        .component_type()
        .exports(engine)
        .filter_map(|(name, _)| name.strip_prefix(&prefix).map(str::to_owned))
        .find_map(|version| WIT_VERSIONS.iter().copied().find(|v| *v == version))
}

/// The interface a plugin of `kind` exports, without package and version.
pub(super) fn export_interface(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Validator => "validator",
        PluginKind::LbPolicy => "lb-policy",
        PluginKind::Discovery => "discovery",
    }
}

/// How long past its deadline a call may run before the async backstop drops it. The epoch
/// stops running wasm about a tick after the deadline; the backstop is for time spent in host
/// calls (a slow docker engine), where no epoch check runs.
const BACKSTOP_SLACK: Duration = Duration::from_millis(50);

/// Longest `configure` error kept.
const CONFIGURE_ERROR_BYTES: usize = 4096;

/// Instantiates `$pre` in `$store` and configures the instance with `$config`, whatever WIT
/// version `$pre` is of (the generated types differ per version, the steps do not); `$exports`
/// names the world's export accessor. Evaluates to the instance; returns the error from the
/// enclosing function. Needs `within`, `backstop`, `settle` and `configured` in scope.
macro_rules! instantiate_configured {
    ($pre:expr, $store:expr, $config:expr, $exports:ident) => {{
        let outcome = within(backstop(&$store), $pre.instantiate_async(&mut $store)).await;
        let instance = settle(&$store, outcome)?;
        let answer = within(
            backstop(&$store),
            instance.$exports().call_configure(&mut $store, $config),
        )
        .await;
        configured(&$store, answer)?;
        instance
    }};
}
pub(super) use instantiate_configured;

/// One loaded version of a plugin. Calls hold an `Arc` of it, so a hot swap lets them finish
/// on the version they started with.
pub(super) struct Loaded {
    pub version: u64,
    /// The file as compiled; a reload of identical bytes reuses it.
    pub compiled: Arc<Compiled>,
    pub spec: Arc<PluginSpec>,
    pub sandbox: Arc<SandboxSpec>,
    /// `config:` in clear, as JSON: for `configure` only, never for a log.
    pub config_json: Arc<str>,
    pub world: World,
}

/// A file compiled and linked for one kind. Kept to skip compiling again when a reload finds
/// the same bytes (a change of `config:` or limits only).
pub(super) struct Compiled {
    bytes: Vec<u8>,
    kind: PluginKind,
    pre: InstancePre<Sandbox>,
}

pub(super) enum World {
    /// Configured instances reused across calls.
    Validator(validator::Validators),
    /// Configured instances reused across picks.
    LbPolicy(lb::Policy),
    /// A fresh instance per `discover`.
    Discovery(discovery::Pre),
}

/// A component typed against its kind's world at one WIT version: what the loader makes
/// instances from.
pub(super) enum Typed {
    Validator(validator::Pre),
    LbPolicy(lb::Pre),
    Discovery(discovery::Pre),
}

/// Types a linked component against the world of `kind` at WIT `version` (one of
/// `WIT_VERSIONS`): the check the loader and `inspect` both make.
pub(super) fn typed(
    pre: InstancePre<Sandbox>,
    kind: PluginKind,
    version: &str,
) -> wasmtime::Result<Typed> {
    let v2 = version == "0.2.0";
    Ok(match kind {
        PluginKind::Validator if v2 => Typed::Validator(validator::Pre::V2(
            v2::validator::ValidatorPluginPre::new(pre)?,
        )),
        PluginKind::Validator => Typed::Validator(validator::Pre::V1(
            v1::validator::ValidatorPluginPre::new(pre)?,
        )),
        PluginKind::LbPolicy if v2 => {
            Typed::LbPolicy(lb::Pre::V2(v2::lb::LbPolicyPluginPre::new(pre)?))
        }
        PluginKind::LbPolicy => Typed::LbPolicy(lb::Pre::V1(v1::lb::LbPolicyPluginPre::new(pre)?)),
        PluginKind::Discovery if v2 => {
            Typed::Discovery(discovery::Pre::V2(v2::DiscoverySourcePre::new(pre)?))
        }
        PluginKind::Discovery => {
            Typed::Discovery(discovery::Pre::V1(v1::DiscoverySourcePre::new(pre)?))
        }
    })
}

/// The world a plugin of `kind` must be built for.
pub(super) fn world_name(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Validator => "validator-plugin",
        PluginKind::LbPolicy => "lb-policy-plugin",
        PluginKind::Discovery => "discovery-source",
    }
}

/// Loads version `version` of `spec`, reusing `previous`'s compilation when the file has not
/// changed.
pub(super) async fn load(
    runtime: &Arc<Runtime>,
    spec: &PluginSpec,
    version: u64,
    previous: Option<Arc<Compiled>>,
    stats: &Arc<Stats>,
) -> Result<Loaded, PluginError> {
    let name = spec.name.as_str();
    if spec.fuel.is_some() && !runtime.fuel {
        return Err(PluginError::new(
            name,
            PluginErrorKind::Load,
            "sets `fuel:`, but the plugin host was started without fuel metering (it is \
             switched on when the hangar starts with a plugin that sets `fuel:`); restart the \
             hangar to apply it",
        ));
    }
    let config_json = serde_json::to_string(spec.config.expose()).map_err(|err| {
        PluginError::new(
            name,
            PluginErrorKind::Load,
            format!("cannot encode its `config:`: {err}"),
        )
    })?;
    let config_json: Arc<str> = Arc::from(config_json);
    let sandbox = Arc::new(SandboxSpec::new(spec));

    // Reading and compiling take milliseconds to seconds of CPU: never on an async worker.
    let compiled = {
        let runtime = Arc::clone(runtime);
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || compile(&runtime, &spec, previous))
            .await
            .map_err(|err| {
                PluginError::new(
                    name,
                    PluginErrorKind::Load,
                    format!("compilation panicked: {err}"),
                )
            })??
    };
    let pre = compiled.pre.clone();
    // A component that exports no known version is checked against the newest, whose error
    // then says what is missing.
    let wit = wit_version(
        &runtime.engine,
        pre.component(),
        export_interface(spec.kind),
    )
    .unwrap_or(WIT_VERSIONS[0]);

    let type_error = |err: wasmtime::Error| {
        PluginError::new(
            name,
            PluginErrorKind::Load,
            format!(
                "`{}` is not a component of the `{}` world of hangar:plugin@{wit}, which a \
                 plugin of kind `{}` must be: {err:#}",
                spec.path.display(),
                world_name(spec.kind),
                spec.kind
            ),
        )
    };
    let world = match typed(pre, spec.kind, wit).map_err(type_error)? {
        Typed::Validator(pre) => {
            // Prove the config now, so a bad one is a load error rather than every call's;
            // the instance that proved it serves the first call.
            let first =
                validator::instantiate(runtime, &sandbox, &config_json, &pre, stats).await?;
            World::Validator(validator::Validators::new(pre, first))
        }
        Typed::LbPolicy(pre) => {
            let context = lb::Context {
                runtime: Arc::clone(runtime),
                pre,
                sandbox: Arc::clone(&sandbox),
                config_json: Arc::clone(&config_json),
                stats: Arc::clone(stats),
            };
            // The instance that proved the config becomes the policy's first live one.
            let first = context.instantiate().await?;
            World::LbPolicy(lb::Policy::new(context, first))
        }
        Typed::Discovery(pre) => {
            let mut store = store(runtime, &sandbox, stats)?;
            match &pre {
                discovery::Pre::V1(pre) => {
                    instantiate_configured!(pre, store, &config_json, hangar_plugin_discovery);
                }
                discovery::Pre::V2(pre) => {
                    instantiate_configured!(pre, store, &config_json, hangar_plugin_discovery);
                }
            }
            World::Discovery(pre)
        }
    };
    Ok(Loaded {
        version,
        compiled,
        spec: Arc::new(spec.clone()),
        sandbox,
        config_json,
        world,
    })
}

/// Reads and compiles the file, and links it against its kind's imports; or returns
/// `previous` when the file holds the same bytes for the same kind. Blocking.
fn compile(
    runtime: &Runtime,
    spec: &PluginSpec,
    previous: Option<Arc<Compiled>>,
) -> Result<Arc<Compiled>, PluginError> {
    let name = spec.name.as_str();
    let path = spec.path.display();
    let load_error = |message: String| PluginError::new(name, PluginErrorKind::Load, message);
    let bytes = match spec.bundled_name() {
        Some(bundled) => crate::bundled::get(bundled)
            .ok_or_else(|| load_error(format!("there is no bundled plugin `{bundled}`")))?
            .to_vec(),
        None => std::fs::read(&spec.path)
            .map_err(|err| load_error(format!("cannot read `{path}`: {err}")))?,
    };
    if let Some(previous) = previous.filter(|p| p.kind == spec.kind && p.bytes == bytes) {
        return Ok(previous);
    }
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
            return Err(load_error(format!(
                "`{path}` is a core WebAssembly module, not a component: build it for \
                 `wasm32-wasip2` (or wrap it with `wasm-tools component new`) against the \
                 `{}` world of {WIT_PACKAGE}",
                world_name(spec.kind)
            )));
        }
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => {}
        _ => {
            return Err(load_error(format!(
                "`{path}` is not a WebAssembly component (it does not start with the wasm \
                 magic bytes)"
            )));
        }
    }
    let component = Component::from_binary(&runtime.engine, &bytes)
        .map_err(|err| load_error(format!("`{path}` does not compile: {err:#}")))?;
    let linker = match spec.kind {
        PluginKind::Discovery => &runtime.discovery,
        PluginKind::Validator | PluginKind::LbPolicy => &runtime.plain,
    };
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|err| load_error(link_error(&path.to_string(), spec.kind, &err)))?;
    Ok(Arc::new(Compiled {
        bytes,
        kind: spec.kind,
        pre,
    }))
}

/// Why a component does not link against what a plugin of `kind` may import.
pub(super) fn link_error(shown: &str, kind: PluginKind, err: &wasmtime::Error) -> String {
    format!(
        "`{shown}` is not a component of the `{}` world of hangar:plugin@{}, which a plugin \
         of kind `{kind}` must be (it may import only {}): {err:#}",
        world_name(kind),
        supported_versions(),
        match kind {
            PluginKind::Discovery => "WASI, `host`, `docker` and `kubernetes`",
            PluginKind::Validator | PluginKind::LbPolicy => "WASI, `host` and `calls`",
        }
    )
}

/// A fresh store, armed for one call.
pub(super) fn store(
    runtime: &Runtime,
    sandbox: &Arc<SandboxSpec>,
    stats: &Arc<Stats>,
) -> Result<Store<Sandbox>, PluginError> {
    let mut store = new_store(runtime, sandbox, stats)?;
    arm(&mut store, runtime.fuel)?;
    Stats::bump(&stats.instances);
    Ok(store)
}

/// When the async backstop drops a call on `store`: `BACKSTOP_SLACK` after its deadline; or
/// `None` when no host call the plugin can make may block (see `SandboxSpec::may_block`), so
/// the epoch deadline alone bounds the call and no timer is set (a pick is ~1 µs; a tokio
/// timer's registration would be a tenth of it).
pub(super) fn backstop(store: &Store<Sandbox>) -> Option<Instant> {
    let sandbox = store.data();
    sandbox
        .spec()
        .may_block
        .then(|| sandbox.deadline() + BACKSTOP_SLACK)
}

/// Runs `call`, dropping it at `backstop` (see `backstop`); `None` when it was dropped.
pub(super) async fn within<T>(
    backstop: Option<Instant>,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> Option<wasmtime::Result<T>> {
    match backstop {
        Some(at) => tokio::time::timeout_at(at.into(), call).await.ok(),
        None => Some(call.await),
    }
}

/// The outcome of a `within` call as the host reports it.
pub(super) fn settle<T>(
    store: &Store<Sandbox>,
    outcome: Option<wasmtime::Result<T>>,
) -> Result<T, PluginError> {
    let spec = store.data().spec();
    match outcome {
        Some(Ok(value)) => Ok(value),
        Some(Err(err)) => Err(classify(
            &spec.plugin,
            &err,
            spec.timeout,
            &store.data().stderr(),
        )),
        None => Err(PluginError::new(
            &spec.plugin,
            PluginErrorKind::Timeout,
            format!(
                "did not answer within its timeout of {} ms (stuck in a host call) and was \
                 dropped",
                spec.timeout.as_millis()
            ),
        )),
    }
}

/// The outcome of a `configure` call.
pub(super) fn configured(
    store: &Store<Sandbox>,
    outcome: Option<wasmtime::Result<Result<(), String>>>,
) -> Result<(), PluginError> {
    settle(store, outcome)?.map_err(|refusal| {
        PluginError::new(
            &store.data().spec().plugin,
            PluginErrorKind::Configure,
            format!(
                "refused its `config:`: {}",
                truncate(&refusal, CONFIGURE_ERROR_BYTES)
            ),
        )
    })
}
