//! The plugins of one hangar: loaded at start, looked up by name by providers (validators) and
//! groups (policies), and swapped when their files change.
//!
//! A plugin that fails to load does not stop the hangar: its slot stays empty, its error is
//! kept for `registry_plugins` and the log, and its `on_error` decides what the calls that
//! need it get (a validator: refused or let through; a policy: the native strategy). When its
//! file changes it is loaded again.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use indexmap::IndexMap;
use notify::Watcher as _;

use super::{HostOptions, PluginStats};
use super::{Invocation, Member, Plugin, PluginError, PluginErrorKind, PluginHost, Verdict};
use crate::config::{Config, OnError, PluginKind, PluginSpec};

/// Changes to a plugin file are gathered for this long before it is loaded again, so an editor
/// or a copy that writes in several steps causes one reload, of the finished file.
const SETTLE: Duration = Duration::from_millis(150);

/// One configured plugin: the loaded one in service, or why there is none.
pub struct PluginSlot {
    spec: Arc<PluginSpec>,
    plugin: ArcSwapOption<Plugin>,
    load_error: Mutex<Option<PluginError>>,
    /// `true` once the first load has finished, well or not. Calls wait for it, so a hangar
    /// that loads its plugins in the background never lets a call skip a validator that is
    /// still compiling.
    settled: tokio::sync::watch::Sender<bool>,
}

/// A plugin's standing, for `registry_plugins`.
#[derive(Clone, Debug)]
pub struct PluginStatus {
    pub name: String,
    pub kind: PluginKind,
    /// The file (or `bundled:NAME`).
    pub path: String,
    pub on_error: OnError,
    /// The version in service (1 at load, +1 per hot swap); `None` when none loaded.
    pub version: Option<u64>,
    /// Why the plugin is not loaded, or why its last reload was refused.
    pub last_error: Option<String>,
    pub stats: PluginStats,
}

impl PluginSlot {
    fn new(spec: PluginSpec) -> Self {
        Self {
            spec: Arc::new(spec),
            plugin: ArcSwapOption::empty(),
            load_error: Mutex::new(None),
            settled: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Waits for the first load to finish (at once after it has).
    async fn settled(&self) {
        if *self.settled.borrow() {
            return;
        }
        let mut rx = self.settled.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|settled| *settled).await;
    }

    /// A slot for a name no loaded config defines: every call through it counts as failed,
    /// with the kind's default `on_error` (a validator refuses, a policy falls back).
    /// (`config::load` refuses such names; this keeps a registry built from a config alone,
    /// without its plugins, from letting calls through unchecked.)
    pub fn missing(name: &str, kind: PluginKind) -> Self {
        let slot = Self::new(PluginSpec::new(
            name,
            kind,
            PathBuf::new(),
            Default::default(),
        ));
        slot.set_error(Some(PluginError::new(
            name,
            PluginErrorKind::Load,
            "no such plugin was loaded into this registry",
        )));
        slot.settled.send_replace(true);
        slot
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn kind(&self) -> PluginKind {
        self.spec.kind
    }

    /// The plugin in service, if one loaded.
    pub fn plugin(&self) -> Option<Arc<Plugin>> {
        self.plugin.load_full()
    }

    fn set_error(&self, error: Option<PluginError>) {
        *self.load_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }

    fn last_error(&self) -> Option<PluginError> {
        self.load_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn not_loaded(&self) -> PluginError {
        let why = self
            .last_error()
            .map_or_else(|| "it has not loaded".to_owned(), |e| e.message);
        PluginError::new(
            self.name(),
            PluginErrorKind::Load,
            format!("is not loaded ({why}); fix its file and it is loaded when the file changes"),
        )
    }

    /// Runs the validator on `call`; a plugin that is not loaded counts as failed, and its
    /// `on_error` decides.
    pub async fn validate(&self, call: &Arc<Invocation>) -> Verdict {
        self.settled().await;
        match self.plugin() {
            Some(plugin) => plugin.validate(call).await,
            None => match self.spec.on_error {
                OnError::FailOpen => Verdict::Allow,
                OnError::FailClosed => Verdict::Deny(format!(
                    "validator plugin `{}` {}, so the call is refused (its `on_error` is \
                     fail_closed)",
                    self.name(),
                    self.not_loaded().message
                )),
            },
        }
    }

    /// Asks the policy for a member: `Ok(None)` leaves the pick to the native strategy (the
    /// policy had no preference, or failed with `on_error: fail_open`).
    ///
    /// # Errors
    ///
    /// With `on_error: fail_closed`, a failed pick (or a policy that is not loaded).
    pub async fn pick(
        &self,
        call: &Arc<Invocation>,
        members: &[Member],
    ) -> Result<Option<u32>, PluginError> {
        self.settled().await;
        match self.plugin() {
            Some(plugin) => plugin.pick(call, members).await,
            None => match self.spec.on_error {
                OnError::FailOpen => Ok(None),
                OnError::FailClosed => Err(self.not_loaded()),
            },
        }
    }

    pub fn status(&self) -> PluginStatus {
        let plugin = self.plugin();
        PluginStatus {
            name: self.spec.name.clone(),
            kind: self.spec.kind,
            path: self.spec.path.display().to_string(),
            on_error: self.spec.on_error,
            version: plugin.as_ref().map(|p| p.version()),
            last_error: self.last_error().map(|e| e.to_string()),
            stats: plugin.map(|p| p.stats()).unwrap_or_default(),
        }
    }
}

/// Every plugin of the config, by name.
pub struct PluginSet {
    host: Option<PluginHost>,
    slots: IndexMap<String, Arc<PluginSlot>>,
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    /// Where loads, swaps and failures are published (`serve`'s bus); none for `check`.
    events: Option<crate::events::EventBus>,
}

impl PluginSet {
    /// No plugins (a config without `plugins:`, and tests).
    pub fn empty() -> Arc<Self> {
        Arc::new(Self {
            host: None,
            slots: IndexMap::new(),
            watcher: Mutex::new(None),
            events: None,
        })
    }

    /// Loads every plugin of `config`, all at once, and returns when all have loaded or
    /// failed. A plugin that fails is logged and left empty; so is every plugin when the host
    /// itself cannot start.
    pub async fn load(config: &Config) -> Arc<Self> {
        let set = Self::new(config, None);
        set.load_all().await;
        set
    }

    /// Loads every plugin of `config` in the background; calls that need a plugin wait for
    /// its load to finish. The hangar serves at once this way, however long compiling takes.
    /// Loads, hot swaps and failures are published on `bus`.
    pub fn spawn_load(config: &Config, bus: &crate::events::EventBus) -> Arc<Self> {
        let set = Self::new(config, Some(bus.clone()));
        let loading = Arc::clone(&set);
        tokio::spawn(async move { loading.load_all().await });
        set
    }

    async fn load_all(&self) {
        let loads = self.slots.values().map(|slot| self.load_slot(slot));
        futures::future::join_all(loads).await;
    }

    /// The slots of `config`'s plugins, none loaded yet.
    fn new(config: &Config, events: Option<crate::events::EventBus>) -> Arc<Self> {
        if config.plugins.is_empty() {
            return Self::empty();
        }
        let slots: IndexMap<String, Arc<PluginSlot>> = config
            .plugins
            .iter()
            .map(|(name, spec)| (name.clone(), Arc::new(PluginSlot::new(spec.clone()))))
            .collect();
        let host =
            match PluginHost::with_options(&HostOptions::for_plugins(config.plugins.values())) {
                Ok(host) => Some(host),
                Err(err) => {
                    tracing::error!("{err}; no plugin is loaded");
                    for slot in slots.values() {
                        slot.set_error(Some(PluginError::new(
                            slot.name(),
                            PluginErrorKind::Load,
                            err.to_string(),
                        )));
                    }
                    None
                }
            };
        Arc::new(Self {
            host,
            slots,
            watcher: Mutex::new(None),
            events,
        })
    }

    /// Loads `slot` from its spec, or reloads the plugin in service. Keeps the old version
    /// and records why when the new one does not load.
    async fn load_slot(&self, slot: &PluginSlot) -> Result<u64, PluginError> {
        let Some(host) = &self.host else {
            slot.settled.send_replace(true);
            let err = slot.not_loaded();
            self.publish(crate::events::Event::PluginLoadFailed {
                plugin: slot.name().to_owned(),
                error: err.to_string(),
                in_service: None,
            });
            return Err(err);
        };
        let result = match slot.plugin() {
            Some(plugin) => plugin.reload().await,
            None => match host.load(&slot.spec).await {
                Ok(plugin) => {
                    let version = plugin.version();
                    slot.plugin.store(Some(Arc::new(plugin)));
                    Ok(version)
                }
                Err(err) => Err(err),
            },
        };
        match &result {
            Ok(version) => {
                slot.set_error(None);
                tracing::info!(plugin = slot.name(), kind = %slot.kind(), version, "plugin loaded from {}", slot.spec.path.display());
            }
            Err(err) => {
                slot.set_error(Some(err.clone()));
                match slot.plugin() {
                    Some(plugin) => tracing::error!(
                        plugin = slot.name(),
                        "{err}; version {} stays in service",
                        plugin.version()
                    ),
                    None => tracing::error!(
                        plugin = slot.name(),
                        "{err}; calls that need it get its on_error ({})",
                        slot.spec.on_error.as_str()
                    ),
                }
            }
        }
        self.publish(match &result {
            Ok(version) => crate::events::Event::PluginLoaded {
                plugin: slot.name().to_owned(),
                kind: slot.kind().to_string(),
                version: *version,
            },
            Err(err) => crate::events::Event::PluginLoadFailed {
                plugin: slot.name().to_owned(),
                error: err.to_string(),
                in_service: slot.plugin().map(|p| p.version()),
            },
        });
        slot.settled.send_replace(true);
        result
    }

    fn publish(&self, event: crate::events::Event) {
        if let Some(bus) = &self.events {
            bus.publish(event);
        }
    }

    /// The plugin slot called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<PluginSlot>> {
        self.slots.get(name).cloned()
    }

    pub fn slots(&self) -> impl Iterator<Item = &Arc<PluginSlot>> {
        self.slots.values()
    }

    /// Loads plugin `name` from its file again now (what a change of the file does).
    ///
    /// # Errors
    ///
    /// An unknown name, or the load error (the old version stays in service).
    pub async fn reload(&self, name: &str) -> Result<u64, PluginError> {
        let slot = self.get(name).ok_or_else(|| {
            PluginError::new(name, PluginErrorKind::Load, "no such plugin".to_owned())
        })?;
        self.load_slot(&slot).await
    }

    /// Watches the plugins' files and reloads a plugin when its file is written, replaced or
    /// created. Bundled plugins have no file. Stops when the set is dropped.
    ///
    /// # Errors
    ///
    /// When the OS refuses to watch a plugin's directory.
    pub fn watch(self: &Arc<Self>) -> Result<(), String> {
        let mut by_path: HashMap<PathBuf, Vec<String>> = HashMap::new();
        for slot in self.slots.values() {
            if slot.spec.bundled_name().is_none() {
                by_path
                    .entry(slot.spec.path.clone())
                    .or_default()
                    .push(slot.name().to_owned());
            }
        }
        if by_path.is_empty() {
            return Ok(());
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && !matches!(event.kind, notify::EventKind::Access(_))
                {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            })
            .map_err(|err| format!("cannot watch plugin files: {err}"))?;
        // Directories, not files: editors and `cp` often replace a file instead of writing it,
        // and a watch on the old file would miss the new one.
        let dirs: HashSet<&Path> = by_path.keys().filter_map(|p| p.parent()).collect();
        for dir in dirs {
            watcher
                .watch(dir, notify::RecursiveMode::NonRecursive)
                .map_err(|err| format!("cannot watch {}: {err}", dir.display()))?;
        }
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(watcher);
        tokio::spawn(reload_on_change(Arc::downgrade(self), by_path, rx));
        Ok(())
    }
}

/// Gathers changed paths until they settle, then reloads the plugins whose files they are.
async fn reload_on_change(
    set: Weak<PluginSet>,
    by_path: HashMap<PathBuf, Vec<String>>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
) {
    while let Some(first) = rx.recv().await {
        let mut changed = HashSet::from([first]);
        while let Ok(Some(path)) = tokio::time::timeout(SETTLE, rx.recv()).await {
            changed.insert(path);
        }
        let Some(set) = set.upgrade() else { return };
        for path in changed {
            for name in by_path.get(&path).into_iter().flatten() {
                tracing::info!(plugin = %name, "{} changed; loading it again", path.display());
                // The outcome is logged and kept in the slot by `load_slot`.
                let _ = set.reload(name).await;
            }
        }
    }
}
