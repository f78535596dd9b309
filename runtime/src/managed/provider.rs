//! One provider at run time: its lifecycle, connection, breaker, limits, health checks and
//! recovery bookkeeping, and the per-provider part of a call.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared as SharedFuture};
use rmcp::model::{CallToolResult, ClientRequest, ErrorCode, JsonObject, PingRequest, Tool};
use rmcp::service::ServiceError;

use super::error::{InvokeError, closest};
use super::exposure::{Hidden, ToolExposure};
use super::limits::{RateLimit, SlotError, Slots};
use super::stats::ProviderStats;
use super::{START_DEADLINE_CAP, Shared};
use crate::backend::raw::CallArguments;
use crate::backend::{self, Connection, Launch, ProgressSink, StartError};
use crate::config::{PluginKind, ProviderMode, ProviderSpec, ToolSpec};
use crate::events::Event;
use crate::plugin::{self, PluginSlot, Verdict};
use crate::provider::breaker::{BreakerChange, CircuitBreaker, Permit};
use crate::provider::{Lifecycle, ProviderState, Transition};
use crate::wire::Reply;

type StartFuture = SharedFuture<BoxFuture<'static, Result<Arc<Connection>, StartError>>>;

/// One configured provider and its live state.
pub struct Provider {
    spec: ProviderSpec,
    predefined: Arc<Vec<Tool>>,
    shared: Arc<Shared>,
    inner: Mutex<Inner>,
    slots: Option<Slots>,
    rate_limit: Option<RateLimit>,
    /// `validators:`, in order; each sees the arguments the one before it let through.
    validators: Vec<Arc<PluginSlot>>,
    /// `tools: {allow_list, deny_list}`; `None` offers every tool.
    exposure: Option<ToolExposure>,
    /// Moving average of answered calls' latency (1/8 weight to the newest), for policies.
    ewma_latency_us: AtomicU64,
    /// Taken out of the registry (discovery replaced or removed it): no new start.
    retired: AtomicBool,
    /// Counters for metrics, read when scraped.
    stats: ProviderStats,
}

struct Inner {
    lifecycle: Lifecycle,
    conn: Option<Arc<Connection>>,
    /// What the provider lists now: the live list while running, the predefined one otherwise.
    /// Before the `tools:` policy; read it through `Provider::offered`.
    tools: Arc<Vec<Tool>>,
    /// `tools` with the `tools:` policy applied: filtered once per list, not once per call.
    offered: Option<Offered>,
    starting: Option<StartFuture>,
    /// Aborts the start under way.
    start_cancel: Option<tokio_util::sync::CancellationToken>,
    last_error: Option<LastError>,
    pid: Option<u32>,
    protocol_version: Option<String>,
    breaker: CircuitBreaker,
    recovery: RecoveryState,
    last_check: Option<(Instant, bool)>,
}

/// A tool list under the `tools:` policy, and the list it was made from.
struct Offered {
    from: Arc<Vec<Tool>>,
    tools: Arc<Vec<Tool>>,
}

/// Where automatic restarts stand.
#[derive(Debug, Clone, Default)]
pub struct RecoveryState {
    /// Restarts tried since the provider last proved healthy (or was started explicitly).
    pub attempts: u32,
    /// A restart is scheduled and not yet run.
    pub scheduled: bool,
    pub next_attempt_at: Option<Instant>,
    /// Set when `max_retries` restarts failed: (when, why).
    pub gave_up: Option<(Instant, String)>,
}

#[derive(Debug, Clone)]
pub struct LastError {
    pub message: String,
    pub stderr_tail: Vec<String>,
    pub at: Instant,
}

/// A copy of a provider's state for display; taking it holds the lock only to clone.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub state: ProviderState,
    pub reason: Option<String>,
    pub since: Instant,
    pub tools: Arc<Vec<Tool>>,
    pub tools_predefined: bool,
    pub in_flight: u32,
    pub last_used: Instant,
    pub started_at: Option<Instant>,
    pub total_invocations: u64,
    pub total_failures: u64,
    pub consecutive_failures: u32,
    pub last_success: Option<Instant>,
    pub last_failure: Option<Instant>,
    pub last_error: Option<LastError>,
    pub pid: Option<u32>,
    /// Where the running provider is: `pid 1234`, a container, an endpoint (secrets removed).
    pub location: Option<String>,
    pub protocol_version: Option<String>,
    pub breaker: crate::provider::breaker::BreakerState,
    pub recovery: RecoveryState,
    pub last_check: Option<(Instant, bool)>,
    pub queued: u32,
}

/// The per-provider part of one call.
pub struct ProviderCall {
    pub tool: String,
    pub arguments: Option<JsonObject>,
    pub deadline: tokio::time::Instant,
    pub limit: Duration,
    pub correlation_id: String,
    pub progress: Option<ProgressSink>,
    pub session: Option<String>,
    /// Where the client's answer goes, for a provider that can send it the moment it arrives.
    pub reply: Option<Arc<Reply>>,
    /// Set when the call comes through a group that has validators of its own.
    pub group_validators: Option<Arc<GroupValidators>>,
    /// `_meta` for the provider: the client's, with the hangar's trace context.
    pub meta: crate::observe::trace::OutgoingMeta,
    /// Where the provider's requests to the client of this call go.
    pub client: Option<crate::backend::ClientLink>,
}

/// What validators see of a call besides its arguments.
struct CallContext<'a> {
    tool: &'a str,
    session: Option<&'a str>,
    correlation_id: &'a str,
    group: Option<&'a GroupValidators>,
}

/// A group's `validators:`, which every call through the group passes (before the member's
/// own), seeing the group's id as the provider: they are written on the group.
pub struct GroupValidators {
    pub group: String,
    pub validators: Vec<Arc<PluginSlot>>,
}

/// A predefined tool from the config as MCP describes it.
pub fn tool_from_spec(t: &ToolSpec) -> Tool {
    let mut tool = Tool::new(
        t.name.clone(),
        t.description.clone().unwrap_or_default(),
        Arc::new(t.input_schema.clone()),
    );
    if t.description.is_none() {
        tool.description = None;
    }
    if let Some(out) = &t.output_schema {
        tool = tool.with_raw_output_schema(Arc::new(out.clone()));
    }
    tool
}

/// Gives a call's in-flight place back if the call is dropped before its answer (the client
/// cancelled or went away), so the provider can still go idle and take new calls.
struct InFlight<'a> {
    provider: &'a Provider,
    open: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.open {
            self.provider.lock().lifecycle.abandon_call(Instant::now());
        }
    }
}

/// Resolves a breaker permit when the call ends; a call abandoned midway counts as a failure,
/// so a half-open probe can never be left hanging.
struct BreakerGuard<'a> {
    provider: &'a Provider,
    permit: Option<Permit>,
}

impl BreakerGuard<'_> {
    fn finish(mut self, success: bool) {
        if let Some(permit) = self.permit.take() {
            self.provider.record_breaker(permit, success);
        }
    }
}

impl Drop for BreakerGuard<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.provider.record_breaker(permit, false);
        }
    }
}

impl Provider {
    pub(crate) fn new(spec: ProviderSpec, shared: Arc<Shared>) -> Self {
        let predefined: Arc<Vec<Tool>> = Arc::new(spec.tools.iter().map(tool_from_spec).collect());
        let breaker = CircuitBreaker::new(
            spec.circuit_breaker.failure_threshold,
            spec.circuit_breaker.reset_timeout,
        );
        Self {
            inner: Mutex::new(Inner {
                lifecycle: Lifecycle::new(Instant::now()),
                conn: None,
                tools: predefined.clone(),
                offered: None,
                starting: None,
                start_cancel: None,
                last_error: None,
                pid: None,
                protocol_version: None,
                breaker,
                recovery: RecoveryState::default(),
                last_check: None,
            }),
            slots: spec
                .max_concurrency
                .map(|max| Slots::new(max, spec.max_queue)),
            rate_limit: spec.rate_limit.as_ref().map(RateLimit::new),
            validators: spec
                .validators
                .iter()
                .map(|name| {
                    shared.plugins.get(name).unwrap_or_else(|| {
                        Arc::new(PluginSlot::missing(name, PluginKind::Validator))
                    })
                })
                .collect(),
            exposure: ToolExposure::from_spec(spec.tool_filter.as_ref(), &spec.id),
            ewma_latency_us: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            stats: ProviderStats::default(),
            spec,
            predefined,
            shared,
        }
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// Marks the provider as out of the registry: calls it already has go on, but it is never
    /// started again (a late call or a recovery would otherwise start an orphan).
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    pub(crate) fn refuses_starts(&self) -> bool {
        self.shared.is_shutting_down() || self.retired.load(Ordering::Relaxed)
    }

    pub fn spec(&self) -> &ProviderSpec {
        &self.spec
    }

    /// The counters metrics read.
    pub fn stats(&self) -> &ProviderStats {
        &self.stats
    }

    /// Calls the provider's own `rate_limit:` refused (0 without one).
    pub fn rate_limit_hits(&self) -> u64 {
        self.rate_limit.as_ref().map_or(0, RateLimit::hits)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, event: Event) {
        self.shared.bus.publish(event);
    }

    pub fn state(&self) -> ProviderState {
        self.lock().lifecycle.state()
    }

    /// Moving average latency of this provider's answered calls, in µs (0 before the first).
    pub fn ewma_latency_us(&self) -> u64 {
        self.ewma_latency_us.load(Ordering::Relaxed)
    }

    fn record_latency(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        // Racing updates may lose a sample; an average for load balancing can afford that.
        let old = self.ewma_latency_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.ewma_latency_us.store(new, Ordering::Relaxed);
    }

    /// Runs the provider's validator plugins in order on a call whose arguments passed the
    /// schema. A rewrite is checked against the schema again before the next validator sees
    /// it. Returns the arguments to send, and their JSON text when the last validator saw
    /// exactly those (it was encoded for the validators; the request to the provider reuses it
    /// rather than encoding the arguments again).
    async fn run_validators(
        &self,
        call: &CallContext<'_>,
        tool: &Tool,
        mut arguments: JsonObject,
    ) -> Result<(JsonObject, Option<String>), InvokeError> {
        let id = &self.spec.id;
        let mut encoded = None;
        // The group's validators first: the call passed the group before it reached here.
        // Collected rather than chained lazily: an iterator of closures held across the awaits
        // below trips rustc's higher-ranked `Send` check.
        let mut chain: Vec<(&String, &Arc<PluginSlot>)> = Vec::new();
        if let Some(g) = call.group {
            chain.extend(g.validators.iter().map(|v| (&g.group, v)));
        }
        chain.extend(self.validators.iter().map(|v| (id, v)));
        for (owner, validator) in chain {
            // Shared, not copied, with the plugin for the length of its call.
            let invocation = Arc::new(plugin::Invocation {
                provider: owner.clone(),
                tool: call.tool.to_owned(),
                arguments_json: encoded
                    .take()
                    .unwrap_or_else(|| serde_json::to_string(&arguments).unwrap_or_default()),
                session: call.session.map(str::to_owned),
                meta: vec![("correlation-id".to_owned(), call.correlation_id.to_owned())],
            });
            let verdict = validator.validate(&invocation).await;
            // The plugin let go of its share when its call ended.
            encoded = Arc::into_inner(invocation).map(|call| call.arguments_json);
            match verdict {
                Verdict::Allow => {}
                Verdict::Deny(reason) => {
                    self.shared
                        .bus
                        .publish_call(|| Event::ToolInvocationDenied {
                            provider: owner.clone(),
                            tool: call.tool.to_owned(),
                            correlation_id: call.correlation_id.to_owned(),
                            plugin: validator.name().to_owned(),
                            reason: reason.clone(),
                        });
                    return Err(InvokeError::Denied {
                        provider: owner.clone(),
                        tool: call.tool.to_owned(),
                        plugin: validator.name().to_owned(),
                        reason,
                    });
                }
                Verdict::Rewrite(rewritten) => {
                    let value = serde_json::Value::Object(rewritten);
                    let (checked, _) =
                        self.shared
                            .schemas
                            .validate(id, call.tool, &tool.input_schema, &value);
                    if let Err(e) = checked {
                        return Err(InvokeError::InvalidArguments {
                            provider: id.clone(),
                            tool: call.tool.to_owned(),
                            detail: format!(
                                "validator plugin `{}` rewrote the arguments of `{}` into ones its schema refuses: {e}",
                                validator.name(),
                                call.tool
                            ),
                            violations: e.to_json(),
                        });
                    }
                    let serde_json::Value::Object(rewritten) = value else {
                        unreachable!("built from an object above")
                    };
                    tracing::debug!(provider = %id, tool = %call.tool, plugin = validator.name(), "arguments rewritten");
                    arguments = rewritten;
                    encoded = None;
                }
            }
        }
        Ok((arguments, encoded))
    }

    /// The connection of a running (ready or degraded) provider; `None` while it is not.
    pub fn connection(&self) -> Option<Arc<Connection>> {
        let inner = self.lock();
        inner
            .conn
            .clone()
            .filter(|_| inner.lifecycle.state().is_running())
    }

    pub fn in_flight(&self) -> u32 {
        self.lock().lifecycle.in_flight()
    }

    /// The tools offered now (predefined before start, live once ready), with the `tools:`
    /// policy applied.
    pub fn tools(&self) -> Arc<Vec<Tool>> {
        self.offered(&mut self.lock())
    }

    /// Whether the `tools:` policy offers `tool`, and if not, why.
    pub fn check_exposed(&self, tool: &str) -> Result<(), Hidden> {
        self.exposure.as_ref().map_or(Ok(()), |e| e.check(tool))
    }

    /// `inner.tools` under the `tools:` policy. Every list the provider gets (predefined, live,
    /// re-listed) goes through here, whichever code stored it.
    fn offered(&self, inner: &mut Inner) -> Arc<Vec<Tool>> {
        let Some(exposure) = &self.exposure else {
            return inner.tools.clone();
        };
        if let Some(offered) = &inner.offered
            && Arc::ptr_eq(&offered.from, &inner.tools)
        {
            return offered.tools.clone();
        }
        let tools = Arc::new(exposure.retain(&inner.tools));
        inner.offered = Some(Offered {
            from: inner.tools.clone(),
            tools: tools.clone(),
        });
        tools
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut inner = self.lock();
        let tools = self.offered(&mut inner);
        let lc = &inner.lifecycle;
        Snapshot {
            id: self.spec.id.clone(),
            state: lc.state(),
            reason: lc.reason().map(str::to_string),
            since: lc.since(),
            tools,
            tools_predefined: inner.conn.is_none(),
            in_flight: lc.in_flight(),
            last_used: lc.last_used(),
            started_at: lc.started_at(),
            total_invocations: lc.total_invocations(),
            total_failures: lc.total_failures(),
            consecutive_failures: lc.consecutive_failures(),
            last_success: lc.last_success(),
            last_failure: lc.last_failure(),
            last_error: inner.last_error.clone(),
            pid: inner.pid,
            location: inner.conn.as_ref().map(|c| c.location.clone()),
            protocol_version: inner.protocol_version.clone(),
            breaker: inner.breaker.state(),
            recovery: inner.recovery.clone(),
            last_check: inner.last_check,
            queued: self.slots.as_ref().map_or(0, Slots::queued),
        }
    }

    /// Applies a transition and publishes it, with the lock held so that checking the state and
    /// changing it are one step.
    fn transition(
        &self,
        inner: &mut Inner,
        to: ProviderState,
        reason: Option<String>,
    ) -> Option<Transition> {
        match inner.lifecycle.transition(to, reason, Instant::now()) {
            Ok(t) => {
                self.publish(Event::StateChanged {
                    provider: self.spec.id.clone(),
                    from: t.from,
                    to: t.to,
                    reason: t.reason.clone(),
                });
                Some(t)
            }
            Err(e) => {
                // The table refused: a bug in the caller, never silently fixed.
                tracing::error!(provider = %self.spec.id, "{e}");
                None
            }
        }
    }

    fn publish_breaker(&self, change: Option<BreakerChange>) {
        if let Some(c) = change {
            tracing::info!(provider = %self.spec.id, "circuit breaker {} -> {}", c.from.as_str(), c.to.as_str());
            self.publish(Event::BreakerChanged {
                scope: self.spec.id.clone(),
                from: c.from.as_str().to_string(),
                to: c.to.as_str().to_string(),
            });
        }
    }

    fn record_breaker(&self, permit: Permit, success: bool) {
        let change = self.lock().breaker.record(permit, success, Instant::now());
        self.publish_breaker(change);
    }

    /// Returns a connection to a running provider, starting it if needed. Concurrent callers
    /// share one start. `explicit` (a call or an operator's start) resets the recovery count.
    pub async fn ensure_started(
        self: &Arc<Self>,
        explicit: bool,
    ) -> Result<Arc<Connection>, InvokeError> {
        let start = {
            let mut inner = self.lock();
            if explicit {
                inner.recovery.attempts = 0;
                inner.recovery.gave_up = None;
            }
            if let Some(conn) = &inner.conn
                && inner.lifecycle.state().is_running()
            {
                return Ok(conn.clone());
            }
            match &inner.starting {
                Some(f) => f.clone(),
                None => {
                    if self.refuses_starts() {
                        return Err(InvokeError::ShuttingDown {
                            provider: self.spec.id.clone(),
                        });
                    }
                    self.begin_start(&mut inner, None)
                }
            }
        };
        start.await.map_err(|e| InvokeError::StartFailed {
            provider: self.spec.id.clone(),
            message: e.message,
            stderr_tail: e.stderr_tail,
            has_stderr: self.spec.mode != ProviderMode::Remote,
        })
    }

    /// Moves to INITIALIZING and spawns the start. Spawned, so a caller that gives up (timeout,
    /// disconnect) does not abandon a start that others are waiting for. `replacing` is a
    /// degraded connection to shut down first.
    fn begin_start(
        self: &Arc<Self>,
        inner: &mut Inner,
        replacing: Option<Arc<Connection>>,
    ) -> StartFuture {
        self.transition(inner, ProviderState::Initializing, None);
        let generation = inner.lifecycle.generation();
        let cancel = tokio_util::sync::CancellationToken::new();
        inner.start_cancel = Some(cancel.clone());
        let me = self.clone();
        let task = tokio::spawn(async move {
            if let Some(old) = replacing {
                old.shutdown(me.spec.shutdown_timeout).await;
            }
            me.run_start(generation, cancel).await
        });
        let fut: StartFuture = task
            .map(|joined| match joined {
                Ok(r) => r,
                Err(e) => Err(StartError {
                    message: format!("start task failed: {e}"),
                    stderr_tail: vec![],
                }),
            })
            .boxed()
            .shared();
        inner.starting = Some(fut.clone());
        fut
    }

    async fn run_start(
        self: Arc<Self>,
        generation: u64,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<Arc<Connection>, StartError> {
        let started = Instant::now();
        let span = crate::observe::trace::start_op("start", &self.spec.id);
        let weak = Arc::downgrade(&self);
        let on_tools_changed = Arc::new(move || {
            if let Some(p) = weak.upgrade() {
                tokio::spawn(async move { p.refresh_tools(generation).await });
            }
        });
        let result = backend::start(Launch {
            spec: &self.spec,
            instance: &self.shared.instance,
            on_tools_changed,
            downstream: self.shared.downstream.clone(),
            cancel,
        })
        .await;
        span.finish(result.as_ref().map(|_| ()).map_err(|e| e.message.clone()));
        let mut inner = self.lock();
        inner.starting = None;
        inner.start_cancel = None;
        match result {
            Ok(conn) => {
                let conn = Arc::new(conn);
                let tools = Arc::new(conn.tools.clone());
                inner.conn = Some(conn.clone());
                inner.tools = tools.clone();
                inner.pid = conn.pid;
                inner.protocol_version = Some(conn.protocol_version.clone());
                inner.last_error = None;
                self.transition(&mut inner, ProviderState::Ready, None);
                drop(inner);
                self.stats.started(started.elapsed());
                self.publish(Event::ProviderStarted {
                    provider: self.spec.id.clone(),
                    pid: conn.pid,
                    protocol_version: conn.protocol_version.clone(),
                    tools: tools.len(),
                    startup_ms: started.elapsed().as_millis() as u64,
                });
                self.warn_unconfirmed_predefined(&tools);
                conn.follow_log_level(self.shared.downstream.level());
                self.publish(Event::ToolsChanged {
                    provider: self.spec.id.clone(),
                });
                tokio::spawn(self.clone().watch_exit(conn.clone(), generation));
                tokio::spawn(self.clone().health_loop(conn.clone(), generation));
                Ok(conn)
            }
            Err(e) => {
                inner.last_error = Some(LastError {
                    message: e.message.clone(),
                    stderr_tail: e.stderr_tail.clone(),
                    at: Instant::now(),
                });
                self.transition(&mut inner, ProviderState::Dead, Some(e.message.clone()));
                self.stats.start_failed();
                Err(e)
            }
        }
    }

    fn warn_unconfirmed_predefined(&self, live: &[Tool]) {
        for t in self.predefined.iter() {
            if !live.iter().any(|l| l.name == t.name) {
                tracing::warn!(
                    provider = %self.spec.id,
                    "predefined tool `{}` is not offered by the running provider; calls to it will fail",
                    t.name
                );
            }
        }
    }

    fn is_current(inner: &Inner, conn: &Arc<Connection>, generation: u64) -> bool {
        inner.lifecycle.generation() == generation
            && inner.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn))
    }

    /// Marks the provider DEAD when its process exits on its own.
    async fn watch_exit(self: Arc<Self>, conn: Arc<Connection>, generation: u64) {
        let how = conn.exited().await;
        let mut inner = self.lock();
        if !Self::is_current(&inner, &conn, generation) {
            return; // stopped on purpose, or already replaced by a newer start
        }
        inner.conn = None;
        inner.pid = None;
        inner.tools = self.predefined.clone();
        let tail = conn.stderr.lines();
        let reason = match tail.last() {
            Some(last) => format!("{how}; last stderr: {last}"),
            None => how.clone(),
        };
        inner.last_error = Some(LastError {
            message: format!("provider `{}` {how}", self.spec.id),
            stderr_tail: tail,
            at: Instant::now(),
        });
        self.transition(&mut inner, ProviderState::Dead, Some(reason));
        drop(inner);
        self.stats.exited();
        self.publish(Event::ToolsChanged {
            provider: self.spec.id.clone(),
        });
    }

    /// Checks the provider every `health_check_interval_s` while this connection is current: an
    /// MCP ping, or tools/list for providers that do not implement ping.
    async fn health_loop(self: Arc<Self>, conn: Arc<Connection>, generation: u64) {
        let interval = self.spec.health_check_interval;
        if interval.is_zero() {
            return;
        }
        let timeout = interval.min(Duration::from_secs(10));
        let mut ping_supported = true;
        loop {
            // Ends with the process, so a stopped provider's connection is not kept alive.
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = conn.exited() => return,
            }
            if !Self::is_current(&self.lock(), &conn, generation) {
                return;
            }
            let span = crate::observe::trace::start_op("health_check", &self.spec.id);
            let ok = if ping_supported {
                match tokio::time::timeout(
                    timeout,
                    conn.peer
                        .send_request(ClientRequest::PingRequest(PingRequest::default())),
                )
                .await
                {
                    Ok(Ok(_)) => true,
                    Ok(Err(ServiceError::McpError(e))) if e.code == ErrorCode::METHOD_NOT_FOUND => {
                        ping_supported = false;
                        self.list_tools_ok(&conn, timeout).await
                    }
                    _ => false,
                }
            } else {
                self.list_tools_ok(&conn, timeout).await
            };
            span.finish(if ok {
                Ok(())
            } else {
                Err("no answer to ping or tools/list in time".to_string())
            });
            self.record_outcome(ok, "health check");
        }
    }

    async fn list_tools_ok(&self, conn: &Connection, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, conn.peer.list_tools(None)).await,
            Ok(Ok(_))
        )
    }

    /// Counts a call's or a check's outcome toward DEGRADED / READY.
    fn record_outcome(&self, success: bool, what: &str) {
        let mut inner = self.lock();
        if what == "health check" {
            inner.lifecycle.record_check(success, Instant::now());
            inner.last_check = Some((Instant::now(), success));
            self.stats.health_checked(success);
            self.publish(Event::HealthChecked {
                provider: self.spec.id.clone(),
                ok: success,
            });
        }
        if success {
            // Proven healthy: later failures start the restart count afresh.
            inner.recovery.attempts = 0;
        }
        if let Some(to) = inner
            .lifecycle
            .health_verdict(self.spec.max_consecutive_failures)
        {
            let reason = if to == ProviderState::Degraded {
                format!(
                    "{} consecutive failures (last: {what})",
                    inner.lifecycle.consecutive_failures()
                )
            } else {
                format!("{what} succeeded")
            };
            self.transition(&mut inner, to, Some(reason));
        }
    }

    async fn refresh_tools(self: Arc<Self>, generation: u64) {
        let conn = {
            let inner = self.lock();
            match &inner.conn {
                Some(c) if inner.lifecycle.generation() == generation => c.clone(),
                _ => return,
            }
        };
        match tokio::time::timeout(super::DEFAULT_CALL_TIMEOUT, conn.peer.list_all_tools()).await {
            Ok(Ok(tools)) => {
                let mut inner = self.lock();
                if !Self::is_current(&inner, &conn, generation) {
                    return;
                }
                inner.tools = Arc::new(tools);
                drop(inner);
                self.publish(Event::ToolsChanged {
                    provider: self.spec.id.clone(),
                });
            }
            Ok(Err(e)) => tracing::warn!(provider = %self.spec.id, "re-listing tools failed: {e}"),
            Err(_) => tracing::warn!(provider = %self.spec.id, "re-listing tools timed out"),
        }
    }

    /// Stops the provider if it runs. Returns whether there was anything to stop.
    pub async fn stop(&self, reason: &str) -> bool {
        // A start under way is aborted and awaited (INITIALIZING -> COLD is not an edge: it ends
        // DEAD, and is moved to COLD below).
        let starting = {
            let inner = self.lock();
            if let Some(cancel) = &inner.start_cancel {
                cancel.cancel();
            }
            inner.starting.clone()
        };
        if let Some(start) = starting {
            let _ = tokio::time::timeout(START_DEADLINE_CAP, start).await;
        }
        let conn = {
            let mut inner = self.lock();
            let state = inner.lifecycle.state();
            inner.recovery.scheduled = false;
            inner.recovery.next_attempt_at = None;
            if state == ProviderState::Dead {
                // Clears the failure so the provider reads as stopped; nothing is running.
                self.transition(&mut inner, ProviderState::Cold, Some(reason.to_string()));
                return false;
            }
            if !state.is_running() {
                return false;
            }
            let conn = inner.conn.take();
            inner.pid = None;
            inner.tools = self.predefined.clone();
            self.transition(&mut inner, ProviderState::Cold, Some(reason.to_string()));
            conn
        };
        self.publish(Event::ToolsChanged {
            provider: self.spec.id.clone(),
        });
        if let Some(conn) = conn {
            conn.shutdown(self.spec.shutdown_timeout).await;
        }
        self.stats.stopped(reason);
        self.publish(Event::ProviderStopped {
            provider: self.spec.id.clone(),
            reason: reason.to_string(),
        });
        true
    }

    pub(crate) fn is_idle(&self, now: Instant) -> bool {
        self.lock().lifecycle.is_idle(now, self.spec.idle_ttl)
    }

    /// Schedules the next automatic restart of a DEAD or DEGRADED provider, after an exponential
    /// backoff with jitter; gives up after `recovery.max_retries`.
    pub(crate) fn schedule_recovery(self: &Arc<Self>) {
        let policy = self.spec.recovery;
        let (attempt, delay) = {
            let mut inner = self.lock();
            let state = inner.lifecycle.state();
            if inner.recovery.scheduled
                || self.refuses_starts()
                || !matches!(state, ProviderState::Dead | ProviderState::Degraded)
            {
                return;
            }
            let attempt = inner.recovery.attempts + 1;
            if attempt > policy.max_retries {
                if inner.recovery.gave_up.is_none() {
                    let why = format!(
                        "gave up after {} restart attempt(s); last: {}",
                        policy.max_retries,
                        inner.lifecycle.reason().unwrap_or("unknown")
                    );
                    tracing::warn!(provider = %self.spec.id, "{why}; a call or registry_start tries again");
                    inner.recovery.gave_up = Some((Instant::now(), why.clone()));
                    self.publish(Event::RecoveryGaveUp {
                        provider: self.spec.id.clone(),
                        attempts: policy.max_retries,
                        reason: why,
                    });
                }
                return;
            }
            let delay = super::backoff_delay(&policy, attempt);
            inner.recovery.attempts = attempt;
            inner.recovery.scheduled = true;
            inner.recovery.next_attempt_at = Some(Instant::now() + delay);
            (attempt, delay)
        };
        self.publish(Event::RecoveryScheduled {
            provider: self.spec.id.clone(),
            attempt,
            delay_ms: delay.as_millis() as u64,
        });
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let start = {
                let mut inner = me.lock();
                if !inner.recovery.scheduled {
                    return; // stopped or restarted by someone else meanwhile
                }
                inner.recovery.scheduled = false;
                inner.recovery.next_attempt_at = None;
                if me.refuses_starts() || inner.starting.is_some() {
                    return;
                }
                match inner.lifecycle.state() {
                    ProviderState::Dead => me.begin_start(&mut inner, None),
                    ProviderState::Degraded => {
                        let old = inner.conn.take();
                        inner.tools = me.predefined.clone();
                        me.begin_start(&mut inner, old)
                    }
                    _ => return,
                }
            };
            tracing::info!(provider = %me.spec.id, "recovery attempt {attempt} after {delay:?}");
            if let Err(e) = start.await {
                tracing::warn!(provider = %me.spec.id, "recovery attempt {attempt} failed: {}", e.message);
            }
        });
    }

    /// The per-provider part of a call: admission (rate limit, breaker), start, tool lookup,
    /// schema validation, a concurrency slot, then the request itself. Every outcome is
    /// counted for metrics.
    pub async fn call(self: &Arc<Self>, call: ProviderCall) -> Result<CallToolResult, InvokeError> {
        let meter = self.stats.begin(&call.tool);
        let result = self.call_uncounted(call).await;
        self.stats.finish(meter, &result);
        result
    }

    async fn call_uncounted(
        self: &Arc<Self>,
        call: ProviderCall,
    ) -> Result<CallToolResult, InvokeError> {
        let id = &self.spec.id;
        // First: a hidden tool is refused on the config alone, so the provider is neither
        // started for it nor charged a rate-limit token or a breaker probe.
        if let Err(hidden) = self.check_exposed(&call.tool) {
            return Err(InvokeError::ToolNotExposed {
                provider: id.clone(),
                tool: call.tool.clone(),
                reason: hidden.to_string(),
            });
        }
        if let Some(rl) = &self.rate_limit
            && let Err(retry_after) = rl.check()
        {
            return Err(InvokeError::RateLimited {
                scope: format!("provider `{id}`"),
                retry_after,
            });
        }
        let (permit, change) = {
            let mut inner = self.lock();
            match inner.breaker.try_acquire(Instant::now()) {
                Ok(ok) => ok,
                Err(rejected) => {
                    drop(inner);
                    self.publish_breaker(rejected.change);
                    return Err(InvokeError::CircuitOpen {
                        scope: format!("provider `{id}`"),
                        retry_after: rejected.retry_at.saturating_duration_since(Instant::now()),
                    });
                }
            }
        };
        self.publish_breaker(change);
        let breaker = BreakerGuard {
            provider: self,
            permit: Some(permit),
        };
        let timeout_err = || InvokeError::Timeout {
            provider: id.clone(),
            tool: call.tool.clone(),
            limit: call.limit,
        };
        let conn = match tokio::time::timeout_at(call.deadline, self.ensure_started(true)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(e), // the guard records the failure
            Err(_) => return Err(timeout_err()),
        };
        let tools = self.tools();
        let tool = {
            match tools.iter().find(|t| t.name == call.tool) {
                Some(t) => t,
                None => {
                    breaker.finish(true); // the provider is up; the caller asked for the wrong tool
                    return Err(InvokeError::ToolNotFound {
                        provider: id.clone(),
                        tool: call.tool.clone(),
                        suggestions: closest(&call.tool, tools.iter().map(|t| t.name.as_ref())),
                    });
                }
            }
        };
        let arguments = call.arguments.unwrap_or_default();
        let args_value = serde_json::Value::Object(arguments);
        let (checked, warning) =
            self.shared
                .schemas
                .validate(id, &call.tool, &tool.input_schema, &args_value);
        if let Some(w) = warning {
            tracing::warn!(provider = %id, tool = %call.tool, "{w}");
        }
        if let Err(e) = checked {
            breaker.finish(true);
            return Err(InvokeError::InvalidArguments {
                provider: id.clone(),
                tool: call.tool.clone(),
                detail: e.to_string(),
                violations: e.to_json(),
            });
        }
        let serde_json::Value::Object(arguments) = args_value else {
            unreachable!("built from an object above")
        };
        let group = call.group_validators.as_deref();
        let (arguments, encoded) = if self.validators.is_empty() && group.is_none() {
            (arguments, None)
        } else {
            let context = CallContext {
                tool: &call.tool,
                session: call.session.as_deref(),
                correlation_id: &call.correlation_id,
                group,
            };
            // The call's deadline covers its validators too (one still compiling included).
            let checked = tokio::time::timeout_at(
                call.deadline,
                self.run_validators(&context, tool, arguments),
            )
            .await
            .unwrap_or_else(|_| {
                Err(InvokeError::Denied {
                    provider: id.clone(),
                    tool: call.tool.clone(),
                    plugin: group
                        .into_iter()
                        .flat_map(|g| &g.validators)
                        .chain(&self.validators)
                        .map(|v| v.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    reason: format!(
                        "the validators did not answer within the call's {:.1}s deadline (a \
                         plugin may still be loading); retry, or pass a larger `timeout`",
                        call.limit.as_secs_f64()
                    ),
                })
            });
            match checked {
                Ok(checked) => checked,
                Err(e) => {
                    breaker.finish(true); // refused before the provider saw it
                    return Err(e);
                }
            }
        };
        let _slot = match &self.slots {
            None => None,
            Some(slots) => match slots.acquire(call.deadline).await {
                Ok(p) => Some(p),
                Err(SlotError::TimedOut) => {
                    breaker.finish(true);
                    return Err(timeout_err());
                }
                Err(SlotError::QueueFull { running, queued }) => {
                    breaker.finish(true);
                    return Err(InvokeError::Overloaded {
                        provider: id.clone(),
                        running,
                        queued,
                    });
                }
            },
        };
        self.lock().lifecycle.begin_call(Instant::now());
        let mut in_flight = InFlight {
            provider: self,
            open: true,
        };
        let started = Instant::now();
        let requested = |arguments: &[u8]| {
            self.shared
                .bus
                .publish_call(|| Event::ToolInvocationRequested {
                    provider: id.clone(),
                    tool: call.tool.clone(),
                    correlation_id: call.correlation_id.clone(),
                    arguments: crate::events::ArgumentsJson::from_bytes(arguments),
                })
        };
        let outcome = tokio::time::timeout_at(
            call.deadline,
            conn.call_tool(
                &call.tool,
                CallArguments {
                    object: arguments,
                    encoded,
                    meta: call.meta,
                },
                call.progress,
                call.reply,
                call.client,
                requested,
                call.limit,
            ),
        )
        .await;
        let result = match outcome {
            Err(_) => Err(timeout_err()),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(ServiceError::McpError(e))) => Err(InvokeError::Protocol {
                provider: id.clone(),
                tool: call.tool.clone(),
                code: e.code.0,
                message: e.message.to_string(),
            }),
            Ok(Err(e)) => Err(InvokeError::ProviderFailed {
                provider: id.clone(),
                tool: call.tool.clone(),
                detail: e.to_string(),
            }),
        };
        let failed = result
            .as_ref()
            .err()
            .is_some_and(InvokeError::is_provider_failure);
        if result.is_ok() {
            self.record_latency(started.elapsed());
        }
        in_flight.open = false;
        self.lock().lifecycle.end_call(Instant::now(), failed);
        self.record_outcome(!failed, "call");
        breaker.finish(!failed);
        let duration_ms = started.elapsed().as_millis() as u64;
        self.shared.bus.publish_call(|| match &result {
            Ok(r) => Event::ToolInvocationCompleted {
                provider: id.clone(),
                tool: call.tool.clone(),
                correlation_id: call.correlation_id.clone(),
                duration_ms,
                is_error: r.is_error.unwrap_or(false),
            },
            Err(e) => Event::ToolInvocationFailed {
                provider: id.clone(),
                tool: call.tool.clone(),
                correlation_id: call.correlation_id.clone(),
                duration_ms,
                error: e.to_string(),
            },
        });
        result
    }
}
