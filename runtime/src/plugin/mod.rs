//! # The plugin host
//!
//! Runs the hangar's WebAssembly plugins (WIT `hangar:plugin@0.1.0`, `wit/`): validators,
//! load-balancing policies and discovery sources. This module is the only one that knows
//! wasmtime; the rest of the runtime sees `PluginHost`, `Plugin` and plain data types.
//!
//! ```text
//! PluginHost::with_options ─▶ one Engine (epoch ticker 1 ms, pooling allocator, fuel if asked)
//!   .load(&PluginSpec) ─▶ read + compile (spawn_blocking) ─▶ instantiate_pre against the kind's
//!                         world ─▶ a first instance + configure(config) ─▶ Plugin
//! Plugin::validate ─▶ an idle configured instance (or a new one) ─▶ validate ─▶ Verdict
//! Plugin::pick     ─▶ an idle configured instance (or a new one) ─▶ pick ─▶ member index
//! Plugin::discover ─▶ fresh store + instance ─▶ configure ─▶ discover ─▶ providers
//! Plugin::reload   ─▶ load again; swap (ArcSwap) only if it loaded; calls in flight finish
//!                     on the version they started on
//! ```
//!
//! Every call is async and yields to the executor at least once per epoch tick (1 ms), so a
//! plugin never holds a tokio worker for long; compiling runs on the blocking pool.
//!
//! Deliberately absent:
//! - No ambient authority. WASI is linked because a Rust wasm32-wasip2 component imports it
//!   even unused, but its context is empty: no environment, arguments, stdin or network;
//!   preopens are read-only. `docker` and `kubernetes` are linked for discovery sources only,
//!   and refuse with a message naming the plugin and the grant unless the config grants them;
//!   granted, they list containers (bollard) and pods (kube) and nothing else
//!   (`capability/`), each call bounded by the plugin's deadline.
//! - No reuse of a failed instance. Validators and policies reuse configured instances (a
//!   fresh one per call cost ~11 µs); one that traps, times out, faults or whose caller went
//!   away mid-call is dropped. A discovery instance lives for one call.
//! - No unbounded answer. Deny reasons, rewrites, discovery answers and log lines have caps;
//!   an answer can never exceed the plugin's memory (`memory_mb`), which bounds the copy made
//!   before the cap is checked (wasmtime lifts the string before the host can see its size).
//! - No blocking lock across a plugin call. An instance is taken out of its idle list for the
//!   call and put back after; hot swap is an `ArcSwap`.

//!
//! The runtime uses the host through `PluginSet` (`set.rs`): every plugin of the config loaded
//! in the background (calls wait for a plugin's first load), reloaded when notify sees its file
//! change, its `on_error` applied when it is not loaded. `inspect.rs` is `mcp-hangar plugin
//! inspect`. Bundled plugins (`bundled.rs`) are embedded by `runtime/build.rs`.
//!
//! Two WIT versions are loaded side by side (`bindings`): a plugin is bound to the version its
//! export names. A 0.1.0 plugin gets the call and the members copied into records, as before.
//! A 0.2.0 validator or policy is lent the call (`Resource::new_borrow(0)`, the call kept in
//! the store data for that call only) and reads the parts it needs; its members are numbers
//! only, lowered in one pass (`lowering`). Measured on the 2-core machine: crossing into a
//! policy with 8 members went from ~2.9 µs (0.1.0: a guest allocation per string) to ~1.3 µs.
//!
//! Open decisions:
//! - Calls are async (each runs on a wasmtime fiber and yields every epoch tick). Calling
//!   policies synchronously (a sync WASI linker, epochs that continue instead of yielding)
//!   was measured to save only ~0.25 µs of a pick, and would let a runaway policy hold a
//!   tokio worker for its whole timeout; not done.
//! - Compiled code is not cached across restarts: a Python or JS component takes seconds to
//!   compile at every start, and a call that needs it waits for it (counted against its call
//!   timeout).
//! - Answer sizes are checked after wasmtime copied the answer out; the copy is bounded by
//!   the plugin's `memory_mb`. Fuel metering is engine-wide: adding `fuel:` needs a restart.
//! - The kubernetes capability lists pods; it does not watch them. A discovery source is
//!   asked every `refresh_interval_s`, and a list per cycle keeps the plugin contract one
//!   call; a watch would save API load on very large clusters.
mod bindings;
mod capability;
mod discovery;
mod engine;
mod error;
pub mod inspect;
mod lb;
mod load;
mod lowering;
mod sandbox;
mod set;
mod stats;
#[cfg(test)]
mod tests;
mod validator;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

pub use self::engine::HostOptions;
pub use self::error::{PluginError, PluginErrorKind};
pub use self::set::{PluginSet, PluginSlot, PluginStatus};
pub use self::stats::PluginStats;

use self::bindings::v0_1_0::hangar::plugin::types as wit;
use self::engine::Runtime;
use self::load::{Loaded, World};
use self::stats::Stats;
use crate::config::{OnError, PluginKind, PluginSpec};

/// One tool call as a validator or a policy sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    /// Provider (or group) id the call is addressed to.
    pub provider: String,
    /// Tool name as the provider calls it.
    pub tool: String,
    /// The arguments object, serialized as JSON.
    pub arguments_json: String,
    /// The client's session id, when the transport has one.
    pub session: Option<String>,
    /// Call metadata: `correlation-id`, the client's name and version, …
    pub meta: Vec<(String, String)>,
}

/// A group member as a policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// A provider id: shared, so handing members to a policy copies no string.
    pub id: Arc<str>,
    /// `member_key(&id)`: what a 0.2.0 policy hashes instead of reading the id.
    pub key: u64,
    /// 1-100, from the config.
    pub weight: u32,
    /// 1-100, lower is preferred.
    pub priority: u32,
    /// Calls running on it now.
    pub in_flight: u32,
    /// In the group's rotation.
    pub healthy: bool,
    /// Moving average of its call latency.
    pub ewma_latency_us: u64,
}

impl Member {
    /// A member with weight and priority 1, nothing in flight, healthy, no latency yet.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        let id = id.into();
        Self {
            key: member_key(&id),
            id,
            weight: 1,
            priority: 1,
            in_flight: 0,
            healthy: true,
            ewma_latency_us: 0,
        }
    }
}

/// The key WIT 0.2.0 gives a member: FNV-1a 64 over its id's UTF-8 bytes. It is part of the
/// contract (policies hash on it to keep a session on a member across restarts), so it must
/// never change.
pub fn member_key(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What a validator decided about a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Send the call as it is.
    Allow,
    /// Refuse it; the reason is shown to the client.
    Deny(String),
    /// Send it with these arguments instead (check them against the tool's schema again).
    Rewrite(serde_json::Map<String, serde_json::Value>),
}

/// A provider a discovery source found, not yet validated (the discovery loop checks it like
/// a provider written in the config file). `Debug` shows env names only: a value may be a
/// secret the source was given.
#[derive(Clone, PartialEq, Eq)]
pub struct DiscoveredProvider {
    pub name: String,
    /// `subprocess`, `container` or `remote`.
    pub mode: String,
    pub command: Vec<String>,
    pub image: Option<String>,
    pub endpoint: Option<String>,
    pub env: Vec<(String, String)>,
    pub group: Option<String>,
    pub labels: Vec<(String, String)>,
    pub description: Option<String>,
    pub idle_ttl: Option<Duration>,
    /// Predefined tools, a JSON array of `{name, description, inputSchema}`.
    pub tools_json: Option<String>,
}

impl std::fmt::Debug for DiscoveredProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(name, _)| (name.as_str(), crate::config::REDACTED))
            .collect();
        f.debug_struct("DiscoveredProvider")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .field("command", &self.command)
            .field("image", &self.image)
            .field("endpoint", &self.endpoint)
            .field("env", &env)
            .field("group", &self.group)
            .field("labels", &self.labels)
            .field("description", &self.description)
            .field("idle_ttl", &self.idle_ttl)
            .field("tools_json", &self.tools_json)
            .finish()
    }
}

/// The host could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the plugin host: {0}")]
pub struct HostError(String);

/// The process's plugin host: one engine and its epoch ticker. Cheap to clone; plugins keep
/// what they need of it alive, so dropping the host does not stop loaded plugins.
#[derive(Clone)]
pub struct PluginHost {
    runtime: Arc<Runtime>,
}

impl PluginHost {
    /// A host with the default options (no fuel metering).
    ///
    /// # Errors
    ///
    /// When wasmtime cannot set up its engine (for example, the address space for the
    /// instance pool cannot be reserved).
    pub fn new() -> Result<Self, HostError> {
        Self::with_options(&HostOptions::default())
    }

    /// A host sized and metered as `options` say.
    ///
    /// # Errors
    ///
    /// As `new`.
    pub fn with_options(options: &HostOptions) -> Result<Self, HostError> {
        let runtime = Runtime::new(options).map_err(|err| HostError(format!("{err:#}")))?;
        Ok(Self {
            runtime: Arc::new(runtime),
        })
    }

    /// Whether calls count fuel (`HostOptions::fuel`).
    pub fn meters_fuel(&self) -> bool {
        self.runtime.fuel
    }

    /// Plugin instances alive now, across all plugins of this host (one per validator or
    /// discovery call in flight, one per lb policy), and the bytes kept resident in idle
    /// memory slots for reuse. For metrics, and for tests that nothing is left behind.
    pub fn live_instances(&self) -> (u64, usize) {
        self.runtime
            .engine
            .pooling_allocator_metrics()
            .map_or((0, 0), |m| {
                (m.component_instances(), m.unused_memory_bytes_resident())
            })
    }

    /// How pooled plugin memory is reset between instances: `pagemap_scan` (Linux 6.7+, only
    /// dirtied pages, ~2x faster fresh instances) or `madvise`. For logs and figures.
    pub fn memory_reset(&self) -> &'static str {
        match self.runtime.reset {
            engine::MemoryReset::PagemapScan => "pagemap_scan",
            engine::MemoryReset::Madvise => "madvise",
        }
    }

    /// Loads the plugin `spec` describes: compiles its file, checks it is a component of the
    /// world its kind needs, and configures a first instance with its `config:`.
    ///
    /// # Errors
    ///
    /// `Load` when the file is missing, not a component, built for another world, or its
    /// sandbox cannot be set up; `Configure` when the plugin refuses its config; a call error
    /// (`Trap`, `Timeout`, …) when the first instance fails while starting or configuring.
    pub async fn load(&self, spec: &PluginSpec) -> Result<Plugin, PluginError> {
        let stats = Arc::new(Stats::default());
        let loaded = load::load(&self.runtime, spec, 1, None, &stats).await?;
        Ok(Plugin {
            name: Arc::from(spec.name.as_str()),
            kind: spec.kind,
            runtime: Arc::clone(&self.runtime),
            current: ArcSwap::from_pointee(loaded),
            versions: AtomicU64::new(1),
            stats,
        })
    }
}

/// A loaded plugin. Its methods take `&self`: share it in an `Arc` and call it from as many
/// tasks as needed.
pub struct Plugin {
    name: Arc<str>,
    kind: PluginKind,
    runtime: Arc<Runtime>,
    current: ArcSwap<Loaded>,
    /// The last version number handed out; each load attempt takes the next one.
    versions: AtomicU64,
    stats: Arc<Stats>,
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// The spec of the version in service.
    pub fn spec(&self) -> Arc<PluginSpec> {
        Arc::clone(&self.current.load().spec)
    }

    /// The version in service: 1 at load, higher after each successful `reload`.
    pub fn version(&self) -> u64 {
        self.current.load().version
    }

    /// The plugin's counters since it was loaded, across reloads.
    pub fn stats(&self) -> PluginStats {
        self.stats.snapshot()
    }

    /// Asks the validator about `call`, applying its `on_error` to failures: `fail_open`
    /// allows the call, `fail_closed` denies it with a reason naming the plugin and what went
    /// wrong. Failures are logged and counted either way.
    pub async fn validate(&self, call: &Arc<Invocation>) -> Verdict {
        match self.try_validate(call).await {
            Ok(verdict) => verdict,
            Err(err) => match self.on_error(&err) {
                OnError::FailOpen => Verdict::Allow,
                OnError::FailClosed => Verdict::Deny(format!(
                    "validator plugin `{}` failed, so the call is refused (its `on_error` is \
                     fail_closed): {}",
                    err.plugin, err.message
                )),
            },
        }
    }

    /// Asks the validator about `call`, with failures returned as they are.
    ///
    /// # Errors
    ///
    /// Any call error (see `PluginErrorKind`); `WrongKind` if the plugin is not a validator.
    pub async fn try_validate(&self, call: &Arc<Invocation>) -> Result<Verdict, PluginError> {
        let started = Instant::now();
        let loaded = self.current.load_full();
        let result = match &loaded.world {
            World::Validator(validators) => {
                validator::validate(&self.runtime, &loaded, validators, call, &self.stats).await
            }
            _ => Err(self.wrong_kind("validate")),
        };
        match &result {
            Ok(Verdict::Deny(_)) => Stats::bump(&self.stats.denials),
            Ok(Verdict::Rewrite(_)) => Stats::bump(&self.stats.rewrites),
            Ok(Verdict::Allow) => {}
            Err(err) => self.stats.failure(err.kind),
        }
        self.stats.call_done(started.elapsed());
        result
    }

    /// Asks the policy which of `members` takes `call`: `Ok(Some(i))` for `members[i]`,
    /// `Ok(None)` to let the group's native strategy decide. On failure `fail_open` (the
    /// default for policies) answers `Ok(None)`; `fail_closed` returns the error, and the
    /// call should be refused with it.
    ///
    /// # Errors
    ///
    /// Only with `on_error: fail_closed`: as `try_pick`.
    pub async fn pick(
        &self,
        call: &Arc<Invocation>,
        members: &[Member],
    ) -> Result<Option<u32>, PluginError> {
        match self.try_pick(call, members).await {
            Ok(picked) => Ok(picked),
            Err(err) => match self.on_error(&err) {
                OnError::FailOpen => Ok(None),
                OnError::FailClosed => Err(err),
            },
        }
    }

    /// Asks the policy for a member, with failures returned as they are. An index is always
    /// within `members`.
    ///
    /// # Errors
    ///
    /// Any call error (see `PluginErrorKind`); `WrongKind` if the plugin is not a policy.
    pub async fn try_pick(
        &self,
        call: &Arc<Invocation>,
        members: &[Member],
    ) -> Result<Option<u32>, PluginError> {
        let started = Instant::now();
        let loaded = self.current.load_full();
        let result = match &loaded.world {
            World::LbPolicy(policy) => policy.pick(call, members).await,
            _ => Err(self.wrong_kind("pick")),
        };
        if let Err(err) = &result {
            self.stats.failure(err.kind);
        }
        self.stats.call_done(started.elapsed());
        result
    }

    /// Asks the discovery source for the providers it sees now.
    ///
    /// # Errors
    ///
    /// Any call error, `Reported` when the source answered with an error of its own, and
    /// `WrongKind` if the plugin is not a discovery source. The caller keeps its last good
    /// answer on error (discovery is `fail_open` by default; `fail_closed` has no other
    /// meaning here).
    pub async fn discover(&self) -> Result<Vec<DiscoveredProvider>, PluginError> {
        let started = Instant::now();
        let loaded = self.current.load_full();
        let result = match &loaded.world {
            World::Discovery(pre) => {
                discovery::discover(&self.runtime, &loaded, pre, &self.stats).await
            }
            _ => Err(self.wrong_kind("discover")),
        };
        if let Err(err) = &result {
            self.stats.failure(err.kind);
            tracing::warn!(plugin = %self.name, kind = %err.kind, "{err}");
        }
        self.stats.call_done(started.elapsed());
        result
    }

    /// Loads the plugin's file again with the spec in service (after the file changed) and
    /// swaps it in. See `reload_with`.
    ///
    /// # Errors
    ///
    /// As `reload_with`.
    pub async fn reload(&self) -> Result<u64, PluginError> {
        let spec = self.spec();
        self.reload_with(&spec).await
    }

    /// Loads a new version from `spec` (same name and kind; path, config and limits may
    /// change) and swaps it in atomically. Calls in flight finish on the old version; calls
    /// that start after the swap use the new one. If the new version fails to load, the old
    /// one stays in service and the error is returned. Returns the new version number.
    ///
    /// # Errors
    ///
    /// `WrongKind` when `spec` names another plugin or kind; otherwise as `PluginHost::load`.
    pub async fn reload_with(&self, spec: &PluginSpec) -> Result<u64, PluginError> {
        if spec.name != *self.name || spec.kind != self.kind {
            return Err(PluginError::new(
                &self.name,
                PluginErrorKind::WrongKind,
                format!(
                    "cannot be reloaded as `{}` of kind `{}`: a reload keeps the name and the \
                     kind (`{}`)",
                    spec.name, spec.kind, self.kind
                ),
            ));
        }
        let version = self.versions.fetch_add(1, Ordering::Relaxed) + 1;
        let previous = Some(Arc::clone(&self.current.load().compiled));
        match load::load(&self.runtime, spec, version, previous, &self.stats).await {
            Ok(loaded) => {
                let loaded = Arc::new(loaded);
                // Two reloads racing: the one that started last wins, whichever ends last.
                self.current.rcu(|current| {
                    if current.version > version {
                        Arc::clone(current)
                    } else {
                        Arc::clone(&loaded)
                    }
                });
                Stats::bump(&self.stats.reloads);
                tracing::info!(plugin = %self.name, version, "plugin reloaded");
                Ok(version)
            }
            Err(err) => {
                Stats::bump(&self.stats.reload_failures);
                tracing::warn!(
                    plugin = %self.name,
                    "reload failed, version {} stays in service: {err}",
                    self.version()
                );
                Err(err)
            }
        }
    }

    /// Logs and counts a failed call; what its `on_error` makes of it.
    fn on_error(&self, err: &PluginError) -> OnError {
        let on_error = self.current.load().spec.on_error;
        match on_error {
            OnError::FailOpen => Stats::bump(&self.stats.failed_open),
            OnError::FailClosed => Stats::bump(&self.stats.failed_closed),
        }
        tracing::warn!(
            plugin = %self.name,
            kind = %err.kind,
            on_error = on_error.as_str(),
            "{err}"
        );
        on_error
    }

    fn wrong_kind(&self, what: &str) -> PluginError {
        PluginError::new(
            &self.name,
            PluginErrorKind::WrongKind,
            format!("is a plugin of kind `{}`; it cannot {what}", self.kind),
        )
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

/// A call as a 0.1.0 plugin gets it: every part copied.
fn to_wit_invocation(call: &Invocation) -> wit::Invocation {
    wit::Invocation {
        provider: call.provider.clone(),
        tool: call.tool.clone(),
        arguments_json: call.arguments_json.clone(),
        session: call.session.clone(),
        meta: call.meta.clone(),
    }
}

fn to_wit_member(member: &Member) -> wit::Member {
    wit::Member {
        id: member.id.to_string(),
        weight: member.weight,
        priority: member.priority,
        in_flight: member.in_flight,
        healthy: member.healthy,
        ewma_latency_us: member.ewma_latency_us,
    }
}
