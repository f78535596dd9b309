//! The `registry_*` management tools, with the original's names and argument names.
//!
//! Results are JSON text plus the same value as `structuredContent`; failures are tool errors
//! (`isError: true`) whose text says what failed and what to do, so an agent can read it.
//!
//! API boundary: every field the original mcp-hangar (0.1.x) put in a result is present under
//! its name and with its meaning — clients' scripts read them. Fields of our own come in
//! addition, never instead; a field is never renamed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use rmcp::ErrorData as McpError;
use rmcp::model::{
    CallToolResult, ContentBlock, JsonObject, ProgressNotificationParam, ProgressToken, Tool,
};
use rmcp::service::{Peer, RequestContext, RoleServer};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::call::{Caller, relay};
use super::session::Session;
use super::{Gateway, access};
use crate::backend::ProgressSink;
use crate::group::Group;
use crate::group::rotation::GroupState;
use crate::plugin::{PluginErrorKind, PluginStatus};
use crate::provider::ProviderState;
use crate::provider::breaker::BreakerState;
use crate::registry::{Invocation, InvokeError, Provider, Snapshot, Target, closest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagementTool {
    List,
    Start,
    Stop,
    Invoke,
    Tools,
    Details,
    Status,
    Warm,
    Health,
    InvokeEx,
    InvokeStream,
    GroupList,
    GroupRebalance,
    Plugins,
    Discovery(super::discovery_tools::DiscoveryTool),
    Metrics,
}

/// Longest `timeout` a caller may ask for.
const MAX_TIMEOUT_S: f64 = 3600.0;

fn schema(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

fn provider_arg() -> Value {
    json!({"type": "object", "properties": {"provider": {"type": "string", "description": "Provider id"}}, "required": ["provider"], "additionalProperties": false})
}

/// The arguments every invoke variant takes, plus `extra` properties.
fn invoke_schema(extra: Value) -> Value {
    let mut properties = json!({
        "provider": {"type": "string", "description": "Provider or group id"},
        "tool": {"type": "string", "description": "Tool name as the provider calls it"},
        "arguments": {"type": "object", "description": "Tool arguments"},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_S, "description": "Seconds before the call is cancelled (default: the provider's call_timeout_s, else 30)"}
    });
    if let (Some(p), Value::Object(extra)) = (properties.as_object_mut(), extra) {
        p.extend(extra);
    }
    json!({"type": "object", "properties": properties, "required": ["provider", "tool"], "additionalProperties": false})
}

/// The management tools and which handler each one is.
pub fn tools() -> Vec<(Tool, ManagementTool)> {
    use ManagementTool::*;
    let t = |name: &'static str, desc: &'static str, s: Value, which| {
        (Tool::new(name, desc, schema(s)), which)
    };
    vec![
        t(
            "registry_list",
            "List all providers with their state (cold, initializing, ready, degraded, dead), mode and tool count.",
            json!({"type": "object", "properties": {"state_filter": {"type": "string", "enum": ["cold", "initializing", "ready", "degraded", "dead"], "description": "Only providers in this state"}}, "additionalProperties": false}),
            List,
        ),
        t(
            "registry_start",
            "Start a provider now (otherwise it starts on its first call) and list its tools.",
            provider_arg(),
            Start,
        ),
        t(
            "registry_stop",
            "Stop a running provider gracefully. It starts again on its next call.",
            provider_arg(),
            Stop,
        ),
        t(
            "registry_invoke",
            "Call a tool of a provider or group, starting the provider if needed.",
            invoke_schema(json!({})),
            Invoke,
        ),
        t(
            "registry_tools",
            "Tool schemas of a provider: the predefined ones before it starts, the live ones once it runs.",
            provider_arg(),
            Tools,
        ),
        t(
            "registry_details",
            "Everything about one provider: state and why, process, protocol, tools, call statistics, last error.",
            provider_arg(),
            Details,
        ),
        t(
            "registry_status",
            "Overview of the hangar: providers by state, tools offered, calls in flight, uptime.",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
            Status,
        ),
        t(
            "registry_warm",
            "Start providers ahead of their first call. `providers` is a comma-separated list of ids; all providers when omitted.",
            json!({"type": "object", "properties": {"providers": {"type": "string", "description": "Comma-separated provider ids"}}, "additionalProperties": false}),
            Warm,
        ),
        t(
            "registry_health",
            "Health of the hangar and counts of providers by state.",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
            Health,
        ),
        t(
            "registry_invoke_ex",
            "Call a tool with retries: failures of the provider (start, crash, timeout) are retried with backoff, tool errors too when retry_on_error is set. The result carries _retry_metadata.",
            invoke_schema(json!({
                "max_retries": {"type": "integer", "minimum": 0, "maximum": 10, "description": "Retries after the first attempt (default 3)"},
                "retry_on_error": {"type": "boolean", "description": "Also retry when the tool answers isError (default false)"},
                "correlation_id": {"type": "string", "description": "Id to find this call in logs and events"}
            })),
            InvokeEx,
        ),
        t(
            "registry_invoke_stream",
            "Call a tool and receive notifications/progress for its stages (starting provider, invoking, done) and the provider's own progress. Pass a progressToken in _meta.",
            invoke_schema(json!({})),
            InvokeStream,
        ),
        t(
            "registry_group_list",
            "Groups with their strategy, state (inactive, partial, healthy, degraded) and members with rotation state.",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
            GroupList,
        ),
        t(
            "registry_group_rebalance",
            "Put every ready member of a group back into rotation and reset its strategy.",
            json!({"type": "object", "properties": {"group": {"type": "string", "description": "Group id"}}, "required": ["group"], "additionalProperties": false}),
            GroupRebalance,
        ),
        t(
            "registry_plugins",
            "WebAssembly plugins (validators, load-balancing policies, discovery sources): kind, file, version in service (hot swaps count up), last load error, and counters (calls, denials, rewrites, failures by kind such as trap and timeout, mean latency).",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
            Plugins,
        ),
        t(
            "registry_metrics",
            "Metrics of every provider, tool, group and plugin: calls by outcome, errors by kind, latency, starts, stops, health checks, breakers, rate-limit hits. `format: prometheus` returns the Prometheus text that /metrics serves.",
            json!({"type": "object", "properties": {"format": {"type": "string", "enum": ["json", "prometheus"], "description": "json (default): a summary per provider, tool and group; prometheus: the text format"}}, "additionalProperties": false}),
            Metrics,
        ),
    ]
    .into_iter()
    .chain(
        super::discovery_tools::tools()
            .into_iter()
            .map(|(tool, which)| (tool, Discovery(which))),
    )
    .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    state_filter: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderArgs {
    provider: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvokeArgs {
    provider: String,
    tool: String,
    arguments: Option<JsonObject>,
    timeout: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvokeExArgs {
    provider: String,
    tool: String,
    arguments: Option<JsonObject>,
    timeout: Option<f64>,
    max_retries: Option<u32>,
    retry_on_error: Option<bool>,
    correlation_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupArgs {
    group: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WarmArgs {
    providers: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum MetricsFormat {
    #[default]
    Json,
    Prometheus,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsArgs {
    #[serde(default)]
    format: MetricsFormat,
}

fn parse<T: DeserializeOwned>(tool: &str, args: Option<JsonObject>) -> Result<T, McpError> {
    serde_json::from_value(Value::Object(args.unwrap_or_default())).map_err(|e| {
        McpError::invalid_params(
            format!("invalid arguments for `{tool}`: {e}; see the tool's inputSchema"),
            None,
        )
    })
}

fn ok(value: Value) -> CallToolResult {
    CallToolResult::structured(value)
}

/// A management tool's failure: readable text plus the structured error.
pub fn error_result(e: &InvokeError) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(e.to_string())]);
    r.structured_content = Some(e.to_json());
    r
}

fn secs_since(t: Instant) -> f64 {
    (Instant::now().saturating_duration_since(t).as_secs_f64() * 10.0).round() / 10.0
}

fn unix_time(t: Instant) -> f64 {
    let ago = Instant::now().saturating_duration_since(t);
    SystemTime::now()
        .checked_sub(ago)
        .and_then(|s| s.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn tool_json(t: &Tool) -> Value {
    let mut v = json!({
        "name": t.name,
        "description": t.description,
        "inputSchema": t.input_schema,
    });
    if let Some(out) = &t.output_schema {
        v["outputSchema"] = json!(out);
    }
    v
}

/// A provider in `registry_list`.
fn summary(p: &Provider, s: &Snapshot) -> Value {
    json!({
        "provider": s.id,
        "state": s.state,
        "mode": p.spec().mode.as_str(),
        "alive": s.state.is_running(),
        "tools_count": s.tools.len(),
        "health_status": health_status(s.state, s.consecutive_failures),
        "tools_predefined": s.tools_predefined,
        "description": p.spec().description,
        "in_flight": s.in_flight,
    })
}

/// The original's health classification: a READY provider with failures in a row is already
/// degraded, before enough of them move it to DEGRADED.
fn health_status(state: ProviderState, consecutive_failures: u32) -> &'static str {
    match state {
        ProviderState::Ready if consecutive_failures == 0 => "healthy",
        ProviderState::Ready | ProviderState::Degraded => "degraded",
        ProviderState::Dead => "unhealthy",
        ProviderState::Cold | ProviderState::Initializing => "unknown",
    }
}

/// A status dashboard's mark for a provider state.
fn indicator(state: ProviderState) -> &'static str {
    match state {
        ProviderState::Ready => "✅",
        ProviderState::Cold => "⏸️",
        ProviderState::Initializing => "🔄",
        ProviderState::Degraded => "⚠️",
        ProviderState::Dead => "❌",
    }
}

fn group_indicator(state: GroupState) -> &'static str {
    match state {
        GroupState::Healthy => "✅",
        GroupState::Inactive => "⏸️",
        GroupState::Partial | GroupState::Degraded => "⚠️",
    }
}

/// `42s ago`, `5m ago`, `3h ago`.
fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        _ => format!("{}h ago", s / 3600),
    }
}

/// `2h 5m`, or `5m` under an hour.
fn uptime_text(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match (s / 3600, (s % 3600) / 60) {
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h {m}m"),
    }
}

/// Providers (group members included) by state, every state present.
fn by_state(snaps: &[Snapshot]) -> BTreeMap<&'static str, usize> {
    let mut counts: BTreeMap<&'static str, usize> =
        ProviderState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for s in snaps {
        *counts.entry(s.state.as_str()).or_default() += 1;
    }
    counts
}

/// `registry_health`: the original's `status`, `providers {total, by_state}`, `groups {total,
/// by_state, total_members, healthy_members}` and `security {rate_limiting}`.
fn health_json(gw: &Gateway) -> Value {
    let reg = &gw.registry;
    let snaps: Vec<Snapshot> = reg.providers().map(|p| p.snapshot()).collect();
    let counts = by_state(&snaps);
    let bad =
        counts.get("dead").copied().unwrap_or(0) + counts.get("degraded").copied().unwrap_or(0);
    let status = if reg.is_shutting_down() {
        "shutting_down"
    } else if bad == 0 {
        "healthy"
    } else {
        "degraded"
    };
    let mut group_states: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut total_members, mut healthy_members) = (0, 0);
    for g in reg.groups() {
        *group_states.entry(g.state().as_str()).or_default() += 1;
        total_members += g.members().len();
        healthy_members += g.members().iter().filter(|m| m.in_rotation()).count();
    }
    // One token bucket per limit configured: the hangar's, each provider's, each group's.
    let buckets = usize::from(reg.global_rate_limit().is_some())
        + reg
            .providers()
            .filter(|p| p.spec().rate_limit.is_some())
            .count()
        + reg
            .groups()
            .filter(|g| g.spec().rate_limit.is_some())
            .count();
    let global = reg.global_rate_limit().map(|r| {
        json!({
            "requests_per_second": r.requests_per_second,
            "burst_size": r.burst,
            "scope": "global",
        })
    });
    json!({
        "status": status,
        "providers": {"total": snaps.len(), "by_state": counts},
        "groups": {
            "total": reg.groups().count(),
            "by_state": group_states,
            "total_members": total_members,
            "healthy_members": healthy_members,
        },
        "security": {"rate_limiting": {"active_buckets": buckets, "config": global}},
    })
}

/// `registry_status`: the original's `providers` and `groups` lists with a mark per state, its
/// `summary` and `formatted` dashboard; then our own counters.
fn status_json(gw: &Gateway) -> Value {
    let reg = &gw.registry;
    let snaps: Vec<(Arc<Provider>, Snapshot)> = reg
        .providers()
        .map(|p| {
            let s = p.snapshot();
            (p, s)
        })
        .collect();
    let providers: Vec<Value> = snaps
        .iter()
        .map(|(p, s)| {
            let mut v = json!({
                "id": s.id,
                "indicator": indicator(s.state),
                "state": s.state,
                "mode": p.spec().mode.as_str(),
            });
            match s.state {
                ProviderState::Ready => v["last_used"] = json!(ago(secs_since(s.last_used))),
                ProviderState::Cold => v["note"] = json!("Will start on first request"),
                ProviderState::Degraded => {
                    v["consecutive_failures"] = json!(s.consecutive_failures)
                }
                ProviderState::Initializing | ProviderState::Dead => {}
            }
            v
        })
        .collect();
    let groups: Vec<Value> = reg
        .groups()
        .map(|g| {
            let state = g.state();
            json!({
                "id": g.id(),
                "indicator": group_indicator(state),
                "state": state.as_str(),
                "healthy_members": g.members().iter().filter(|m| m.in_rotation()).count(),
                "total_members": g.members().len(),
            })
        })
        .collect();
    let only_snaps: Vec<Snapshot> = snaps.iter().map(|(_, s)| s.clone()).collect();
    let healthy = only_snaps
        .iter()
        .filter(|s| s.state == ProviderState::Ready)
        .count();
    let uptime_s = secs_since(gw.started);
    let uptime = uptime_text(uptime_s);
    let formatted = dashboard(&providers, &groups, healthy, only_snaps.len(), &uptime);
    json!({
        "providers": providers,
        "groups": groups,
        "summary": {
            "healthy_providers": healthy,
            "total_providers": only_snaps.len(),
            "uptime": uptime,
            "uptime_seconds": uptime_s,
            "by_state": by_state(&only_snaps),
        },
        "formatted": formatted,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": uptime_s,
        "tools_offered": gw.catalog.load().tools.len(),
        "in_flight": only_snaps.iter().map(|s| s.in_flight).sum::<u32>(),
        "states": only_snaps.iter().map(|s| (s.id.clone(), json!(s.state))).collect::<serde_json::Map<_, _>>(),
    })
}

/// The status as plain text for a person: one line per provider and group, then the totals.
fn dashboard(
    providers: &[Value],
    groups: &[Value],
    healthy: usize,
    total: usize,
    uptime: &str,
) -> String {
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
    let mut out = format!("MCP Hangar {}\n", env!("CARGO_PKG_VERSION"));
    for p in providers {
        let extra = ["last_used", "note"]
            .iter()
            .map(|k| text(p, k))
            .find(|t| !t.is_empty())
            .unwrap_or_default();
        out.push_str(&format!(
            "  {} {:<20} {:<12} {}\n",
            text(p, "indicator"),
            text(p, "id"),
            text(p, "state"),
            extra
        ));
    }
    for g in groups {
        out.push_str(&format!(
            "  {} {:<20} {:<12} {}/{} members in rotation\n",
            text(g, "indicator"),
            text(g, "id"),
            text(g, "state"),
            g["healthy_members"],
            g["total_members"]
        ));
    }
    out.push_str(&format!("{healthy}/{total} providers ready · up {uptime}"));
    out
}

fn timeout_arg(t: Option<f64>) -> Result<Option<Duration>, McpError> {
    match t {
        None => Ok(None),
        Some(t) if t > 0.0 && t <= MAX_TIMEOUT_S => Ok(Some(Duration::from_secs_f64(t))),
        Some(t) => Err(McpError::invalid_params(
            format!("`timeout` must be between 0 (exclusive) and {MAX_TIMEOUT_S} seconds, got {t}"),
            None,
        )),
    }
}

/// A group as `registry_list`, `registry_details` and `registry_group_list` show it.
/// A group for `registry_list`, `registry_details` and `registry_group_list`; `discovered`:
/// made by discovery (no config group of this id).
fn group_json(g: &Group, discovered: bool) -> Value {
    let s = g.snapshot();
    let healthy_count = s.members.iter().filter(|m| m.in_rotation).count();
    let circuit_open = s.breaker == "open";
    json!({
        "group_id": s.id,
        "description": g.spec().description,
        "source": if discovered { "discovery" } else { "config" },
        "state": s.state.as_str(),
        "strategy": s.strategy,
        "min_healthy": s.min_healthy,
        "healthy_count": healthy_count,
        "total_members": s.members.len(),
        // Members start on a call, so an inactive group takes calls too: what refuses them is
        // an open breaker or no member left in the rotation.
        "is_available": !circuit_open && healthy_count > 0,
        "circuit_open": circuit_open,
        "circuit_breaker": s.breaker,
        "members": s.members.iter().map(|m| json!({
            "id": m.id,
            "state": m.state,
            "in_rotation": m.in_rotation,
            "weight": m.weight,
            "priority": m.priority,
            "consecutive_failures": m.consecutive_failures,
            "warming": m.warming,
            "in_flight": m.in_flight,
            "source": if m.discovered { "discovery" } else { "config" },
        })).collect::<Vec<_>>(),
    })
}

fn provider_details(p: &Provider) -> Value {
    let s = p.snapshot();
    let spec = p.spec();
    let answered = s.total_invocations.saturating_sub(u64::from(s.in_flight));
    let success_rate = if answered == 0 {
        1.0
    } else {
        1.0 - s.total_failures as f64 / answered as f64
    };
    let now = Instant::now();
    let breaker = match s.breaker {
        BreakerState::Open { until } => json!({
            "state": "open",
            "next_attempt_in_s": until.saturating_duration_since(now).as_secs_f64(),
        }),
        other => json!({ "state": other.as_str() }),
    };
    // A call now would be let through: the breaker is closed, half-open, or due to probe.
    let can_retry = !matches!(s.breaker, BreakerState::Open { until } if until > now);
    // Seconds since the last call (or the start); 0 for a provider never used, as the original.
    let idle_time = if s.started_at.is_some() || s.total_invocations > 0 {
        secs_since(s.last_used)
    } else {
        0.0
    };
    // The original's `meta` is what the last start left, cleared on stop.
    let meta = match s.started_at {
        Some(started_at) => json!({
            "init_result": {"protocolVersion": s.protocol_version},
            "tools_count": s.tools.len(),
            "started_at": unix_time(started_at),
        }),
        None => json!({}),
    };
    json!({
        "provider": s.id,
        "state": s.state,
        "mode": spec.mode.as_str(),
        "alive": s.state.is_running(),
        "tools": s.tools.iter().map(tool_json).collect::<Vec<_>>(),
        "health": {
            "consecutive_failures": s.consecutive_failures,
            "total_invocations": s.total_invocations,
            "total_failures": s.total_failures,
            "success_rate": success_rate,
            "can_retry": can_retry,
            "last_success_ago": s.last_success.map(secs_since),
            "last_failure_ago": s.last_failure.map(secs_since),
            "max_consecutive_failures": spec.max_consecutive_failures,
            "in_flight": s.in_flight,
            "queued": s.queued,
            "last_check": s.last_check.map(|(at, ok)| json!({"ok": ok, "seconds_ago": secs_since(at)})),
        },
        "idle_time": idle_time,
        "meta": meta,
        "state_reason": s.reason,
        "state_since_s": secs_since(s.since),
        "description": spec.description,
        "pid": s.pid,
        "location": s.location,
        "protocol_version": s.protocol_version,
        "command": spec.redacted_argv(),
        "tools_predefined": s.tools_predefined,
        "circuit_breaker": breaker,
        "recovery": {
            "attempts": s.recovery.attempts,
            "max_retries": spec.recovery.max_retries,
            "next_attempt_in_s": s.recovery.next_attempt_at.map(|t| t.saturating_duration_since(Instant::now()).as_secs_f64()),
            "gave_up": s.recovery.gave_up.as_ref().map(|(at, why)| json!({"reason": why, "since": unix_time(*at)})),
        },
        "idle_ttl_s": spec.idle_ttl.as_secs(),
        "last_error": s.last_error.as_ref().map(|e| json!({
            "message": e.message,
            "stderr_tail": e.stderr_tail,
            "at": unix_time(e.at),
        })),
    })
}

/// Most provider ids one `registry_warm` takes.
const MAX_WARM: usize = 1000;

/// Providers `registry_warm` starts at once.
const WARM_CONCURRENCY: usize = 8;

/// Progress messages that may wait for a slow client; beyond that, new ones are dropped
/// (progress is advisory; the call's answer still comes).
const PROGRESS_BUFFER: usize = 64;

/// Sends the caller `notifications/progress` under its progress token, numbering the stages.
/// One task sends them, so they arrive in the order they were reported.
#[derive(Clone)]
struct StageReporter {
    tx: tokio::sync::mpsc::Sender<String>,
}

impl StageReporter {
    fn new(peer: Peer<RoleServer>, token: ProgressToken) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(PROGRESS_BUFFER);
        tokio::spawn(async move {
            let mut step = 0.0;
            while let Some(message) = rx.recv().await {
                step += 1.0;
                let params =
                    ProgressNotificationParam::new(token.clone(), step).with_message(message);
                if peer.notify_progress(params).await.is_err() {
                    break;
                }
            }
        });
        Self { tx }
    }

    fn report(&self, message: String) {
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = self.tx.try_send(message) {
            tracing::debug!("progress dropped: the client is not reading them fast enough");
        }
    }

    fn sink(&self) -> ProgressSink {
        let me = self.clone();
        Arc::new(move |p: f64, total: Option<f64>, message: Option<String>| {
            let what = match total {
                Some(t) => format!("provider progress {p}/{t}"),
                None => format!("provider progress {p}"),
            };
            me.report(match message {
                Some(m) => format!("{what}: {m}"),
                None => what,
            })
        })
    }
}

/// The kind `registry_invoke_ex` gives a tool's own error result (`isError: true`).
const TOOL_ERROR_KIND: &str = "ToolError";

/// How the last attempt of `registry_invoke_ex` failed.
struct FinalError {
    kind: &'static str,
    /// Retrying could have helped (it was retryable, but the retries ran out).
    transient: bool,
    hints: Vec<String>,
}

/// What a caller can do about a failed call, one step per entry.
fn recovery_hints(e: &InvokeError) -> Vec<String> {
    let hints: &[&str] = match e {
        InvokeError::ProviderNotFound { .. } => &["check the provider id with registry_list"],
        InvokeError::ToolNotFound { .. } => &["check the tool name with registry_tools"],
        InvokeError::ToolNotExposed { .. } => &[
            "the config's `tools:` policy hides this tool: call another tool, or change the policy",
        ],
        InvokeError::StartFailed { .. } => &[
            "read the provider's stderr in the error details",
            "fix its command, then retry or call registry_start",
        ],
        InvokeError::Timeout { .. } => &[
            "retry with a larger `timeout`",
            "check the provider with registry_details",
        ],
        InvokeError::ProviderFailed { .. } => &[
            "retry: the provider is restarted on the next call",
            "read its last error with registry_details",
        ],
        InvokeError::Protocol { .. } => &["the provider refused the request: check the arguments"],
        InvokeError::ShuttingDown { .. } => &["the hangar is stopping: retry against a new one"],
        InvokeError::RateLimited { .. } => &["wait for `retry_after_s`, then retry"],
        InvokeError::CircuitOpen { .. } => &[
            "wait for `retry_after_s`, then retry",
            "check the provider with registry_details",
        ],
        InvokeError::Overloaded { .. } => &[
            "retry later",
            "raise `max_concurrency` or `max_queue` in the config",
        ],
        InvokeError::InvalidArguments { .. } => {
            &["fix the arguments named in the error; see the tool's inputSchema"]
        }
        InvokeError::NoHealthyMember { .. } => &[
            "check the members with registry_group_list",
            "registry_group_rebalance puts ready members back into rotation",
        ],
        InvokeError::Denied { .. } => &["a validator refused the call: change the arguments"],
        InvokeError::PolicyFailed { .. } => {
            &["check the group's policy plugin with registry_plugins"]
        }
    };
    hints.iter().map(|h| (*h).to_string()).collect()
}

/// Runs a call with retries; returns the final result (or error result) and the metadata.
async fn invoke_with_retries(
    gw: &Gateway,
    a: InvokeExArgs,
    session: Option<String>,
    meta: Option<JsonObject>,
    caller: &Caller<'_>,
) -> Result<CallToolResult, McpError> {
    let timeout = timeout_arg(a.timeout)?;
    let max_retries = a.max_retries.unwrap_or(3).min(10);
    let retry_on_error = a.retry_on_error.unwrap_or(false);
    let correlation_id = a
        .correlation_id
        .unwrap_or_else(|| gw.registry.correlation_id());
    let started = Instant::now();
    let mut attempts = 0u32;
    let mut reasons: Vec<String> = Vec::new();
    // The kind of each failed attempt, as the original lists them under `retries`.
    let mut kinds: Vec<&'static str> = Vec::new();
    let (mut result, final_error) = loop {
        attempts += 1;
        let call = Invocation {
            provider: a.provider.clone(),
            tool: a.tool.clone(),
            arguments: a.arguments.clone(),
            timeout,
            correlation_id: Some(correlation_id.clone()),
            session: session.clone(),
            meta: meta.clone(),
            ..Default::default()
        };
        let outcome = relay(call, caller, |call| gw.registry.invoke(call)).await;
        let (retryable, failure) = match &outcome {
            Ok(r) if r.is_error == Some(true) => (
                retry_on_error,
                Some((TOOL_ERROR_KIND, "tool returned isError".to_string())),
            ),
            Ok(_) => (false, None),
            Err(e) => (
                e.is_provider_failure() || e.allows_failover(),
                Some((e.kind(), e.to_string())),
            ),
        };
        if let Some((kind, message)) = &failure {
            kinds.push(kind);
            reasons.push(message.clone());
        }
        if !retryable || attempts > max_retries {
            let last = failure.map(|(kind, _)| FinalError {
                kind,
                transient: retryable,
                hints: match &outcome {
                    Ok(_) => vec![
                        "the tool itself reported the error: read its content, fix the arguments \
                         or set retry_on_error"
                            .to_string(),
                    ],
                    Err(e) => recovery_hints(e),
                },
            });
            break match outcome {
                Ok(r) => (gw.finish_result(r), last),
                Err(e) => (
                    error_result(&match &caller.principal {
                        Some(p) => access::visible_error(gw, p, &a.provider, e),
                        None => e,
                    }),
                    last,
                ),
            };
        }
        // Backoff between attempts; a rate limit or open breaker says how long to wait.
        let wait = match &outcome {
            Err(
                InvokeError::RateLimited { retry_after, .. }
                | InvokeError::CircuitOpen { retry_after, .. },
            ) => *retry_after,
            _ => Duration::from_millis(100 * (1u64 << (attempts - 1).min(5))),
        };
        tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
    };
    let mut meta = json!({
        "correlation_id": correlation_id,
        "attempts": attempts,
        "total_time_ms": started.elapsed().as_millis() as u64,
        "retries": kinds,
        "errors": reasons,
    });
    if let Some(last) = final_error {
        // "transient: ToolTimeoutError", "permanent: ToolNotFoundError": the original's form.
        meta["final_error_reason"] = json!(format!(
            "{}: {}",
            if last.transient {
                "transient"
            } else {
                "permanent"
            },
            last.kind
        ));
        meta["recovery_hints"] = json!(last.hints);
    }
    match &mut result.structured_content {
        Some(Value::Object(map)) => {
            map.insert("_retry_metadata".into(), meta);
        }
        Some(other) => {
            result.structured_content =
                Some(json!({"result": other.take(), "_retry_metadata": meta}));
        }
        None => result.structured_content = Some(json!({ "_retry_metadata": meta })),
    }
    Ok(result)
}

pub async fn call(
    gw: &Gateway,
    which: ManagementTool,
    name: &str,
    args: Option<JsonObject>,
    context: &RequestContext<RoleServer>,
    client: &Session,
    session: Option<String>,
) -> Result<CallToolResult, McpError> {
    let reg = &gw.registry;
    // The `registry_invoke*` tools reach a provider for this client like its own tools do: the
    // provider's sampling, elicitation, roots and log messages go to it.
    let caller = Caller {
        session: client,
        progress_token: context.meta.get_progress_token(),
        principal: access::principal(context),
    };
    Ok(match which {
        ManagementTool::List => {
            let a: ListArgs = parse(name, args)?;
            let filter = match a.state_filter.as_deref() {
                None | Some("") => None,
                Some(f) => Some(ProviderState::parse(f).ok_or_else(|| {
                    McpError::invalid_params(
                        format!("unknown state_filter `{f}`; use one of cold, initializing, ready, degraded, dead"),
                        None,
                    )
                })?),
            };
            let providers: Vec<Value> = reg
                .providers()
                .map(|p| {
                    let s = p.snapshot();
                    (p, s)
                })
                .filter(|(_, s)| filter.is_none_or(|f| s.state == f))
                .map(|(p, s)| {
                    let mut v = summary(&p, &s);
                    if let Some(g) = reg.groups().find(|g| g.has_member(p.id())) {
                        v["group"] = json!(g.id());
                    }
                    if let Some(o) = reg.members().origin(p.id()) {
                        v["source"] = json!(o.source);
                    }
                    v
                })
                .collect();
            let groups: Vec<Value> = reg
                .groups()
                .map(|g| group_json(&g, reg.members().is_discovered_group(g.id())))
                .collect();
            ok(json!({ "providers": providers, "groups": groups }))
        }
        ManagementTool::Start => {
            let a: ProviderArgs = parse(name, args)?;
            let sees = access::sees_tool(gw, caller.principal.as_deref(), &a.provider);
            match reg.target(&a.provider) {
                Err(e) => error_result(&e),
                Ok(Target::Group(g)) => match g.start_all().await {
                    Ok(()) => {
                        let mut v = group_json(&g, reg.members().is_discovered_group(g.id()));
                        v["group"] = json!(a.provider);
                        v["members_started"] = json!(
                            g.members()
                                .iter()
                                .filter(|m| m.provider.state().is_running())
                                .count()
                        );
                        ok(v)
                    }
                    Err(e) => error_result(&e),
                },
                Ok(Target::Provider(p)) => match p.ensure_started(true).await {
                    Ok(conn) => ok(json!({
                        "provider": a.provider,
                        "state": p.state(),
                        // What it offers, not all it lists: the `tools:` policy applies, and
                        // the caller's own tool list.
                        "tools": p.tools().iter().map(|t| t.name.to_string())
                            .filter(|t| sees(t)).collect::<Vec<_>>(),
                        "pid": conn.pid,
                        "location": conn.location,
                        "protocol_version": conn.protocol_version,
                    })),
                    Err(e) => error_result(&e),
                },
            }
        }
        ManagementTool::Stop => {
            let a: ProviderArgs = parse(name, args)?;
            match reg.target(&a.provider) {
                Err(e) => error_result(&e),
                Ok(Target::Group(g)) => {
                    let was_running = g.stop_all("stopped by registry_stop").await;
                    ok(json!({
                        "group": a.provider,
                        "state": g.state().as_str(),
                        "stopped": true,
                        "was_running": was_running,
                    }))
                }
                Ok(Target::Provider(p)) => {
                    let was_running = p.stop("stopped by registry_stop").await;
                    ok(json!({
                        "stopped": a.provider,
                        // The original's reason for an operator's stop.
                        "reason": "user_request",
                        "was_running": was_running,
                    }))
                }
            }
        }
        ManagementTool::Invoke => {
            let a: InvokeArgs = parse(name, args)?;
            let call = Invocation {
                provider: a.provider,
                tool: a.tool,
                arguments: a.arguments,
                timeout: timeout_arg(a.timeout)?,
                session,
                meta: super::client_meta(context.meta.0.0.clone()),
                ..Default::default()
            };
            gw.call(call, &caller).await
        }
        ManagementTool::InvokeEx => {
            let meta = super::client_meta(context.meta.0.0.clone());
            invoke_with_retries(gw, parse(name, args)?, session, meta, &caller).await?
        }
        ManagementTool::InvokeStream => {
            let a: InvokeArgs = parse(name, args)?;
            let reporter = context
                .meta
                .get_progress_token()
                .map(|token| StageReporter::new(context.peer.clone(), token));
            if let Some(r) = &reporter {
                let running = match reg.target(&a.provider) {
                    Ok(Target::Provider(p)) => p.state().is_running(),
                    Ok(Target::Group(g)) => {
                        g.members().iter().any(|m| m.provider.state().is_running())
                    }
                    Err(_) => true,
                };
                if !running {
                    r.report(format!("starting provider `{}`", a.provider));
                }
                r.report(format!("invoking `{}` on `{}`", a.tool, a.provider));
            }
            let call = Invocation {
                provider: a.provider,
                tool: a.tool,
                arguments: a.arguments,
                timeout: timeout_arg(a.timeout)?,
                progress: reporter.as_ref().map(StageReporter::sink),
                session,
                meta: super::client_meta(context.meta.0.0.clone()),
                ..Default::default()
            };
            // The stages and the provider's progress go out through the reporter.
            let caller = Caller {
                progress_token: None,
                ..caller
            };
            let result = gw.call(call, &caller).await;
            if let Some(r) = &reporter {
                r.report(if result.is_error == Some(true) {
                    "done (failed)".into()
                } else {
                    "done".into()
                });
            }
            result
        }
        ManagementTool::Tools => {
            let a: ProviderArgs = parse(name, args)?;
            let sees = access::sees_tool(gw, caller.principal.as_deref(), &a.provider);
            let target = match reg.target(&a.provider) {
                Ok(t) => t,
                Err(e) => return Ok(error_result(&e)),
            };
            let is_group = matches!(target, Target::Group(_));
            let (tools, state, predefined) = match target {
                Target::Group(g) => (g.tools(), json!(g.state().as_str()), false),
                Target::Provider(p) => {
                    // Like the original, a provider with nothing predefined is started to learn
                    // its tools; one with predefined tools answers from them without starting.
                    if p.tools().is_empty()
                        && !p.state().is_running()
                        && let Err(e) = p.ensure_started(true).await
                    {
                        return Ok(error_result(&e));
                    }
                    let s = p.snapshot();
                    (s.tools.as_ref().clone(), json!(s.state), s.tools_predefined)
                }
            };
            let mut v = json!({
                "provider": a.provider,
                "state": state,
                "predefined": predefined,
                "tools": tools.iter().filter(|t| sees(&t.name)).map(tool_json).collect::<Vec<_>>(),
            });
            if is_group {
                v["group"] = json!(true);
            }
            ok(v)
        }
        ManagementTool::Details => {
            let a: ProviderArgs = parse(name, args)?;
            match reg.target(&a.provider) {
                Err(e) => error_result(&e),
                Ok(Target::Group(g)) => {
                    ok(group_json(&g, reg.members().is_discovered_group(g.id())))
                }
                Ok(Target::Provider(p)) => {
                    let mut v = provider_details(&p);
                    if let Some(g) = reg.groups().find(|g| g.has_member(p.id())) {
                        v["group"] = json!(g.id());
                    }
                    if let Some(o) = reg.members().origin(p.id()) {
                        v["source"] = json!(o.source);
                        if let Some(m) = &o.membership {
                            v["group_weight"] = json!(m.weight);
                        }
                    }
                    ok(v)
                }
            }
        }
        ManagementTool::Status => {
            let _: NoArgs = parse(name, args)?;
            ok(status_json(gw))
        }
        ManagementTool::Warm => {
            let a: WarmArgs = parse(name, args)?;
            let ids: indexmap::IndexSet<String> = match a.providers.as_deref().map(str::trim) {
                // Every provider: as many as the registry holds, started a few at a time.
                None | Some("") => reg.providers().map(|p| p.id().to_string()).collect(),
                Some(list) => {
                    // Counted once deduplicated (a repeated id is one start), and refused as
                    // soon as one id too many is seen.
                    let mut ids = indexmap::IndexSet::new();
                    for id in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        if ids.len() == MAX_WARM && !ids.contains(id) {
                            return Err(McpError::invalid_params(
                                format!(
                                    "`registry_warm` takes at most {MAX_WARM} provider ids; warm \
                                 them in batches, or omit `providers` to warm every provider"
                                ),
                                None,
                            ));
                        }
                        ids.insert(id.to_string());
                    }
                    ids
                }
            };
            let starts = ids.into_iter().map(|id| async move {
                let was_running = reg
                    .get(&id)
                    .map(|p| p.state().is_running())
                    .unwrap_or(false);
                let started = reg.start(&id).await;
                (id, was_running, started)
            });
            let mut warmed = Vec::new();
            let mut already = Vec::new();
            let mut failed = Vec::new();
            // A few starts at a time: a hundred providers spawned at once would each start
            // slower than in turn, and could exhaust the machine's processes.
            let outcomes: Vec<_> = futures::stream::iter(starts)
                .buffered(WARM_CONCURRENCY)
                .collect()
                .await;
            for (id, was_running, r) in outcomes {
                match r {
                    Ok(_) if was_running => already.push(id),
                    Ok(_) => warmed.push(id),
                    Err(e) => failed.push(json!({"id": id, "error": e.to_string()})),
                }
            }
            let summary = format!(
                "Warmed {} providers, {} already warm, {} failed",
                warmed.len(),
                already.len(),
                failed.len()
            );
            ok(json!({
                "warmed": warmed,
                "already_warm": already,
                "failed": failed,
                "summary": summary,
            }))
        }
        ManagementTool::Health => {
            let _: NoArgs = parse(name, args)?;
            ok(health_json(gw))
        }
        ManagementTool::GroupList => {
            let _: NoArgs = parse(name, args)?;
            ok(
                json!({ "groups": reg.groups().map(|g| group_json(&g, reg.members().is_discovered_group(g.id()))).collect::<Vec<_>>() }),
            )
        }
        ManagementTool::GroupRebalance => {
            let a: GroupArgs = parse(name, args)?;
            match reg.group(&a.group) {
                None => error_result(&InvokeError::ProviderNotFound {
                    suggestions: closest(&a.group, reg.members().groups().map(|g| g.id())),
                    provider: a.group,
                }),
                Some(g) => {
                    let rejoined = g.rebalance();
                    let mut v = group_json(&g, reg.members().is_discovered_group(g.id()));
                    v["members_in_rotation"] = json!(
                        g.members()
                            .iter()
                            .filter(|m| m.in_rotation())
                            .map(|m| m.provider.id())
                            .collect::<Vec<_>>()
                    );
                    v["rejoined"] = json!(rejoined);
                    ok(v)
                }
            }
        }
        ManagementTool::Discovery(which) => {
            return super::discovery_tools::call(gw, which, name, args).await;
        }
        ManagementTool::Metrics => {
            let a: MetricsArgs = parse(name, args)?;
            match a.format {
                MetricsFormat::Json => ok(crate::observe::metrics::summary_json(reg)),
                MetricsFormat::Prometheus => {
                    ok(json!({ "metrics": crate::observe::metrics::render(reg) }))
                }
            }
        }
        ManagementTool::Plugins => {
            let _: NoArgs = parse(name, args)?;
            ok(
                json!({ "plugins": reg.plugins().slots().map(|p| plugin_json(&p.status())).collect::<Vec<_>>() }),
            )
        }
    })
}

fn plugin_json(p: &PluginStatus) -> Value {
    let s = &p.stats;
    let failures: serde_json::Map<String, Value> = s
        .failures
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(kind, n)| (kind.as_str().to_owned(), json!(n)))
        .collect();
    let mean_latency_us = s
        .total_latency
        .as_micros()
        .checked_div(u128::from(s.calls))
        .unwrap_or(0);
    json!({
        "name": p.name,
        "kind": p.kind.as_str(),
        "path": p.path,
        "on_error": p.on_error.as_str(),
        "loaded": p.version.is_some(),
        "version": p.version,
        "last_error": p.last_error,
        "stats": {
            "calls": s.calls,
            "denials": s.denials,
            "rewrites": s.rewrites,
            "failures": failures,
            "traps": s.failures_of(PluginErrorKind::Trap),
            "timeouts": s.failures_of(PluginErrorKind::Timeout),
            "failed_open": s.failed_open,
            "failed_closed": s.failed_closed,
            "mean_latency_us": mean_latency_us,
            "instances": s.instances,
            "reloads": s.reloads,
            "reload_failures": s.reload_failures,
        },
    })
}
