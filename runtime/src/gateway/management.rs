//! The `registry_*` management tools, with the original's names and argument names.
//!
//! Results are JSON text plus the same value as `structuredContent`; failures are tool errors
//! (`isError: true`) whose text says what failed and what to do, so an agent can read it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rmcp::ErrorData as McpError;
use rmcp::model::{
    CallToolResult, ContentBlock, JsonObject, ProgressNotificationParam, ProgressToken, Tool,
};
use rmcp::service::{Peer, RequestContext, RoleServer};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Gateway;
use crate::backend::ProgressSink;
use crate::group::Group;
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
    ]
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

fn summary(p: &Provider, s: &Snapshot) -> Value {
    json!({
        "provider_id": s.id,
        "state": s.state,
        "mode": p.spec().mode.as_str(),
        "description": p.spec().description,
        "is_alive": s.state.is_running(),
        "tools_count": s.tools.len(),
        "tools_predefined": s.tools_predefined,
        "in_flight": s.in_flight,
        "health_status": health_status(s.state),
    })
}

fn health_status(state: ProviderState) -> &'static str {
    match state {
        ProviderState::Ready => "healthy",
        ProviderState::Degraded => "degraded",
        ProviderState::Dead => "unhealthy",
        ProviderState::Cold | ProviderState::Initializing => "unknown",
    }
}

fn counts(gw: &Gateway) -> BTreeMap<&'static str, usize> {
    let mut counts: BTreeMap<&'static str, usize> =
        ProviderState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let mut total = 0;
    for p in gw.registry.providers() {
        *counts.entry(p.state().as_str()).or_default() += 1;
        total += 1;
    }
    counts.insert("total", total);
    counts
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

fn group_json(g: &Group) -> Value {
    let s = g.snapshot();
    json!({
        "group_id": s.id,
        "strategy": s.strategy,
        "state": s.state.as_str(),
        "min_healthy": s.min_healthy,
        "circuit_breaker": s.breaker,
        "members": s.members.iter().map(|m| json!({
            "provider_id": m.id,
            "state": m.state,
            "weight": m.weight,
            "priority": m.priority,
            "in_rotation": m.in_rotation,
            "warming": m.warming,
            "in_flight": m.in_flight,
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
    let breaker = match s.breaker {
        BreakerState::Open { until } => json!({
            "state": "open",
            "next_attempt_in_s": until.saturating_duration_since(Instant::now()).as_secs_f64(),
        }),
        other => json!({ "state": other.as_str() }),
    };
    json!({
        "provider_id": s.id,
        "state": s.state,
        "state_reason": s.reason,
        "state_since_s": secs_since(s.since),
        "mode": spec.mode.as_str(),
        "description": spec.description,
        "is_alive": s.state.is_running(),
        "pid": s.pid,
        "location": s.location,
        "protocol_version": s.protocol_version,
        "command": spec.redacted_argv(),
        "tools": s.tools.iter().map(|t| t.name.to_string()).collect::<Vec<_>>(),
        "tools_predefined": s.tools_predefined,
        "health": {
            "consecutive_failures": s.consecutive_failures,
            "max_consecutive_failures": spec.max_consecutive_failures,
            "total_invocations": s.total_invocations,
            "total_failures": s.total_failures,
            "success_rate": success_rate,
            "in_flight": s.in_flight,
            "queued": s.queued,
            "last_check": s.last_check.map(|(at, ok)| json!({"ok": ok, "seconds_ago": secs_since(at)})),
        },
        "circuit_breaker": breaker,
        "recovery": {
            "attempts": s.recovery.attempts,
            "max_retries": spec.recovery.max_retries,
            "next_attempt_in_s": s.recovery.next_attempt_at.map(|t| t.saturating_duration_since(Instant::now()).as_secs_f64()),
            "gave_up": s.recovery.gave_up.as_ref().map(|(at, why)| json!({"reason": why, "since": unix_time(*at)})),
        },
        "idle_time": s.started_at.map(|_| secs_since(s.last_used)),
        "idle_ttl_s": spec.idle_ttl.as_secs(),
        "last_error": s.last_error.as_ref().map(|e| json!({
            "message": e.message,
            "stderr_tail": e.stderr_tail,
            "at": unix_time(e.at),
        })),
        "meta": {
            "tools_count": s.tools.len(),
            "started_at": s.started_at.map(unix_time),
        },
    })
}

/// Sends the caller `notifications/progress` under its progress token, numbering the stages.
/// One task sends them, so they arrive in the order they were reported.
#[derive(Clone)]
struct StageReporter {
    tx: tokio::sync::mpsc::UnboundedSender<String>,
}

impl StageReporter {
    fn new(peer: Peer<RoleServer>, token: ProgressToken) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
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
        let _ = self.tx.send(message);
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

/// Runs a call with retries; returns the final result (or error result) and the metadata.
async fn invoke_with_retries(
    gw: &Gateway,
    a: InvokeExArgs,
    session: Option<String>,
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
    let (mut result, final_error) = loop {
        attempts += 1;
        let outcome = gw
            .registry
            .invoke(Invocation {
                provider: a.provider.clone(),
                tool: a.tool.clone(),
                arguments: a.arguments.clone(),
                timeout,
                correlation_id: Some(correlation_id.clone()),
                session: session.clone(),
                ..Default::default()
            })
            .await;
        let (retryable, reason) = match &outcome {
            Ok(r) if r.is_error == Some(true) => {
                (retry_on_error, Some("tool returned isError".to_string()))
            }
            Ok(_) => (false, None),
            Err(e) => (
                e.is_provider_failure() || e.allows_failover(),
                Some(e.to_string()),
            ),
        };
        if let Some(r) = &reason {
            reasons.push(r.clone());
        }
        if !retryable || attempts > max_retries {
            break match outcome {
                Ok(r) => (gw.finish_result(r), reason),
                Err(e) => (error_result(&e), reason),
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
    let meta = json!({
        "correlation_id": correlation_id,
        "attempts": attempts,
        "retries": attempts - 1,
        "total_time_ms": started.elapsed().as_millis() as u64,
        "final_error_reason": final_error,
        "errors": reasons,
    });
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
    session: Option<String>,
) -> Result<CallToolResult, McpError> {
    let reg = &gw.registry;
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
                .map(|p| (p, p.snapshot()))
                .filter(|(_, s)| filter.is_none_or(|f| s.state == f))
                .map(|(p, s)| {
                    let mut v = summary(p, &s);
                    if let Some(g) = reg.groups().find(|g| g.has_member(p.id())) {
                        v["group"] = json!(g.id());
                    }
                    v
                })
                .collect();
            let groups: Vec<Value> = reg.groups().map(|g| group_json(g)).collect();
            ok(json!({ "providers": providers, "groups": groups }))
        }
        ManagementTool::Start => {
            let a: ProviderArgs = parse(name, args)?;
            match reg.target(&a.provider) {
                Err(e) => error_result(&e),
                Ok(Target::Group(g)) => match g.start_all().await {
                    Ok(()) => ok(group_json(g)),
                    Err(e) => error_result(&e),
                },
                Ok(Target::Provider(p)) => match p.ensure_started(true).await {
                    Ok(conn) => ok(json!({
                        "provider": a.provider,
                        "state": p.state(),
                        "pid": conn.pid,
                        "protocol_version": conn.protocol_version,
                        "tools": conn.tools.iter().map(|t| t.name.to_string()).collect::<Vec<_>>(),
                    })),
                    Err(e) => error_result(&e),
                },
            }
        }
        ManagementTool::Stop => {
            let a: ProviderArgs = parse(name, args)?;
            match reg.stop(&a.provider, "stopped by registry_stop").await {
                Ok(was_running) => ok(json!({
                    "stopped": a.provider,
                    "was_running": was_running,
                    "reason": if was_running { "shutdown" } else { "was not running" },
                })),
                Err(e) => error_result(&e),
            }
        }
        ManagementTool::Invoke => {
            let a: InvokeArgs = parse(name, args)?;
            gw.invoke(Invocation {
                provider: a.provider,
                tool: a.tool,
                arguments: a.arguments,
                timeout: timeout_arg(a.timeout)?,
                session,
                ..Default::default()
            })
            .await
        }
        ManagementTool::InvokeEx => invoke_with_retries(gw, parse(name, args)?, session).await?,
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
            let result = gw
                .invoke(Invocation {
                    provider: a.provider,
                    tool: a.tool,
                    arguments: a.arguments,
                    timeout: timeout_arg(a.timeout)?,
                    progress: reporter.as_ref().map(StageReporter::sink),
                    session,
                    ..Default::default()
                })
                .await;
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
            let target = match reg.target(&a.provider) {
                Ok(t) => t,
                Err(e) => return Ok(error_result(&e)),
            };
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
            ok(json!({
                "provider": a.provider,
                "state": state,
                "predefined": predefined,
                "tools": tools.iter().map(tool_json).collect::<Vec<_>>(),
            }))
        }
        ManagementTool::Details => {
            let a: ProviderArgs = parse(name, args)?;
            match reg.target(&a.provider) {
                Err(e) => error_result(&e),
                Ok(Target::Group(g)) => ok(group_json(g)),
                Ok(Target::Provider(p)) => {
                    let mut v = provider_details(p);
                    if let Some(g) = reg.groups().find(|g| g.has_member(p.id())) {
                        v["group"] = json!(g.id());
                    }
                    ok(v)
                }
            }
        }
        ManagementTool::Status => {
            let _: NoArgs = parse(name, args)?;
            let snaps: Vec<Snapshot> = reg.providers().map(|p| p.snapshot()).collect();
            let catalog = gw.catalog.load();
            ok(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": secs_since(gw.started),
                "providers": counts(gw),
                "groups": reg.groups().map(|g| (g.id().to_string(), json!(g.state().as_str()))).collect::<serde_json::Map<_, _>>(),
                "tools_offered": catalog.tools.len(),
                "in_flight": snaps.iter().map(|s| s.in_flight).sum::<u32>(),
                "states": snaps.iter().map(|s| (s.id.clone(), json!(s.state))).collect::<serde_json::Map<_, _>>(),
            }))
        }
        ManagementTool::Warm => {
            let a: WarmArgs = parse(name, args)?;
            let ids: Vec<String> = match a.providers.as_deref().map(str::trim) {
                None | Some("") => reg.providers().map(|p| p.id().to_string()).collect(),
                Some(list) => list
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            };
            let starts = ids.iter().map(|id| async move {
                let was_running = reg.get(id).map(|p| p.state().is_running()).unwrap_or(false);
                (id.clone(), was_running, reg.start(id).await)
            });
            let mut warmed = Vec::new();
            let mut already = Vec::new();
            let mut failed = serde_json::Map::new();
            for (id, was_running, r) in futures::future::join_all(starts).await {
                match r {
                    Ok(_) if was_running => already.push(id),
                    Ok(_) => warmed.push(id),
                    Err(e) => {
                        failed.insert(id, json!(e.to_string()));
                    }
                }
            }
            ok(json!({ "warmed": warmed, "already_warm": already, "failed": failed }))
        }
        ManagementTool::Health => {
            let _: NoArgs = parse(name, args)?;
            let c = counts(gw);
            let bad = c.get("dead").copied().unwrap_or(0) + c.get("degraded").copied().unwrap_or(0);
            let status = if reg.is_shutting_down() {
                "shutting_down"
            } else if bad == 0 {
                "healthy"
            } else {
                "degraded"
            };
            ok(json!({ "status": status, "providers": c }))
        }
        ManagementTool::GroupList => {
            let _: NoArgs = parse(name, args)?;
            ok(json!({ "groups": reg.groups().map(|g| group_json(g)).collect::<Vec<_>>() }))
        }
        ManagementTool::GroupRebalance => {
            let a: GroupArgs = parse(name, args)?;
            match reg.group(&a.group) {
                None => error_result(&InvokeError::ProviderNotFound {
                    suggestions: closest(&a.group, reg.groups().map(|g| g.id())),
                    provider: a.group,
                }),
                Some(g) => {
                    let rejoined = g.rebalance();
                    let mut v = group_json(g);
                    v["rejoined"] = json!(rejoined);
                    ok(v)
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
