//! The `registry_*` management tools, with the original's names and argument names.
//!
//! Results are JSON text plus the same value as `structuredContent`; failures are tool errors
//! (`isError: true`) whose text says what failed and what to do, so an agent can read it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Gateway;
use crate::provider::ProviderState;
use crate::registry::{Invocation, InvokeError, Provider, Snapshot};

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
            "Call a tool of a provider, starting the provider if needed.",
            json!({"type": "object", "properties": {
                "provider": {"type": "string", "description": "Provider id"},
                "tool": {"type": "string", "description": "Tool name as the provider calls it"},
                "arguments": {"type": "object", "description": "Tool arguments"},
                "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_S, "description": "Seconds before the call is cancelled (default: the provider's call_timeout_s, else 30)"}
            }, "required": ["provider", "tool"], "additionalProperties": false}),
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

pub async fn call(
    gw: &Gateway,
    which: ManagementTool,
    name: &str,
    args: Option<JsonObject>,
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
                .map(|(p, s)| summary(p, &s))
                .collect();
            ok(json!({ "providers": providers }))
        }
        ManagementTool::Start => {
            let a: ProviderArgs = parse(name, args)?;
            match reg.start(&a.provider).await {
                Ok(conn) => ok(json!({
                    "provider": a.provider,
                    "state": reg.get(&a.provider).map(|p| p.state()).unwrap_or(ProviderState::Ready),
                    "pid": conn.pid,
                    "protocol_version": conn.protocol_version,
                    "tools": conn.tools.iter().map(|t| t.name.to_string()).collect::<Vec<_>>(),
                })),
                Err(e) => error_result(&e),
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
            let timeout = match a.timeout {
                None => None,
                Some(t) if t > 0.0 && t <= MAX_TIMEOUT_S => Some(Duration::from_secs_f64(t)),
                Some(t) => {
                    return Err(McpError::invalid_params(
                        format!(
                            "`timeout` must be between 0 (exclusive) and {MAX_TIMEOUT_S} seconds, got {t}"
                        ),
                        None,
                    ));
                }
            };
            gw.invoke(Invocation {
                provider: a.provider,
                tool: a.tool,
                arguments: a.arguments,
                timeout,
            })
            .await
        }
        ManagementTool::Tools => {
            let a: ProviderArgs = parse(name, args)?;
            let p = match reg.get(&a.provider) {
                Ok(p) => p.clone(),
                Err(e) => return Ok(error_result(&e)),
            };
            // Like the original, a provider with nothing predefined is started to learn its tools;
            // one with predefined tools answers from them without starting.
            if p.tools().is_empty()
                && !p.state().is_running()
                && let Err(e) = reg.start(&a.provider).await
            {
                return Ok(error_result(&e));
            }
            let s = p.snapshot();
            ok(json!({
                "provider": a.provider,
                "state": s.state,
                "predefined": s.tools_predefined,
                "tools": s.tools.iter().map(tool_json).collect::<Vec<_>>(),
            }))
        }
        ManagementTool::Details => {
            let a: ProviderArgs = parse(name, args)?;
            let p = match reg.get(&a.provider) {
                Ok(p) => p,
                Err(e) => return Ok(error_result(&e)),
            };
            let s = p.snapshot();
            let spec = p.spec();
            let answered = s.total_invocations.saturating_sub(u64::from(s.in_flight));
            let success_rate = if answered == 0 {
                1.0
            } else {
                1.0 - s.total_failures as f64 / answered as f64
            };
            ok(json!({
                "provider_id": s.id,
                "state": s.state,
                "state_reason": s.reason,
                "state_since_s": secs_since(s.since),
                "mode": spec.mode.as_str(),
                "description": spec.description,
                "is_alive": s.state.is_running(),
                "pid": s.pid,
                "protocol_version": s.protocol_version,
                "command": spec.redacted_argv(),
                "tools": s.tools.iter().map(|t| t.name.to_string()).collect::<Vec<_>>(),
                "tools_predefined": s.tools_predefined,
                "health": {
                    "consecutive_failures": s.consecutive_failures,
                    "total_invocations": s.total_invocations,
                    "total_failures": s.total_failures,
                    "success_rate": success_rate,
                    "in_flight": s.in_flight,
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
            }))
        }
        ManagementTool::Status => {
            let _: NoArgs = parse(name, args)?;
            let snaps: Vec<Snapshot> = reg.providers().map(|p| p.snapshot()).collect();
            let catalog = gw.catalog.load();
            ok(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": secs_since(gw.started),
                "providers": counts(gw),
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
    })
}
