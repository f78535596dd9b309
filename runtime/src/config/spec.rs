//! The validated, typed form of providers, plugins and hangar-wide settings — what the rest of
//! the runtime reads.
//!
//! Every default is applied here (the constants below are the single source of them), every
//! `${VAR}` is resolved, and every value that may hold a secret is a `MaybeSecret` (or, for a
//! plugin's free-form `config:`, a `PluginConfig`), so `Debug` on any of these types is safe to
//! log. Settings the runtime always needs (circuit breaker, recovery, queue, limits) are never
//! `Option`: the runtime does not know any default.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;

use super::locate::SourceLocation;
use super::secret::{EnvValue, MaybeSecret, REDACTED};

pub const DEFAULT_IDLE_TTL: Duration = Duration::from_secs(300);
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_CONSECUTIVE_FAILURES: u32 = 3;
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_CONTAINER_MEMORY: &str = "512m";
pub const DEFAULT_CONTAINER_CPUS: f64 = 1.0;
pub const DEFAULT_API_KEY_HEADER: &str = "X-API-Key";
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_HTTP_MAX_RETRIES: u32 = 3;
pub const DEFAULT_HTTP_RETRY_BACKOFF_FACTOR: f64 = 0.5;
pub const DEFAULT_MIN_HEALTHY: u32 = 1;
pub const DEFAULT_MEMBER_WEIGHT: u32 = 1;
pub const DEFAULT_MEMBER_PRIORITY: u32 = 1;
pub const DEFAULT_FAILBACK_DELAY: Duration = Duration::from_secs(30);
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_QUEUE: u32 = 100;
pub const DEFAULT_MAX_ARGUMENT_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_ARGUMENT_DEPTH: usize = 32;
pub const DEFAULT_PLUGIN_TIMEOUT: Duration = Duration::from_millis(50);
/// A discovery source's calls may wait on the Docker or Kubernetes API, which a validator's
/// 50 ms would not cover; discovery runs seconds apart, off every call's path.
pub const DEFAULT_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_PLUGIN_MEMORY_MB: u32 = 64;

/// How a provider is run and reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderMode {
    /// A child process speaking MCP over stdio.
    Subprocess,
    /// A container (written `container`, `docker` or `podman`).
    Container,
    /// An MCP server reached over HTTP (written `remote` or `http`).
    Remote,
    /// A load-balanced group of member providers.
    Group,
}

impl ProviderMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subprocess => "subprocess",
            Self::Container => "container",
            Self::Remote => "remote",
            Self::Group => "group",
        }
    }
}

impl fmt::Display for ProviderMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One provider (or group) from the config. `Debug` is written by hand (below) only so that
/// `cwd` is redacted when it is secret; every other field redacts itself.
#[derive(Clone, PartialEq)]
pub struct ProviderSpec {
    pub id: String,
    pub mode: ProviderMode,
    /// Where the provider's id is written (`None` for specs built in code).
    pub defined_at: Option<SourceLocation>,
    /// `command:` — the argv (subprocess), or the entrypoint override (container).
    pub command: Vec<MaybeSecret>,
    /// `args:` — appended to `command` (subprocess), or the CMD override (container).
    pub args: Vec<MaybeSecret>,
    /// Working directory, after interpolation (relative paths are the runtime's to resolve).
    pub cwd: Option<PathBuf>,
    /// Whether `cwd` came from a `${...}` substitution and must be shown as `***`.
    pub cwd_secret: bool,
    pub env: IndexMap<String, EnvValue>,
    /// Pass the hangar's whole environment to the process. Off by default: a provider gets a
    /// minimal base (`PATH`, `HOME`, locale, …) plus its own `env`, so one provider never sees
    /// another's secrets.
    pub inherit_env: bool,
    pub description: Option<String>,
    pub idle_ttl: Duration,
    pub health_check_interval: Duration,
    pub max_consecutive_failures: u32,
    pub shutdown_timeout: Duration,
    /// Per-call deadline; `None` leaves it to the runtime's global default.
    pub call_timeout: Option<Duration>,
    /// In-flight call limit; `None` (or `0` in the file) means no per-provider limit.
    pub max_concurrency: Option<u32>,
    /// Calls that may wait for a `max_concurrency` slot; `0` refuses at once when all are busy.
    pub max_queue: u32,
    pub auto_start: bool,
    /// Prepended to tool names when aggregated; `None` or `""` means no prefix.
    pub tool_prefix: Option<String>,
    /// `tools:` written as a list: tools known before the provider starts.
    pub tools: Vec<ToolSpec>,
    /// `tools:` written as a map: which tools are exposed.
    pub tool_filter: Option<ToolFilter>,
    /// Names of `validator` plugins that check every call's arguments, in order.
    pub validators: Vec<String>,
    pub container: Option<ContainerSpec>,
    pub remote: Option<RemoteSpec>,
    pub group: Option<GroupSpec>,
    /// Always set: the mode's defaults (`CircuitBreakerSpec::default_for`) fill unwritten keys.
    pub circuit_breaker: CircuitBreakerSpec,
    /// Always set: `RecoverySpec::default()` fills unwritten keys.
    pub recovery: RecoverySpec,
    /// `None`: no per-provider rate limit.
    pub rate_limit: Option<RateLimitSpec>,
    /// Open-shaped blocks of the original, kept verbatim for the features that will read them.
    pub capabilities: Option<serde_json::Value>,
    pub access: Option<serde_json::Value>,
    pub tool_access: Option<serde_json::Value>,
    pub tool_projection: Option<serde_json::Value>,
    pub canary: Option<serde_json::Value>,
}

impl ProviderSpec {
    /// A spec with every default applied and nothing else set — for code that builds providers
    /// without a file (tests, discovery).
    pub fn new(id: impl Into<String>, mode: ProviderMode) -> Self {
        Self {
            id: id.into(),
            mode,
            defined_at: None,
            command: Vec::new(),
            args: Vec::new(),
            cwd: None,
            cwd_secret: false,
            env: IndexMap::new(),
            inherit_env: false,
            description: None,
            idle_ttl: DEFAULT_IDLE_TTL,
            health_check_interval: DEFAULT_HEALTH_CHECK_INTERVAL,
            max_consecutive_failures: DEFAULT_MAX_CONSECUTIVE_FAILURES,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            call_timeout: None,
            max_concurrency: None,
            max_queue: DEFAULT_MAX_QUEUE,
            auto_start: mode == ProviderMode::Group,
            tool_prefix: None,
            tools: Vec::new(),
            tool_filter: None,
            validators: Vec::new(),
            container: None,
            remote: None,
            group: None,
            circuit_breaker: CircuitBreakerSpec::default_for(mode),
            recovery: RecoverySpec::default(),
            rate_limit: None,
            capabilities: None,
            access: None,
            tool_access: None,
            tool_projection: None,
            canary: None,
        }
    }

    /// A subprocess provider running `argv`, with every default applied.
    pub fn subprocess<S: AsRef<str>>(id: impl Into<String>, argv: &[S]) -> Self {
        let mut spec = Self::new(id, ProviderMode::Subprocess);
        spec.command = argv
            .iter()
            .map(|arg| MaybeSecret::plain(arg.as_ref()))
            .collect();
        spec
    }

    /// `command` followed by `args`, in clear — what is executed.
    pub fn argv(&self) -> Vec<String> {
        self.command
            .iter()
            .chain(&self.args)
            .map(|arg| arg.expose().to_owned())
            .collect()
    }

    /// `command` followed by `args` with secrets as `***` — what is shown.
    pub fn redacted_argv(&self) -> Vec<String> {
        self.command
            .iter()
            .chain(&self.args)
            .map(|arg| arg.redacted().to_owned())
            .collect()
    }

    /// The environment for the provider process, in clear.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(key, value)| (key.clone(), value.expose().to_owned()))
            .collect()
    }

    /// The working directory as it may be shown: `***` when it is secret.
    pub fn redacted_cwd(&self) -> Option<String> {
        self.cwd.as_ref().map(|cwd| {
            if self.cwd_secret {
                REDACTED.to_owned()
            } else {
                cwd.display().to_string()
            }
        })
    }

    /// The clear text of every secret value of this spec (`${VAR}` substitutions, values under
    /// secret-looking keys): what must be cut out of anything the provider writes or any error
    /// about it before a person sees it.
    pub fn secrets(&self) -> Vec<&str> {
        let mut all: Vec<&MaybeSecret> = Vec::new();
        all.extend(&self.command);
        all.extend(&self.args);
        all.extend(self.env.values());
        if let Some(c) = &self.container {
            all.extend(&c.image);
            all.extend(&c.user);
            all.extend(&c.socket);
            for v in &c.volumes {
                all.push(&v.host);
                all.push(&v.container);
            }
            if let Some(b) = &c.build {
                all.push(&b.context);
                all.push(&b.dockerfile);
            }
        }
        if let Some(r) = &self.remote {
            all.push(&r.endpoint);
            match &r.auth {
                RemoteAuth::None => {}
                RemoteAuth::Bearer { token } => all.push(token),
                RemoteAuth::Basic { username, password } => all.extend([username, password]),
                RemoteAuth::ApiKey { header, key } => all.extend([header, key]),
            }
            all.extend(r.http.headers.values());
            all.extend(
                [&r.tls.ca_cert, &r.tls.client_cert, &r.tls.client_key]
                    .into_iter()
                    .flatten(),
            );
        }
        let mut secrets: Vec<&str> = all
            .iter()
            .filter(|v| v.is_secret())
            .map(|v| v.expose())
            .collect();
        // A token written into a longer value (`--token=${API_TOKEN}`) may be printed alone.
        secrets.extend(
            all.iter()
                .flat_map(|v| v.secret_parts())
                .map(String::as_str),
        );
        if self.cwd_secret
            && let Some(cwd) = self.cwd.as_ref().and_then(|c| c.to_str())
        {
            secrets.push(cwd);
        }
        secrets
    }

    /// The tool prefix, if one is set and not empty.
    pub fn effective_tool_prefix(&self) -> Option<&str> {
        self.tool_prefix
            .as_deref()
            .filter(|prefix| !prefix.is_empty())
    }
}

impl fmt::Debug for ProviderSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSpec")
            .field("id", &self.id)
            .field("mode", &self.mode)
            .field("defined_at", &self.defined_at)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("cwd", &self.redacted_cwd())
            .field("env", &self.env)
            .field("inherit_env", &self.inherit_env)
            .field("description", &self.description)
            .field("idle_ttl", &self.idle_ttl)
            .field("health_check_interval", &self.health_check_interval)
            .field("max_consecutive_failures", &self.max_consecutive_failures)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("max_concurrency", &self.max_concurrency)
            .field("max_queue", &self.max_queue)
            .field("auto_start", &self.auto_start)
            .field("tool_prefix", &self.tool_prefix)
            .field("tools", &self.tools)
            .field("tool_filter", &self.tool_filter)
            .field("validators", &self.validators)
            .field("container", &self.container)
            .field("remote", &self.remote)
            .field("group", &self.group)
            .field("circuit_breaker", &self.circuit_breaker)
            .field("recovery", &self.recovery)
            .field("rate_limit", &self.rate_limit)
            .field("capabilities", &self.capabilities)
            .field("access", &self.access)
            .field("tool_access", &self.tool_access)
            .field("tool_projection", &self.tool_projection)
            .field("canary", &self.canary)
            .finish()
    }
}

/// A tool declared in the config, listed before the provider has started.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: Option<String>,
    /// Defaults to `{"type": "object"}`.
    pub input_schema: serde_json::Map<String, serde_json::Value>,
    pub output_schema: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `tools:` as an access policy. Patterns are fnmatch globs (`delete_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolFilter {
    /// When not empty, only matching tools are exposed (and `deny_list` is not consulted).
    pub allow_list: Vec<String>,
    pub deny_list: Vec<String>,
    /// Exposed, but each call waits for a human decision.
    pub approval_list: Vec<String>,
    pub approval_timeout: Duration,
    /// Where approvals go; `None` uses the deployment's channel.
    pub approval_channel: Option<String>,
}

/// One `allow_list` / `deny_list` pattern compiled the way Python's `fnmatch` reads it on the
/// original's platforms: case-sensitive, `*` and `?` cross every character (a tool name has no
/// path separator to respect), and a backslash is an ordinary character. The one place that
/// fixes the dialect, so the check at load and the match at run time cannot disagree.
///
/// Deliberately not fnmatch: `{a,b}` is an alternation here (fnmatch reads it literally); no
/// tool name in the wild has braces.
pub fn tool_glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(false)
        .case_insensitive(false)
        .build()
}

#[derive(Clone, Debug, PartialEq)]
pub struct ContainerSpec {
    /// The image to run; `None` only when `build` gives one.
    pub image: Option<MaybeSecret>,
    pub build: Option<BuildSpec>,
    pub volumes: Vec<VolumeMount>,
    pub network: ContainerNetwork,
    /// Read-only root filesystem (default true).
    pub read_only: bool,
    pub resources: ContainerResources,
    /// `uid[:gid]`, a user name, or `current` (the runtime maps it to the hangar's uid:gid).
    pub user: Option<MaybeSecret>,
    /// The engine to run on: a socket path or a `unix://`, `tcp://` or `http://` URL. `None`:
    /// `DOCKER_HOST`, else the Docker socket, else Podman's (the backend looks at start).
    pub socket: Option<MaybeSecret>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildSpec {
    pub context: MaybeSecret,
    pub dockerfile: MaybeSecret,
    pub tag: Option<String>,
}

/// `host:container[:ro|rw]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeMount {
    pub host: MaybeSecret,
    pub container: MaybeSecret,
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerNetwork {
    /// No network at all (the default).
    None,
    Bridge,
    Host,
    /// A user-defined network, by name.
    Named(String),
}

impl ContainerNetwork {
    pub fn as_str(&self) -> &str {
        match self {
            Self::None => "none",
            Self::Bridge => "bridge",
            Self::Host => "host",
            Self::Named(name) => name,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ContainerResources {
    /// As written, e.g. "512m".
    pub memory: String,
    pub memory_bytes: u64,
    pub cpus: f64,
}

impl Default for ContainerResources {
    fn default() -> Self {
        Self {
            memory: DEFAULT_CONTAINER_MEMORY.to_owned(),
            memory_bytes: 512 << 20,
            cpus: DEFAULT_CONTAINER_CPUS,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RemoteSpec {
    /// An `http://` or `https://` URL.
    pub endpoint: MaybeSecret,
    pub transport: RemoteTransport,
    pub auth: RemoteAuth,
    pub tls: TlsSpec,
    pub http: HttpSpec,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteTransport {
    StreamableHttp,
    Sse,
}

impl RemoteTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StreamableHttp => "streamable_http",
            Self::Sse => "sse",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteAuth {
    None,
    Bearer {
        token: MaybeSecret,
    },
    Basic {
        username: MaybeSecret,
        password: MaybeSecret,
    },
    ApiKey {
        header: MaybeSecret,
        key: MaybeSecret,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSpec {
    pub verify: bool,
    pub ca_cert: Option<MaybeSecret>,
    pub client_cert: Option<MaybeSecret>,
    pub client_key: Option<MaybeSecret>,
}

impl Default for TlsSpec {
    fn default() -> Self {
        Self {
            verify: true,
            ca_cert: None,
            client_cert: None,
            client_key: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpSpec {
    pub headers: IndexMap<String, MaybeSecret>,
    /// Read timeout for one request.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_retries: u32,
    pub retry_backoff_factor: f64,
    pub keep_alive: bool,
}

impl Default for HttpSpec {
    fn default() -> Self {
        Self {
            headers: IndexMap::new(),
            timeout: DEFAULT_HTTP_TIMEOUT,
            connect_timeout: DEFAULT_HTTP_CONNECT_TIMEOUT,
            max_retries: DEFAULT_HTTP_MAX_RETRIES,
            retry_backoff_factor: DEFAULT_HTTP_RETRY_BACKOFF_FACTOR,
            keep_alive: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GroupSpec {
    pub strategy: GroupStrategy,
    pub min_healthy: u32,
    pub members: Vec<GroupMember>,
    pub health: HealthThresholds,
    pub failback_delay: Duration,
}

/// How a group picks the member for a call: a native strategy, or an `lb_policy` plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupStrategy {
    RoundRobin,
    WeightedRoundRobin,
    LeastConnections,
    Random,
    Priority,
    /// `plugin:NAME`: the plugin `NAME` from `plugins:`, always of kind `lb_policy`.
    Plugin(String),
}

impl GroupStrategy {
    /// The strategy as written in the file: `round_robin`, …, or `plugin:NAME`.
    pub fn as_str(&self) -> Cow<'_, str> {
        match self {
            Self::RoundRobin => Cow::Borrowed("round_robin"),
            Self::WeightedRoundRobin => Cow::Borrowed("weighted_round_robin"),
            Self::LeastConnections => Cow::Borrowed("least_connections"),
            Self::Random => Cow::Borrowed("random"),
            Self::Priority => Cow::Borrowed("priority"),
            Self::Plugin(name) => Cow::Owned(format!("plugin:{name}")),
        }
    }

    /// The plugin's name for `plugin:NAME`, `None` for a native strategy.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            Self::Plugin(name) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for GroupStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GroupMember {
    pub id: String,
    /// 1–100; used by weighted strategies.
    pub weight: u32,
    /// 1–100; lower is preferred by the priority strategy.
    pub priority: u32,
    pub definition: MemberDefinition,
    /// A `tools:` policy that applies to this member within the group only. Written on a
    /// reference member; an inline member's `tools:` map is its own `tool_filter`.
    pub tool_filter: Option<ToolFilter>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MemberDefinition {
    /// The member is defined right here.
    Inline(Box<ProviderSpec>),
    /// The member is the top-level provider with the same id.
    Reference,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthThresholds {
    /// Consecutive failures before a member leaves the rotation.
    pub unhealthy_threshold: u32,
    /// Consecutive successes before it comes back.
    pub healthy_threshold: u32,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            unhealthy_threshold: 2,
            healthy_threshold: 1,
        }
    }
}

/// When calls stop being sent (`failure_threshold` failures in a row) and when one is tried
/// again (`reset_timeout` later). There is deliberately no `Default`: the defaults depend on
/// the mode (`default_for`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitBreakerSpec {
    pub failure_threshold: u32,
    pub reset_timeout: Duration,
}

impl CircuitBreakerSpec {
    /// A single provider's defaults: it has nothing to fail over to, so it opens early.
    pub const PROVIDER_DEFAULT: Self = Self {
        failure_threshold: 5,
        reset_timeout: Duration::from_secs(30),
    };

    /// A group's defaults (the original's): its members already fail over and leave the
    /// rotation on their own, so the group-wide breaker is the last resort and opens late.
    pub const GROUP_DEFAULT: Self = Self {
        failure_threshold: 10,
        reset_timeout: Duration::from_secs(60),
    };

    /// The defaults for a provider of `mode`.
    pub fn default_for(mode: ProviderMode) -> Self {
        match mode {
            ProviderMode::Group => Self::GROUP_DEFAULT,
            _ => Self::PROVIDER_DEFAULT,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoverySpec {
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub max_retries: u32,
}

impl Default for RecoverySpec {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_retries: 5,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimitSpec {
    pub requests_per_second: f64,
    /// Defaults to `requests_per_second` rounded up (at least 1).
    pub burst: u32,
}

/// Bounds on a tool call's arguments, checked before they reach a provider (`limits:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest size of the arguments as compact JSON, in bytes (default 1 MiB).
    pub max_argument_bytes: usize,
    /// Deepest nesting of objects and arrays, the arguments object being depth 1 (default 32).
    pub max_argument_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_argument_bytes: DEFAULT_MAX_ARGUMENT_BYTES,
            max_argument_depth: DEFAULT_MAX_ARGUMENT_DEPTH,
        }
    }
}

/// One entry of `plugins:` — a WebAssembly module the hangar may call, and its sandbox.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginSpec {
    /// The key under `plugins:`; providers and groups refer to the plugin by it.
    pub name: String,
    /// What the plugin is for; checked against every place that names it.
    pub kind: PluginKind,
    /// Where the plugin's name is written (`None` for specs built in code).
    pub defined_at: Option<SourceLocation>,
    /// The module file, absolute (a relative `path:` is taken from the config file's
    /// directory), or `bundled:NAME` for a plugin embedded in the binary. A file is not
    /// checked to exist: that is the plugin host's job when it loads it.
    pub path: PathBuf,
    /// `config:` handed to the plugin, `${VAR}` resolved in every string.
    pub config: PluginConfig,
    /// Deadline for one call into the plugin.
    pub timeout: Duration,
    /// Largest linear memory the plugin may grow, in MiB.
    pub memory_mb: u32,
    /// Fuel (roughly, instructions) per call; `None`: only `timeout` bounds it.
    pub fuel: Option<u64>,
    /// What happens to the call when the plugin fails, traps or runs out of time.
    pub on_error: OnError,
    /// Host capabilities beyond pure computation, without repeats, in file order.
    pub grants: Vec<PluginGrant>,
    /// Host directories the plugin can read.
    pub preopens: Vec<Preopen>,
    /// Settings of the grants written as maps (`- kubernetes: {namespaces: [mcp]}`); the
    /// defaults for a grant written as a word. Read only for the grants in `grants`.
    pub grant_settings: GrantSettings,
}

/// A plugin `path:` that starts with this names a plugin embedded in the binary
/// (`bundled:sticky-session`) instead of a file.
pub const BUNDLED_PREFIX: &str = "bundled:";

impl PluginSpec {
    /// A plugin built in code rather than read from a file: every setting not given is the
    /// config file's default.
    pub fn new(name: &str, kind: PluginKind, path: PathBuf, config: PluginConfig) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            defined_at: None,
            path,
            config,
            timeout: kind.default_timeout(),
            memory_mb: DEFAULT_PLUGIN_MEMORY_MB,
            fuel: None,
            on_error: kind.default_on_error(),
            grants: Vec::new(),
            preopens: Vec::new(),
            grant_settings: GrantSettings::default(),
        }
    }

    /// The bundled plugin this spec names (`path: bundled:NAME`), if it names one.
    pub fn bundled_name(&self) -> Option<&str> {
        self.path.to_str()?.strip_prefix(BUNDLED_PREFIX)
    }

    /// `memory_mb` in bytes.
    pub fn memory_bytes(&self) -> u64 {
        u64::from(self.memory_mb) << 20
    }
}

/// What a plugin is for, which decides where the runtime calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PluginKind {
    /// Checks a call's arguments before the provider sees them (`validators:` of a provider).
    Validator,
    /// Picks a group's member (`strategy: plugin:NAME` of a group).
    LbPolicy,
    /// Finds providers to add to the hangar.
    Discovery,
}

impl PluginKind {
    /// The kind as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validator => "validator",
            Self::LbPolicy => "lb_policy",
            Self::Discovery => "discovery",
        }
    }

    /// A call's deadline when `timeout_ms:` is not written.
    pub fn default_timeout(self) -> Duration {
        match self {
            Self::Validator | Self::LbPolicy => DEFAULT_PLUGIN_TIMEOUT,
            Self::Discovery => DEFAULT_DISCOVERY_TIMEOUT,
        }
    }

    /// What a plugin of this kind does when `on_error:` is not written: a validator that
    /// cannot run must not let unchecked calls through; a balancer or discovery that cannot
    /// run should not take the hangar down with it.
    pub fn default_on_error(self) -> OnError {
        match self {
            Self::Validator => OnError::FailClosed,
            Self::LbPolicy | Self::Discovery => OnError::FailOpen,
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the runtime does when a plugin fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Carry on as if the plugin were absent (validator: allow; lb_policy: native default).
    FailOpen,
    /// Refuse the call.
    FailClosed,
}

impl OnError {
    /// The policy as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailOpen => "fail_open",
            Self::FailClosed => "fail_closed",
        }
    }
}

/// A host capability a plugin may be given beyond computing on its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PluginGrant {
    /// Read access to the Docker API (e.g. for discovery).
    Docker,
    /// Read access to the Kubernetes API (e.g. for discovery).
    Kubernetes,
}

impl PluginGrant {
    /// The grant as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Kubernetes => "kubernetes",
        }
    }
}

/// Where the granted capabilities reach (`grants: [{docker: {...}}, {kubernetes: {...}}]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrantSettings {
    pub docker: DockerGrant,
    pub kubernetes: KubernetesGrant,
}

/// `docker: {socket}` of a grant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DockerGrant {
    /// The engine's socket (`unix:///path`, a path, or `tcp://host:port`); `None`: the
    /// container backend's lookup (`DOCKER_HOST`, then the Docker socket, then Podman's).
    pub socket: Option<String>,
}

/// `kubernetes: {kubeconfig, context, namespaces}` of a grant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubernetesGrant {
    /// A kubeconfig file, absolute (a relative path is taken from the config file's
    /// directory); `None`: `KUBECONFIG` or `~/.kube/config`, else the in-cluster service
    /// account.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; `None`: its current context.
    pub context: Option<String>,
    /// The only namespaces the plugin may list pods in; empty: every namespace the
    /// credentials can read.
    pub namespaces: Vec<String>,
}

/// A host directory visible to a plugin at `guest`. Read-only by design: there is no way to
/// make it writable, so a plugin can never change files on the hangar's host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    /// Absolute (a relative `host:` is taken from the config file's directory).
    pub host: PathBuf,
    /// The directory name the plugin sees.
    pub guest: String,
}

/// A plugin's free-form `config:` with `${VAR}` resolved. Like `MaybeSecret`, the clear value
/// takes an explicit `expose()`; `Debug` and `redacted()` show `***` for every secret leaf (a
/// string that came from `${...}`, or any scalar under a secret-looking key).
#[derive(Clone, PartialEq)]
pub struct PluginConfig {
    value: serde_json::Value,
    /// RFC 6901 pointers to the secret leaves, in document order.
    secret_pointers: Vec<String>,
}

impl PluginConfig {
    /// A config with no secrets (for code that builds plugins without a file).
    pub fn plain(value: serde_json::Value) -> Self {
        Self {
            value,
            secret_pointers: Vec::new(),
        }
    }

    /// A config whose leaves at `secret_pointers` (RFC 6901) must never be shown.
    pub fn new(value: serde_json::Value, secret_pointers: Vec<String>) -> Self {
        Self {
            value,
            secret_pointers,
        }
    }

    /// The clear config, for handing to the plugin — never for logs.
    pub fn expose(&self) -> &serde_json::Value {
        &self.value
    }

    /// RFC 6901 pointers to the leaves that are secret.
    pub fn secret_pointers(&self) -> &[String] {
        &self.secret_pointers
    }

    /// The config as it may be shown: every secret leaf replaced by `***`.
    pub fn redacted(&self) -> serde_json::Value {
        let mut shown = self.value.clone();
        for pointer in &self.secret_pointers {
            if let Some(leaf) = shown.pointer_mut(pointer) {
                *leaf = serde_json::Value::from(REDACTED);
            }
        }
        shown
    }
}

impl Default for PluginConfig {
    /// `{}`, what an unwritten `config:` means.
    fn default() -> Self {
        Self::plain(serde_json::Value::Object(serde_json::Map::new()))
    }
}

impl fmt::Debug for PluginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_env_and_cwd_are_clear_but_their_shown_forms_are_not() {
        let mut spec = ProviderSpec::subprocess("math", &["python", "-m", "server"]);
        spec.args.push(MaybeSecret::secret("--token=abc"));
        spec.env.insert("API_KEY".into(), MaybeSecret::secret("k"));
        spec.cwd = Some(PathBuf::from("/home/alice/secret-project"));
        spec.cwd_secret = true;
        assert_eq!(spec.argv(), ["python", "-m", "server", "--token=abc"]);
        assert_eq!(spec.redacted_argv(), ["python", "-m", "server", "***"]);
        assert_eq!(spec.env_pairs(), [("API_KEY".to_owned(), "k".to_owned())]);
        assert_eq!(spec.redacted_cwd().as_deref(), Some("***"));
        let debug = format!("{spec:?}");
        for clear in ["abc", "\"k\"", "alice"] {
            assert!(!debug.contains(clear), "`{clear}` leaked: {debug}");
        }
    }

    #[test]
    fn empty_tool_prefix_means_no_prefix() {
        let mut spec = ProviderSpec::subprocess("math", &["x"]);
        spec.tool_prefix = Some(String::new());
        assert_eq!(spec.effective_tool_prefix(), None);
        spec.tool_prefix = Some("m".into());
        assert_eq!(spec.effective_tool_prefix(), Some("m"));
    }
}
