//! The plain Rust types a plugin sees, and their conversions to and from the generated WIT
//! types (both ways: the export macros convert what the hangar sends, the test harness converts
//! what a test sends, so a test runs the same conversions as the hangar's calls). The call
//! itself is not one of them: it is read from the hangar on demand (`invocation.rs`).

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

/// FNV-1a 64 of `id`'s UTF-8 bytes (offset basis `0xcbf29ce484222325`, prime
/// `0x100000001b3`): the [`Member::key`] the hangar sends for the member of that id. The same id
/// has the same key on every host, in every version and across restarts, so a policy may hash
/// on it (rendezvous or consistent hashing) and recognise a member it was configured with
/// (`member_key("files-eu")`, even in a `const`).
pub const fn member_key(id: &str) -> u64 {
    let bytes = id.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// A group member as a load-balancing policy sees it: numbers only, so the hangar copies no
/// string to hand a policy the members. Its id, when a policy needs it, is
/// [`Invocation::member_id`](crate::Invocation::member_id) of its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    /// [`member_key`] of the member's id: stable across hosts and restarts.
    pub key: u64,
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
    /// The member of id `id` (its key is [`member_key`] of it), healthy, idle, of weight 1
    /// and priority 1 (mostly useful in tests; set the fields to change the rest).
    pub fn new(id: impl AsRef<str>) -> Self {
        Self {
            key: member_key(id.as_ref()),
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

// Field for field, so that `Vec<wit::Member>` → `Vec<Member>` is collected in place: the two
// types have one layout, and the standard library then reuses the allocation (a pick copies
// no member and allocates nothing of its own; `tests.rs` checks it).
impl From<wit::Member> for Member {
    fn from(member: wit::Member) -> Self {
        Self {
            key: member.key,
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
            key: member.key,
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
