//! Load-balancing policies: one long-lived instance per loaded version, owned by a task that
//! serves picks in order. Picks are on every group call's path, so the instance is kept (no
//! instantiation per pick) and its state (a counter, a cache) lives across picks. An instance
//! that traps or times out is dropped and the next pick gets a new one: a failed instance is
//! never entered again.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use wasmtime::Store;

use super::bindings::v0_1_0::hangar::plugin::types as wit;
use super::bindings::v0_1_0::lb::{LbPolicyPlugin, LbPolicyPluginPre};
use super::engine::Runtime;
use super::error::{PluginError, PluginErrorKind};
use super::load::{backstop, configured, settle, store, within};
use super::sandbox::{Sandbox, SandboxSpec, arm};
use super::stats::Stats;

/// Picks waiting for the policy's task. A full queue answers `Busy` at once (and the group
/// falls back to its native strategy) rather than letting callers pile up.
const QUEUE: usize = 256;

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

    async fn pick(
        &self,
        live: &mut Option<Live>,
        request: &Pick,
    ) -> Result<Option<u32>, PluginError> {
        let current = match live {
            Some(current) => current,
            None => live.insert(self.instantiate().await?),
        };
        arm(&mut current.store, self.runtime.fuel)?;
        let exports = current.instance.hangar_plugin_lb_policy();
        let outcome = within(
            backstop(&current.store),
            exports.call_pick(&mut current.store, &request.call, &request.members),
        )
        .await;
        let picked = match settle(&current.store, outcome) {
            Ok(picked) => picked,
            Err(err) => {
                // Trapped, out of time, out of memory: this instance is never entered again.
                *live = None;
                return Err(err);
            }
        };
        match picked {
            Some(index) if usize::try_from(index).map_or(true, |i| i >= request.members.len()) => {
                Err(PluginError::new(
                    &self.sandbox.plugin,
                    PluginErrorKind::InvalidAnswer,
                    format!(
                        "picked member index {index}, but only {} members were offered",
                        request.members.len()
                    ),
                ))
            }
            picked => Ok(picked),
        }
    }
}

struct Pick {
    call: wit::Invocation,
    members: Vec<wit::Member>,
    reply: oneshot::Sender<Result<Option<u32>, PluginError>>,
}

/// The handle of a policy's task. Dropping the last handle (the version was swapped out and
/// its last pick answered) ends the task and the instance with it.
pub(super) struct Actor {
    plugin: Arc<str>,
    picks: mpsc::Sender<Pick>,
}

impl Actor {
    /// Starts the task, with `first` as its first instance.
    pub fn start(context: Context, first: Live) -> Self {
        let (picks, mut queue) = mpsc::channel::<Pick>(QUEUE);
        let plugin = Arc::clone(&context.sandbox.plugin);
        tokio::spawn(async move {
            let mut live = Some(first);
            while let Some(request) = queue.recv().await {
                if request.reply.is_closed() {
                    // The caller stopped waiting (its own deadline passed): do not run it.
                    continue;
                }
                let answer = context.pick(&mut live, &request).await;
                let _ = request.reply.send(answer);
            }
        });
        Self { plugin, picks }
    }

    /// Asks the task for a pick and waits at most `wait` for the answer.
    pub async fn pick(
        &self,
        call: wit::Invocation,
        members: Vec<wit::Member>,
        wait: std::time::Duration,
    ) -> Result<Option<u32>, PluginError> {
        let (reply, answer) = oneshot::channel();
        let request = Pick {
            call,
            members,
            reply,
        };
        self.picks.try_send(request).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => PluginError::new(
                &self.plugin,
                PluginErrorKind::Busy,
                format!("not called: {QUEUE} picks are already waiting for it"),
            ),
            mpsc::error::TrySendError::Closed(_) => PluginError::new(
                &self.plugin,
                PluginErrorKind::Trap,
                "not called: its task has ended",
            ),
        })?;
        match tokio::time::timeout(wait, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(PluginError::new(
                &self.plugin,
                PluginErrorKind::Trap,
                "its task ended before answering",
            )),
            Err(_) => Err(PluginError::new(
                &self.plugin,
                PluginErrorKind::Timeout,
                format!(
                    "did not answer within {} ms (the pick waited behind earlier ones or ran \
                     out of time)",
                    wait.as_millis()
                ),
            )),
        }
    }
}
