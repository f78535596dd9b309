//! Groups of providers behind one id: a strategy picks a member per call, members that fail
//! leave the rotation and rejoin when they recover, and a call whose member could not take it is
//! retried on another (failover). The strategies and the rotation rules are pure code
//! (`strategy`, `rotation`); this module applies them to live providers.

pub mod rotation;
pub mod strategy;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rmcp::model::{CallToolResult, Tool};

use crate::config::{self, GroupMember, GroupSpec, ProviderSpec};
use crate::events::{Event, EventBus};
use crate::managed::{
    GroupValidators, InvokeError, Provider, ProviderCall, RateLimit, SlotError, Slots, ToolExposure,
};
use crate::plugin::{self, PluginSlot};
use crate::provider::ProviderState;
use crate::provider::breaker::{CircuitBreaker, Permit};
use rotation::{GroupState, MemberHealth, RotationChange, Thresholds};
use strategy::{Candidate, Strategy};

/// The group's native strategy; a `plugin:NAME` strategy falls back to round-robin, which is
/// also what a plugin's trap or timeout falls back to.
fn native_strategy(group: &GroupSpec) -> Box<dyn Strategy> {
    strategy::for_config(&group.strategy)
        .unwrap_or_else(|| Box::new(strategy::RoundRobin::default()))
}

/// The priority of a discovered member: the config's default for a member that gives none.
pub const DISCOVERED_PRIORITY: u32 = crate::config::DEFAULT_MEMBER_PRIORITY;

/// The spec of a group discovery makes for a group id no config defines: exactly what a
/// config group with only `members:` gets (read through [`config::parse`], so the defaults
/// cannot drift), with the members left to discovery. The error is the config file's text
/// for an id a file could not use either.
pub fn discovered_spec(id: &str) -> Result<ProviderSpec, String> {
    // The parser wants one member; its id cannot be the group's.
    let doc = serde_json::json!({ "mcp_servers": { id: {
        "mode": "group",
        "members": [{ "id": format!("{id}-member"), "command": ["x"] }],
    }}});
    let text = yaml_serde::to_string(&doc).map_err(|e| e.to_string())?;
    let path = std::path::PathBuf::from(format!("discovery:group:{id}"));
    let config = config::parse(&text, &path, &|_| None).map_err(|e| e.to_string())?;
    let mut spec = config
        .providers
        .get(id)
        .cloned()
        .ok_or_else(|| format!("group `{id}` produced no group"))?;
    if let Some(g) = spec.group.as_mut() {
        g.members.clear();
    }
    Ok(spec)
}

/// One member: the provider, its weight and priority, and its standing in the rotation.
pub struct Member {
    pub provider: Arc<Provider>,
    pub weight: u32,
    pub priority: u32,
    /// The member's `tools:` map in the group (on a reference member): what it offers through
    /// this group, on top of its own provider's policy.
    exposure: Option<ToolExposure>,
    health: Mutex<MemberHealth>,
    /// The member's id and key as a policy plugin gets them: built once, so a pick copies no
    /// id and hashes nothing.
    policy_id: Arc<str>,
    policy_key: u64,
    /// Joined through discovery (not listed in the config file's `members:`): only these
    /// ever leave the group at run time.
    discovered: bool,
}

impl Member {
    fn new(
        provider: Arc<Provider>,
        weight: u32,
        priority: u32,
        exposure: Option<ToolExposure>,
        discovered: bool,
    ) -> Self {
        Self {
            policy_id: Arc::from(provider.id()),
            policy_key: plugin::member_key(provider.id()),
            provider,
            weight,
            priority,
            exposure,
            health: Mutex::new(MemberHealth::new()),
            discovered,
        }
    }

    /// A member discovery found: no `tools:` of its own within the group, the default
    /// priority, and a fresh standing in the rotation.
    pub fn discovered(provider: Arc<Provider>, weight: u32) -> Self {
        Self::new(provider, weight, DISCOVERED_PRIORITY, None, true)
    }

    pub fn is_discovered(&self) -> bool {
        self.discovered
    }

    fn health(&self) -> MutexGuard<'_, MemberHealth> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn in_rotation(&self) -> bool {
        self.health().in_rotation()
    }

    /// Why this member does not offer `tool` through the group, if it does not: the group's
    /// `tools:` for it first, then its provider's own.
    fn hides(&self, tool: &str) -> Option<String> {
        let in_group = self.exposure.as_ref().map_or(Ok(()), |e| e.check(tool));
        in_group
            .and_then(|()| self.provider.check_exposed(tool))
            .err()
            .map(|hidden| hidden.to_string())
    }
}

/// A group as one call sees it: its members now, and what the group keeps across membership
/// changes.
///
/// Architecture invariant: a `Group` is immutable. When discovery adds or removes a member the
/// registry builds a new `Group` with [`Group::with_members`] and swaps it in with the rest of
/// its snapshot; the new one shares [`GroupCore`] (breaker, strategy, limits) and the
/// `Arc<Member>` of every member that stays (rotation standing, in-flight calls), and a call
/// under way finishes on the member list it started with.
pub struct Group {
    core: Arc<GroupCore>,
    members: Vec<Arc<Member>>,
}

/// What a group keeps whatever its members are.
struct GroupCore {
    spec: ProviderSpec,
    /// The native strategy; for `strategy: plugin:NAME`, round-robin, which the policy falls
    /// back to when it has no preference or fails.
    strategy: Mutex<Box<dyn Strategy>>,
    /// The policy plugin of `strategy: plugin:NAME`.
    policy: Option<Arc<PluginSlot>>,
    /// The group's own `validators:`, handed to the member with every call.
    validators: Option<Arc<GroupValidators>>,
    /// The group's own `tools: {allow_list, deny_list}`, over what its members offer.
    exposure: Option<ToolExposure>,
    /// The group's `rate_limit:`, over all its calls (each member's own applies as well).
    rate_limit: Option<RateLimit>,
    /// The group's `max_concurrency` / `max_queue`, over all its calls.
    slots: Option<Slots>,
    breaker: Mutex<CircuitBreaker>,
    bus: EventBus,
}

/// A group's state and members for display.
pub struct GroupSnapshot {
    pub id: String,
    pub strategy: String,
    pub state: GroupState,
    pub min_healthy: u32,
    pub breaker: String,
    pub members: Vec<MemberSnapshot>,
}

pub struct MemberSnapshot {
    pub id: String,
    pub state: ProviderState,
    pub weight: u32,
    pub priority: u32,
    pub in_rotation: bool,
    pub warming: bool,
    pub in_flight: u32,
    /// Failures in a row as the group counts them (calls, starts).
    pub consecutive_failures: u32,
    /// Joined through discovery rather than the config file's `members:`.
    pub discovered: bool,
}

impl Group {
    pub fn new(
        spec: ProviderSpec,
        members: &[(&GroupMember, &ProviderSpec)],
        providers: Vec<Arc<Provider>>,
        policy: Option<Arc<PluginSlot>>,
        validators: Vec<Arc<PluginSlot>>,
        bus: EventBus,
    ) -> Self {
        let group = spec
            .group
            .clone()
            .unwrap_or_else(|| unreachable!("a group spec"));
        let strategy = native_strategy(&group);
        let members = members
            .iter()
            .zip(providers)
            .map(|((m, _), provider)| {
                let exposure = ToolExposure::from_spec(
                    m.tool_filter.as_ref(),
                    &format!("{} in group {}", m.id, spec.id),
                );
                Arc::new(Member::new(provider, m.weight, m.priority, exposure, false))
            })
            .collect();
        let core = GroupCore {
            breaker: Mutex::new(CircuitBreaker::new(
                spec.circuit_breaker.failure_threshold,
                spec.circuit_breaker.reset_timeout,
            )),
            strategy: Mutex::new(strategy),
            policy,
            validators: (!validators.is_empty()).then(|| {
                Arc::new(GroupValidators {
                    group: spec.id.clone(),
                    validators,
                })
            }),
            exposure: ToolExposure::from_spec(spec.tool_filter.as_ref(), &spec.id),
            rate_limit: spec.rate_limit.as_ref().map(RateLimit::new),
            slots: spec
                .max_concurrency
                .map(|max| Slots::new(max, spec.max_queue)),
            spec,
            bus,
        };
        Self {
            core: Arc::new(core),
            members,
        }
    }

    /// The same group with `members` instead of its own: breaker, strategy, limits and policy
    /// are shared with `self`, so nothing the group has learnt is lost. Pass the `Arc<Member>`s
    /// of members that stay (from [`Group::members`]) to keep their standing in the rotation.
    pub fn with_members(&self, members: Vec<Arc<Member>>) -> Self {
        // The strategy's state is kept by member position, which the new list shifts: start it
        // afresh, as `rebalance` does.
        *self.core.strategy.lock().unwrap_or_else(|e| e.into_inner()) =
            native_strategy(self.group_spec());
        Self {
            core: Arc::clone(&self.core),
            members,
        }
    }

    pub fn id(&self) -> &str {
        &self.core.spec.id
    }

    pub fn spec(&self) -> &ProviderSpec {
        &self.core.spec
    }

    fn group_spec(&self) -> &GroupSpec {
        self.core
            .spec
            .group
            .as_ref()
            .unwrap_or_else(|| unreachable!("checked in new"))
    }

    fn thresholds(&self) -> Thresholds {
        let h = self.group_spec().health;
        Thresholds {
            unhealthy: h.unhealthy_threshold,
            healthy: h.healthy_threshold,
        }
    }

    /// Calls the group's own `rate_limit:` refused (0 without one).
    pub fn rate_limit_hits(&self) -> u64 {
        self.core.rate_limit.as_ref().map_or(0, RateLimit::hits)
    }

    pub fn members(&self) -> &[Arc<Member>] {
        &self.members
    }

    pub fn has_member(&self, id: &str) -> bool {
        self.members.iter().any(|m| m.provider.id() == id)
    }

    /// The tools the group offers: its own predefined ones if it has any, else every member's
    /// current tools that the member offers through the group (first member to offer a name
    /// wins); the group's own `tools:` policy applies to either.
    pub fn tools(&self) -> Vec<Tool> {
        let offered = |name: &str| self.core.exposure.as_ref().is_none_or(|e| e.exposes(name));
        if !self.core.spec.tools.is_empty() {
            return self
                .core
                .spec
                .tools
                .iter()
                .filter(|t| offered(&t.name))
                .map(crate::managed::tool_from_spec)
                .collect();
        }
        let mut tools: Vec<Tool> = Vec::new();
        for m in &self.members {
            for t in m.provider.tools().iter() {
                if offered(&t.name)
                    && m.exposure.as_ref().is_none_or(|e| e.exposes(&t.name))
                    && !tools.iter().any(|have| have.name == t.name)
                {
                    tools.push(t.clone());
                }
            }
        }
        tools
    }

    /// Records a member's success or failure; publishes a rotation change.
    pub fn record(&self, member: &str, success: bool) {
        let Some(m) = self.members.iter().find(|m| m.provider.id() == member) else {
            return;
        };
        let change = m
            .health()
            .record(success, Instant::now(), self.thresholds());
        if let Some(change) = change {
            let in_rotation = matches!(change, RotationChange::Rejoined);
            tracing::info!(
                group = %self.core.spec.id,
                member,
                "member {} the rotation",
                if in_rotation { "rejoined" } else { "left" }
            );
            self.core.bus.publish(Event::MemberRotation {
                group: self.core.spec.id.clone(),
                member: member.to_string(),
                in_rotation,
            });
        }
    }

    pub fn state(&self) -> GroupState {
        let view: Vec<(bool, bool)> = self
            .members
            .iter()
            .map(|m| (m.provider.state().is_running(), m.in_rotation()))
            .collect();
        rotation::group_state(&view, self.group_spec().min_healthy)
    }

    pub fn snapshot(&self) -> GroupSnapshot {
        let now = Instant::now();
        let failback = self.group_spec().failback_delay;
        GroupSnapshot {
            id: self.core.spec.id.clone(),
            strategy: self.group_spec().strategy.as_str().to_string(),
            state: self.state(),
            min_healthy: self.group_spec().min_healthy,
            breaker: self
                .core
                .breaker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .state()
                .as_str()
                .to_string(),
            members: self
                .members
                .iter()
                .map(|m| {
                    let h = m.health();
                    MemberSnapshot {
                        id: m.provider.id().to_string(),
                        state: m.provider.state(),
                        weight: m.weight,
                        priority: m.priority,
                        in_rotation: h.in_rotation(),
                        warming: h.in_rotation() && h.is_warming(now, failback),
                        in_flight: m.provider.in_flight(),
                        consecutive_failures: h.consecutive_failures(),
                        discovered: m.discovered,
                    }
                })
                .collect(),
        }
    }

    /// Puts every running member that is READY back into the rotation and resets the strategy.
    pub fn rebalance(&self) -> Vec<String> {
        let now = Instant::now();
        let mut rejoined = Vec::new();
        for m in &self.members {
            if m.provider.state() == ProviderState::Ready && !m.in_rotation() {
                m.health().force_rejoin(now);
                rejoined.push(m.provider.id().to_string());
                self.core.bus.publish(Event::MemberRotation {
                    group: self.core.spec.id.clone(),
                    member: m.provider.id().to_string(),
                    in_rotation: true,
                });
            }
        }
        *self.core.strategy.lock().unwrap_or_else(|e| e.into_inner()) =
            native_strategy(self.group_spec());
        rejoined
    }

    pub async fn start_all(&self) -> Result<(), InvokeError> {
        let starts = self
            .members
            .iter()
            .map(|m| async move { (m, m.provider.ensure_started(true).await) });
        let mut first_err = None;
        for (m, r) in futures::future::join_all(starts).await {
            self.record(m.provider.id(), r.is_ok());
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e)
                if self
                    .members
                    .iter()
                    .all(|m| !m.provider.state().is_running()) =>
            {
                Err(e)
            }
            _ => Ok(()),
        }
    }

    pub async fn stop_all(&self, reason: &str) -> bool {
        let stops = self.members.iter().map(|m| m.provider.stop(reason));
        futures::future::join_all(stops)
            .await
            .into_iter()
            .any(|b| b)
    }

    /// The members a pick may choose: those in the rotation and not yet tried if any, else
    /// (last resort, so a group whose members all left can still recover through real calls)
    /// any untried member. The flag says whether they are in the rotation.
    fn candidates(&self, tried: &[usize]) -> (Vec<Candidate>, bool) {
        let now = Instant::now();
        let failback = self.group_spec().failback_delay;
        let mut candidates = Vec::new();
        let mut outside = Vec::new();
        for (index, m) in self.members.iter().enumerate() {
            if tried.contains(&index) {
                continue;
            }
            let h = m.health();
            let c = Candidate {
                index,
                weight: m.weight,
                priority: m.priority,
                in_flight: m.provider.in_flight(),
                // A member still starting would make the call wait for its start: prefer others.
                warming: h.is_warming(now, failback)
                    || m.provider.state() == ProviderState::Initializing,
            };
            if h.in_rotation() {
                candidates.push(c);
            } else {
                outside.push(Candidate { warming: true, ..c });
            }
        }
        if candidates.is_empty() {
            (outside, false)
        } else {
            (candidates, true)
        }
    }

    /// Picks a member not yet tried with the native strategy.
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let (candidates, _) = self.candidates(tried);
        self.pick_native(&candidates)
    }

    fn pick_native(&self, candidates: &[Candidate]) -> Option<usize> {
        let random = rand::random::<u64>();
        self.core
            .strategy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pick(candidates, random)
    }

    /// Picks a member not yet tried through the group's policy plugin; the native strategy
    /// decides when the policy has no preference or failed open.
    async fn pick_with_policy(
        &self,
        policy: &PluginSlot,
        request: &ProviderCall,
        tried: &[usize],
    ) -> Result<Option<usize>, InvokeError> {
        let (candidates, in_rotation) = self.candidates(tried);
        if candidates.is_empty() {
            return Ok(None);
        }
        let members: Vec<plugin::Member> = candidates
            .iter()
            .map(|c| {
                let member = &self.members[c.index];
                plugin::Member {
                    id: Arc::clone(&member.policy_id),
                    key: member.policy_key,
                    weight: c.weight,
                    priority: c.priority,
                    in_flight: c.in_flight,
                    healthy: in_rotation && !c.warming,
                    ewma_latency_us: member.provider.ewma_latency_us(),
                }
            })
            .collect();
        let call = Arc::new(plugin::Invocation {
            provider: self.core.spec.id.clone(),
            tool: request.tool.clone(),
            arguments_json: request.arguments.as_ref().map_or_else(
                || "{}".to_owned(),
                |a| serde_json::to_string(a).unwrap_or_default(),
            ),
            session: request.session.clone(),
            meta: vec![("correlation-id".to_owned(), request.correlation_id.clone())],
        });
        match policy.pick(&call, &members).await {
            Ok(Some(i)) => Ok(candidates.get(i as usize).map(|c| c.index)),
            Ok(None) => Ok(self.pick_native(&candidates)),
            Err(err) => Err(InvokeError::PolicyFailed {
                group: self.core.spec.id.clone(),
                detail: err.to_string(),
            }),
        }
    }

    /// Calls a member; on a failure that reached no tool, retries on another member until one
    /// answers, none is left, or the deadline passes.
    pub async fn call(&self, request: ProviderCall) -> Result<CallToolResult, InvokeError> {
        let id = &self.core.spec.id;
        if let Some(Err(hidden)) = self.core.exposure.as_ref().map(|e| e.check(&request.tool)) {
            return Err(InvokeError::ToolNotExposed {
                provider: id.clone(),
                tool: request.tool.clone(),
                reason: hidden.to_string(),
            });
        }
        if let Some(rl) = &self.core.rate_limit
            && let Err(retry_after) = rl.check()
        {
            return Err(InvokeError::RateLimited {
                scope: format!("group `{id}`"),
                retry_after,
            });
        }
        // Taken before the breaker, so a call that only waited for a slot is not counted as the
        // group failing; held until the member answers.
        let _slot = match &self.core.slots {
            None => None,
            Some(slots) => match slots.acquire(request.deadline).await {
                Ok(permit) => Some(permit),
                Err(SlotError::TimedOut) => {
                    return Err(InvokeError::Timeout {
                        provider: id.clone(),
                        tool: request.tool.clone(),
                        limit: request.limit,
                    });
                }
                Err(SlotError::QueueFull { running, queued }) => {
                    return Err(InvokeError::Overloaded {
                        provider: id.clone(),
                        running,
                        queued,
                    });
                }
            },
        };
        let (permit, change) = {
            let mut b = self.core.breaker.lock().unwrap_or_else(|e| e.into_inner());
            match b.try_acquire(Instant::now()) {
                Ok(ok) => ok,
                Err(rejected) => {
                    drop(b);
                    self.publish_breaker(rejected.change);
                    return Err(InvokeError::CircuitOpen {
                        scope: format!("group `{}`", self.core.spec.id),
                        retry_after: rejected.retry_at.saturating_duration_since(Instant::now()),
                    });
                }
            }
        };
        self.publish_breaker(change);
        let result = self.call_members(request).await;
        let success = match &result {
            Ok(_) => true,
            Err(e) => {
                !(e.is_provider_failure() || matches!(e, InvokeError::NoHealthyMember { .. }))
            }
        };
        self.finish_breaker(permit, success);
        result
    }

    fn publish_breaker(&self, change: Option<crate::provider::breaker::BreakerChange>) {
        if let Some(c) = change {
            tracing::info!(group = %self.core.spec.id, "circuit breaker {} -> {}", c.from.as_str(), c.to.as_str());
            self.core.bus.publish(Event::BreakerChanged {
                scope: self.core.spec.id.clone(),
                from: c.from.as_str().to_string(),
                to: c.to.as_str().to_string(),
            });
        }
    }

    fn finish_breaker(&self, permit: Permit, success: bool) {
        let change = self
            .core
            .breaker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(permit, success, Instant::now());
        self.publish_breaker(change);
    }

    async fn call_members(&self, request: ProviderCall) -> Result<CallToolResult, InvokeError> {
        // A member that does not offer the tool through the group is never picked for it.
        let mut tried = Vec::new();
        let mut hidden = Vec::new();
        for (index, m) in self.members.iter().enumerate() {
            if let Some(why) = m.hides(&request.tool) {
                tried.push(index);
                hidden.push(format!("`{}`: {why}", m.provider.id()));
            }
        }
        if tried.len() == self.members.len() {
            return Err(InvokeError::ToolNotExposed {
                provider: self.core.spec.id.clone(),
                tool: request.tool.clone(),
                reason: format!("no member offers it: {}", hidden.join("; ")),
            });
        }
        let mut attempts = Vec::new();
        loop {
            let picked = match &self.core.policy {
                None => self.pick(&tried),
                Some(policy) => self.pick_with_policy(policy, &request, &tried).await?,
            };
            let Some(index) = picked else {
                return Err(InvokeError::NoHealthyMember {
                    group: self.core.spec.id.clone(),
                    attempts,
                });
            };
            tried.push(index);
            let member = &self.members[index];
            let attempt = ProviderCall {
                tool: request.tool.clone(),
                arguments: request.arguments.clone(),
                deadline: request.deadline,
                limit: request.limit,
                correlation_id: request.correlation_id.clone(),
                progress: request.progress.clone(),
                session: request.session.clone(),
                reply: request.reply.clone(),
                group_validators: self.core.validators.clone(),
                meta: request.meta.clone(),
                client: request.client.clone(),
            };
            match member.provider.call(attempt).await {
                Ok(r) => {
                    self.record(member.provider.id(), true);
                    return Ok(r);
                }
                Err(e) => {
                    let counts_against = e.is_provider_failure();
                    self.record(member.provider.id(), !counts_against);
                    // The client already has this member's answer (it went out before it was
                    // decoded): another member must not run the tool again.
                    let answered = request.reply.as_ref().is_some_and(|r| r.sent());
                    if e.allows_failover()
                        && !answered
                        && tokio::time::Instant::now() < request.deadline
                    {
                        tracing::info!(group = %self.core.spec.id, member = %member.provider.id(), "failing over: {e}");
                        attempts.push(format!("`{}`: {e}", member.provider.id()));
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }
}
