//! Validators: a fresh instance per call, so no call can see another's data and a failed
//! instance is simply dropped. The pooling allocator makes this cost microseconds.

use std::sync::Arc;

use super::Verdict;
use super::bindings::v0_1_0::hangar::plugin::types as wit;
use super::bindings::v0_1_0::validator::ValidatorPluginPre;
use super::engine::Runtime;
use super::error::{PluginError, PluginErrorKind};
use super::load::{Loaded, backstop, configured, settle, store, within};
use super::sandbox::Sandbox;
use super::stats::Stats;

/// Longest deny reason accepted: it is shown to the client.
pub(super) const MAX_REASON_BYTES: usize = 64 << 10;
/// Longest rewrite accepted: the config's default `max_argument_bytes`.
pub(super) const MAX_REWRITE_BYTES: usize = 1 << 20;

pub(super) async fn validate(
    runtime: &Runtime,
    loaded: &Loaded,
    pre: &ValidatorPluginPre<Sandbox>,
    call: &wit::Invocation,
    stats: &Arc<Stats>,
) -> Result<Verdict, PluginError> {
    // One deadline for the whole call: instantiation, `configure` and `validate`.
    let mut store = store(runtime, &loaded.sandbox, stats)?;
    let outcome = within(backstop(&store), pre.instantiate_async(&mut store)).await;
    let instance = settle(&store, outcome)?;
    let exports = instance.hangar_plugin_validator();
    let answer = within(
        backstop(&store),
        exports.call_configure(&mut store, &loaded.config_json),
    )
    .await;
    configured(&store, answer)?;
    let outcome = within(backstop(&store), exports.call_validate(&mut store, call)).await;
    let verdict = settle(&store, outcome)?;
    checked(&loaded.sandbox.plugin, verdict)
}

/// The plugin's verdict, if it is one the host accepts.
fn checked(plugin: &str, verdict: wit::Verdict) -> Result<Verdict, PluginError> {
    let too_large = |what: &str, len: usize, max: usize| {
        PluginError::new(
            plugin,
            PluginErrorKind::OutputTooLarge,
            format!("answered with {what} of {len} bytes; at most {max} are accepted"),
        )
    };
    match verdict {
        wit::Verdict::Allow => Ok(Verdict::Allow),
        wit::Verdict::Deny(reason) if reason.len() > MAX_REASON_BYTES => {
            Err(too_large("a deny reason", reason.len(), MAX_REASON_BYTES))
        }
        wit::Verdict::Deny(reason) => Ok(Verdict::Deny(reason)),
        wit::Verdict::Rewrite(json) if json.len() > MAX_REWRITE_BYTES => Err(too_large(
            "rewritten arguments",
            json.len(),
            MAX_REWRITE_BYTES,
        )),
        wit::Verdict::Rewrite(json) => match serde_json::from_str::<serde_json::Value>(&json) {
            Ok(serde_json::Value::Object(arguments)) => Ok(Verdict::Rewrite(arguments)),
            Ok(other) => Err(PluginError::new(
                plugin,
                PluginErrorKind::InvalidAnswer,
                format!(
                    "rewrote the arguments to a JSON {}, not an object",
                    json_type(&other)
                ),
            )),
            Err(err) => Err(PluginError::new(
                plugin,
                PluginErrorKind::InvalidAnswer,
                format!("rewrote the arguments to text that is not JSON: {err}"),
            )),
        },
    }
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_must_be_a_json_object() {
        let err = checked("v", wit::Verdict::Rewrite("[1]".into())).unwrap_err();
        assert_eq!(err.kind, PluginErrorKind::InvalidAnswer);
        assert!(err.message.contains("JSON array, not an object"), "{err}");
        let ok = checked("v", wit::Verdict::Rewrite(r#"{"a":1}"#.into()));
        assert!(matches!(ok, Ok(Verdict::Rewrite(map)) if map.len() == 1));
    }

    #[test]
    fn a_deny_reason_past_the_cap_is_refused_with_its_size() {
        let err = checked("v", wit::Verdict::Deny("x".repeat(MAX_REASON_BYTES + 1))).unwrap_err();
        assert_eq!(err.kind, PluginErrorKind::OutputTooLarge);
        assert!(err.message.contains("65537 bytes"), "{err}");
    }
}
