//! The live set of providers: start (single-flight), stop, invoke, idle collection, shutdown.
//!
//! Architecture invariant: no lock is held across an `.await`. A provider's mutable state sits
//! behind one `std::sync::Mutex`; callers copy what they need (the peer is a cheap clone) and
//! await outside it. Concurrent first calls share one start future instead of waiting on a lock.

mod error;

pub use error::{InvokeError, closest};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use indexmap::IndexMap;
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject, Tool};
use rmcp::service::ServiceError;

use crate::backend::{self, Connection, StartError, subprocess::SpawnSpec};
use crate::config::{Config, ProviderSpec};
use crate::events::{Event, EventBus};
use crate::provider::{Lifecycle, ProviderState, Transition};

/// Default deadline of a tool call when neither the caller nor the provider's config set one.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

type StartFuture = Shared<BoxFuture<'static, Result<Arc<Connection>, StartError>>>;

/// One configured provider and its live state.
pub struct Provider {
    spec: ProviderSpec,
    predefined: Arc<Vec<Tool>>,
    bus: EventBus,
    inner: Mutex<Inner>,
}

struct Inner {
    lifecycle: Lifecycle,
    conn: Option<Arc<Connection>>,
    /// What the provider offers now: the live list while running, the predefined one otherwise.
    tools: Arc<Vec<Tool>>,
    starting: Option<StartFuture>,
    last_error: Option<LastError>,
    pid: Option<u32>,
    protocol_version: Option<String>,
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
    pub last_error: Option<LastError>,
    pub pid: Option<u32>,
    pub protocol_version: Option<String>,
}

impl Provider {
    fn new(spec: ProviderSpec, bus: EventBus) -> Self {
        let predefined: Arc<Vec<Tool>> = Arc::new(
            spec.tools
                .iter()
                .map(|t| {
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
                })
                .collect(),
        );
        Self {
            inner: Mutex::new(Inner {
                lifecycle: Lifecycle::new(Instant::now()),
                conn: None,
                tools: predefined.clone(),
                starting: None,
                last_error: None,
                pid: None,
                protocol_version: None,
            }),
            spec,
            predefined,
            bus,
        }
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    pub fn spec(&self) -> &ProviderSpec {
        &self.spec
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> ProviderState {
        self.lock().lifecycle.state()
    }

    /// The tools offered now (predefined before start, live once ready).
    pub fn tools(&self) -> Arc<Vec<Tool>> {
        self.lock().tools.clone()
    }

    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let lc = &inner.lifecycle;
        Snapshot {
            id: self.spec.id.clone(),
            state: lc.state(),
            reason: lc.reason().map(str::to_string),
            since: lc.since(),
            tools: inner.tools.clone(),
            tools_predefined: inner.conn.is_none(),
            in_flight: lc.in_flight(),
            last_used: lc.last_used(),
            started_at: lc.started_at(),
            total_invocations: lc.total_invocations(),
            total_failures: lc.total_failures(),
            consecutive_failures: lc.consecutive_failures(),
            last_error: inner.last_error.clone(),
            pid: inner.pid,
            protocol_version: inner.protocol_version.clone(),
        }
    }

    /// Applies a transition and publishes it. Must be called with the lock held (it takes the
    /// guard), so that checking the state and changing it are one step.
    fn transition(
        &self,
        inner: &mut Inner,
        to: ProviderState,
        reason: Option<String>,
    ) -> Option<Transition> {
        match inner.lifecycle.transition(to, reason, Instant::now()) {
            Ok(t) => {
                self.bus.publish(Event::StateChanged {
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

    /// Returns a connection to a running provider, starting it if needed. Concurrent callers
    /// share one start.
    pub async fn ensure_started(
        self: &Arc<Self>,
        shutting_down: bool,
    ) -> Result<Arc<Connection>, InvokeError> {
        let start = {
            let mut inner = self.lock();
            if let Some(conn) = &inner.conn
                && inner.lifecycle.state().is_running()
            {
                return Ok(conn.clone());
            }
            match &inner.starting {
                Some(f) => f.clone(),
                None => {
                    if shutting_down {
                        return Err(InvokeError::ShuttingDown {
                            provider: self.spec.id.clone(),
                        });
                    }
                    self.transition(&mut inner, ProviderState::Initializing, None);
                    let generation = inner.lifecycle.generation();
                    let me = self.clone();
                    // Spawned, so a caller that gives up (timeout, disconnect) does not abandon a
                    // start that others are waiting for.
                    let task = tokio::spawn(async move { me.run_start(generation).await });
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
            }
        };
        start.await.map_err(|e| InvokeError::StartFailed {
            provider: self.spec.id.clone(),
            message: e.message,
            stderr_tail: e.stderr_tail,
        })
    }

    async fn run_start(self: Arc<Self>, generation: u64) -> Result<Arc<Connection>, StartError> {
        let spawn = SpawnSpec {
            provider: self.spec.id.clone(),
            argv: self.spec.argv(),
            env: self.spec.env_pairs(),
            cwd: self.spec.cwd.clone(),
        };
        let started = Instant::now();
        let weak = Arc::downgrade(&self);
        let on_tools_changed = Arc::new(move || {
            if let Some(p) = weak.upgrade() {
                tokio::spawn(async move { p.refresh_tools(generation).await });
            }
        });
        let result = backend::subprocess::start(spawn, on_tools_changed).await;
        let mut inner = self.lock();
        inner.starting = None;
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
                self.bus.publish(Event::ProviderStarted {
                    provider: self.spec.id.clone(),
                    pid: conn.pid,
                    protocol_version: conn.protocol_version.clone(),
                    tools: tools.len(),
                    startup_ms: started.elapsed().as_millis() as u64,
                });
                self.warn_unconfirmed_predefined(&tools);
                self.bus.publish(Event::ToolsChanged {
                    provider: self.spec.id.clone(),
                });
                tokio::spawn(self.clone().watch_exit(conn.clone(), generation));
                Ok(conn)
            }
            Err(e) => {
                inner.last_error = Some(LastError {
                    message: e.message.clone(),
                    stderr_tail: e.stderr_tail.clone(),
                    at: Instant::now(),
                });
                self.transition(&mut inner, ProviderState::Dead, Some(e.message.clone()));
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

    /// Marks the provider DEAD when its process exits on its own.
    async fn watch_exit(self: Arc<Self>, conn: Arc<Connection>, generation: u64) {
        let how = conn.exited().await;
        let mut inner = self.lock();
        let ours = inner.lifecycle.generation() == generation
            && inner.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn));
        if !ours {
            return; // stopped on purpose, or already replaced by a newer start
        }
        inner.conn = None;
        inner.pid = None;
        inner.tools = self.predefined.clone();
        let tail = conn.stderr.lines();
        let reason = if tail.is_empty() {
            how.clone()
        } else {
            format!(
                "{how}; last stderr: {}",
                tail.last().cloned().unwrap_or_default()
            )
        };
        inner.last_error = Some(LastError {
            message: format!("provider `{}` {how}", self.spec.id),
            stderr_tail: tail,
            at: Instant::now(),
        });
        self.transition(&mut inner, ProviderState::Dead, Some(reason));
        drop(inner);
        self.bus.publish(Event::ToolsChanged {
            provider: self.spec.id.clone(),
        });
    }

    async fn refresh_tools(self: Arc<Self>, generation: u64) {
        let conn = {
            let inner = self.lock();
            match &inner.conn {
                Some(c) if inner.lifecycle.generation() == generation => c.clone(),
                _ => return,
            }
        };
        match tokio::time::timeout(DEFAULT_CALL_TIMEOUT, conn.peer.list_all_tools()).await {
            Ok(Ok(tools)) => {
                let mut inner = self.lock();
                if inner.lifecycle.generation() != generation || inner.conn.is_none() {
                    return;
                }
                inner.tools = Arc::new(tools);
                drop(inner);
                self.bus.publish(Event::ToolsChanged {
                    provider: self.spec.id.clone(),
                });
            }
            Ok(Err(e)) => tracing::warn!(provider = %self.spec.id, "re-listing tools failed: {e}"),
            Err(_) => tracing::warn!(provider = %self.spec.id, "re-listing tools timed out"),
        }
    }

    /// Stops the provider if it runs. Returns whether there was anything to stop.
    pub async fn stop(&self, reason: &str) -> bool {
        // A start under way is let finish (INITIALIZING -> COLD is not an edge), then stopped.
        let starting = self.lock().starting.clone();
        if let Some(start) = starting {
            let _ = tokio::time::timeout(backend::START_TIMEOUT, start).await;
        }
        let conn = {
            let mut inner = self.lock();
            let state = inner.lifecycle.state();
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
        self.bus.publish(Event::ToolsChanged {
            provider: self.spec.id.clone(),
        });
        if let Some(conn) = conn {
            conn.shutdown(self.spec.shutdown_timeout).await;
        }
        self.bus.publish(Event::ProviderStopped {
            provider: self.spec.id.clone(),
            reason: reason.to_string(),
        });
        true
    }

    fn stop_if_idle(&self, now: Instant) -> bool {
        self.lock().lifecycle.is_idle(now, self.spec.idle_ttl)
    }
}

/// All configured providers.
pub struct Registry {
    providers: IndexMap<String, Arc<Provider>>,
    bus: EventBus,
    shutting_down: AtomicBool,
    next_correlation: AtomicU64,
}

/// Arguments of one tool call.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub provider: String,
    pub tool: String,
    pub arguments: Option<JsonObject>,
    pub timeout: Option<Duration>,
}

impl Registry {
    pub fn new(config: &Config, bus: EventBus) -> Arc<Self> {
        let providers = config
            .providers
            .iter()
            .map(|(id, spec)| {
                (
                    id.clone(),
                    Arc::new(Provider::new(spec.clone(), bus.clone())),
                )
            })
            .collect();
        Arc::new(Self {
            providers,
            bus,
            shutting_down: AtomicBool::new(false),
            next_correlation: AtomicU64::new(1),
        })
    }

    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers.values()
    }

    pub fn get(&self, id: &str) -> Result<&Arc<Provider>, InvokeError> {
        self.providers
            .get(id)
            .ok_or_else(|| InvokeError::ProviderNotFound {
                provider: id.to_string(),
                suggestions: closest(id, self.providers.keys().map(String::as_str)),
            })
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    pub async fn start(&self, id: &str) -> Result<Arc<Connection>, InvokeError> {
        self.get(id)?.ensure_started(self.is_shutting_down()).await
    }

    pub async fn stop(&self, id: &str, reason: &str) -> Result<bool, InvokeError> {
        Ok(self.get(id)?.stop(reason).await)
    }

    fn correlation_id(&self) -> String {
        let n = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-{n}", std::process::id())
    }

    /// Calls a tool, starting the provider first if needed. The whole call, start included, is
    /// bounded by the timeout; a start that outlives it goes on for the next caller.
    pub async fn invoke(&self, call: Invocation) -> Result<CallToolResult, InvokeError> {
        let provider = self.get(&call.provider)?.clone();
        let limit = call
            .timeout
            .or(provider.spec.call_timeout)
            .unwrap_or(DEFAULT_CALL_TIMEOUT);
        let deadline = tokio::time::Instant::now() + limit;
        let timeout_err = || InvokeError::Timeout {
            provider: call.provider.clone(),
            tool: call.tool.clone(),
            limit,
        };
        let conn =
            tokio::time::timeout_at(deadline, provider.ensure_started(self.is_shutting_down()))
                .await
                .map_err(|_| timeout_err())??;
        {
            let tools = provider.tools();
            if !tools.iter().any(|t| t.name == call.tool) {
                return Err(InvokeError::ToolNotFound {
                    provider: call.provider.clone(),
                    tool: call.tool.clone(),
                    suggestions: closest(&call.tool, tools.iter().map(|t| t.name.as_ref())),
                });
            }
        }
        let correlation_id = self.correlation_id();
        self.bus.publish(Event::ToolInvocationRequested {
            provider: call.provider.clone(),
            tool: call.tool.clone(),
            correlation_id: correlation_id.clone(),
        });
        provider.lock().lifecycle.begin_call(Instant::now());
        let started = Instant::now();
        let mut params = CallToolRequestParams::new(call.tool.clone());
        params.arguments = call.arguments;
        // Dropping the request future on timeout makes rmcp send notifications/cancelled.
        let outcome = tokio::time::timeout_at(deadline, conn.peer.call_tool(params)).await;
        let result = match outcome {
            Err(_) => Err(timeout_err()),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(ServiceError::McpError(e))) => Err(InvokeError::Protocol {
                provider: call.provider.clone(),
                tool: call.tool.clone(),
                code: e.code.0,
                message: e.message.to_string(),
            }),
            Ok(Err(e)) => Err(InvokeError::ProviderFailed {
                provider: call.provider.clone(),
                tool: call.tool.clone(),
                detail: e.to_string(),
            }),
        };
        let failed = result
            .as_ref()
            .err()
            .is_some_and(InvokeError::is_provider_failure);
        provider.lock().lifecycle.end_call(Instant::now(), failed);
        let duration_ms = started.elapsed().as_millis() as u64;
        self.bus.publish(match &result {
            Ok(r) => Event::ToolInvocationCompleted {
                provider: call.provider.clone(),
                tool: call.tool.clone(),
                correlation_id,
                duration_ms,
                is_error: r.is_error.unwrap_or(false),
            },
            Err(e) => Event::ToolInvocationFailed {
                provider: call.provider.clone(),
                tool: call.tool.clone(),
                correlation_id,
                duration_ms,
                error: e.to_string(),
            },
        });
        result
    }

    /// Stops providers unused for their `idle_ttl_s`. Checks every second, so a provider is
    /// stopped within about a second of its TTL.
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
                    if p.stop_if_idle(now) {
                        let p = p.clone();
                        tokio::spawn(async move {
                            tracing::info!(provider = %p.id(), "idle for {:?}; stopping", p.spec.idle_ttl);
                            p.stop("idle").await;
                        });
                    }
                }
            }
        })
    }

    /// Stops every provider (concurrently) and refuses new starts. Afterwards no process the
    /// hangar started is left running.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        let stops = self
            .providers
            .values()
            .map(|p| async move { p.stop("hangar shutdown").await });
        futures::future::join_all(stops).await;
        let left = backend::kill_all_process_groups();
        if left > 0 {
            tracing::warn!("killed {left} leftover provider process group(s) at shutdown");
        }
    }
}
