//! The plain Rust types a plugin sees, and their conversions to and from the generated WIT
//! types (both ways: the export macros convert what the hangar sends, the test harness converts
//! what a test sends, so a test runs the same conversions as the hangar's calls).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::bindings::wit;

/// A plugin's `config:` from the hangar's file, as the JSON the hangar hands over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    json: String,
}

impl Config {
    /// A config from its JSON text (the hangar sends `{}` when the file sets no `config:`).
    pub fn new(json: impl Into<String>) -> Self {
        Self { json: json.into() }
    }

    /// The JSON text, as the hangar sent it.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The config as `T`; the error reads `invalid config: …` with serde's account of what is
    /// wrong (use `#[serde(deny_unknown_fields)]` on `T` to refuse typos).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(&self.json).map_err(|err| format!("invalid config: {err}"))
    }
}

/// One tool call about to be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// Provider (or group) id the call is addressed to.
    pub provider: String,
    /// Tool name as the provider calls it.
    pub tool: String,
    /// The arguments object, serialized as JSON.
    pub arguments_json: String,
    /// The client's session id, when the transport has one.
    pub session: Option<String>,
    /// Call metadata: `correlation-id`, the client's name and version, …
    pub meta: Vec<(String, String)>,
}

impl Invocation {
    /// A call of `tool` on `provider` with no arguments (`{}`), no session and no metadata.
    /// Chain the `with_*` methods to fill in the rest (mostly useful in tests).
    pub fn new(provider: impl Into<String>, tool: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            tool: tool.into(),
            arguments_json: "{}".to_owned(),
            session: None,
            meta: Vec::new(),
        }
    }

    /// These arguments (normally a JSON object).
    pub fn with_arguments(mut self, arguments: Value) -> Self {
        self.arguments_json = arguments.to_string();
        self
    }

    /// In this client session.
    pub fn with_session(mut self, session: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self
    }

    /// With one more metadata pair.
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.meta.push((key.into(), value.into()));
        self
    }

    /// The arguments parsed as JSON.
    pub fn arguments(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.arguments_json)
    }

    /// The first metadata value under `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A group member as a load-balancing policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Member id (a provider id).
    pub id: String,
    /// 1-100, from the config.
    pub weight: u32,
    /// 1-100, lower is preferred, from the config.
    pub priority: u32,
    /// Calls running on this member now.
    pub in_flight: u32,
    /// In the group's rotation (not failing its health checks).
    pub healthy: bool,
    /// Exponentially weighted moving average of its call latency, in microseconds.
    pub ewma_latency_us: u64,
}

impl Member {
    /// A healthy, idle member of weight 1 and priority 1 (mostly useful in tests; set the
    /// fields to change the rest).
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            weight: 1,
            priority: 1,
            in_flight: 0,
            healthy: true,
            ewma_latency_us: 0,
        }
    }
}

/// A validator's decision about a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Send the call as it is.
    Allow,
    /// Refuse it; the reason is shown to the client.
    Deny(String),
    /// Send it with these arguments instead (the hangar checks them against the tool's schema
    /// again before it sends the call).
    Rewrite(Map<String, Value>),
}

impl Verdict {
    /// `Deny` with this reason.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self::Deny(reason.into())
    }
}

/// A provider a discovery source found. The hangar checks it exactly like a provider written in
/// its config file; an invalid one is quarantined, never half-registered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderSpec {
    /// Provider id: `^[a-zA-Z][a-zA-Z0-9_-]{0,63}$`, unique across all sources.
    pub name: String,
    /// `subprocess`, `container` or `remote`.
    pub mode: String,
    /// argv of a subprocess provider; empty otherwise.
    pub command: Vec<String>,
    /// Image of a container provider.
    pub image: Option<String>,
    /// URL of a remote provider (streamable HTTP or SSE).
    pub endpoint: Option<String>,
    /// Extra environment for the provider. Do not copy secrets the source was not given.
    pub env: Vec<(String, String)>,
    /// Group the provider joins, if any.
    pub group: Option<String>,
    /// Labels carried to `registry_details`; `hangar.*` keys are reserved.
    pub labels: Vec<(String, String)>,
    /// Shown by `registry_list`.
    pub description: Option<String>,
    /// Seconds without a call before the provider is stopped; the hangar's default if `None`.
    pub idle_ttl_s: Option<u32>,
    /// Predefined tools as a JSON array of `{name, description, inputSchema}`, offered before
    /// the provider starts.
    pub tools_json: Option<String>,
}

impl ProviderSpec {
    /// A remote provider (streamable HTTP or SSE) at `endpoint`.
    pub fn remote(name: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            mode: "remote".to_owned(),
            endpoint: Some(endpoint.into()),
            ..Self::default()
        }
    }

    /// A subprocess provider started with `command` (argv).
    pub fn subprocess(name: impl Into<String>, command: Vec<String>) -> Self {
        Self {
            name: name.into(),
            mode: "subprocess".to_owned(),
            command,
            ..Self::default()
        }
    }

    /// A container provider run from `image`.
    pub fn container(name: impl Into<String>, image: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            mode: "container".to_owned(),
            image: Some(image.into()),
            ..Self::default()
        }
    }
}

/// A container as the `docker` capability reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    /// Names without the leading `/`.
    pub names: Vec<String>,
    pub image: String,
    pub labels: Vec<(String, String)>,
    /// `running`, `exited`, …
    pub state: String,
    /// Network name and the container's IP address on it.
    pub networks: Vec<(String, String)>,
}

/// A pod as the `kubernetes` capability reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    pub phase: String,
    pub pod_ip: Option<String>,
    /// All containers ready.
    pub ready: bool,
    /// Ports the pod's containers declare.
    pub container_ports: Vec<u16>,
}

/// Severity of a line logged with [`log`](crate::log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        })
    }
}

impl From<wit::Invocation> for Invocation {
    fn from(call: wit::Invocation) -> Self {
        Self {
            provider: call.provider,
            tool: call.tool,
            arguments_json: call.arguments_json,
            session: call.session,
            meta: call.meta,
        }
    }
}

impl From<&Invocation> for wit::Invocation {
    fn from(call: &Invocation) -> Self {
        Self {
            provider: call.provider.clone(),
            tool: call.tool.clone(),
            arguments_json: call.arguments_json.clone(),
            session: call.session.clone(),
            meta: call.meta.clone(),
        }
    }
}

impl From<wit::Member> for Member {
    fn from(member: wit::Member) -> Self {
        Self {
            id: member.id,
            weight: member.weight,
            priority: member.priority,
            in_flight: member.in_flight,
            healthy: member.healthy,
            ewma_latency_us: member.ewma_latency_us,
        }
    }
}

impl From<&Member> for wit::Member {
    fn from(member: &Member) -> Self {
        Self {
            id: member.id.clone(),
            weight: member.weight,
            priority: member.priority,
            in_flight: member.in_flight,
            healthy: member.healthy,
            ewma_latency_us: member.ewma_latency_us,
        }
    }
}

impl From<Verdict> for wit::Verdict {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Allow => Self::Allow,
            Verdict::Deny(reason) => Self::Deny(reason),
            Verdict::Rewrite(arguments) => Self::Rewrite(Value::Object(arguments).to_string()),
        }
    }
}

impl TryFrom<wit::Verdict> for Verdict {
    /// A rewrite that is not a JSON object (the hangar refuses those too).
    type Error = String;

    fn try_from(verdict: wit::Verdict) -> Result<Self, String> {
        match verdict {
            wit::Verdict::Allow => Ok(Self::Allow),
            wit::Verdict::Deny(reason) => Ok(Self::Deny(reason)),
            wit::Verdict::Rewrite(json) => match serde_json::from_str(&json) {
                Ok(Value::Object(arguments)) => Ok(Self::Rewrite(arguments)),
                _ => Err(format!("a rewrite must be a JSON object, got {json}")),
            },
        }
    }
}

impl From<ProviderSpec> for wit::ProviderSpec {
    fn from(spec: ProviderSpec) -> Self {
        Self {
            name: spec.name,
            mode: spec.mode,
            command: spec.command,
            image: spec.image,
            endpoint: spec.endpoint,
            env: spec.env,
            group: spec.group,
            labels: spec.labels,
            description: spec.description,
            idle_ttl_s: spec.idle_ttl_s,
            tools_json: spec.tools_json,
        }
    }
}

impl From<wit::ProviderSpec> for ProviderSpec {
    fn from(spec: wit::ProviderSpec) -> Self {
        Self {
            name: spec.name,
            mode: spec.mode,
            command: spec.command,
            image: spec.image,
            endpoint: spec.endpoint,
            env: spec.env,
            group: spec.group,
            labels: spec.labels,
            description: spec.description,
            idle_ttl_s: spec.idle_ttl_s,
            tools_json: spec.tools_json,
        }
    }
}

impl From<wit::Container> for Container {
    fn from(container: wit::Container) -> Self {
        Self {
            id: container.id,
            names: container.names,
            image: container.image,
            labels: container.labels,
            state: container.state,
            networks: container.networks,
        }
    }
}

impl From<wit::Pod> for Pod {
    fn from(pod: wit::Pod) -> Self {
        Self {
            namespace: pod.namespace,
            name: pod.name,
            labels: pod.labels,
            annotations: pod.annotations,
            phase: pod.phase,
            pod_ip: pod.pod_ip,
            ready: pod.ready,
            container_ports: pod.container_ports,
        }
    }
}

impl From<Level> for wit::Level {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => Self::Trace,
            Level::Debug => Self::Debug,
            Level::Info => Self::Info,
            Level::Warn => Self::Warn,
            Level::Error => Self::Error,
        }
    }
}
