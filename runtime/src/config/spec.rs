//! The validated, typed form of a provider — what the rest of the runtime reads.
//!
//! Every default is applied here (the constants below are the single source of them), every
//! `${VAR}` is resolved, and every value that may hold a secret is a `MaybeSecret`, so `Debug`
//! on any of these types is safe to log.

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
    pub description: Option<String>,
    pub idle_ttl: Duration,
    pub health_check_interval: Duration,
    pub max_consecutive_failures: u32,
    pub shutdown_timeout: Duration,
    /// Per-call deadline; `None` leaves it to the runtime's global default.
    pub call_timeout: Option<Duration>,
    /// In-flight call limit; `None` (or `0` in the file) means no per-provider limit.
    pub max_concurrency: Option<u32>,
    pub auto_start: bool,
    /// Prepended to tool names when aggregated; `None` or `""` means no prefix.
    pub tool_prefix: Option<String>,
    /// `tools:` written as a list: tools known before the provider starts.
    pub tools: Vec<ToolSpec>,
    /// `tools:` written as a map: which tools are exposed.
    pub tool_filter: Option<ToolFilter>,
    pub container: Option<ContainerSpec>,
    pub remote: Option<RemoteSpec>,
    pub group: Option<GroupSpec>,
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    pub recovery: Option<RecoverySpec>,
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
            description: None,
            idle_ttl: DEFAULT_IDLE_TTL,
            health_check_interval: DEFAULT_HEALTH_CHECK_INTERVAL,
            max_consecutive_failures: DEFAULT_MAX_CONSECUTIVE_FAILURES,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            call_timeout: None,
            max_concurrency: None,
            auto_start: mode == ProviderMode::Group,
            tool_prefix: None,
            tools: Vec::new(),
            tool_filter: None,
            container: None,
            remote: None,
            group: None,
            circuit_breaker: None,
            recovery: None,
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
            .field("description", &self.description)
            .field("idle_ttl", &self.idle_ttl)
            .field("health_check_interval", &self.health_check_interval)
            .field("max_consecutive_failures", &self.max_consecutive_failures)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("max_concurrency", &self.max_concurrency)
            .field("auto_start", &self.auto_start)
            .field("tool_prefix", &self.tool_prefix)
            .field("tools", &self.tools)
            .field("tool_filter", &self.tool_filter)
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupStrategy {
    RoundRobin,
    WeightedRoundRobin,
    LeastConnections,
    Random,
    Priority,
}

impl GroupStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::WeightedRoundRobin => "weighted_round_robin",
            Self::LeastConnections => "least_connections",
            Self::Random => "random",
            Self::Priority => "priority",
        }
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitBreakerSpec {
    pub failure_threshold: u32,
    pub reset_timeout: Duration,
}

impl Default for CircuitBreakerSpec {
    /// The original's defaults.
    fn default() -> Self {
        Self {
            failure_threshold: 10,
            reset_timeout: Duration::from_secs(60),
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
