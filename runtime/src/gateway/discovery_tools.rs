//! The discovery tools: `registry_discover`, `registry_discovered`, `registry_sources`,
//! `registry_quarantine`, `registry_approve`. Without an enabled `discovery:` section each
//! answers a tool error saying so.

use std::sync::Arc;

use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Gateway;
use crate::discovery::Discovery;

/// Which discovery tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryTool {
    Discover,
    Discovered,
    Sources,
    Quarantine,
    Approve,
}

pub fn tools() -> Vec<(Tool, DiscoveryTool)> {
    let none = json!({"type": "object", "properties": {}, "additionalProperties": false});
    let t = |name: &'static str, desc: &'static str, schema: &Value, which| {
        let schema = match schema {
            Value::Object(map) => Arc::new(map.clone()),
            _ => Arc::new(JsonObject::new()),
        };
        (Tool::new(name, desc, schema), which)
    };
    vec![
        t(
            "registry_discover",
            "Run a discovery cycle now: ask every discovery source, register new providers, update changed ones, remove what authoritative sources stopped reporting; returns what changed.",
            &none,
            DiscoveryTool::Discover,
        ),
        t(
            "registry_discovered",
            "Discovered providers: registered ones (with their source and spec fingerprint) and held ones (pending approval or quarantined, with the reason).",
            &none,
            DiscoveryTool::Discovered,
        ),
        t(
            "registry_sources",
            "Discovery sources: type, mode, last cycle, providers reported and registered, health, last error and the problems of the last answer (malformed entries with file:line, conflicts, limits).",
            &none,
            DiscoveryTool::Sources,
        ),
        t(
            "registry_quarantine",
            "Quarantined discovered providers with their reason (failed_source, failed_health, failed_schema, failed_rate_limit) and what failed.",
            &none,
            DiscoveryTool::Quarantine,
        ),
        t(
            "registry_approve",
            "Register a held (pending or quarantined) discovered provider now, skipping the check that held it.",
            &json!({"type": "object", "properties": {"provider": {"type": "string", "description": "Provider name"}}, "required": ["provider"], "additionalProperties": false}),
            DiscoveryTool::Approve,
        ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveArgs {
    provider: String,
}

fn parse<T: serde::de::DeserializeOwned>(
    tool: &str,
    args: Option<JsonObject>,
) -> Result<T, McpError> {
    serde_json::from_value(Value::Object(args.unwrap_or_default())).map_err(|e| {
        McpError::invalid_params(
            format!("invalid arguments for `{tool}`: {e}; see the tool's inputSchema"),
            None,
        )
    })
}

fn failed(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

fn engine(gw: &Gateway) -> Result<&Arc<Discovery>, CallToolResult> {
    gw.registry.discovery().ok_or_else(|| {
        failed(
            "discovery is off: the config has no `discovery:` section with `enabled: true` and \
             `sources:`"
                .to_string(),
        )
    })
}

pub async fn call(
    gw: &Gateway,
    which: DiscoveryTool,
    name: &str,
    args: Option<JsonObject>,
) -> Result<CallToolResult, McpError> {
    let engine = match which {
        DiscoveryTool::Approve => {
            let _: ApproveArgs = parse(name, args.clone())?;
            engine(gw)
        }
        _ => {
            let _: NoArgs = parse(name, args.clone())?;
            engine(gw)
        }
    };
    let engine = match engine {
        Ok(e) => e,
        Err(r) => return Ok(r),
    };
    Ok(match which {
        DiscoveryTool::Discover => match engine.discover_now().await {
            Ok(report) => CallToolResult::structured(json!(report)),
            Err(e) => failed(e),
        },
        DiscoveryTool::Discovered => {
            let members = gw.registry.members();
            let registered: Vec<Value> = engine
                .registered()
                .into_iter()
                .map(|(name, source, fp)| {
                    let state = gw
                        .registry
                        .provider(&name)
                        .map(|p| p.state().as_str().to_string());
                    let membership = members.origin(&name).and_then(|o| o.membership.clone());
                    json!({
                        "name": name,
                        "source": source,
                        "fingerprint": fp,
                        "state": state,
                        "group": membership.as_ref().map(|m| m.group.clone()),
                        "weight": membership.map(|m| m.weight),
                    })
                })
                .collect();
            CallToolResult::structured(json!({
                "registered": registered,
                "held": engine.held(),
            }))
        }
        DiscoveryTool::Sources => CallToolResult::structured(json!({
            "refresh_interval_s": engine.spec().refresh_interval.as_secs(),
            "auto_register": engine.spec().auto_register,
            "sources": engine.sources(),
        })),
        DiscoveryTool::Quarantine => {
            let held: Vec<_> = engine
                .held()
                .into_iter()
                .filter(|h| h.status == "quarantined")
                .collect();
            CallToolResult::structured(json!({ "quarantined": held }))
        }
        DiscoveryTool::Approve => {
            let a: ApproveArgs = parse(name, args)?;
            match engine.approve(&a.provider).await {
                Ok(source) => CallToolResult::structured(
                    json!({"provider": a.provider, "source": source, "status": "registered"}),
                ),
                Err(e) => failed(e),
            }
        }
    })
}
