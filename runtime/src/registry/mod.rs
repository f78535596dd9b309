//! The live set of providers and groups: start (single-flight), stop, invoke, idle collection,
//! shutdown.
//!
//! Architecture invariant: no lock is held across an `.await`. A provider's mutable state sits
//! behind one `std::sync::Mutex`; callers copy what they need (the peer is a cheap clone) and
//! await outside it. Concurrent first calls share one start future instead of waiting on a lock.

mod live;

pub use crate::managed::{
    CallStatus, DEFAULT_CALL_TIMEOUT, GroupValidators, Hidden, HistogramSnapshot, InvokeError,
    LastError, Provider, ProviderCall, ProviderStats, RateLimit, RecoveryState, Shared, SlotError,
    Slots, Snapshot, StatsSnapshot, ToolExposure, ToolSnapshot, closest, tool_from_spec,
};
pub use live::{Applied, Diff, Members, Membership, Origin};

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use indexmap::IndexMap;
use rmcp::model::{CallToolResult, JsonObject};

use crate::backend::{self, ProgressSink};
use crate::config::{Config, GroupStrategy, PluginKind};
use crate::events::EventBus;
use crate::group::Group;
use crate::observe::trace;
use crate::plugin::{PluginSet, PluginSlot};
use crate::validate::{self, SchemaCache};

/// All configured and discovered providers and groups.
///
/// The set itself is an immutable [`Members`] snapshot swapped whole by [`Registry::apply`]:
/// a call loads it once (one atomic load) and never sees half a change.
pub struct Registry {
    members: ArcSwap<Members>,
    /// Serialises `apply` (held only while the next snapshot is computed, never across an
    /// `.await`).
    apply_gate: Mutex<()>,
    /// Providers taken out of service and still draining, so shutdown can wait for them.
    retiring: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The discovery engine feeding this registry, for the `registry_discover*` tools.
    discovery: std::sync::OnceLock<Arc<crate::discovery::Discovery>>,
    /// What the HTTP face refused and holds open, for `/metrics` (zero on stdio).
    http_stats: Arc<crate::http::HttpStats>,
    shared: Arc<Shared>,
    global_rate: Option<RateLimit>,
    limits: validate::Limits,
    next_correlation: AtomicU64,
    /// Calls between entering [`Registry::invoke`] and leaving it, in any phase (waiting for a
    /// start, queued for a slot, at the provider, failing over): what a drain waits for.
    open_calls: AtomicU32,
}

/// One call counted in [`Registry::open_calls`] until it is dropped, however it ends.
struct OpenCall<'a>(&'a AtomicU32);

impl<'a> OpenCall<'a> {
    fn new(count: &'a AtomicU32) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for OpenCall<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Arguments of one tool call.
#[derive(Default)]
pub struct Invocation {
    pub provider: String,
    pub tool: String,
    pub arguments: Option<JsonObject>,
    pub timeout: Option<Duration>,
    /// Where the provider's progress notifications go, if the caller asked for them.
    pub progress: Option<ProgressSink>,
    pub correlation_id: Option<String>,
    /// The client's session, for validators and policies (`sticky-session` keys on it).
    pub session: Option<String>,
    /// Where the client's answer goes, for a provider that can send it the moment it arrives
    /// (the caller then sends nothing if [`crate::wire::Reply::sent`], and the result it gets
    /// back carries only `is_error`: the content is the client's).
    pub reply: Option<Arc<crate::wire::Reply>>,
    /// The client's `_meta` (trace context, vendor keys); the provider gets it with the
    /// hangar's own trace context in place of the client's.
    pub meta: Option<JsonObject>,
    /// Where the provider's requests to the client (sampling, elicitation, roots) and its log
    /// messages during the call go; `None`: the provider is told no client can answer.
    pub client: Option<backend::ClientLink>,
}

/// What a caller can reach by id (shared handles: the snapshot may be replaced meanwhile).
pub enum Target {
    Provider(Arc<Provider>),
    Group(Arc<Group>),
}

impl Registry {
    /// A registry whose config names no plugin (a name it does name is treated as a plugin
    /// that did not load).
    /// The plugins this registry's providers and groups use.
    pub fn plugins(&self) -> &Arc<PluginSet> {
        &self.shared.plugins
    }

    pub fn new(config: &Config, bus: EventBus) -> Arc<Self> {
        Self::with_plugins(config, bus, PluginSet::empty())
    }

    /// A registry whose providers and groups use the plugins of `plugins`.
    pub fn with_plugins(config: &Config, bus: EventBus, plugins: Arc<PluginSet>) -> Arc<Self> {
        let shared = Arc::new(Shared {
            bus,
            shutting_down: AtomicBool::new(false),
            schemas: SchemaCache::new(),
            plugins,
            instance: backend::instance_label(&config.path),
            downstream: Arc::default(),
        });
        let mut providers = IndexMap::new();
        let mut groups = IndexMap::new();
        for (id, spec) in &config.providers {
            if spec.group.is_some() {
                let members: Vec<Arc<Provider>> = config
                    .group_members(id)
                    .into_iter()
                    .map(|(_, member)| {
                        providers
                            .entry(member.id.clone())
                            .or_insert_with(|| {
                                Arc::new(Provider::new(member.clone(), shared.clone()))
                            })
                            .clone()
                    })
                    .collect();
                let policy = match spec.group.as_ref().map(|g| &g.strategy) {
                    Some(GroupStrategy::Plugin(name)) => {
                        Some(shared.plugins.get(name).unwrap_or_else(|| {
                            Arc::new(PluginSlot::missing(name, PluginKind::LbPolicy))
                        }))
                    }
                    _ => None,
                };
                let validators = spec
                    .validators
                    .iter()
                    .map(|name| {
                        shared.plugins.get(name).unwrap_or_else(|| {
                            Arc::new(PluginSlot::missing(name, PluginKind::Validator))
                        })
                    })
                    .collect();
                groups.insert(
                    id.clone(),
                    Arc::new(Group::new(
                        spec.clone(),
                        &config.group_members(id),
                        members,
                        policy,
                        validators,
                        shared.bus.clone(),
                    )),
                );
            } else {
                providers
                    .entry(id.clone())
                    .or_insert_with(|| Arc::new(Provider::new(spec.clone(), shared.clone())));
            }
        }
        let members = Members {
            top_level: config.providers.keys().cloned().collect(),
            providers,
            groups,
            origins: IndexMap::new(),
            discovered_groups: indexmap::IndexSet::new(),
        };
        Arc::new(Self {
            members: ArcSwap::from_pointee(members),
            apply_gate: Mutex::new(()),
            retiring: Mutex::new(Vec::new()),
            discovery: std::sync::OnceLock::new(),
            http_stats: Arc::default(),
            global_rate: config.rate_limit.as_ref().map(RateLimit::new),
            limits: validate::Limits {
                max_bytes: config.limits.max_argument_bytes,
                max_depth: config.limits.max_argument_depth,
            },
            shared,
            next_correlation: AtomicU64::new(1),
            open_calls: AtomicU32::new(0),
        })
    }

    /// What providers send towards the clients, and what the clients offered them.
    pub fn downstream(&self) -> &Arc<backend::Downstream> {
        &self.shared.downstream
    }

    pub fn bus(&self) -> &EventBus {
        &self.shared.bus
    }

    /// Attaches the discovery engine (once; later calls are ignored).
    pub fn set_discovery(&self, engine: Arc<crate::discovery::Discovery>) {
        let _ = self.discovery.set(engine);
    }

    /// The HTTP face's counters (connections, sessions, refusals).
    pub fn http_stats(&self) -> &Arc<crate::http::HttpStats> {
        &self.http_stats
    }

    /// The discovery engine, when the config has an enabled `discovery:` section.
    pub fn discovery(&self) -> Option<&Arc<crate::discovery::Discovery>> {
        self.discovery.get()
    }

    /// The current snapshot of providers and groups.
    pub fn members(&self) -> Arc<Members> {
        self.members.load_full()
    }

    /// Every provider of the current snapshot, group members included.
    pub fn providers(&self) -> impl Iterator<Item = Arc<Provider>> + use<> {
        let members = self.members.load_full();
        let all: Vec<Arc<Provider>> = members.providers.values().cloned().collect();
        all.into_iter()
    }

    pub fn groups(&self) -> impl Iterator<Item = Arc<Group>> + use<> {
        let members = self.members.load_full();
        let all: Vec<Arc<Group>> = members.groups.values().cloned().collect();
        all.into_iter()
    }

    /// What clients see, static providers in config order, then discovered ones in the order
    /// they were registered: (id, tool prefix, tools offered now).
    pub fn exposed(&self) -> Vec<(String, Option<String>, Arc<Vec<rmcp::model::Tool>>)> {
        self.members.load().exposed()
    }

    pub fn provider(&self, id: &str) -> Option<Arc<Provider>> {
        self.members.load().providers.get(id).cloned()
    }

    pub fn group(&self, id: &str) -> Option<Arc<Group>> {
        self.members.load().groups.get(id).cloned()
    }

    pub fn get(&self, id: &str) -> Result<Arc<Provider>, InvokeError> {
        let members = self.members.load();
        members
            .providers
            .get(id)
            .cloned()
            .ok_or_else(|| members.not_found(id))
    }

    pub fn target(&self, id: &str) -> Result<Target, InvokeError> {
        self.members.load().target(id)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shared.is_shutting_down()
    }

    /// The hangar-wide `rate_limit:`, if one is set.
    pub fn global_rate_limit(&self) -> Option<crate::config::RateLimitSpec> {
        self.global_rate.as_ref().map(RateLimit::spec)
    }

    /// Calls the hangar-wide `rate_limit:` refused (0 without one).
    pub fn global_rate_limit_hits(&self) -> u64 {
        self.global_rate.as_ref().map_or(0, RateLimit::hits)
    }

    /// Starts a provider, or every member of a group.
    pub async fn start(&self, id: &str) -> Result<(), InvokeError> {
        match self.target(id)? {
            Target::Provider(p) => p.ensure_started(true).await.map(|_| ()),
            Target::Group(g) => g.start_all().await,
        }
    }

    pub async fn stop(&self, id: &str, reason: &str) -> Result<bool, InvokeError> {
        match self.target(id)? {
            Target::Provider(p) => Ok(p.stop(reason).await),
            Target::Group(g) => Ok(g.stop_all(reason).await),
        }
    }

    pub fn correlation_id(&self) -> String {
        let n = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        // Every call makes one, so it is written without the formatting machinery.
        static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let prefix = PREFIX.get_or_init(|| format!("{:08x}-", std::process::id()));
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(n);
        let mut id = String::with_capacity(prefix.len() + digits.len());
        id.push_str(prefix);
        id.push_str(digits);
        id
    }

    /// Calls a tool of a provider or a group, starting what is needed. The whole call, start
    /// included, is bounded by the timeout; a start that outlives it goes on for the next caller.
    pub async fn invoke(&self, call: Invocation) -> Result<CallToolResult, InvokeError> {
        let target = self.target(&call.provider)?;
        // Counted before the check (SeqCst on both sides): a drain that set the flag either
        // sees this call or this call sees the flag.
        let _open = OpenCall::new(&self.open_calls);
        if self.shared.shutting_down.load(Ordering::SeqCst) {
            return Err(InvokeError::ShuttingDown {
                provider: call.provider,
            });
        }
        if let Some(args) = &call.arguments
            && let Err(e) = validate::check_limits(args, &self.limits)
        {
            return Err(InvokeError::InvalidArguments {
                provider: call.provider.clone(),
                tool: call.tool.clone(),
                detail: e.to_string(),
                violations: e.to_json(),
            });
        }
        if let Some(rl) = &self.global_rate
            && let Err(retry_after) = rl.check()
        {
            return Err(InvokeError::RateLimited {
                scope: "the hangar (global rate_limit)".to_string(),
                retry_after,
            });
        }
        let default_timeout = match &target {
            Target::Provider(p) => p.spec().call_timeout,
            Target::Group(g) => g.spec().call_timeout,
        };
        let limit = call
            .timeout
            .or(default_timeout)
            .unwrap_or(DEFAULT_CALL_TIMEOUT);
        let correlation_id = call.correlation_id.unwrap_or_else(|| self.correlation_id());
        let (span, meta) = trace::start_call(
            &trace::CallStart {
                target: &call.provider,
                tool: &call.tool,
                session: call.session.as_deref(),
                correlation_id: &correlation_id,
                arguments: call.arguments.as_ref(),
            },
            call.meta,
        );
        let request = ProviderCall {
            tool: call.tool,
            arguments: call.arguments,
            deadline: tokio::time::Instant::now() + limit,
            limit,
            correlation_id,
            progress: call.progress,
            session: call.session,
            reply: call.reply,
            group_validators: None,
            meta,
            client: call.client,
        };
        let result = match target {
            Target::Provider(p) => p.call(request).await,
            Target::Group(g) => g.call(request).await,
        };
        span.finish(&result);
        result
    }

    /// Stops providers unused for their `idle_ttl_s`. Checks four times a second, so a provider
    /// is stopped within about a second of its TTL.
    pub fn spawn_idle_collector(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(reg) = me.upgrade() else { break };
                if reg.is_shutting_down() {
                    break;
                }
                let now = Instant::now();
                for p in reg.providers() {
                    if p.is_idle(now) {
                        tokio::spawn(async move {
                            tracing::info!(provider = %p.id(), "idle for {:?}; stopping", p.spec().idle_ttl);
                            p.stop("idle").await;
                        });
                    }
                }
            }
        })
    }

    /// Refuses new calls and starts, then waits until no call is under way or `timeout`
    /// passes. Returns how many calls were still under way at the end (0: all answered).
    /// A call counts from the moment it enters [`Registry::invoke`], so one that waits for
    /// its provider to start or for a concurrency slot is waited for too.
    pub async fn drain(&self, timeout: Duration) -> u32 {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        loop {
            let in_flight = self.open_calls.load(Ordering::SeqCst);
            if in_flight == 0 || Instant::now() >= deadline {
                return in_flight;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every provider (concurrently) and refuses new starts. Afterwards no process the
    /// hangar started is left running.
    pub async fn shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::Relaxed);
        let stops = self
            .providers()
            .map(|p| async move { p.stop("hangar shutdown").await });
        futures::future::join_all(stops).await;
        let retiring: Vec<_> =
            std::mem::take(&mut *self.retiring.lock().unwrap_or_else(|e| e.into_inner()));
        futures::future::join_all(retiring).await;
        let left = backend::reap_all().await;
        if left > 0 {
            tracing::warn!(
                "ended {left} leftover provider process group(s) or container(s) at shutdown"
            );
        }
    }
}
