//! Domain events and the in-process bus they travel on.
//!
//! The call path only publishes; logging, metrics, the audit trail and the gateway's
//! `list_changed` notifications subscribe. Publishing never blocks: the bus is a bounded
//! broadcast channel, and a subscriber that falls behind loses the oldest events (and is told how
//! many) instead of slowing a call down.

pub mod store;

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::provider::ProviderState;

/// Something that happened to a provider or a call.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    StateChanged {
        provider: String,
        from: ProviderState,
        to: ProviderState,
        reason: Option<String>,
    },
    ProviderStarted {
        provider: String,
        pid: Option<u32>,
        protocol_version: String,
        tools: usize,
        startup_ms: u64,
    },
    ProviderStopped {
        provider: String,
        reason: String,
    },
    /// The set of tools a provider offers changed (started, stopped, or it said so itself).
    ToolsChanged {
        provider: String,
    },
    /// A circuit breaker changed state; `scope` is a provider or group id.
    BreakerChanged {
        scope: String,
        from: String,
        to: String,
    },
    RecoveryScheduled {
        provider: String,
        attempt: u32,
        delay_ms: u64,
    },
    RecoveryGaveUp {
        provider: String,
        attempts: u32,
        reason: String,
    },
    /// A periodic health check of a running provider finished.
    HealthChecked {
        provider: String,
        ok: bool,
    },
    /// A group member left or rejoined the rotation.
    MemberRotation {
        group: String,
        member: String,
        in_rotation: bool,
    },
    ToolInvocationRequested {
        provider: String,
        tool: String,
        correlation_id: String,
        /// The arguments as sent, for the audit trail's digest. Never serialised or logged
        /// with the event: values can be secrets.
        #[serde(skip)]
        arguments: Option<ArgumentsJson>,
    },
    ToolInvocationCompleted {
        provider: String,
        tool: String,
        correlation_id: String,
        duration_ms: u64,
        /// The tool's own `isError`; the provider itself worked.
        is_error: bool,
    },
    ToolInvocationFailed {
        provider: String,
        tool: String,
        correlation_id: String,
        duration_ms: u64,
        error: String,
    },
    /// A validator plugin refused a call before the provider saw it.
    ToolInvocationDenied {
        provider: String,
        tool: String,
        correlation_id: String,
        plugin: String,
        reason: String,
    },
    /// A plugin was loaded; `version` > 1 is a hot swap of a changed file.
    PluginLoaded {
        plugin: String,
        kind: String,
        version: u64,
    },
    /// A plugin did not load; `in_service` is the version that stays, if any.
    PluginLoadFailed {
        plugin: String,
        error: String,
        in_service: Option<u64>,
    },
    /// The hangar read its config and is about to serve.
    ConfigLoaded {
        path: String,
        providers: usize,
        plugins: usize,
        warnings: usize,
    },
    /// The hangar stopped serving (its providers are stopped).
    HangarStopped {
        reason: String,
    },
    /// The event store lost `count` events (it fell behind, or a write failed); written by the
    /// store itself once it has caught up.
    EventsDropped {
        count: u64,
    },
    /// Discovery added a provider to the registry.
    ProviderRegistered {
        provider: String,
        source: String,
    },
    /// A discovered provider's spec changed: the old one drains and stops, the new one serves.
    ProviderUpdated {
        provider: String,
        source: String,
        fingerprint: String,
    },
    /// Discovery took a provider out of the registry (it drains, then stops).
    ProviderDeregistered {
        provider: String,
        source: String,
        reason: String,
    },
    /// A discovered provider joined a group (the config's, or one made for it).
    GroupMemberJoined {
        group: String,
        member: String,
        source: String,
        weight: u32,
    },
    /// A discovered member left its group (it was removed, or now names another group); it
    /// drains and stops like any removed provider. Config members never leave.
    GroupMemberLeft {
        group: String,
        member: String,
        reason: String,
    },
    /// Discovery made a group no config defines, for the first member that names it.
    GroupCreated {
        group: String,
        source: String,
    },
    /// A group discovery made is gone with its last member.
    GroupRemoved {
        group: String,
        reason: String,
    },
    /// A discovered provider is held out of the registry until an operator approves it.
    ProviderQuarantined {
        provider: String,
        source: String,
        reason: String,
        detail: String,
    },
}

/// A call's arguments as JSON text. Cheap to clone; `Debug` shows only the length, so a
/// debug log of the event never shows a value.
#[derive(Clone)]
pub struct ArgumentsJson(pub Arc<str>);

impl ArgumentsJson {
    /// The text of `bytes`, when it is UTF-8 (arguments the hangar encoded always are).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        std::str::from_utf8(bytes).ok().map(|s| Self(Arc::from(s)))
    }
}

impl fmt::Debug for ArgumentsJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes of arguments>", self.0.len())
    }
}

/// An event with the wall-clock time it was published.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// The process-wide event bus. Cheap to clone.
///
/// Two channels: lifecycle events (states, starts, tools, breakers, recovery), which the gateway
/// and recovery steer by, and per-call events, which only observers want. Keeping them apart
/// means a tool call wakes no task that has nothing to do with it.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Envelope>,
    calls: broadcast::Sender<Envelope>,
}

/// How many events a slow subscriber may fall behind before it starts losing the oldest ones.
const CAPACITY: usize = 4096;

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        let (calls, _) = broadcast::channel(CAPACITY);
        Self { tx, calls }
    }

    /// Publishes an event. Never blocks and never fails: with no subscriber it is dropped.
    pub fn publish(&self, event: Event) {
        let channel = if event.is_call() {
            &self.calls
        } else {
            &self.tx
        };
        if channel.receiver_count() == 0 {
            return; // nobody listens: skip the clock and the envelope
        }
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let _ = channel.send(Envelope { at_ms, event });
    }

    /// Publishes the per-call event `make` builds, building it only if someone listens: a call
    /// nobody observes copies no ids into an event.
    pub fn publish_call(&self, make: impl FnOnce() -> Event) {
        if self.calls.receiver_count() == 0 {
            return;
        }
        let event = make();
        debug_assert!(event.is_call(), "publish_call takes per-call events only");
        self.publish(event);
    }

    /// Lifecycle events: states, starts and stops, tools, breakers, recovery, rotation, health.
    pub fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.tx.subscribe()
    }

    /// Per-call events: requested, completed, failed.
    pub fn subscribe_calls(&self) -> broadcast::Receiver<Envelope> {
        self.calls.subscribe()
    }
}

impl Event {
    /// Whether this is a per-call event (published on the calls channel).
    pub fn is_call(&self) -> bool {
        matches!(
            self,
            Event::ToolInvocationRequested { .. }
                | Event::ToolInvocationCompleted { .. }
                | Event::ToolInvocationFailed { .. }
                | Event::ToolInvocationDenied { .. }
        )
    }
}

/// Writes every event to the log at debug level (state changes at info), so an operator sees the
/// lifecycle in the hangar's stderr without any exporter configured. Per-call events are
/// followed only when debug logging is on.
pub fn spawn_log_subscriber(bus: &EventBus) -> tokio::task::JoinHandle<()> {
    if tracing::enabled!(tracing::Level::DEBUG) {
        tokio::spawn(log_events(bus.subscribe_calls()));
    }
    tokio::spawn(log_events(bus.subscribe()))
}

async fn log_events(mut rx: broadcast::Receiver<Envelope>) {
    loop {
        match rx.recv().await {
            Ok(env) => match &env.event {
                Event::StateChanged {
                    provider,
                    from,
                    to,
                    reason,
                } => tracing::info!(
                    provider = %provider,
                    "state {from} -> {to}{}",
                    reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                ),
                other => tracing::debug!(event = ?other, "event"),
            },
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("event log subscriber fell behind; {n} events not logged")
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}
