//! Load-balancing policies: long-lived, configured instances, reused across picks. Picks are
//! on every group call's path, so an instance is kept (no instantiation per pick) and its
//! state (a counter, a cache) lives across the picks it serves; a pick runs in the caller's
//! task (no hop to another task). An instance that traps or times out is dropped and the next
//! pick gets a new one: a failed instance is never entered again, and neither is one whose
//! caller went away mid-pick.

use std::sync::{Arc, Mutex};

use wasmtime::Store;
use wasmtime::component::{Resource, TypedFunc};

use super::bindings::v0_1_0::hangar::plugin::types as wit;
use super::bindings::v0_1_0::lb as v1;
use super::bindings::v0_2_0::hangar::plugin::types as wit2;
use super::bindings::v0_2_0::lb as v2;
use super::bindings::v0_2_0::lb::hangar::plugin::calls::Call;
use super::engine::Runtime;
use super::error::{PluginError, PluginErrorKind};
use super::load::{backstop, configured, instantiate_configured, settle, store, within};
use super::lowering::FastMember;
use super::sandbox::{Sandbox, SandboxSpec, arm};
use super::stats::Stats;
use super::{Invocation, Member, to_wit_invocation, to_wit_member};

/// Idle instances kept per policy version: more than the picks that run at once on a small
/// machine, so concurrent picks rarely instantiate.
const MAX_IDLE: usize = 8;

/// How to make instances of a policy, by the WIT version it was built against.
pub(super) enum Pre {
    V1(v1::LbPolicyPluginPre<Sandbox>),
    V2(v2::LbPolicyPluginPre<Sandbox>),
}

/// `pick` of a 0.2.0 policy, typed with the members lowered by `lowering::FastMember`.
type Pick2 = TypedFunc<(Resource<Call>, Vec<FastMember>), (Option<u32>,)>;

enum Instance {
    V1(v1::LbPolicyPlugin),
    V2(Pick2),
}

/// The export every 0.2.0 policy has, where `pick` is found.
const LB_POLICY_0_2_0: &str = "hangar:plugin/lb-policy@0.2.0";

/// What a policy's task needs to make instances.
pub(super) struct Context {
    pub runtime: Arc<Runtime>,
    pub pre: Pre,
    pub sandbox: Arc<SandboxSpec>,
    pub config_json: Arc<str>,
    pub stats: Arc<Stats>,
}

/// A configured instance of the policy.
pub(super) struct Live {
    store: Store<Sandbox>,
    instance: Instance,
}

impl Context {
    /// A new instance, configured.
    pub async fn instantiate(&self) -> Result<Live, PluginError> {
        let mut store = store(&self.runtime, &self.sandbox, &self.stats)?;
        let instance = match &self.pre {
            Pre::V1(pre) => Instance::V1(instantiate_configured!(
                pre,
                store,
                &self.config_json,
                hangar_plugin_lb_policy
            )),
            Pre::V2(pre) => {
                let outcome = within(
                    backstop(&store),
                    pre.instance_pre().instantiate_async(&mut store),
                )
                .await;
                let instance = settle(&store, outcome)?;
                let bindings = v2::LbPolicyPlugin::new(&mut store, &instance);
                let bindings = settle(&store, Some(bindings))?;
                let exports = bindings.hangar_plugin_lb_policy();
                let answer = within(
                    backstop(&store),
                    exports.call_configure(&mut store, &self.config_json),
                )
                .await;
                configured(&store, answer)?;
                // The bindings type-checked the world; this checks `pick` once more with the
                // hand-lowered members (their type check is the generated one).
                let pick = instance
                    .get_export_index(&mut store, None, LB_POLICY_0_2_0)
                    .and_then(|iface| instance.get_export_index(&mut store, Some(&iface), "pick"))
                    .ok_or_else(|| wasmtime::Error::msg(format!("{LB_POLICY_0_2_0} has no `pick`")))
                    .and_then(|index| instance.get_typed_func::<_, _>(&mut store, &index));
                Instance::V2(settle(&store, Some(pick))?)
            }
        };
        Ok(Live { store, instance })
    }

    /// One pick on `live`. On an error the caller drops `live`: trapped, out of time or out
    /// of memory, an instance is never entered again.
    async fn pick(
        &self,
        live: &mut Live,
        call: &Arc<Invocation>,
        members: &[Member],
    ) -> Result<Option<u32>, PluginError> {
        arm(&mut live.store, self.runtime.fuel)?;
        let picked = match &live.instance {
            Instance::V1(instance) => {
                let members: Vec<wit::Member> = members.iter().map(to_wit_member).collect();
                let exports = instance.hangar_plugin_lb_policy();
                let outcome = within(
                    backstop(&live.store),
                    exports.call_pick(&mut live.store, &to_wit_invocation(call), &members),
                )
                .await;
                settle(&live.store, outcome)?
            }
            Instance::V2(pick) => {
                // Numbers only cross eagerly; the call and the member ids are lent and read on
                // demand (sandbox `calls`).
                let lowered = members
                    .iter()
                    .map(|m| {
                        FastMember(wit2::Member {
                            key: m.key,
                            weight: m.weight,
                            priority: m.priority,
                            in_flight: m.in_flight,
                            healthy: m.healthy,
                            ewma_latency_us: m.ewma_latency_us,
                        })
                    })
                    .collect();
                live.store
                    .data_mut()
                    .begin_call(call, members.iter().map(|m| Arc::clone(&m.id)));
                let outcome = within(
                    backstop(&live.store),
                    pick.call_async(&mut live.store, (Resource::new_borrow(0), lowered)),
                )
                .await;
                let (picked,) = settle(&live.store, outcome)?;
                live.store.data_mut().end_call();
                picked
            }
        };
        match picked {
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
        call: &Arc<Invocation>,
        members: &[Member],
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
