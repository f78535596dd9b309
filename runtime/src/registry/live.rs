//! The registry as a set that changes while it serves: an immutable [`Members`] snapshot,
//! replaced whole by [`Registry::apply`].
//!
//! Architecture invariant: a call loads the snapshot once and keeps the `Arc<Provider>` it
//! found, so a provider replaced or removed meanwhile finishes the calls it already has. The
//! old provider is then drained (up to `drain_timeout`) and stopped by a task of its own;
//! it refuses new starts from the moment it leaves the snapshot.
//!
//! Deliberately absent: discovery never touches a provider of the config file (static ones
//! win every conflict), and never changes a group.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use super::{InvokeError, Provider, Registry, Target, closest};
use crate::config::ProviderSpec;
use crate::events::Event;
use crate::group::Group;

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
}

/// Where a discovered provider came from, and which version of its spec runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The discovery source's name (`filesystem`, `docker`, `plugin:NAME`, …).
    pub source: String,
    /// sha256 of the spec's canonical form: equal fingerprints mean nothing changed.
    pub fingerprint: String,
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
        }
    }
}

impl Registry {
    /// Applies discovery's changes: builds the next snapshot and swaps it in, publishes one
    /// event per change (the gateway then tells clients `tools/list_changed`), and retires
    /// replaced or removed providers in the background: new calls go to the new snapshot at
    /// once, calls in flight get up to `drain_timeout` to finish before the old provider stops.
    ///
    /// Refused (and reported in [`Applied::refused`]): adding an id that exists, and updating
    /// or removing a provider of the config file or an unknown id.
    pub fn apply(&self, diff: Diff, drain_timeout: Duration) -> Applied {
        let mut applied = Applied::default();
        let mut retired: Vec<(Arc<Provider>, String)> = Vec::new();
        let mut events = Vec::new();
        {
            let _gate = self.apply_gate.lock().unwrap_or_else(|e| e.into_inner());
            let current = self.members.load_full();
            let mut next = current.clone_shallow();
            for (spec, origin) in diff.add {
                let id = spec.id.clone();
                if next.providers.contains_key(&id) || next.groups.contains_key(&id) {
                    let owner = next
                        .origins
                        .get(&id)
                        .map_or("the config file".to_string(), |o| {
                            format!("discovery source `{}`", o.source)
                        });
                    applied
                        .refused
                        .push((id, format!("the id is already registered by {owner}")));
                    continue;
                }
                let provider = Arc::new(Provider::new(spec, self.shared.clone()));
                next.providers.insert(id.clone(), provider);
                next.top_level.push(id.clone());
                events.push(Event::ProviderRegistered {
                    provider: id.clone(),
                    source: origin.source.clone(),
                });
                next.origins.insert(id.clone(), origin);
                applied.added.push(id);
            }
            for (spec, origin) in diff.update {
                let id = spec.id.clone();
                let Some(old_origin) = next.origins.get(&id) else {
                    let why = if next.providers.contains_key(&id) || next.groups.contains_key(&id) {
                        "it is defined in the config file, which discovery never changes"
                    } else {
                        "no discovered provider has this id"
                    };
                    applied.refused.push((id, why.to_string()));
                    continue;
                };
                if *old_origin == origin {
                    continue; // same source, same fingerprint: nothing to restart
                }
                let provider = Arc::new(Provider::new(spec, self.shared.clone()));
                if let Some(old) = next.providers.insert(id.clone(), provider) {
                    retired.push((old, "spec changed".to_string()));
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
                events.push(Event::ProviderDeregistered {
                    provider: id.clone(),
                    source: origin.source,
                    reason,
                });
                applied.removed.push(id);
            }
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
        }
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
