//! The live set of providers and groups: start (single-flight), stop, invoke, idle collection,
//! shutdown.
//!
//! Architecture invariant: no lock is held across an `.await`. A provider's mutable state sits
//! behind one `std::sync::Mutex`; callers copy what they need (the peer is a cheap clone) and
//! await outside it. Concurrent first calls share one start future instead of waiting on a lock.

mod error;
mod exposure;
mod limits;
mod provider;
mod stats;

pub use error::{InvokeError, closest};
pub use exposure::{Hidden, ToolExposure};
pub use limits::{RateLimit, SlotError, Slots};
pub use provider::{
    GroupValidators, LastError, Provider, ProviderCall, RecoveryState, Snapshot, tool_from_spec,
};
pub use stats::{CallStatus, HistogramSnapshot, ProviderStats, StatsSnapshot, ToolSnapshot};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use rmcp::model::{CallToolResult, JsonObject};

use crate::backend::{self, ProgressSink};
use crate::config::{Config, GroupStrategy, PluginKind, RecoverySpec};
use crate::events::EventBus;
use crate::group::Group;
use crate::plugin::{PluginSet, PluginSlot};
use crate::validate::{self, SchemaCache};

/// Default deadline of a tool call when neither the caller nor the provider's config set one.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest anything waits for a start that is already under way.
pub(crate) const START_DEADLINE_CAP: Duration = backend::START_TIMEOUT;

/// What every provider of one registry shares.
pub struct Shared {
    pub bus: EventBus,
    shutting_down: AtomicBool,
    pub schemas: SchemaCache,
    /// The plugins providers (validators) and groups (policies) name.
    pub plugins: Arc<PluginSet>,
    /// Labels what this hangar starts outside its own process tree (containers), so that a
    /// later run of the same config can find what a killed run left behind.
    pub instance: String,
}

impl Shared {
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// The delay before restart attempt `attempt` (1-based): exponential from `base_delay`, with
/// jitter, never above `max_delay`.
pub(crate) fn backoff_delay(policy: &RecoverySpec, attempt: u32) -> Duration {
    use backon::BackoffBuilder;
    let nth = backon::ExponentialBuilder::default()
        .with_min_delay(policy.base_delay)
        .with_max_delay(policy.max_delay)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempt.saturating_sub(1) as usize);
    nth.unwrap_or(policy.max_delay).min(policy.max_delay)
}

/// All configured providers and groups.
pub struct Registry {
    providers: IndexMap<String, Arc<Provider>>,
    groups: IndexMap<String, Arc<Group>>,
    /// Top-level ids (providers and groups) in config order: what clients see. Inline group
    /// members are reachable by id but offer their tools only through their group.
    top_level: Vec<String>,
    shared: Arc<Shared>,
    global_rate: Option<RateLimit>,
    limits: validate::Limits,
    next_correlation: AtomicU64,
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
}

/// What a caller can reach by id.
pub enum Target<'a> {
    Provider(&'a Arc<Provider>),
    Group(&'a Arc<Group>),
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
        Arc::new(Self {
            top_level: config.providers.keys().cloned().collect(),
            providers,
            groups,
            global_rate: config.rate_limit.as_ref().map(RateLimit::new),
            limits: validate::Limits {
                max_bytes: config.limits.max_argument_bytes,
                max_depth: config.limits.max_argument_depth,
            },
            shared,
            next_correlation: AtomicU64::new(1),
        })
    }

    pub fn bus(&self) -> &EventBus {
        &self.shared.bus
    }

    /// Every provider, group members included.
    pub fn providers(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers.values()
    }

    pub fn groups(&self) -> impl Iterator<Item = &Arc<Group>> {
        self.groups.values()
    }

    /// What clients see, in config order: (id, tool prefix, tools offered now).
    pub fn exposed(&self) -> Vec<(String, Option<String>, Arc<Vec<rmcp::model::Tool>>)> {
        self.top_level
            .iter()
            .filter_map(|id| {
                if let Some(g) = self.groups.get(id) {
                    Some((
                        id.clone(),
                        g.spec().tool_prefix.clone(),
                        Arc::new(g.tools()),
                    ))
                } else {
                    let p = self.providers.get(id)?;
                    Some((id.clone(), p.spec().tool_prefix.clone(), p.tools()))
                }
            })
            .collect()
    }

    pub fn provider(&self, id: &str) -> Option<&Arc<Provider>> {
        self.providers.get(id)
    }

    pub fn group(&self, id: &str) -> Option<&Arc<Group>> {
        self.groups.get(id)
    }

    fn not_found(&self, id: &str) -> InvokeError {
        InvokeError::ProviderNotFound {
            provider: id.to_string(),
            suggestions: closest(
                id,
                self.providers
                    .keys()
                    .chain(self.groups.keys())
                    .map(String::as_str),
            ),
        }
    }

    pub fn get(&self, id: &str) -> Result<&Arc<Provider>, InvokeError> {
        self.providers.get(id).ok_or_else(|| self.not_found(id))
    }

    pub fn target(&self, id: &str) -> Result<Target<'_>, InvokeError> {
        if let Some(g) = self.groups.get(id) {
            return Ok(Target::Group(g));
        }
        self.get(id).map(Target::Provider)
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
        if self.is_shutting_down() {
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
        let request = ProviderCall {
            tool: call.tool,
            arguments: call.arguments,
            deadline: tokio::time::Instant::now() + limit,
            limit,
            correlation_id: call.correlation_id.unwrap_or_else(|| self.correlation_id()),
            progress: call.progress,
            session: call.session,
            reply: call.reply,
            group_validators: None,
        };
        match target {
            Target::Provider(p) => p.call(request).await,
            Target::Group(g) => g.call(request).await,
        }
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
                for p in reg.providers.values() {
                    if p.is_idle(now) {
                        let p = p.clone();
                        tokio::spawn(async move {
                            tracing::info!(provider = %p.id(), "idle for {:?}; stopping", p.spec().idle_ttl);
                            p.stop("idle").await;
                        });
                    }
                }
            }
        })
    }

    /// Refuses new calls and starts, then waits until no call is in flight or `timeout`
    /// passes. Returns how many calls were still in flight at the end (0: all answered).
    pub async fn drain(&self, timeout: Duration) -> u32 {
        self.shared.shutting_down.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + timeout;
        loop {
            let in_flight: u32 = self.providers.values().map(|p| p.in_flight()).sum();
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
            .providers
            .values()
            .map(|p| async move { p.stop("hangar shutdown").await });
        futures::future::join_all(stops).await;
        let left = backend::reap_all().await;
        if left > 0 {
            tracing::warn!(
                "ended {left} leftover provider process group(s) or container(s) at shutdown"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_stays_under_the_cap() {
        let policy = RecoverySpec {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retries: 10,
        };
        for _ in 0..50 {
            let d1 = backoff_delay(&policy, 1);
            let d3 = backoff_delay(&policy, 3);
            let d9 = backoff_delay(&policy, 9);
            assert!(
                d1 >= Duration::from_millis(100) && d1 < Duration::from_millis(200),
                "{d1:?}"
            );
            assert!(
                d3 >= Duration::from_millis(400) && d3 < Duration::from_millis(800),
                "{d3:?}"
            );
            assert!(d9 <= Duration::from_secs(1), "{d9:?}");
        }
    }
}
