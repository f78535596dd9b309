//! The discovery engine: its sources, what it knows of each discovered provider, and the loop.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use indexmap::{IndexMap, IndexSet};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{health, spec, watch};
use crate::config::{
    Config, DiscoverySpec, GrantSettings, PluginConfig, PluginGrant, PluginKind, PluginSpec,
    Preopen, ProviderSpec, SourceMode, SourceSpec, SourceType,
};
use crate::events::Event;
use crate::plugin::{DiscoveredProvider, Plugin, PluginHost, PluginSet};
use crate::registry::{Diff, Members, Membership, Origin, Registry};

/// Deadline of one `discover` of a bundled source (an operator's plugin has its own
/// `timeout_ms`, and this as a backstop).
pub const DISCOVER_DEADLINE: Duration = Duration::from_secs(10);
/// Where the filesystem source looks when its `path:` is not set.
pub const DEFAULT_FILESYSTEM_PATH: &str = "/etc/mcp-hangar/providers.d";

/// Why a discovered provider is held out of the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldReason {
    /// The source may not register it: namespace rules, or over `max_providers_per_source`.
    FailedSource,
    /// `require_health_check`: it did not start or list its tools.
    FailedHealth,
    /// Its spec fails the config file's rules.
    FailedSchema,
    /// Over `max_registration_rate`.
    FailedRateLimit,
}

/// Where a discovered provider stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Standing {
    Registered,
    /// `auto_register: false`: waiting for `registry_approve`.
    Pending,
    Quarantined(HeldReason, String),
}

/// What discovery knows of one provider id.
struct Entry {
    source: usize,
    found: DiscoveredProvider,
    fingerprint: String,
    ttl: Duration,
    /// Set when a successful answer of its source no longer reports it.
    missing_since: Option<Instant>,
    standing: Standing,
}

/// A held provider, for `registry_discovered` and `registry_quarantine`.
#[derive(Clone, Debug, Serialize)]
pub struct Held {
    pub name: String,
    pub source: String,
    /// `pending` (waiting for approval) or `quarantined`.
    pub status: &'static str,
    pub reason: Option<HeldReason>,
    pub detail: String,
    pub fingerprint: String,
    pub mode: String,
    /// The group it names, if any (it joins it once registered).
    pub group: Option<String>,
}

/// One source as `registry_sources` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SourceReport {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub mode: &'static str,
    /// Milliseconds since the Unix epoch of the last cycle; `None` before the first.
    pub last_cycle_ms: Option<u64>,
    pub last_duration_ms: Option<u64>,
    /// Providers in its last successful answer (placeholders for errors not counted).
    pub count: usize,
    /// Discovered providers of this source in the registry now.
    pub registered: usize,
    /// The groups its registered providers joined: group id → member ids.
    pub groups: IndexMap<String, Vec<String>>,
    /// `true`: its last `discover` answered; `false`: it failed (see `last_error`).
    pub healthy: Option<bool>,
    pub last_error: Option<String>,
    /// Problems of its last answer: malformed entries (file:line), conflicts, limits.
    pub errors: Vec<String>,
    pub failures: u64,
}

/// What one cycle did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CycleReport {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    /// (group, member): discovered members that joined or left a group this cycle.
    pub joined: Vec<(String, String)>,
    pub left: Vec<(String, String)>,
    /// Groups made for discovered members, and groups gone with their last one.
    pub groups_created: Vec<String>,
    pub groups_removed: Vec<String>,
    /// (name, reason, detail) held this cycle.
    pub quarantined: Vec<(String, HeldReason, String)>,
    pub pending: Vec<String>,
    /// (source, message): sources that failed and problems they reported.
    pub errors: Vec<(String, String)>,
    pub duration_ms: u64,
    /// Where the cycle's time went: asking the sources, checking new and changed specs, and
    /// applying the diff to the registry (milliseconds, fractional).
    pub sources_ms: f64,
    pub checks_ms: f64,
    pub apply_ms: f64,
}

/// What wakes the loop.
pub enum Trigger {
    Cycle(Option<oneshot::Sender<CycleReport>>),
    Changed,
    Approve(String, oneshot::Sender<Result<String, String>>),
}

#[derive(Default)]
struct SourceStatus {
    last_cycle: Option<SystemTime>,
    last_duration: Option<Duration>,
    count: usize,
    healthy: Option<bool>,
    last_error: Option<String>,
    errors: Vec<String>,
    failures: u64,
}

struct Source {
    spec: SourceSpec,
    plugin: Mutex<Option<Arc<Plugin>>>,
    status: Mutex<SourceStatus>,
}

/// The discovery engine of one hangar.
pub struct Discovery {
    spec: DiscoverySpec,
    config_path: PathBuf,
    registry: Weak<Registry>,
    plugins: Arc<PluginSet>,
    host: Mutex<Option<PluginHost>>,
    sources: Vec<Source>,
    entries: Mutex<IndexMap<String, Entry>>,
    limiter: DefaultDirectRateLimiter,
    trigger: mpsc::Sender<Trigger>,
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `host` visible to a plugin at its own path, read-only.
fn read_only(host: PathBuf) -> Preopen {
    Preopen {
        guest: host.display().to_string(),
        host,
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Discovery {
    /// Starts the engine of `config`'s `discovery:` section (nothing when it is absent or
    /// `enabled: false`): the loop, and the watch of filesystem sources' directories.
    pub fn spawn(
        config: &Config,
        registry: &Arc<Registry>,
        plugins: Arc<PluginSet>,
    ) -> Option<Arc<Self>> {
        let spec = config.discovery.clone().filter(|d| d.enabled)?;
        let (engine, rx) = Self::new(spec, &config.path, registry, plugins);
        let dirs: Vec<PathBuf> = engine
            .sources
            .iter()
            .filter(|s| s.spec.kind == SourceType::Bundled("filesystem".into()))
            .map(|s| engine.filesystem_path(&s.spec))
            .collect();
        match watch::watch(&dirs, engine.trigger.clone()) {
            Ok(w) => *lock(&engine.watcher) = w,
            Err(e) => tracing::warn!("{e}; changes are seen at the next refresh"),
        }
        registry.set_discovery(engine.clone());
        tokio::spawn(run(Arc::downgrade(&engine), rx));
        Some(engine)
    }

    /// The engine without its loop (tests and benchmarks drive `cycle` themselves).
    pub fn new(
        spec: DiscoverySpec,
        config_path: &Path,
        registry: &Arc<Registry>,
        plugins: Arc<PluginSet>,
    ) -> (Arc<Self>, mpsc::Receiver<Trigger>) {
        let (trigger, rx) = mpsc::channel(64);
        let rate = spec.security.max_registration_rate;
        let burst = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
        let period = rate.per / rate.count.max(1);
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst);
        let sources = spec
            .sources
            .iter()
            .map(|s| Source {
                spec: s.clone(),
                plugin: Mutex::new(None),
                status: Mutex::new(SourceStatus::default()),
            })
            .collect();
        let engine = Arc::new(Self {
            config_path: config_path.to_path_buf(),
            registry: Arc::downgrade(registry),
            plugins,
            host: Mutex::new(None),
            sources,
            entries: Mutex::new(IndexMap::new()),
            limiter: RateLimiter::direct(quota),
            trigger,
            watcher: Mutex::new(None),
            spec,
        });
        (engine, rx)
    }

    pub fn spec(&self) -> &DiscoverySpec {
        &self.spec
    }

    /// Runs a cycle now (after the one under way, if any) and returns what it did.
    pub async fn discover_now(&self) -> Result<CycleReport, String> {
        let (tx, rx) = oneshot::channel();
        self.trigger
            .send(Trigger::Cycle(Some(tx)))
            .await
            .map_err(|_| "the discovery loop has stopped".to_string())?;
        rx.await
            .map_err(|_| "the discovery loop stopped during the cycle".to_string())
    }

    /// Registers the held provider `name` (pending or quarantined), skipping the checks that
    /// held it; a spec that fails the config rules still cannot be registered.
    pub async fn approve(&self, name: &str) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.trigger
            .send(Trigger::Approve(name.to_string(), tx))
            .await
            .map_err(|_| "the discovery loop has stopped".to_string())?;
        rx.await
            .map_err(|_| "the discovery loop stopped during the approval".to_string())?
    }

    /// Held providers (pending and quarantined).
    pub fn held(&self) -> Vec<Held> {
        lock(&self.entries)
            .iter()
            .filter_map(|(name, e)| {
                let (status, reason, detail) = match &e.standing {
                    Standing::Registered => return None,
                    Standing::Pending => (
                        "pending",
                        None,
                        "waiting for registry_approve (auto_register is false)".to_string(),
                    ),
                    Standing::Quarantined(r, d) => ("quarantined", Some(*r), d.clone()),
                };
                Some(Held {
                    name: name.clone(),
                    source: self.sources[e.source].spec.name.clone(),
                    status,
                    reason,
                    detail,
                    fingerprint: e.fingerprint.clone(),
                    mode: e.found.mode.clone(),
                    group: e.found.group.clone(),
                })
            })
            .collect()
    }

    /// Registered discovered providers: (name, source, fingerprint).
    pub fn registered(&self) -> Vec<(String, String, String)> {
        lock(&self.entries)
            .iter()
            .filter(|(_, e)| e.standing == Standing::Registered)
            .map(|(name, e)| {
                (
                    name.clone(),
                    self.sources[e.source].spec.name.clone(),
                    e.fingerprint.clone(),
                )
            })
            .collect()
    }

    pub fn sources(&self) -> Vec<SourceReport> {
        let entries = lock(&self.entries);
        self.sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let st = lock(&s.status);
                SourceReport {
                    name: s.spec.name.clone(),
                    kind: s.spec.kind.to_string(),
                    mode: s.spec.mode.as_str(),
                    last_cycle_ms: st.last_cycle.map(epoch_ms),
                    last_duration_ms: st
                        .last_duration
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    count: st.count,
                    registered: entries
                        .values()
                        .filter(|e| e.source == i && e.standing == Standing::Registered)
                        .count(),
                    groups: entries
                        .iter()
                        .filter(|(_, e)| e.source == i && e.standing == Standing::Registered)
                        .filter_map(|(name, e)| Some((e.found.group.clone()?, name.clone())))
                        .fold(IndexMap::new(), |mut groups, (group, member)| {
                            groups.entry(group).or_insert_with(Vec::new).push(member);
                            groups
                        }),
                    healthy: st.healthy,
                    last_error: st.last_error.clone(),
                    errors: st.errors.clone(),
                    failures: st.failures,
                }
            })
            .collect()
    }

    fn filesystem_path(&self, source: &SourceSpec) -> PathBuf {
        let path = source
            .config
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_FILESYSTEM_PATH);
        let dir = self.config_path.parent().unwrap_or(Path::new("."));
        dir.join(path)
    }

    /// The plugin spec of bundled source `kind`: `bundled:discovery-<kind>`, its keys as config,
    /// read-only preopens for the directories it reads (filesystem's `path`, entrypoints'
    /// `site_packages`, each taken from the config file's directory when relative), and the
    /// capability its type needs with the source's connection keys (docker: `socket`;
    /// kubernetes: `kubeconfig`, `context`, and `namespaces` as the grant's fence too).
    fn bundled_spec(&self, source: &SourceSpec, kind: &str) -> Result<PluginSpec, String> {
        let dir = self.config_path.parent().unwrap_or(Path::new("."));
        let mut config = source.config.clone();
        let mut preopens = Vec::new();
        let mut grant_settings = GrantSettings::default();
        let text = |value: Value, key: &str| match value {
            Value::String(s) if !s.trim().is_empty() => Ok(s),
            other => Err(format!("`{key}` must be a non-empty string, not {other}")),
        };
        let grants = match kind {
            "filesystem" => {
                let host = self.filesystem_path(source);
                config.insert("path".into(), Value::String(host.display().to_string()));
                preopens.push(read_only(host));
                Vec::new()
            }
            "entrypoints" => {
                let dirs = match config.remove("site_packages") {
                    None => Vec::new(),
                    Some(Value::String(one)) => vec![one],
                    Some(Value::Array(many)) => many
                        .into_iter()
                        .map(|v| text(v, "site_packages"))
                        .collect::<Result<_, _>>()?,
                    Some(other) => {
                        return Err(format!(
                            "`site_packages` must be a list of directories, not {other}"
                        ));
                    }
                };
                let mut absolute = Vec::new();
                for d in dirs {
                    let host = dir.join(d);
                    absolute.push(Value::String(host.display().to_string()));
                    preopens.push(read_only(host));
                }
                config.insert("site_packages".into(), Value::Array(absolute));
                Vec::new()
            }
            "docker" => {
                if let Some(socket) = config.remove("socket") {
                    grant_settings.docker.socket = Some(text(socket, "socket")?);
                }
                vec![PluginGrant::Docker]
            }
            "kubernetes" => {
                let k = &mut grant_settings.kubernetes;
                if let Some(v) = config.remove("kubeconfig") {
                    k.kubeconfig = Some(dir.join(text(v, "kubeconfig")?));
                }
                if let Some(v) = config.remove("context") {
                    k.context = Some(text(v, "context")?);
                }
                if let Some(Value::Array(namespaces)) = config.get("namespaces") {
                    k.namespaces = namespaces
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect();
                }
                vec![PluginGrant::Kubernetes]
            }
            _ => Vec::new(),
        };
        let name = format!("discovery-{kind}");
        let mut spec = PluginSpec::new(
            &name,
            PluginKind::Discovery,
            PathBuf::from(format!("{}{name}", crate::config::BUNDLED_PREFIX)),
            PluginConfig::plain(Value::Object(config)),
        );
        spec.timeout = DISCOVER_DEADLINE;
        spec.preopens = preopens;
        spec.grants = grants;
        spec.grant_settings = grant_settings;
        Ok(spec)
    }

    /// The source's plugin: an operator's from `plugins:`, or the bundled one, loaded on first
    /// use (and again after a failed load).
    async fn plugin(&self, source: &Source) -> Result<Arc<Plugin>, String> {
        match &source.spec.kind {
            SourceType::Plugin(name) => {
                let slot = self
                    .plugins
                    .get(name)
                    .ok_or_else(|| format!("plugin `{name}` is not in `plugins:`"))?;
                slot.plugin().ok_or_else(|| {
                    let why = slot
                        .status()
                        .last_error
                        .unwrap_or_else(|| "it is still loading".into());
                    format!("plugin `{name}` is not loaded: {why}")
                })
            }
            SourceType::Bundled(kind) => {
                if let Some(p) = lock(&source.plugin).clone() {
                    return Ok(p);
                }
                let name = format!("discovery-{kind}");
                if crate::bundled::get(&name).is_none() {
                    return Err(format!(
                        "the bundled plugin `{name}` is not in this build of mcp-hangar"
                    ));
                }
                let host = {
                    let mut host = lock(&self.host);
                    if host.is_none() {
                        *host = Some(PluginHost::new().map_err(|e| e.to_string())?);
                    }
                    host.clone().expect("set above")
                };
                let plugin = Arc::new(
                    host.load(&self.bundled_spec(&source.spec, kind)?)
                        .await
                        .map_err(|e| e.to_string())?,
                );
                *lock(&source.plugin) = Some(plugin.clone());
                Ok(plugin)
            }
        }
    }

    async fn ask(&self, source: &Source) -> Result<Vec<DiscoveredProvider>, String> {
        let plugin = self.plugin(source).await?;
        let deadline = DISCOVER_DEADLINE.max(plugin.spec().timeout) + Duration::from_secs(1);
        match tokio::time::timeout(deadline, plugin.discover()).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "discover did not answer within {}s",
                deadline.as_secs()
            )),
        }
    }

    fn namespace_problem(&self, found: &DiscoveredProvider) -> Option<String> {
        let ns = spec::label(found, spec::LABEL_NAMESPACE)?;
        let sec = &self.spec.security;
        if sec.denied_namespaces.iter().any(|d| d == ns) {
            return Some(format!("namespace `{ns}` is in security.denied_namespaces"));
        }
        if !sec.allowed_namespaces.is_empty() && !sec.allowed_namespaces.iter().any(|a| a == ns) {
            return Some(format!(
                "namespace `{ns}` is not in security.allowed_namespaces"
            ));
        }
        None
    }

    /// Runs one cycle: ask every source, reconcile, apply.
    pub async fn cycle(&self) -> CycleReport {
        let started = Instant::now();
        let mut report = CycleReport::default();
        let Some(registry) = self.registry.upgrade() else {
            return report;
        };
        let answers: Vec<Result<Vec<DiscoveredProvider>, String>> =
            futures::future::join_all(self.sources.iter().map(|s| self.ask(s))).await;
        report.sources_ms = millis(started.elapsed());
        let checks_started = Instant::now();
        let now = Instant::now();
        let members = registry.members();
        let max = self.spec.security.max_providers_per_source;

        // 1. The desired set: one candidate per id, conflicts settled by precedence.
        let mut problems: Vec<Vec<String>> = vec![Vec::new(); self.sources.len()];
        let mut desired: IndexMap<String, (usize, DiscoveredProvider, bool)> = IndexMap::new();
        let mut counts = vec![0usize; self.sources.len()];
        for (i, answer) in answers.iter().enumerate() {
            let Ok(found) = answer else { continue };
            for f in found {
                if let Some(err) = spec::label(f, spec::LABEL_ERROR) {
                    problems[i].push(err.to_string());
                    continue;
                }
                // A config group's id is quarantined in `check` (an operator should see it);
                // a config provider's is a plain conflict the config wins.
                if members.is_static(&f.name) && !members.is_group(&f.name) {
                    problems[i].push(format!(
                        "`{}` is defined in the config file, which takes precedence; the \
                         discovered one is ignored",
                        f.name
                    ));
                    continue;
                }
                counts[i] += 1;
                let over = counts[i] > max;
                if let Some((j, _, _)) = desired.get(&f.name) {
                    let j = *j;
                    let (mine, theirs) = (&self.sources[i].spec, &self.sources[j].spec);
                    if j == i {
                        problems[i]
                            .push(format!("`{}` is reported twice; the first is used", f.name));
                        continue;
                    }
                    if theirs.kind.precedence() <= mine.kind.precedence() {
                        problems[i].push(format!(
                            "`{}` is also reported by source `{}`, which takes precedence",
                            f.name, theirs.name
                        ));
                        continue;
                    }
                    problems[j].push(format!(
                        "`{}` is also reported by source `{}`, which takes precedence",
                        f.name, mine.name
                    ));
                }
                desired.insert(f.name.clone(), (i, f.clone(), over));
            }
            if counts[i] > max {
                problems[i].push(format!(
                    "reported {} providers; security.max_providers_per_source is {max}: the {} \
                     beyond it are quarantined (failed_source)",
                    counts[i],
                    counts[i] - max
                ));
            }
        }

        // The ids that clash between providers and groups this cycle: groups named by what the
        // sources report, and the providers they report.
        let ids = Ids {
            members: &members,
            named_groups: desired
                .values()
                .filter_map(|(_, f, _)| f.group.clone())
                .collect(),
            reported: desired.keys().cloned().collect(),
        };

        // 2. What is new or changed needs checking; what is unchanged only counts as seen.
        let mut to_check = Vec::new();
        {
            let mut entries = lock(&self.entries);
            for (name, (i, found, over)) in &desired {
                let fingerprint = spec::fingerprint(found);
                match entries.get_mut(name) {
                    Some(e) if e.source == *i && e.fingerprint == fingerprint => {
                        e.missing_since = None;
                    }
                    _ => to_check.push((name.clone(), *i, found.clone(), *over, fingerprint)),
                }
            }
        }
        let mut checked = Vec::new();
        for (name, i, found, over, fingerprint) in to_check {
            let verdict = self.check(&name, i, &found, over, &ids).await;
            checked.push((name, i, found, fingerprint, verdict));
        }

        // 3. The diff: registrations, replacements, holds, removals.
        let mut diff = Diff::default();
        let mut held_events = Vec::new();
        {
            let mut entries = lock(&self.entries);
            for (name, i, found, fingerprint, verdict) in checked {
                let source_name = self.sources[i].spec.name.clone();
                let ttl = spec::ttl(&found)
                    .ok()
                    .flatten()
                    .unwrap_or(self.spec.lifecycle.default_ttl);
                let was_registered = entries
                    .get(&name)
                    .is_some_and(|e| e.standing == Standing::Registered);
                let standing = match verdict {
                    Verdict::Register(provider, membership) => {
                        let origin = Origin {
                            source: source_name.clone(),
                            fingerprint: fingerprint.clone(),
                            membership,
                        };
                        if was_registered {
                            diff.update.push((*provider, origin));
                        } else {
                            diff.add.push((*provider, origin));
                        }
                        Standing::Registered
                    }
                    Verdict::Pending => {
                        report.pending.push(name.clone());
                        Standing::Pending
                    }
                    Verdict::Hold(reason, detail) => {
                        if !self.spec.security.quarantine_on_failure {
                            problems[i].push(format!(
                                "`{name}` refused ({}): {detail}",
                                reason_str(reason)
                            ));
                            if was_registered {
                                diff.remove
                                    .push((name.clone(), "its new spec was refused".into()));
                            }
                            entries.shift_remove(&name);
                            continue;
                        }
                        report
                            .quarantined
                            .push((name.clone(), reason, detail.clone()));
                        held_events.push(Event::ProviderQuarantined {
                            provider: name.clone(),
                            source: source_name.clone(),
                            reason: reason_str(reason).to_string(),
                            detail: detail.clone(),
                        });
                        Standing::Quarantined(reason, detail)
                    }
                };
                if was_registered && standing != Standing::Registered {
                    diff.remove
                        .push((name.clone(), "its new spec is held".into()));
                }
                entries.insert(
                    name,
                    Entry {
                        source: i,
                        found,
                        fingerprint,
                        ttl,
                        missing_since: None,
                        standing,
                    },
                );
            }
            // What sources that answered no longer report.
            let mut gone = Vec::new();
            for (name, e) in entries.iter_mut() {
                if desired.contains_key(name) || answers[e.source].is_err() {
                    continue;
                }
                if e.standing != Standing::Registered {
                    gone.push(name.clone());
                    continue;
                }
                if self.sources[e.source].spec.mode == SourceMode::Authoritative {
                    e.missing_since.get_or_insert(now);
                }
            }
            for name in gone {
                entries.shift_remove(&name);
            }
            self.expired(&mut entries, now, &mut diff);
        }

        // 4. Apply, and record what happened per source.
        report.checks_ms = millis(checks_started.elapsed());
        let apply_started = Instant::now();
        let drain = self.spec.lifecycle.drain_timeout;
        let applied = registry.apply(diff, drain);
        report.apply_ms = millis(apply_started.elapsed());
        for event in held_events {
            registry.bus().publish(event);
        }
        {
            let mut entries = lock(&self.entries);
            for (name, why) in &applied.refused {
                if let Some(e) = entries.shift_remove(name) {
                    problems[e.source].push(format!("`{name}` was not registered: {why}"));
                }
            }
        }
        let finished = SystemTime::now();
        for (i, source) in self.sources.iter().enumerate() {
            let mut st = lock(&source.status);
            st.last_cycle = Some(finished);
            st.last_duration = Some(started.elapsed());
            match &answers[i] {
                Ok(_) => {
                    st.healthy = Some(true);
                    st.count = counts[i];
                    st.last_error = None;
                }
                Err(e) => {
                    st.healthy = Some(false);
                    st.failures += 1;
                    st.last_error = Some(e.clone());
                    report.errors.push((source.spec.name.clone(), e.clone()));
                    tracing::warn!(source = %source.spec.name, "discovery source failed: {e}; what it found before stays");
                }
            }
            st.errors = std::mem::take(&mut problems[i]);
            for p in &st.errors {
                report.errors.push((source.spec.name.clone(), p.clone()));
            }
        }
        report.added = applied.added;
        report.updated = applied.updated;
        report.removed = applied.removed;
        report.joined = applied.joined;
        report.left = applied.left;
        report.groups_created = applied.groups_created;
        report.groups_removed = applied.groups_removed;
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if !(report.added.is_empty() && report.updated.is_empty() && report.removed.is_empty()) {
            tracing::info!(
                added = report.added.len(),
                updated = report.updated.len(),
                removed = report.removed.len(),
                "discovery cycle in {} ms (sources {:.1} ms, checks {:.1} ms, apply {:.1} ms)",
                report.duration_ms,
                report.sources_ms,
                report.checks_ms,
                report.apply_ms
            );
        }
        report
    }

    /// Removals of registered providers whose authoritative source stopped reporting them
    /// longer than their TTL ago.
    fn expired(&self, entries: &mut IndexMap<String, Entry>, now: Instant, diff: &mut Diff) {
        let expired: Vec<String> = entries
            .iter()
            .filter(|(_, e)| {
                e.standing == Standing::Registered
                    && e.missing_since
                        .is_some_and(|since| now.duration_since(since) >= e.ttl)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            if let Some(e) = entries.shift_remove(&name) {
                diff.remove.push((
                    name,
                    format!(
                        "source `{}` stopped reporting it more than {}s ago",
                        self.sources[e.source].spec.name,
                        e.ttl.as_secs()
                    ),
                ));
            }
        }
    }

    /// The `check_interval_s` tick: removes what expired since the last cycle.
    fn expire_now(&self) {
        let Some(registry) = self.registry.upgrade() else {
            return;
        };
        let mut diff = Diff::default();
        self.expired(&mut lock(&self.entries), Instant::now(), &mut diff);
        if !diff.is_empty() {
            let applied = registry.apply(diff, self.spec.lifecycle.drain_timeout);
            tracing::info!(removed = ?applied.removed, "discovery: TTL expired");
        }
    }

    /// The checks a new or changed provider must pass, in order: source limits and namespace,
    /// spec, then (when it would be registered now) registration rate and health.
    async fn check(
        &self,
        name: &str,
        source: usize,
        found: &DiscoveredProvider,
        over: bool,
        ids: &Ids<'_>,
    ) -> Verdict {
        if over {
            return Verdict::Hold(
                HeldReason::FailedSource,
                format!(
                    "source `{}` reported more than security.max_providers_per_source ({})",
                    self.sources[source].spec.name, self.spec.security.max_providers_per_source
                ),
            );
        }
        if let Some(why) = self.namespace_problem(found) {
            return Verdict::Hold(HeldReason::FailedSource, why);
        }
        if let Err(e) = spec::ttl(found) {
            return Verdict::Hold(HeldReason::FailedSchema, format!("`{name}`: {e}"));
        }
        let provider = match spec::to_provider_spec(&self.sources[source].spec.name, found) {
            Ok(p) => p,
            Err(e) => return Verdict::Hold(HeldReason::FailedSchema, e),
        };
        let membership = match spec::membership(found) {
            Ok(m) => m,
            Err(e) => return Verdict::Hold(HeldReason::FailedSchema, e),
        };
        if let Some((reason, why)) = ids.conflict(name, membership.as_ref()) {
            return Verdict::Hold(reason, why);
        }
        if !self.spec.auto_register {
            return Verdict::Pending;
        }
        if self.limiter.check().is_err() {
            return Verdict::Hold(
                HeldReason::FailedRateLimit,
                format!(
                    "over security.max_registration_rate ({})",
                    self.spec.security.max_registration_rate
                ),
            );
        }
        if self.spec.security.require_health_check
            && let Err(e) = health::check(&provider, &self.config_path).await
        {
            return Verdict::Hold(HeldReason::FailedHealth, format!("health check: {e}"));
        }
        Verdict::Register(Box::new(provider), membership)
    }

    async fn approve_now(&self, name: &str) -> Result<String, String> {
        let registry = self.registry.upgrade().ok_or("the registry is gone")?;
        let (source, found, fingerprint) = {
            let entries = lock(&self.entries);
            let e = entries.get(name).ok_or_else(|| {
                let held: Vec<String> = entries
                    .iter()
                    .filter(|(_, e)| e.standing != Standing::Registered)
                    .map(|(n, _)| format!("`{n}`"))
                    .collect();
                format!(
                    "no held provider `{name}`; held now: {}",
                    if held.is_empty() {
                        "none".to_string()
                    } else {
                        held.join(", ")
                    }
                )
            })?;
            if e.standing == Standing::Registered {
                return Err(format!("`{name}` is already registered"));
            }
            (e.source, e.found.clone(), e.fingerprint.clone())
        };
        let source_name = self.sources[source].spec.name.clone();
        let provider = spec::to_provider_spec(&source_name, &found)
            .map_err(|e| format!("`{name}` cannot be registered: its spec is invalid: {e}"))?;
        let membership = spec::membership(&found)
            .map_err(|e| format!("`{name}` cannot be registered: its spec is invalid: {e}"))?;
        let mut diff = Diff::default();
        diff.add.push((
            provider,
            Origin {
                source: source_name.clone(),
                fingerprint,
                membership,
            },
        ));
        let applied = registry.apply(diff, self.spec.lifecycle.drain_timeout);
        if let Some((_, why)) = applied.refused.first() {
            return Err(format!("`{name}` was not registered: {why}"));
        }
        if let Some(e) = lock(&self.entries).get_mut(name) {
            e.standing = Standing::Registered;
        }
        Ok(source_name)
    }
}

/// What a cycle knows of the ids in use, to keep provider and group ids apart.
struct Ids<'a> {
    members: &'a Members,
    /// Groups the sources' providers name this cycle.
    named_groups: IndexSet<String>,
    /// Providers the sources report this cycle.
    reported: IndexSet<String>,
}

impl Ids<'_> {
    /// Why provider `name` (joining `membership`'s group, if any) clashes with a group or a
    /// provider: its id is a group's (failed_source: the id is taken), or its group's id is a
    /// provider's (failed_schema: the spec names something that is not a group).
    fn conflict(
        &self,
        name: &str,
        membership: Option<&Membership>,
    ) -> Option<(HeldReason, String)> {
        if self.members.is_group(name) || self.named_groups.contains(name) {
            let whose = if self.members.is_static(name) {
                "a group of the config file"
            } else {
                "a group discovered providers name"
            };
            return Some((
                HeldReason::FailedSource,
                format!(
                    "`{name}` is the id of {whose}; a provider cannot have a group's id: rename \
                     the provider (or the group)"
                ),
            ));
        }
        let group = &membership?.group;
        if group == name {
            return Some((
                HeldReason::FailedSchema,
                format!("`{name}` names itself as its group; name another group"),
            ));
        }
        let is_provider = (self.members.is_provider(group) && !self.members.is_group(group))
            || self.reported.contains(group);
        if is_provider {
            return Some((
                HeldReason::FailedSchema,
                format!(
                    "`{name}` asks to join group `{group}`, but `{group}` is a provider, not a \
                     group: name a group, or rename the provider"
                ),
            ));
        }
        if !self.members.is_group(group)
            && let Err(e) = crate::group::discovered_spec(group)
        {
            return Some((
                HeldReason::FailedSchema,
                format!("`{name}` names group `{group}`, which is not a valid group id: {e}"),
            ));
        }
        None
    }
}

enum Verdict {
    Register(Box<ProviderSpec>, Option<Membership>),
    Pending,
    Hold(HeldReason, String),
}

pub fn reason_str(reason: HeldReason) -> &'static str {
    match reason {
        HeldReason::FailedSource => "failed_source",
        HeldReason::FailedHealth => "failed_health",
        HeldReason::FailedSchema => "failed_schema",
        HeldReason::FailedRateLimit => "failed_rate_limit",
    }
}

/// The loop: a cycle per refresh interval, on a watched change (debounced) and on request;
/// the TTL check in between. Ends when the engine or the registry is gone.
async fn run(engine: Weak<Discovery>, mut rx: mpsc::Receiver<Trigger>) {
    let (refresh, check) = match engine.upgrade() {
        Some(e) => (e.spec.refresh_interval, e.spec.lifecycle.check_interval),
        None => return,
    };
    let mut refresh = tokio::time::interval(refresh);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut check = tokio::time::interval(check);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let trigger = tokio::select! {
            _ = refresh.tick() => Trigger::Cycle(None),
            _ = check.tick() => {
                if let Some(e) = engine.upgrade() { e.expire_now(); }
                continue;
            }
            t = rx.recv() => match t { Some(t) => t, None => return },
        };
        let Some(e) = engine.upgrade() else { return };
        if e.registry.upgrade().is_none_or(|r| r.is_shutting_down()) {
            return;
        }
        match trigger {
            Trigger::Cycle(reply) => {
                let report = e.cycle().await;
                if let Some(reply) = reply {
                    let _ = reply.send(report);
                }
            }
            Trigger::Changed => {
                tokio::time::sleep(watch::SETTLE).await;
                let mut replies = Vec::new();
                let mut approvals = Vec::new();
                while let Ok(t) = rx.try_recv() {
                    match t {
                        Trigger::Changed | Trigger::Cycle(None) => {}
                        Trigger::Cycle(Some(r)) => replies.push(r),
                        Trigger::Approve(n, r) => approvals.push((n, r)),
                    }
                }
                let report = e.cycle().await;
                for r in replies {
                    let _ = r.send(report.clone());
                }
                for (n, r) in approvals {
                    let _ = r.send(e.approve_now(&n).await);
                }
            }
            Trigger::Approve(name, reply) => {
                let _ = reply.send(e.approve_now(&name).await);
            }
        }
    }
}
