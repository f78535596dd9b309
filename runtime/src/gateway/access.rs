//! The gateway's side of [`crate::access`]: the tool list a principal sees, and the refusal of a
//! call it may not make — by the offered name, and for the `registry_invoke*` tools by the
//! offered name of the provider tool they would reach.

use std::sync::Arc;

use rmcp::ErrorData as McpError;
use rmcp::model::{ErrorCode, JsonObject, Tool};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::json;

use super::management::ManagementTool;
use super::{Gateway, Route, aggregated_name};
use crate::access::{self, Principal};
use crate::registry::InvokeError;

/// JSON-RPC error code of a call the caller's credentials do not allow (a server error in
/// JSON-RPC's reserved range, as the MCP spec leaves these to implementations).
pub const FORBIDDEN: ErrorCode = ErrorCode(-32003);

/// The principal of the request `context` belongs to, if it carries one.
pub fn principal(context: &RequestContext<RoleServer>) -> Option<Arc<Principal>> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| access::of_request(&parts.extensions))
}

/// `tools` as the caller may see them: all of them without a principal or a tool list.
pub fn visible(context: &RequestContext<RoleServer>, tools: &[Tool]) -> Vec<Tool> {
    match principal(context) {
        Some(p) if !p.unrestricted() => tools
            .iter()
            .filter(|t| p.may_call(&t.name))
            .cloned()
            .collect(),
        _ => tools.to_vec(),
    }
}

/// Whether the caller may call `name` (routed to `route`, with `arguments`); the error says
/// which credentials were refused and what they may call.
pub fn check_call(
    gw: &Gateway,
    context: &RequestContext<RoleServer>,
    name: &str,
    route: Option<&Route>,
    arguments: Option<&JsonObject>,
) -> Result<(), McpError> {
    let Some(p) = principal(context) else {
        return Ok(());
    };
    if !p.may_call(name) {
        return Err(refuse(&p, name));
    }
    let invokes = matches!(
        route,
        Some(Route::Management(
            ManagementTool::Invoke | ManagementTool::InvokeEx | ManagementTool::InvokeStream
        ))
    );
    if invokes && !p.unrestricted() {
        let arg = |key: &str| {
            arguments
                .and_then(|a| a.get(key))
                .and_then(|v| v.as_str())
                .unwrap_or_default()
        };
        let target = offered_name(gw, arg("provider"), arg("tool"));
        if !p.may_call(&target) {
            return Err(refuse(&p, &target));
        }
    }
    Ok(())
}

/// The name a provider's tool is offered under (its group's or its own prefix).
fn offered_name(gw: &Gateway, provider: &str, tool: &str) -> String {
    aggregated_name(provider, tool_prefix(gw, provider).as_deref(), tool)
}

/// The `tool_prefix` the provider or group `id` is offered with, if it has one of its own.
fn tool_prefix(gw: &Gateway, id: &str) -> Option<String> {
    gw.registry
        .exposed()
        .into_iter()
        .find(|(exposed, ..)| exposed == id)
        .and_then(|(_, prefix, _)| prefix)
}

/// `e` as `p` may see it: a tool `target` (the provider or group the caller named) lacks is
/// answered with suggestions of only the tools `p` may call there.
pub fn visible_error(gw: &Gateway, p: &Principal, target: &str, e: InvokeError) -> InvokeError {
    match e {
        InvokeError::ToolNotFound {
            provider,
            tool,
            mut suggestions,
        } if !p.unrestricted() => {
            let prefix = tool_prefix(gw, target);
            suggestions.retain(|s| p.may_call(&aggregated_name(target, prefix.as_deref(), s)));
            InvokeError::ToolNotFound {
                provider,
                tool,
                suggestions,
            }
        }
        e => e,
    }
}

/// Which of `target`'s tools (named as the provider names them) `p`, if any, may see: those
/// whose offered names it may call.
pub fn sees_tool<'a>(
    gw: &Gateway,
    p: Option<&'a Principal>,
    target: &'a str,
) -> impl Fn(&str) -> bool + use<'a> {
    let restricted = p.filter(|p| !p.unrestricted());
    let prefix = restricted.and_then(|_| tool_prefix(gw, target));
    move |tool| {
        restricted.is_none_or(|p| p.may_call(&aggregated_name(target, prefix.as_deref(), tool)))
    }
}

fn refuse(p: &Principal, name: &str) -> McpError {
    tracing::info!("refused `{name}` to {}: not in its tools", p.name());
    McpError::new(
        FORBIDDEN,
        p.refusal(name),
        Some(json!({"principal": p.name(), "tool": name})),
    )
}
