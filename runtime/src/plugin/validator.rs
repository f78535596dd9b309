//! Validators: configured instances reused across calls, each call in the caller's task. A
//! fresh instance per call would cost ~11 µs of instantiation and `configure` on every call
//! (more than the validation itself); an instance is instead kept while it behaves. One that
//! traps, times out, runs out of memory or fuel, or whose caller went away mid-call is dropped
//! and never entered again. What a reused instance keeps between calls is its own memory:
//! only the calls of the one plugin (and operator) it was written for.

use std::sync::{Arc, Mutex};

use wasmtime::Store;

use wasmtime::component::Resource;

use super::bindings::v0_1_0::hangar::plugin::types as wit;
use super::bindings::v0_1_0::validator as v1;
use super::bindings::v0_2_0::hangar::plugin::types as wit2;
use super::bindings::v0_2_0::validator as v2;
use super::engine::Runtime;
use super::error::{PluginError, PluginErrorKind};
use super::load::{Loaded, backstop, configured, instantiate_configured, settle, store, within};
use super::sandbox::{Sandbox, SandboxSpec, arm};
use super::stats::Stats;
use super::{Invocation, Verdict, to_wit_invocation};

/// Longest deny reason accepted: it is shown to the client.
pub(super) const MAX_REASON_BYTES: usize = 64 << 10;
/// Longest rewrite accepted: the config's default `max_argument_bytes`.
pub(super) const MAX_REWRITE_BYTES: usize = 1 << 20;

/// Idle instances kept per validator version (more only while calls run at once).
const MAX_IDLE: usize = 8;

/// How to make instances of a validator, by the WIT version it was built against.
pub(super) enum Pre {
    V1(v1::ValidatorPluginPre<Sandbox>),
    V2(v2::ValidatorPluginPre<Sandbox>),
}

enum Instance {
    V1(v1::ValidatorPlugin),
    V2(v2::ValidatorPlugin),
}

/// A configured instance.
pub(super) struct Live {
    store: Store<Sandbox>,
    instance: Instance,
}

/// A validator version: how to make instances, and the idle ones.
pub(super) struct Validators {
    pre: Pre,
    idle: Mutex<Vec<Live>>,
}

impl Validators {
    pub fn new(pre: Pre, first: Live) -> Self {
        Self {
            pre,
            idle: Mutex::new(vec![first]),
        }
    }
}

/// A new instance of the validator, configured.
pub(super) async fn instantiate(
    runtime: &Runtime,
    sandbox: &Arc<SandboxSpec>,
    config_json: &str,
    pre: &Pre,
    stats: &Arc<Stats>,
) -> Result<Live, PluginError> {
    let mut store = store(runtime, sandbox, stats)?;
    let instance = match pre {
        Pre::V1(pre) => Instance::V1(instantiate_configured!(
            pre,
            store,
            config_json,
            hangar_plugin_validator
        )),
        Pre::V2(pre) => Instance::V2(instantiate_configured!(
            pre,
            store,
            config_json,
            hangar_plugin_validator
        )),
    };
    Ok(Live { store, instance })
}

pub(super) async fn validate(
    runtime: &Runtime,
    loaded: &Loaded,
    validators: &Validators,
    call: &Arc<Invocation>,
    stats: &Arc<Stats>,
) -> Result<Verdict, PluginError> {
    let taken = validators
        .idle
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop();
    // Owned by this future: dropped, never put back, if the call fails or is abandoned.
    let mut live = match taken {
        Some(live) => live,
        None => {
            instantiate(
                runtime,
                &loaded.sandbox,
                &loaded.config_json,
                &validators.pre,
                stats,
            )
            .await?
        }
    };
    arm(&mut live.store, runtime.fuel)?;
    let verdict = match &live.instance {
        Instance::V1(instance) => {
            let call = to_wit_invocation(call);
            let exports = instance.hangar_plugin_validator();
            let outcome = within(
                backstop(&live.store),
                exports.call_validate(&mut live.store, &call),
            )
            .await;
            settle(&live.store, outcome)?
        }
        Instance::V2(instance) => {
            // The call is lent, not copied: the plugin reads the parts it needs through the
            // borrowed handle (sandbox `calls`), and an instance that failed is dropped with it.
            live.store.data_mut().begin_call(call, std::iter::empty());
            let exports = instance.hangar_plugin_validator();
            let outcome = within(
                backstop(&live.store),
                exports.call_validate(&mut live.store, Resource::new_borrow(0)),
            )
            .await;
            let verdict = settle(&live.store, outcome)?;
            live.store.data_mut().end_call();
            from_v2(verdict)
        }
    };
    {
        let mut idle = validators.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(live);
        }
    }
    checked(&loaded.sandbox.plugin, verdict)
}

/// A 0.2.0 verdict in 0.1.0's words: the variant is the same in both versions.
fn from_v2(verdict: wit2::Verdict) -> wit::Verdict {
    match verdict {
        wit2::Verdict::Allow => wit::Verdict::Allow,
        wit2::Verdict::Deny(reason) => wit::Verdict::Deny(reason),
        wit2::Verdict::Rewrite(json) => wit::Verdict::Rewrite(json),
    }
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
