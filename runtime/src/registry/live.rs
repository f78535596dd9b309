//! The registry as a set that changes while it serves: an immutable [`Members`] snapshot,
//! replaced whole by [`Registry::apply`].
//!
//! Architecture invariant: a call loads the snapshot once and keeps the `Arc<Provider>` it
//! found, so a provider replaced or removed meanwhile finishes the calls it already has. The
//! old provider is then drained (up to `drain_timeout`) and stopped by a task of its own;
//! it refuses new starts from the moment it leaves the snapshot.
//!
//! Groups change the same way: a discovered provider that names a group joins it, and the
//! group is rebuilt ([`Group::with_members`]) into the next snapshot, keeping its breaker,
//! strategy and limits and the `Arc<Member>` (rotation standing) of every member that stays.
//! A group no config defines is made for its first discovered member and goes with its last.
//!
//! Deliberately absent: discovery never touches a provider of the config file (static ones
//! win every conflict), never removes a member the config file lists, and never changes a
//! config group's settings (strategy, limits, policy).

use std::sync::Arc;
use std::time::{Duration, Instant};

use indexmap::{IndexMap, IndexSet};

use super::{InvokeError, Provider, Registry, Target, closest};
use crate::config::ProviderSpec;
use crate::events::Event;
use crate::group::{self, Group, Member};

/// One consistent set of providers and groups.
pub struct Members {
    pub(super) providers: IndexMap<String, Arc<Provider>>,
    pub(super) groups: IndexMap<String, Arc<Group>>,
    /// Top-level ids: the config's (providers and groups) in file order, then discovered
    /// providers in the order they were registered. Inline group members are reachable by id
    /// but offer their tools only through their group.
    pub(super) top_level: Vec<String>,
    /// Where each discovered provider came from; a provider absent here is from the config.
    pub(super) origins: IndexMap<String, Origin>,
    /// Groups discovery made (no config group of that id): they go with their last member.
    pub(super) discovered_groups: IndexSet<String>,
}

/// Where a discovered provider came from, and which version of its spec runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The discovery source's name (`filesystem`, `docker`, `plugin:NAME`, …).
    pub source: String,
    /// sha256 of the spec's canonical form: equal fingerprints mean nothing changed.
    pub fingerprint: String,
    /// The group it joins, if it names one.
    pub membership: Option<Membership>,
}

/// A discovered provider's place in a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub group: String,
    /// 1–100, as a config member's `weight`.
    pub weight: u32,
}

/// Changes for [`Registry::apply`].
#[derive(Default)]
pub struct Diff {
    pub add: Vec<(ProviderSpec, Origin)>,
    /// Same id, new spec: the running one is drained, stopped and replaced.
    pub update: Vec<(ProviderSpec, Origin)>,
    /// (id, why): drained, stopped and removed.
    pub remove: Vec<(String, String)>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.update.is_empty() && self.remove.is_empty()
    }
}

/// What `apply` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    /// (id, why not): changes the registry refused.
    pub refused: Vec<(String, String)>,
    /// (group, member): discovered members that joined a group.
    pub joined: Vec<(String, String)>,
    /// (group, member): discovered members that left a group.
    pub left: Vec<(String, String)>,
    /// Groups made for discovered members, and groups gone with their last one.
    pub groups_created: Vec<String>,
    pub groups_removed: Vec<String>,
}

impl Applied {
    pub fn changed(&self) -> bool {
        !(self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty())
    }
}

impl Members {
    pub fn providers(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers.values()
    }

    pub fn groups(&self) -> impl Iterator<Item = &Arc<Group>> {
        self.groups.values()
    }

    /// Where the provider `id` was discovered; `None` for the config's and unknown ids.
    pub fn origin(&self, id: &str) -> Option<&Origin> {
        self.origins.get(id)
    }

    /// Whether `id` is a provider or group of the config file (or a group's member).
    pub fn is_static(&self, id: &str) -> bool {
        (self.providers.contains_key(id) || self.groups.contains_key(id))
            && !self.origins.contains_key(id)
            && !self.discovered_groups.contains(id)
    }

    /// Whether `id` is a group (of the config file, or made by discovery).
    pub fn is_group(&self, id: &str) -> bool {
        self.groups.contains_key(id)
    }

    /// Whether `id` is a provider (not a group), of the config file or discovered.
    pub fn is_provider(&self, id: &str) -> bool {
        self.providers.contains_key(id)
    }

    /// Whether the group `id` was made by discovery (no config group has this id).
    pub fn is_discovered_group(&self, id: &str) -> bool {
        self.discovered_groups.contains(id)
    }

    /// The ids of the groups provider `id` is a member of, in snapshot order.
    pub fn groups_of(&self, id: &str) -> Vec<String> {
        self.groups
            .values()
            .filter(|g| g.has_member(id))
            .map(|g| g.id().to_string())
            .collect()
    }

    pub(super) fn exposed(&self) -> Vec<(String, Option<String>, Arc<Vec<rmcp::model::Tool>>)> {
        self.top_level
            .iter()
            .filter_map(|id| {
                if let Some(g) = self.groups.get(id) {
                    Some((
                        id.clone(),
                        g.spec().tool_prefix.clone(),
                        Arc::new(g.tools()),
                    ))
                } else {
                    let p = self.providers.get(id)?;
                    Some((id.clone(), p.spec().tool_prefix.clone(), p.tools()))
                }
            })
            .collect()
    }

    pub(super) fn not_found(&self, id: &str) -> InvokeError {
        InvokeError::ProviderNotFound {
            provider: id.to_string(),
            suggestions: closest(
                id,
                self.providers
                    .keys()
                    .chain(self.groups.keys())
                    .map(String::as_str),
            ),
        }
    }

    pub(super) fn target(&self, id: &str) -> Result<Target, InvokeError> {
        if let Some(g) = self.groups.get(id) {
            return Ok(Target::Group(g.clone()));
        }
        match self.providers.get(id) {
            Some(p) => Ok(Target::Provider(p.clone())),
            None => Err(self.not_found(id)),
        }
    }

    fn clone_shallow(&self) -> Self {
        Self {
            providers: self.providers.clone(),
            groups: self.groups.clone(),
            top_level: self.top_level.clone(),
            origins: self.origins.clone(),
            discovered_groups: self.discovered_groups.clone(),
        }
    }
}

/// Membership changes of one group within one `apply`.
#[derive(Default)]
struct GroupEdit {
    /// Discovered members that leave (their ids).
    leave: Vec<String>,
    /// Discovered members that join, in the order they were found.
    join: Vec<Arc<Member>>,
    /// The source of the first member that joined, for a group made now.
    source: Option<String>,
}

impl Members {
    /// Why `id` may not join `membership`'s group, if it may not: a group id must not be a
    /// provider's, nor the member's own.
    fn membership_problem(&self, id: &str, membership: &Membership) -> Option<String> {
        let group = &membership.group;
        if group == id {
            return Some(format!(
                "`{id}` names itself as its group; a provider cannot be its own group"
            ));
        }
        if self.providers.contains_key(group) && !self.groups.contains_key(group) {
            let owner = self
                .origins
                .get(group)
                .map_or("the config file".to_string(), |o| {
                    format!("discovery source `{}`", o.source)
                });
            return Some(format!(
                "`{id}` asks to join group `{group}`, but `{group}` is a provider (registered by \
                 {owner}), not a group"
            ));
        }
        if !self.groups.contains_key(group)
            && let Err(why) = group::discovered_spec(group)
        {
            return Some(format!(
                "`{id}` names group `{group}`, which cannot be made: {why}"
            ));
        }
        None
    }

    /// Rebuilds the groups `edits` touch: members that stay keep their `Arc<Member>`, a group
    /// discovery made goes with its last member, a group nobody defines is made.
    fn edit_groups(
        &mut self,
        edits: IndexMap<String, GroupEdit>,
        shared: &super::Shared,
        applied: &mut Applied,
        events: &mut Vec<Event>,
    ) {
        for (id, edit) in edits {
            let existing = self.groups.get(&id).cloned();
            let mut members: Vec<Arc<Member>> = existing
                .as_ref()
                .map(|g| {
                    g.members()
                        .iter()
                        .filter(|m| {
                            !(m.is_discovered() && edit.leave.iter().any(|l| l == m.provider.id()))
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            members.extend(edit.join);
            match existing {
                Some(_) if members.is_empty() && self.discovered_groups.contains(&id) => {
                    self.groups.shift_remove(&id);
                    self.discovered_groups.shift_remove(&id);
                    self.top_level.retain(|t| *t != id);
                    events.push(Event::GroupRemoved {
                        group: id.clone(),
                        reason: "its last discovered member left".to_string(),
                    });
                    applied.groups_removed.push(id);
                }
                Some(group) => {
                    self.groups
                        .insert(id, Arc::new(group.with_members(members)));
                }
                None if members.is_empty() => {}
                None => {
                    let spec = match group::discovered_spec(&id) {
                        Ok(spec) => spec,
                        Err(why) => {
                            // `membership_problem` checked the id before any member joined.
                            tracing::error!(group = %id, "cannot make the group: {why}");
                            continue;
                        }
                    };
                    let group =
                        Group::new(spec, &[], Vec::new(), None, Vec::new(), shared.bus.clone())
                            .with_members(members);
                    self.groups.insert(id.clone(), Arc::new(group));
                    self.discovered_groups.insert(id.clone());
                    self.top_level.push(id.clone());
                    events.push(Event::GroupCreated {
                        group: id.clone(),
                        source: edit.source.unwrap_or_default(),
                    });
                    applied.groups_created.push(id);
                }
            }
        }
    }
}

impl Registry {
    /// Applies discovery's changes: builds the next snapshot and swaps it in, publishes one
    /// event per change (the gateway then tells clients `tools/list_changed`), and retires
    /// replaced or removed providers in the background: new calls go to the new snapshot at
    /// once, calls in flight get up to `drain_timeout` to finish before the old provider stops.
    ///
    /// A provider with a [`Membership`] is a member of its group instead of a top-level
    /// provider: it offers its tools only through the group. The groups whose members change
    /// are rebuilt into the same snapshot (see [`Group::with_members`]).
    ///
    /// Refused (and reported in [`Applied::refused`]): adding an id that exists, updating or
    /// removing a provider of the config file or an unknown id, and a membership whose group
    /// id is a provider's.
    pub fn apply(&self, diff: Diff, drain_timeout: Duration) -> Applied {
        let mut applied = Applied::default();
        let mut retired: Vec<(Arc<Provider>, String)> = Vec::new();
        let mut events = Vec::new();
        {
            let _gate = self.apply_gate.lock().unwrap_or_else(|e| e.into_inner());
            let current = self.members.load_full();
            let mut next = current.clone_shallow();
            let mut edits: IndexMap<String, GroupEdit> = IndexMap::new();
            let join = |edits: &mut IndexMap<String, GroupEdit>,
                        provider: &Arc<Provider>,
                        origin: &Origin| {
                if let Some(m) = &origin.membership {
                    let edit = edits.entry(m.group.clone()).or_default();
                    edit.join
                        .push(Arc::new(Member::discovered(provider.clone(), m.weight)));
                    edit.source.get_or_insert_with(|| origin.source.clone());
                }
            };
            for (spec, origin) in diff.add {
                let id = spec.id.clone();
                if next.providers.contains_key(&id) || next.groups.contains_key(&id) {
                    let owner = if next.discovered_groups.contains(&id) {
                        "discovery (a group its members name)".to_string()
                    } else {
                        next.origins
                            .get(&id)
                            .map_or("the config file".to_string(), |o| {
                                format!("discovery source `{}`", o.source)
                            })
                    };
                    applied
                        .refused
                        .push((id, format!("the id is already registered by {owner}")));
                    continue;
                }
                if let Some(why) = origin
                    .membership
                    .as_ref()
                    .and_then(|m| next.membership_problem(&id, m))
                {
                    applied.refused.push((id, why));
                    continue;
                }
                let provider = Arc::new(Provider::new(spec, self.shared.clone()));
                next.providers.insert(id.clone(), provider.clone());
                events.push(Event::ProviderRegistered {
                    provider: id.clone(),
                    source: origin.source.clone(),
                });
                match &origin.membership {
                    None => next.top_level.push(id.clone()),
                    Some(m) => {
                        join(&mut edits, &provider, &origin);
                        events.push(Event::GroupMemberJoined {
                            group: m.group.clone(),
                            member: id.clone(),
                            source: origin.source.clone(),
                            weight: m.weight,
                        });
                        applied.joined.push((m.group.clone(), id.clone()));
                    }
                }
                next.origins.insert(id.clone(), origin);
                applied.added.push(id);
            }
            for (spec, origin) in diff.update {
                let id = spec.id.clone();
                let Some(old_origin) = next.origins.get(&id).cloned() else {
                    let why = if next.providers.contains_key(&id) || next.groups.contains_key(&id) {
                        "it is defined in the config file, which discovery never changes"
                    } else {
                        "no discovered provider has this id"
                    };
                    applied.refused.push((id, why.to_string()));
                    continue;
                };
                if old_origin == origin {
                    continue; // same source, same fingerprint: nothing to restart
                }
                if let Some(why) = origin
                    .membership
                    .as_ref()
                    .and_then(|m| next.membership_problem(&id, m))
                {
                    applied.refused.push((id, why));
                    continue;
                }
                let provider = Arc::new(Provider::new(spec, self.shared.clone()));
                if let Some(old) = next.providers.insert(id.clone(), provider.clone()) {
                    retired.push((old, "spec changed".to_string()));
                }
                // The replaced provider leaves its group and the new one joins (the same
                // group, or the one it names now).
                let old_group = old_origin.membership.as_ref().map(|m| m.group.clone());
                let new_group = origin.membership.as_ref().map(|m| m.group.clone());
                if let Some(g) = &old_group {
                    edits.entry(g.clone()).or_default().leave.push(id.clone());
                }
                join(&mut edits, &provider, &origin);
                if old_group != new_group {
                    if let Some(g) = old_group {
                        events.push(Event::GroupMemberLeft {
                            group: g.clone(),
                            member: id.clone(),
                            reason: "its spec now names another group or none".to_string(),
                        });
                        applied.left.push((g, id.clone()));
                    } else {
                        next.top_level.retain(|t| *t != id);
                    }
                    if let Some(m) = &origin.membership {
                        events.push(Event::GroupMemberJoined {
                            group: m.group.clone(),
                            member: id.clone(),
                            source: origin.source.clone(),
                            weight: m.weight,
                        });
                        applied.joined.push((m.group.clone(), id.clone()));
                    } else {
                        next.top_level.push(id.clone());
                    }
                }
                events.push(Event::ProviderUpdated {
                    provider: id.clone(),
                    source: origin.source.clone(),
                    fingerprint: origin.fingerprint.clone(),
                });
                next.origins.insert(id.clone(), origin);
                applied.updated.push(id);
            }
            for (id, reason) in diff.remove {
                let Some(origin) = next.origins.shift_remove(&id) else {
                    let why = if next.providers.contains_key(&id) {
                        "it is defined in the config file, which discovery never changes"
                    } else {
                        "no discovered provider has this id"
                    };
                    applied.refused.push((id, why.to_string()));
                    continue;
                };
                if let Some(old) = next.providers.shift_remove(&id) {
                    retired.push((old, reason.clone()));
                }
                next.top_level.retain(|t| *t != id);
                if let Some(m) = &origin.membership {
                    edits
                        .entry(m.group.clone())
                        .or_default()
                        .leave
                        .push(id.clone());
                    events.push(Event::GroupMemberLeft {
                        group: m.group.clone(),
                        member: id.clone(),
                        reason: reason.clone(),
                    });
                    applied.left.push((m.group.clone(), id.clone()));
                }
                events.push(Event::ProviderDeregistered {
                    provider: id.clone(),
                    source: origin.source,
                    reason,
                });
                applied.removed.push(id);
            }
            next.edit_groups(edits, &self.shared, &mut applied, &mut events);
            if applied.changed() {
                self.members.store(Arc::new(next));
            }
        }
        for event in events {
            self.shared.bus.publish(event);
        }
        if !retired.is_empty() {
            let mut tasks = self.retiring.lock().unwrap_or_else(|e| e.into_inner());
            tasks.retain(|t| !t.is_finished());
            for (old, reason) in retired {
                old.retire();
                tasks.push(tokio::spawn(drain_and_stop(old, reason, drain_timeout)));
            }
        }
        applied
    }
}

/// Lets the calls a provider has finish (up to `timeout`), then stops it.
async fn drain_and_stop(provider: Arc<Provider>, reason: String, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while provider.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = provider.in_flight();
    if left > 0 {
        tracing::warn!(
            provider = %provider.id(),
            "{left} call(s) still in flight after {}s of draining; stopping it",
            timeout.as_secs()
        );
    }
    provider.stop(&format!("discovery: {reason}")).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, ProviderMode};
    use crate::events::EventBus;

    fn origin(fp: &str) -> Origin {
        Origin {
            source: "filesystem".into(),
            fingerprint: fp.into(),
            membership: None,
        }
    }

    fn member_of(group: &str, weight: u32, fp: &str) -> Origin {
        Origin {
            membership: Some(Membership {
                group: group.into(),
                weight,
            }),
            ..origin(fp)
        }
    }

    fn member_ids(reg: &Registry, group: &str) -> Vec<String> {
        reg.group(group)
            .map(|g| {
                g.members()
                    .iter()
                    .map(|m| m.provider.id().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn exposed_ids(reg: &Registry) -> Vec<String> {
        reg.exposed().into_iter().map(|(id, _, _)| id).collect()
    }

    fn grouped_registry() -> Arc<Registry> {
        let config = config::parse(
            "mcp_servers:\n  math:\n    command: [x]\n  pool:\n    mode: group\n    strategy: weighted_round_robin\n    members:\n      - {id: a, command: [x]}\n",
            std::path::Path::new("h.yaml"),
            &|_| None,
        )
        .unwrap();
        Registry::new(&config, EventBus::new())
    }

    #[tokio::test]
    async fn a_discovered_member_joins_a_config_group_and_members_that_stay_keep_their_state() {
        let reg = grouped_registry();
        let mut rx = reg.bus().subscribe();
        let pool = reg.group("pool").unwrap();
        // `a` fails twice: it leaves the rotation (the default unhealthy_threshold).
        pool.record("a", false);
        pool.record("a", false);
        assert!(!pool.members()[0].in_rotation());

        let applied = reg.apply(
            Diff {
                add: vec![(spec("d1"), member_of("pool", 3, "1"))],
                ..Diff::default()
            },
            Duration::ZERO,
        );
        assert_eq!(applied.joined, [("pool".to_string(), "d1".to_string())]);
        assert_eq!(member_ids(&reg, "pool"), ["a", "d1"]);
        let next = reg.group("pool").unwrap();
        assert!(!Arc::ptr_eq(&pool, &next), "a new group snapshot");
        assert!(
            Arc::ptr_eq(&pool.members()[0], &next.members()[0]),
            "the static member is the same member, not a copy"
        );
        assert!(!next.members()[0].in_rotation(), "its standing is kept");
        assert_eq!(next.members()[1].weight, 3);
        assert!(next.members()[1].is_discovered());
        // A member offers its tools through the group only.
        assert_eq!(exposed_ids(&reg), ["math", "pool"]);
        assert!(reg.provider("d1").is_some(), "reachable by id");
        assert!(!reg.members().is_static("d1"));
        let mut saw_join = false;
        while let Ok(env) = rx.try_recv() {
            saw_join |= matches!(env.event, Event::GroupMemberJoined { ref group, ref member, weight: 3, .. } if group == "pool" && member == "d1");
        }
        assert!(saw_join, "a GroupMemberJoined event");

        // A second member joins: the first discovered member keeps its Arc too.
        reg.apply(
            Diff {
                add: vec![(spec("d2"), member_of("pool", 1, "2"))],
                ..Diff::default()
            },
            Duration::ZERO,
        );
        let third = reg.group("pool").unwrap();
        assert!(Arc::ptr_eq(&next.members()[1], &third.members()[1]));

        // d1 leaves: it is retired; a call that loaded the old snapshot still has it.
        let d1 = reg.provider("d1").unwrap();
        let applied = reg.apply(
            Diff {
                remove: vec![("d1".into(), "gone".into())],
                ..Diff::default()
            },
            Duration::ZERO,
        );
        assert_eq!(applied.left, [("pool".to_string(), "d1".to_string())]);
        assert_eq!(member_ids(&reg, "pool"), ["a", "d2"]);
        assert!(third.has_member("d1"), "the old snapshot is untouched");
        assert!(
            d1.refuses_starts(),
            "the removed member drains like a removed provider"
        );
        let mut saw_left = false;
        while let Ok(env) = rx.try_recv() {
            saw_left |=
                matches!(env.event, Event::GroupMemberLeft { ref member, .. } if member == "d1");
        }
        assert!(saw_left, "a GroupMemberLeft event");
    }

    #[tokio::test]
    async fn discovery_never_removes_a_static_member_and_keeps_ids_apart() {
        let reg = grouped_registry();
        let applied = reg.apply(
            Diff {
                remove: vec![("a".into(), "x".into())],
                add: vec![
                    (spec("pool"), origin("1")),
                    (spec("d1"), member_of("math", 1, "1")),
                    (spec("d2"), member_of("d2", 1, "1")),
                ],
                ..Diff::default()
            },
            Duration::ZERO,
        );
        let refused: Vec<&str> = applied.refused.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(refused, ["pool", "d1", "d2", "a"], "{:?}", applied.refused);
        assert!(
            applied.refused[1].1.contains("`math` is a provider"),
            "{:?}",
            applied.refused
        );
        assert!(applied.refused[3].1.contains("config file"));
        assert!(!applied.changed());
        assert_eq!(member_ids(&reg, "pool"), ["a"]);
    }

    #[tokio::test]
    async fn a_group_nobody_defines_is_made_for_its_members_and_goes_with_the_last() {
        let reg = grouped_registry();
        let applied = reg.apply(
            Diff {
                add: vec![
                    (spec("w1"), member_of("workers", 1, "1")),
                    (spec("w2"), member_of("workers", 2, "1")),
                ],
                ..Diff::default()
            },
            Duration::ZERO,
        );
        assert_eq!(applied.groups_created, ["workers"]);
        assert_eq!(member_ids(&reg, "workers"), ["w1", "w2"]);
        assert_eq!(exposed_ids(&reg), ["math", "pool", "workers"]);
        let workers = reg.group("workers").unwrap();
        // What a config group with only `members:` gets.
        let group = workers.spec().group.as_ref().unwrap();
        assert_eq!(group.strategy, crate::config::GroupStrategy::RoundRobin);
        assert_eq!(group.min_healthy, 1);
        assert!(reg.members().is_discovered_group("workers"));
        assert!(!reg.members().is_static("workers"));

        // w2 moves to the config group: it leaves `workers` and joins `pool`.
        let applied = reg.apply(
            Diff {
                update: vec![(spec("w2"), member_of("pool", 2, "2"))],
                ..Diff::default()
            },
            Duration::ZERO,
        );
        assert_eq!(applied.left, [("workers".to_string(), "w2".to_string())]);
        assert_eq!(applied.joined, [("pool".to_string(), "w2".to_string())]);
        assert_eq!(member_ids(&reg, "workers"), ["w1"]);
        assert_eq!(member_ids(&reg, "pool"), ["a", "w2"]);

        let applied = reg.apply(
            Diff {
                remove: vec![("w1".into(), "gone".into())],
                ..Diff::default()
            },
            Duration::ZERO,
        );
        assert_eq!(applied.groups_removed, ["workers"]);
        assert!(reg.group("workers").is_none());
        assert_eq!(exposed_ids(&reg), ["math", "pool"]);

        // The config group keeps its static member when its last discovered one leaves.
        reg.apply(
            Diff {
                remove: vec![("w2".into(), "gone".into())],
                ..Diff::default()
            },
            Duration::ZERO,
        );
        assert_eq!(member_ids(&reg, "pool"), ["a"]);
        assert!(reg.group("pool").is_some());
    }

    fn spec(id: &str) -> ProviderSpec {
        ProviderSpec::new(id, ProviderMode::Subprocess)
    }

    #[tokio::test]
    async fn apply_adds_updates_on_a_new_fingerprint_only_and_never_touches_static_providers() {
        let config = config::parse(
            "mcp_servers:\n  math:\n    command: [x]\n",
            std::path::Path::new("h.yaml"),
            &|_| None,
        )
        .unwrap();
        let reg = Registry::new(&config, EventBus::new());
        let mut rx = reg.bus().subscribe();

        let diff = Diff {
            add: vec![(spec("echo"), origin("a")), (spec("math"), origin("a"))],
            ..Diff::default()
        };
        let applied = reg.apply(diff, Duration::ZERO);
        assert_eq!(applied.added, ["echo"]);
        assert_eq!(applied.refused[0].0, "math");
        assert!(applied.refused[0].1.contains("config file"));
        let first = reg.provider("echo").unwrap();
        assert_eq!(reg.members().origin("echo"), Some(&origin("a")));
        assert!(matches!(
            rx.try_recv().unwrap().event,
            Event::ProviderRegistered { ref provider, .. } if provider == "echo"
        ));

        // Same source, same fingerprint: unchanged, the same provider keeps serving.
        let same = Diff {
            update: vec![(spec("echo"), origin("a"))],
            ..Diff::default()
        };
        assert!(!reg.apply(same, Duration::ZERO).changed());
        assert!(Arc::ptr_eq(&first, &reg.provider("echo").unwrap()));

        // A new fingerprint replaces it; the old one refuses starts from then on.
        let changed = Diff {
            update: vec![(spec("echo"), origin("b"))],
            ..Diff::default()
        };
        assert_eq!(reg.apply(changed, Duration::ZERO).updated, ["echo"]);
        assert!(!Arc::ptr_eq(&first, &reg.provider("echo").unwrap()));
        assert!(first.refuses_starts());

        let remove = Diff {
            remove: vec![("echo".into(), "gone".into()), ("math".into(), "x".into())],
            ..Diff::default()
        };
        let applied = reg.apply(remove, Duration::ZERO);
        assert_eq!(applied.removed, ["echo"]);
        assert_eq!(applied.refused.len(), 1, "the static provider stays");
        assert!(reg.provider("echo").is_none());
        assert!(reg.provider("math").is_some());
        assert_eq!(reg.exposed().len(), 1);
    }
}
