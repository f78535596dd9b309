//! Load-balancing policies: long-lived, configured instances, reused across picks. Picks are
//! on every group call's path, so an instance is kept (no instantiation per pick) and its
//! state (a counter, a cache) lives across the picks it serves; a pick runs in the caller's
//! task (no hop to another task). An instance that traps or times out is dropped and the next
//! pick gets a new one: a failed instance is never entered again, and neither is one whose
//! caller went away mid-pick.

use std::sync::{Arc, Mutex};

use wasmtime::Store;

use super::bindings::v0_1_0::hangar::plugin::types as wit;
use super::bindings::v0_1_0::lb::{LbPolicyPlugin, LbPolicyPluginPre};
use super::engine::Runtime;
use super::error::{PluginError, PluginErrorKind};
use super::load::{backstop, configured, settle, store, within};
use super::sandbox::{Sandbox, SandboxSpec, arm};
use super::stats::Stats;

/// Idle instances kept per policy version: more than the picks that run at once on a small
/// machine, so concurrent picks rarely instantiate.
const MAX_IDLE: usize = 8;

/// What a policy's task needs to make instances.
pub(super) struct Context {
    pub runtime: Arc<Runtime>,
    pub pre: LbPolicyPluginPre<Sandbox>,
    pub sandbox: Arc<SandboxSpec>,
    pub config_json: Arc<str>,
    pub stats: Arc<Stats>,
}

/// A configured instance of the policy.
pub(super) struct Live {
    store: Store<Sandbox>,
    instance: LbPolicyPlugin,
}

impl Context {
    /// A new instance, configured.
    pub async fn instantiate(&self) -> Result<Live, PluginError> {
        let mut store = store(&self.runtime, &self.sandbox, &self.stats)?;
        let outcome = within(backstop(&store), self.pre.instantiate_async(&mut store)).await;
        let instance = settle(&store, outcome)?;
        let exports = instance.hangar_plugin_lb_policy();
        let answer = within(
            backstop(&store),
            exports.call_configure(&mut store, &self.config_json),
        )
        .await;
        configured(&store, answer)?;
        Ok(Live { store, instance })
    }

    /// One pick on `live`. On an error the caller drops `live`: trapped, out of time or out
    /// of memory, an instance is never entered again.
    async fn pick(
        &self,
        live: &mut Live,
        call: &wit::Invocation,
        members: &[wit::Member],
    ) -> Result<Option<u32>, PluginError> {
        arm(&mut live.store, self.runtime.fuel)?;
        let exports = live.instance.hangar_plugin_lb_policy();
        let outcome = within(
            backstop(&live.store),
            exports.call_pick(&mut live.store, call, members),
        )
        .await;
        match settle(&live.store, outcome)? {
            Some(index) if usize::try_from(index).map_or(true, |i| i >= members.len()) => {
                Err(PluginError::new(
                    &self.sandbox.plugin,
                    PluginErrorKind::InvalidAnswer,
                    format!(
                        "picked member index {index}, but only {} members were offered",
                        members.len()
                    ),
                ))
            }
            picked => Ok(picked),
        }
    }
}

/// A policy's configured instances not in use. A pick takes one (or makes one), runs in the
/// caller's task, and puts it back if it answered; the LIFO order means sequential picks reuse
/// one warm instance, and only concurrent picks make more.
pub(super) struct Policy {
    context: Context,
    idle: Mutex<Vec<Live>>,
}

impl Policy {
    /// A policy whose first idle instance is `first` (the one that proved the config).
    pub fn new(context: Context, first: Live) -> Self {
        Self {
            context,
            idle: Mutex::new(vec![first]),
        }
    }

    pub async fn pick(
        &self,
        call: &wit::Invocation,
        members: &[wit::Member],
    ) -> Result<Option<u32>, PluginError> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        // Dropped, never put back, if the caller goes away mid-pick or the pick fails.
        let mut live = match taken {
            Some(live) => live,
            None => self.context.instantiate().await?,
        };
        let picked = self.context.pick(&mut live, call, members).await?;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(live);
        }
        Ok(picked)
    }
}
