//! Run a plugin's logic in plain `cargo test`, natively, through the same conversions as the
//! hangar's calls (the harness calls what the export macros call, with the WIT types; the call
//! is read through the same lazy [`Invocation`] accessors, backed by the test's values instead
//! of the hangar's `call` resource).
//!
//! ```
//! use hangar_plugin_sdk::testing::LbPolicyHarness;
//! use hangar_plugin_sdk::{Invocation, LbPolicy, Member};
//!
//! /// The least busy healthy member; `canary` only for the session `canary`.
//! #[derive(Default)]
//! struct LeastBusy;
//!
//! impl LbPolicy for LeastBusy {
//!     fn pick(&mut self, call: &Invocation, members: &[Member]) -> Option<usize> {
//!         let canary = call.session() == Some("canary");
//!         let allowed = |i: usize| (call.member_id(i) == Some("canary")) == canary;
//!         let healthy = members.iter().enumerate().filter(|&(i, m)| m.healthy && allowed(i));
//!         healthy.min_by_key(|(_, m)| m.in_flight).map(|(i, _)| i)
//!     }
//! }
//!
//! let mut policy = LbPolicyHarness::<LeastBusy>::new();
//! // Each member with its id, which the hangar sends apart (`call.member_id(i)`).
//! let members = [
//!     ("a", Member { in_flight: 3, ..Member::new("a") }),
//!     ("b", Member { in_flight: 1, ..Member::new("b") }),
//!     ("c", Member { in_flight: 0, healthy: false, ..Member::new("c") }),
//!     ("canary", Member { in_flight: 9, ..Member::new("canary") }),
//! ];
//! assert_eq!(policy.pick(&Invocation::new("pool", "echo"), &members), Some(1));
//! let canary = Invocation::new("pool", "echo").with_session("canary");
//! assert_eq!(policy.pick(&canary, &members), Some(3));
//! ```
//!
//! Each harness treats instances as the hangar does: a validator's or a policy's configured
//! instance serves call after call until `configure` replaces it (the hangar also keeps a few
//! at once for concurrent calls, and drops one that failed, so never count on which one runs
//! a call); a discovery source gets a fresh instance for every call. A harness starts as a
//! plugin whose file sets no `config:` (the hangar then sends `{}`).
//!
//! During a call the plugin's [`log`](crate::log), [`now_ms`](crate::now_ms), [`docker`] and
//! [`kubernetes`] go to the harness's [`FakeHost`]: lines are recorded, the clock can be set,
//! and the capabilities refuse, as an ungranted one does in the hangar, until a test grants
//! them with an answer.
//!
//! [`docker`]: crate::docker
//! [`kubernetes`]: crate::kubernetes

use std::cell::RefCell;
use std::marker::PhantomData;

use serde_json::Value;

use crate::__private;
use crate::bindings::wit;
use crate::invocation::Invocation;
use crate::types::{Container, Level, Member, Pod, ProviderSpec, Verdict, member_key};
use crate::{DiscoverySource, LbPolicy, Validator};

/// One line a plugin logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

type DockerAnswer = Box<dyn FnMut(&[&str]) -> Result<Vec<Container>, String>>;
type KubernetesAnswer = Box<dyn FnMut(&[&str], Option<&str>) -> Result<Vec<Pod>, String>>;

/// What a plugin's host calls reach during a harness call.
pub struct FakeHost {
    plugin: String,
    logs: Vec<LogLine>,
    now_ms: Option<u64>,
    docker: Option<DockerAnswer>,
    kubernetes: Option<KubernetesAnswer>,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self {
            plugin: "test".to_owned(),
            logs: Vec::new(),
            now_ms: None,
            docker: None,
            kubernetes: None,
        }
    }
}

impl std::fmt::Debug for FakeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHost")
            .field("plugin", &self.plugin)
            .field("logs", &self.logs)
            .field("now_ms", &self.now_ms)
            .field("docker", &self.docker.is_some())
            .field("kubernetes", &self.kubernetes.is_some())
            .finish()
    }
}

impl FakeHost {
    /// The plugin's name in the hangar's config, as refusals quote it (default `test`).
    pub fn set_plugin_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.plugin = name.into();
        self
    }

    /// The lines logged so far, oldest first.
    pub fn logs(&self) -> &[LogLine] {
        &self.logs
    }

    /// Forgets the lines logged so far.
    pub fn clear_logs(&mut self) -> &mut Self {
        self.logs.clear();
        self
    }

    /// Stops the clock at `ms` (milliseconds since the Unix epoch); by default `now_ms` is the
    /// system clock.
    pub fn set_now_ms(&mut self, ms: u64) -> &mut Self {
        self.now_ms = Some(ms);
        self
    }

    /// Moves a stopped clock on by `ms` (stopping it at the system time first if it runs).
    pub fn advance_ms(&mut self, ms: u64) -> &mut Self {
        self.now_ms = Some(self.now_ms.unwrap_or_else(system_now_ms) + ms);
        self
    }

    /// Grants `docker`, answering with those of `containers` whose labels match every filter
    /// (`key=value` or `key`), as the hangar's docker capability filters.
    pub fn grant_docker(&mut self, containers: Vec<Container>) -> &mut Self {
        self.on_docker(move |filters| {
            Ok(containers
                .iter()
                .filter(|c| filters.iter().all(|f| label_filter_matches(&c.labels, f)))
                .cloned()
                .collect())
        })
    }

    /// Grants `docker`, answering every `list_containers(filters)` with `answer(filters)`, for
    /// example an error the engine would give.
    pub fn on_docker(
        &mut self,
        answer: impl FnMut(&[&str]) -> Result<Vec<Container>, String> + 'static,
    ) -> &mut Self {
        self.docker = Some(Box::new(answer));
        self
    }

    /// Grants `kubernetes`, answering with those of `pods` in the namespaces asked for (all
    /// when none is) that match the label selector (`key=value`, `key!=value`, `key`,
    /// comma-separated).
    pub fn grant_kubernetes(&mut self, pods: Vec<Pod>) -> &mut Self {
        self.on_kubernetes(move |namespaces, selector| {
            Ok(pods
                .iter()
                .filter(|p| namespaces.is_empty() || namespaces.contains(&p.namespace.as_str()))
                .filter(|p| selector.is_none_or(|s| selector_matches(&p.labels, s)))
                .cloned()
                .collect())
        })
    }

    /// Grants `kubernetes`, answering every `list_pods(namespaces, selector)` with
    /// `answer(namespaces, selector)`.
    pub fn on_kubernetes(
        &mut self,
        answer: impl FnMut(&[&str], Option<&str>) -> Result<Vec<Pod>, String> + 'static,
    ) -> &mut Self {
        self.kubernetes = Some(Box::new(answer));
        self
    }

    /// Takes the grants back: both capabilities refuse again.
    pub fn revoke_grants(&mut self) -> &mut Self {
        self.docker = None;
        self.kubernetes = None;
        self
    }
}

/// Runs a [`Validator`] as the hangar does: one configured instance serves call after call
/// until `configure` replaces it.
#[derive(Debug)]
pub struct ValidatorHarness<T: Validator> {
    instance: Option<T>,
    host: FakeHost,
}

impl<T: Validator> Default for ValidatorHarness<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Validator> ValidatorHarness<T> {
    /// A validator whose file sets no `config:` (configured at its first `validate`).
    pub fn new() -> Self {
        Self {
            instance: None,
            host: FakeHost::default(),
        }
    }

    /// Replaces the instance with a fresh one configured with `config`, as a load or a reload
    /// does. The error is the plugin's refusal; the old instance then stays (the hangar keeps
    /// the version in service).
    pub fn configure(&mut self, config: Value) -> Result<(), String> {
        let mut slot = None;
        fake::run(&mut self.host, || {
            __private::configure(&mut slot, config.to_string(), <T as Validator>::configure)
        })?;
        self.instance = slot;
        Ok(())
    }

    /// What the validator answers to `call`.
    ///
    /// # Panics
    ///
    /// When the validator was never configured and refuses `{}`, or rewrites to something
    /// that is not a JSON object (the hangar counts that as the plugin's failure).
    pub fn validate(&mut self, call: &Invocation<'_>) -> Verdict {
        if self.instance.is_none()
            && let Err(refusal) = self.configure(Value::Object(Default::default()))
        {
            panic!("the validator refuses `{{}}`; call `configure` first: {refusal}");
        }
        let instance = &mut self.instance;
        let verdict = fake::run(&mut self.host, || {
            __private::validate_invocation(instance, call)
        });
        Verdict::try_from(verdict).unwrap_or_else(|err| panic!("{err}"))
    }

    /// What the plugin's host calls reach.
    pub fn host(&mut self) -> &mut FakeHost {
        &mut self.host
    }

    /// The lines the plugin logged so far.
    pub fn logs(&self) -> &[LogLine] {
        self.host.logs()
    }
}

/// Runs an [`LbPolicy`] as the hangar does: one long-lived instance, replaced by `configure`.
#[derive(Debug)]
pub struct LbPolicyHarness<T: LbPolicy> {
    instance: Option<T>,
    host: FakeHost,
}

impl<T: LbPolicy> Default for LbPolicyHarness<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: LbPolicy> LbPolicyHarness<T> {
    /// A policy whose file sets no `config:` (configured at its first `pick`).
    pub fn new() -> Self {
        Self {
            instance: None,
            host: FakeHost::default(),
        }
    }

    /// Replaces the instance with a fresh one configured with `config`, as a reload does. On a
    /// refusal the old instance stays (the hangar keeps the version in service).
    pub fn configure(&mut self, config: Value) -> Result<(), String> {
        let mut slot = None;
        fake::run(&mut self.host, || {
            __private::configure(&mut slot, config.to_string(), <T as LbPolicy>::configure)
        })?;
        self.instance = slot;
        Ok(())
    }

    /// The member the policy picks for `call` among `members`, each given with its id (what
    /// `call.member_id(i)` answers; the hangar sends the ids apart from the numbers), or `None`
    /// when it leaves the choice to the group's native strategy. The answer is not checked
    /// against `members`: the hangar refuses an index out of range, so test for it.
    ///
    /// # Panics
    ///
    /// When the policy was never configured and refuses `{}`, or when a member's `key` is not
    /// [`member_key`] of its id (the hangar always sends that; build members with
    /// [`Member::new`]).
    pub fn pick<S: AsRef<str>>(
        &mut self,
        call: &Invocation<'_>,
        members: &[(S, Member)],
    ) -> Option<usize> {
        if self.instance.is_none()
            && let Err(refusal) = self.configure(Value::Object(Default::default()))
        {
            panic!("the policy refuses `{{}}`; call `configure` first: {refusal}");
        }
        let mut ids = Vec::with_capacity(members.len());
        let mut numbers = Vec::with_capacity(members.len());
        for (index, (id, member)) in members.iter().enumerate() {
            let id = id.as_ref();
            assert_eq!(
                member.key,
                member_key(id),
                "members[{index}]: the key is not member_key({id:?}); build it with \
                 Member::new({id:?})"
            );
            ids.push(id.to_owned());
            numbers.push(wit::Member::from(member));
        }
        let call = call.for_pick(ids);
        let instance = &mut self.instance;
        let index = fake::run(&mut self.host, || {
            __private::pick_invocation(instance, &call, numbers)
        })?;
        usize::try_from(index).ok()
    }

    /// What the plugin's host calls reach.
    pub fn host(&mut self) -> &mut FakeHost {
        &mut self.host
    }

    /// The lines the plugin logged so far.
    pub fn logs(&self) -> &[LogLine] {
        self.host.logs()
    }
}

/// Runs a [`DiscoverySource`] as the hangar does: every `discover` on a fresh instance,
/// configured with the last config `configure` accepted. Its capabilities refuse until the
/// test grants them through [`host`](Self::host).
#[derive(Debug)]
pub struct DiscoveryHarness<T: DiscoverySource> {
    config: String,
    host: FakeHost,
    plugin: PhantomData<T>,
}

impl<T: DiscoverySource> Default for DiscoveryHarness<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: DiscoverySource> DiscoveryHarness<T> {
    /// A discovery source whose file sets no `config:` and that was granted nothing.
    pub fn new() -> Self {
        Self {
            config: "{}".to_owned(),
            host: FakeHost::default(),
            plugin: PhantomData,
        }
    }

    /// Configures a fresh instance with `config`, as the hangar does at load; kept for the
    /// calls that follow when accepted.
    pub fn configure(&mut self, config: Value) -> Result<(), String> {
        let json = config.to_string();
        let mut slot = None;
        let outcome = fake::run(&mut self.host, || {
            __private::configure(&mut slot, json.clone(), <T as DiscoverySource>::configure)
        });
        if outcome.is_ok() {
            self.config = json;
        }
        outcome
    }

    /// `discover` on a fresh instance; a refusal of the config at call time is an error, as
    /// it is in the hangar.
    pub fn discover(&mut self) -> Result<Vec<ProviderSpec>, String> {
        let config = self.config.clone();
        let found = fake::run(&mut self.host, || {
            let mut slot = None;
            __private::configure(&mut slot, config, <T as DiscoverySource>::configure)?;
            __private::discover(&mut slot)
        })?;
        Ok(found.into_iter().map(ProviderSpec::from).collect())
    }

    /// What the plugin's host calls reach: grant `docker` and `kubernetes` here.
    pub fn host(&mut self) -> &mut FakeHost {
        &mut self.host
    }

    /// The lines the plugin logged so far.
    pub fn logs(&self) -> &[LogLine] {
        self.host.logs()
    }
}

fn system_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// `key=value` (that label with that value) or `key` (that label, any value).
fn label_filter_matches(labels: &[(String, String)], filter: &str) -> bool {
    match filter.split_once('=') {
        Some((key, value)) => labels.iter().any(|(k, v)| k == key && v == value),
        None => labels.iter().any(|(k, _)| k == filter),
    }
}

/// An equality-based Kubernetes label selector: `key=value`, `key==value`, `key!=value`,
/// `key`, `!key`, comma-separated, all of which must hold.
pub(crate) fn selector_matches(labels: &[(String, String)], selector: &str) -> bool {
    let value_of = |key: &str| {
        labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    selector
        .split(',')
        .map(str::trim)
        .filter(|term| !term.is_empty())
        .all(|term| {
            if let Some((key, value)) = term.split_once("!=") {
                value_of(key.trim()) != Some(value.trim())
            } else if let Some((key, value)) =
                term.split_once("==").or_else(|| term.split_once('='))
            {
                value_of(key.trim()) == Some(value.trim())
            } else if let Some(key) = term.strip_prefix('!') {
                value_of(key.trim()).is_none()
            } else {
                value_of(term).is_some()
            }
        })
}

/// The host calls of a native build: the harness's `FakeHost` while a harness call runs on
/// this thread, stderr and the system clock otherwise.
pub(crate) mod fake {
    use super::*;

    thread_local! {
        static ACTIVE: RefCell<Option<FakeHost>> = const { RefCell::new(None) };
    }

    /// Runs `call` with `host` as this thread's host, and gives it back after, even when
    /// `call` panics.
    pub(crate) fn run<R>(host: &mut FakeHost, call: impl FnOnce() -> R) -> R {
        struct Restore<'a> {
            host: &'a mut FakeHost,
            previous: Option<FakeHost>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                if let Some(host) = ACTIVE.replace(self.previous.take()) {
                    *self.host = host;
                }
            }
        }
        let previous = ACTIVE.replace(Some(std::mem::take(host)));
        let _restore = Restore { host, previous };
        call()
    }

    pub(crate) fn log(level: Level, message: &str) {
        ACTIVE.with_borrow_mut(|active| match active {
            Some(host) => host.logs.push(LogLine {
                level,
                message: message.to_owned(),
            }),
            None => eprintln!("[{level}] {message}"),
        });
    }

    pub(crate) fn now_ms() -> u64 {
        ACTIVE
            .with_borrow(|active| active.as_ref().and_then(|host| host.now_ms))
            .unwrap_or_else(system_now_ms)
    }

    pub(crate) fn list_containers(filters: &[&str]) -> Result<Vec<Container>, String> {
        // The answer runs with the host released: it may log or read the clock itself.
        let (plugin, answer) = ACTIVE
            .with_borrow_mut(|active| {
                let host = active.as_mut()?;
                Some((host.plugin.clone(), host.docker.take()))
            })
            .ok_or_else(|| outside_the_hangar("docker"))?;
        let mut answer = answer.ok_or_else(|| not_granted(&plugin, "docker"))?;
        let result = answer(filters);
        ACTIVE.with_borrow_mut(|active| {
            if let Some(host) = active {
                host.docker.get_or_insert(answer);
            }
        });
        result
    }

    pub(crate) fn list_pods(
        namespaces: &[&str],
        selector: Option<&str>,
    ) -> Result<Vec<Pod>, String> {
        let (plugin, answer) = ACTIVE
            .with_borrow_mut(|active| {
                let host = active.as_mut()?;
                Some((host.plugin.clone(), host.kubernetes.take()))
            })
            .ok_or_else(|| outside_the_hangar("kubernetes"))?;
        let mut answer = answer.ok_or_else(|| not_granted(&plugin, "kubernetes"))?;
        let result = answer(namespaces, selector);
        ACTIVE.with_borrow_mut(|active| {
            if let Some(host) = active {
                host.kubernetes.get_or_insert(answer);
            }
        });
        result
    }

    /// The hangar's own words for an ungranted capability.
    fn not_granted(plugin: &str, grant: &str) -> String {
        format!(
            "plugin `{plugin}` was not granted `{grant}`; add `grants: [{grant}]` to its config"
        )
    }

    fn outside_the_hangar(grant: &str) -> String {
        format!(
            "`{grant}` is answered by the hangar; outside it, run the plugin through \
             hangar_plugin_sdk::testing::DiscoveryHarness and grant `{grant}` on its host()"
        )
    }
}
