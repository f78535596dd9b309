//! The file format as written: serde types that mirror the YAML one to one.
//!
//! Every struct denies unknown keys. Values are checked *inside* their visitors wherever the
//! check needs nothing but the value (ids, ranges, units, the shape of `tools:`), because an
//! error raised there carries the line and column of that exact value. There is deliberately
//! no `#[serde(untagged)]` and no `#[serde(flatten)]`: both buffer the input and lose the
//! position. Checks that need the environment or the whole file run later, in `resolve`.

use std::fmt;
use std::marker::PhantomData;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Unexpected, Visitor,
};

use super::spec::ProviderMode;

/// The sections that hold providers: 2.x spelling first, then the 0.1.x one.
pub const SERVER_SECTIONS: &[&str] = &["mcp_servers", "providers"];

/// Every top-level key we know: the two provider sections, the other sections this build reads,
/// then the sections of the original mcp-hangar that this build accepts but does not act on
/// (each one present produces a warning; none is dropped silently). Also the list shown, and
/// searched, for an unknown key.
const TOP_LEVEL_KEYS: &[&str] = &[
    "mcp_servers",
    "providers",
    "rate_limit",
    "limits",
    "plugins",
    "event_store",
    "discovery",
    "logging",
    "observability",
    "http",
    "execution",
    "interceptors",
    "auth",
    "approvals",
    "config_reload",
    "coordination",
    "hot_loading",
    "persistence",
    "retry",
    "startup_checks",
    "tool_access",
    "truncation",
    "relay_tasks_enabled",
    "server",
    "health",
];

/// The message used when both provider sections are present (`error` recognises it).
pub const BOTH_SECTIONS: &str = "both `mcp_servers:` (2.x format) and `providers:` (0.1.x \
                                 format) are present; keep one — they are the same section";

// ---------------------------------------------------------------------------------------------
// Top level
// ---------------------------------------------------------------------------------------------

/// The whole document.
#[derive(Default)]
pub struct RawTop {
    /// The provider section, with the name it was written under.
    pub servers: Option<(&'static str, IndexMap<String, RawSpec>)>,
    /// `rate_limit:` for the whole hangar.
    pub rate_limit: Option<RawRateLimit>,
    /// `limits:` on call arguments.
    pub limits: Option<RawLimits>,
    /// `plugins:`, by name.
    pub plugins: IndexMap<String, RawPlugin>,
    /// `logging:` and `observability:` (`config::observability`).
    pub logging: Option<super::observability::RawLogging>,
    pub observability: Option<super::observability::RawObservability>,
    /// `event_store:` (read in `event_store.rs`).
    pub event_store: Option<super::event_store::RawEventStore>,
    /// `discovery:` (`config/discovery.rs`).
    pub discovery: Option<super::discovery::RawDiscovery>,
    /// `http:` (`config/http.rs`).
    pub http: Option<super::http::RawHttp>,
    /// Ignored sections present, in file order.
    pub ignored: Vec<&'static str>,
    /// Whether the document has any top-level key at all.
    pub any_section: bool,
}

impl<'de> Deserialize<'de> for RawTop {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_map(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = RawTop;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping with an `mcp_servers:` section")
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawTop, E> {
        Ok(RawTop::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTop, A::Error> {
        let mut top = RawTop::default();
        let mut seen = Vec::new();
        while let Some(section) = map.next_key_seed(TopKey { seen: &seen })? {
            seen.push(section);
            top.any_section = true;
            match section {
                _ if SERVER_SECTIONS.contains(&section) => {
                    let providers = map.next_value::<ProvidersMap>()?;
                    top.servers = Some((section, providers.0));
                }
                "rate_limit" => top.rate_limit = map.next_value()?,
                "limits" => top.limits = map.next_value()?,
                "plugins" => top.plugins = map.next_value::<PluginsMap>()?.0,
                "observability" => top.observability = map.next_value()?,
                "event_store" => top.event_store = map.next_value()?,
                "discovery" => {
                    let raw: Option<super::discovery::RawDiscovery> = map.next_value()?;
                    top.discovery = Some(raw.unwrap_or_default());
                }
                "logging" => top.logging = map.next_value()?,
                "http" => top.http = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    top.ignored.push(section);
                }
            }
        }
        Ok(top)
    }
}

/// A top-level key; fails (at the key's position) for an unknown key, a section written twice,
/// or a second provider section.
struct TopKey<'a> {
    seen: &'a [&'static str],
}

impl<'de> DeserializeSeed<'de> for TopKey<'_> {
    type Value = &'static str;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for TopKey<'_> {
    type Value = &'static str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a section name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<&'static str, E> {
        let known = TOP_LEVEL_KEYS.iter().copied().find(|k| *k == v);
        let servers_seen = self.seen.iter().any(|s| SERVER_SECTIONS.contains(s));
        match known {
            Some(section) if self.seen.contains(&section) => {
                Err(E::custom(format_args!("{DUPLICATE_KEY} `{section}`")))
            }
            Some(section) if SERVER_SECTIONS.contains(&section) && servers_seen => {
                Err(E::custom(BOTH_SECTIONS))
            }
            Some(section) => Ok(section),
            None => Err(E::unknown_field(v, TOP_LEVEL_KEYS)),
        }
    }
}

/// The provider map: ids are checked and must be unique.
struct ProvidersMap(IndexMap<String, RawSpec>);

impl<'de> Deserialize<'de> for ProvidersMap {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ProvidersMap;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping from provider id to provider settings")
            }

            fn visit_unit<E: de::Error>(self) -> Result<ProvidersMap, E> {
                Ok(ProvidersMap(IndexMap::new()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ProvidersMap, A::Error> {
                let mut out = IndexMap::new();
                while let Some(id) = map.next_key_seed(UniqueKey {
                    seen: &out,
                    what: KeyKind::ProviderId,
                })? {
                    let spec = map.next_value::<RawSpec>()?;
                    out.insert(id, spec);
                }
                Ok(ProvidersMap(out))
            }
        }
        de.deserialize_map(V)
    }
}

/// The plugin map: names follow the provider id rule and must be unique.
struct PluginsMap(IndexMap<String, RawPlugin>);

impl<'de> Deserialize<'de> for PluginsMap {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PluginsMap;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping from plugin name to plugin settings")
            }

            fn visit_unit<E: de::Error>(self) -> Result<PluginsMap, E> {
                Ok(PluginsMap(IndexMap::new()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PluginsMap, A::Error> {
                let mut out = IndexMap::new();
                while let Some(name) = map.next_key_seed(UniqueKey {
                    seen: &out,
                    what: KeyKind::PluginName,
                })? {
                    let plugin = map.next_value::<RawPlugin>()?;
                    out.insert(name, plugin);
                }
                Ok(PluginsMap(out))
            }
        }
        de.deserialize_map(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Provider spec
// ---------------------------------------------------------------------------------------------

/// The provider modes a key is read for (a set of [`ProviderMode`]s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reads(u8);

impl Reads {
    pub const SUBPROCESS: Self = Self(1);
    pub const CONTAINER: Self = Self(2);
    pub const REMOTE: Self = Self(4);
    pub const GROUP: Self = Self(8);
    /// Every mode but a group: a group's members run, idle, are checked and recover on their
    /// own settings.
    pub const RUNNING: Self = Self(1 | 2 | 4);
    pub const ALL: Self = Self(1 | 2 | 4 | 8);

    const fn or(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub fn applies_to(self, mode: ProviderMode) -> bool {
        let bit = match mode {
            ProviderMode::Subprocess => Self::SUBPROCESS,
            ProviderMode::Container => Self::CONTAINER,
            ProviderMode::Remote => Self::REMOTE,
            ProviderMode::Group => Self::GROUP,
        };
        self.0 & bit.0 != 0
    }
}

/// Declares the provider spec once and derives from it both the top-level spec (`RawSpec`) and
/// the group member (`RawMember` = `id`, `weight`, `priority` + the same keys), so the two can
/// never drift apart, and with each key the modes that read it (what is written for another
/// mode is warned about). Fields are listed in the order the unknown-key message shows them.
macro_rules! provider_spec {
    ($( $(#[$attr:meta])* $field:ident : $ty:ty => $($reads:ident)|+ ),* $(,)?) => {
        /// One provider as written (top level of the provider section).
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        pub struct RawSpec {
            $( $(#[$attr])* pub $field: Option<$ty>, )*
        }

        /// One group member as written: an id, its weight and priority, and provider keys.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawMember {
            pub id: ProviderId,
            pub weight: Option<Percent>,
            pub priority: Option<Percent>,
            $( $(#[$attr])* pub $field: Option<$ty>, )*
        }

        impl RawSpec {
            /// The keys written for this provider, in declaration order, with the modes that
            /// read each.
            pub fn present_keys(&self) -> Vec<(&'static str, Reads)> {
                let mut keys = Vec::new();
                $( if self.$field.is_some() {
                    keys.push((stringify!($field), Reads(0)$(.or(Reads::$reads))+));
                } )*
                keys
            }
        }

        impl RawMember {
            /// Splits a member into its group-only keys and an ordinary provider spec.
            pub fn split(self) -> (ProviderId, Option<Percent>, Option<Percent>, RawSpec) {
                (
                    self.id,
                    self.weight,
                    self.priority,
                    RawSpec { $( $field: self.$field, )* },
                )
            }
        }
    };
}

provider_spec! {
    mode: RawMode => ALL,
    command: Argv => SUBPROCESS | CONTAINER,
    args: Argv => SUBPROCESS | CONTAINER,
    cwd: String => SUBPROCESS,
    env: StringMap => SUBPROCESS | CONTAINER,
    inherit_env: Flag => SUBPROCESS,
    description: String => ALL,
    idle_ttl_s: WholeSecs => RUNNING,
    health_check_interval_s: WholeSecs => RUNNING,
    max_consecutive_failures: Positive => RUNNING,
    shutdown_timeout_s: Secs => RUNNING,
    call_timeout_s: Secs => ALL,
    max_concurrency: Count => ALL,
    max_queue: Count => ALL,
    auto_start: Flag => ALL,
    tool_prefix: ToolPrefix => ALL,
    tools: RawTools => ALL,
    validators: Vec<String> => ALL,
    // container
    image: String => CONTAINER,
    volumes: Vec<String> => CONTAINER,
    #[serde(alias = "network_mode")]
    network: String => CONTAINER,
    read_only: Flag => CONTAINER,
    resources: RawResources => CONTAINER,
    build: RawBuild => CONTAINER,
    user: String => CONTAINER,
    socket: String => CONTAINER,
    // remote
    endpoint: String => REMOTE,
    transport: RawTransport => REMOTE,
    auth: RawAuth => REMOTE,
    tls: RawTls => REMOTE,
    http: RawHttp => REMOTE,
    // group
    strategy: RawStrategy => GROUP,
    min_healthy: Positive => GROUP,
    members: Vec<RawMember> => GROUP,
    health: RawHealth => GROUP,
    failback_delay_s: Secs => GROUP,
    // resilience
    circuit_breaker: RawCircuitBreaker => ALL,
    recovery: RawRecovery => RUNNING,
    rate_limit: RawRateLimit => ALL,
    // open-shaped blocks, kept as JSON for the features that will read them
    capabilities: serde_json::Value => ALL,
    access: serde_json::Value => ALL,
    tool_access: serde_json::Value => ALL,
    tool_projection: serde_json::Value => ALL,
    canary: serde_json::Value => ALL,
}

/// A closed set of words (`mode:`, `transport:`, …). Written by hand rather than derived so a
/// wrong *type* reads "expected a mode (one of: …)" instead of naming a Rust enum, and an
/// unknown word still produces serde's "unknown variant" wording, which `error` turns into a
/// suggestion.
macro_rules! word_enum {
    ($(#[$attr:meta])* $name:ident, $what:literal { $($variant:ident => $word:literal),* $(,)? }) => {
        $(#[$attr])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($variant),*
        }

        impl $name {
            const WORDS: &'static [&'static str] = &[$($word),*];
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "{} (one of: {})", $what, $name::WORDS.join(", "))
                    }

                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        match v {
                            $($word => Ok($name::$variant),)*
                            _ => Err(E::unknown_variant(v, $name::WORDS)),
                        }
                    }
                }
                de.deserialize_str(V)
            }
        }
    };
}

word_enum! {
    /// `mode:` as written; `docker`/`podman` and `http` are spellings of container and remote.
    RawMode, "a mode" {
        Subprocess => "subprocess",
        Container => "container",
        Docker => "docker",
        Podman => "podman",
        Remote => "remote",
        Http => "http",
        Group => "group",
    }
}

word_enum! {
    RawTransport, "a transport" {
        StreamableHttp => "streamable_http",
        Sse => "sse",
    }
}

/// `strategy:` as written: a native strategy, or `plugin:NAME` for a plugin of kind `lb_policy`.
/// Not a `word_enum!` because of the plugin form; unknown words are reported the same way.
pub enum RawStrategy {
    RoundRobin,
    WeightedRoundRobin,
    LeastConnections,
    Random,
    Priority,
    /// The plugin's name (the text after `plugin:`), checked against the plugin name rule.
    Plugin(String),
}

impl RawStrategy {
    /// The words shown for an unknown strategy; the last one stands for every plugin.
    const WORDS: &'static [&'static str] = &[
        "round_robin",
        "weighted_round_robin",
        "least_connections",
        "random",
        "priority",
        "plugin:<name>",
    ];
}

impl<'de> Deserialize<'de> for RawStrategy {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawStrategy;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a strategy (one of: {})", RawStrategy::WORDS.join(", "))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawStrategy, E> {
                Ok(match v {
                    "round_robin" => RawStrategy::RoundRobin,
                    "weighted_round_robin" => RawStrategy::WeightedRoundRobin,
                    "least_connections" => RawStrategy::LeastConnections,
                    "random" => RawStrategy::Random,
                    "priority" => RawStrategy::Priority,
                    _ => {
                        let Some(name) = v.strip_prefix("plugin:") else {
                            return Err(E::unknown_variant(v, RawStrategy::WORDS));
                        };
                        if let Some(problem) = provider_id_problem(name) {
                            return Err(E::custom(format_args!(
                                "invalid plugin name `{name}` in strategy `{v}`: {problem} \
                                 (names match `^[a-zA-Z][a-zA-Z0-9_-]{{0,63}}$`)"
                            )));
                        }
                        RawStrategy::Plugin(name.to_owned())
                    }
                })
            }
        }
        de.deserialize_str(V)
    }
}

word_enum! {
    /// `kind:` of a plugin.
    RawPluginKind, "a plugin kind" {
        Validator => "validator",
        LbPolicy => "lb_policy",
        Discovery => "discovery",
    }
}

word_enum! {
    /// `on_error:` of a plugin.
    RawOnError, "an error policy" {
        FailOpen => "fail_open",
        FailClosed => "fail_closed",
    }
}

word_enum! {
    /// One entry of a plugin's `grants:`.
    RawGrant, "a grant" {
        Docker => "docker",
        Kubernetes => "kubernetes",
    }
}

word_enum! {
    RawAuthType, "an auth type" {
        None => "none",
        Bearer => "bearer",
        Basic => "basic",
        ApiKey => "api_key",
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    pub memory: Option<Memory>,
    pub cpu: Option<Cpu>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawBuild {
    pub context: Option<String>,
    pub dockerfile: Option<String>,
    pub tag: Option<String>,
}

/// `auth:` of a remote provider. The aliases are the original's own spellings
/// (`bearer_token`, `api_key`, `api_key_header`), which its docs and examples both use.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(rename = "type")]
    pub kind: Option<RawAuthType>,
    #[serde(alias = "bearer_token")]
    pub token: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    #[serde(alias = "api_key_header")]
    pub header: Option<String>,
    #[serde(alias = "api_key")]
    pub key: Option<String>,
}

/// `tls:`; `verify_ssl` and `ca_cert_path` are the original's spellings.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    #[serde(alias = "verify_ssl")]
    pub verify: Option<Flag>,
    #[serde(alias = "ca_cert_path")]
    pub ca_cert: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

/// `http:`; `read_timeout` and `connect_timeout` are the original's spellings.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub headers: Option<StringMap>,
    #[serde(alias = "read_timeout")]
    pub timeout_s: Option<Secs>,
    #[serde(alias = "connect_timeout")]
    pub connect_timeout_s: Option<Secs>,
    pub max_retries: Option<Count>,
    pub retry_backoff_factor: Option<NonNegative>,
    pub keep_alive: Option<Flag>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub unhealthy_threshold: Option<Positive>,
    pub healthy_threshold: Option<Positive>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCircuitBreaker {
    pub failure_threshold: Option<Positive>,
    pub reset_timeout_s: Option<Secs>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRecovery {
    pub base_delay_s: Option<Secs>,
    pub max_delay_s: Option<Secs>,
    pub max_retries: Option<Count>,
}

/// `rate_limit:`; `rps` is how the original spells it at the top level.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    #[serde(alias = "rps")]
    pub requests_per_second: PositiveReal,
    pub burst: Option<Positive>,
}

/// `limits:` at the top level: bounds on a tool call's arguments.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_argument_bytes: Option<Positive>,
    pub max_argument_depth: Option<Depth>,
}

/// One entry of `plugins:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugin {
    pub kind: RawPluginKind,
    pub path: String,
    pub config: Option<serde_json::Value>,
    pub timeout_ms: Option<Positive>,
    pub memory_mb: Option<PluginMemory>,
    pub fuel: Option<Fuel>,
    pub on_error: Option<RawOnError>,
    pub grants: Option<Vec<RawGrantEntry>>,
    pub preopens: Option<Vec<RawPreopen>>,
}

/// One entry of `grants:`: the capability's word (`docker`), or the word as the one key of a
/// map of its settings (`kubernetes: {namespaces: [mcp]}`).
pub enum RawGrantEntry {
    Word(RawGrant),
    Docker(RawDockerGrant),
    Kubernetes(RawKubernetesGrant),
}

/// `docker:` settings of a grant.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDockerGrant {
    pub socket: Option<String>,
}

/// `kubernetes:` settings of a grant.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetesGrant {
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
    pub namespaces: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for RawGrantEntry {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawGrantEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a grant (one of: {}), or a map with one of them as its one key",
                    RawGrant::WORDS.join(", ")
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawGrantEntry, E> {
                RawGrant::deserialize(de::value::StrDeserializer::<E>::new(v))
                    .map(RawGrantEntry::Word)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawGrantEntry, A::Error> {
                let Some(key) = map.next_key::<RawGrant>()? else {
                    return Err(de::Error::invalid_length(0, &self));
                };
                let entry = match key {
                    RawGrant::Docker => RawGrantEntry::Docker(map.next_value()?),
                    RawGrant::Kubernetes => RawGrantEntry::Kubernetes(map.next_value()?),
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format_args!(
                        "a grant map has one key, the capability; `{extra}` is a second one \
                         (write each grant as its own list entry)"
                    )));
                }
                Ok(entry)
            }
        }
        de.deserialize_any(V)
    }
}

/// One entry of a plugin's `preopens:`. There is deliberately no `read_only` key: every
/// preopen is read-only, so writing one is an unknown-key error rather than a silent no-op.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPreopen {
    pub host: String,
    pub guest: String,
}

// ---------------------------------------------------------------------------------------------
// tools: a list of schemas, or an access-policy map
// ---------------------------------------------------------------------------------------------

/// `tools:` is overloaded in the original: a list of predefined tool schemas, or a map with
/// `allow_list` / `deny_list` / `approval_list`. Decided by the YAML shape, in the visitor.
pub enum RawTools {
    Schemas(Vec<RawTool>),
    Filter(RawToolFilter),
}

impl<'de> Deserialize<'de> for RawTools {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTools;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a list of tool schemas (`- name: …`) or a map with `allow_list`, \
                     `deny_list`, `approval_list`",
                )
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawTools, A::Error> {
                Vec::<RawTool>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(RawTools::Schemas)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawTools, A::Error> {
                RawToolFilter::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawTools::Filter)
            }
        }
        de.deserialize_any(V)
    }
}

/// One predefined tool. `inputSchema` is the MCP spelling; `input_schema` is accepted too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTool {
    pub name: String,
    pub description: Option<String>,
    #[serde(rename = "inputSchema", alias = "input_schema")]
    pub input_schema: Option<JsonObject>,
    #[serde(rename = "outputSchema", alias = "output_schema")]
    pub output_schema: Option<JsonObject>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToolFilter {
    pub allow_list: Option<Vec<String>>,
    pub deny_list: Option<Vec<String>>,
    pub approval_list: Option<Vec<String>>,
    pub approval_timeout_seconds: Option<Positive>,
    pub approval_channel: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Checked scalars. Each `expecting` is worded for a person reading the error.
// ---------------------------------------------------------------------------------------------

/// A provider id: `^[a-zA-Z][a-zA-Z0-9_-]{0,63}$`.
pub struct ProviderId(pub String);

/// Why `id` is not a valid provider id, or `None` when it is.
pub fn provider_id_problem(id: &str) -> Option<&'static str> {
    let mut chars = id.chars();
    match chars.next() {
        None => Some("it is empty"),
        Some(c) if !c.is_ascii_alphabetic() => Some("it must start with a letter"),
        Some(_) if id.len() > 64 => Some("it is longer than 64 characters"),
        Some(_) if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {
            Some("only letters, digits, `_` and `-` are allowed")
        }
        Some(_) => None,
    }
}

fn provider_id_error<E: de::Error>(id: &str, problem: &str) -> E {
    E::custom(format_args!(
        "invalid provider id `{id}`: {problem} (ids match `^[a-zA-Z][a-zA-Z0-9_-]{{0,63}}$`)"
    ))
}

/// Plugin names follow the provider id rule, so both read alike in a file and in logs.
fn plugin_name_error<E: de::Error>(name: &str, problem: &str) -> E {
    E::custom(format_args!(
        "invalid plugin name `{name}`: {problem} (names match `^[a-zA-Z][a-zA-Z0-9_-]{{0,63}}$`)"
    ))
}

impl<'de> Deserialize<'de> for ProviderId {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ProviderId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a provider id")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ProviderId, E> {
                match provider_id_problem(v) {
                    Some(problem) => Err(provider_id_error(v, problem)),
                    None => Ok(ProviderId(v.to_owned())),
                }
            }
        }
        de.deserialize_str(V)
    }
}

/// What a unique map's keys are, for the checks and messages in `UniqueKey`.
#[derive(Clone, Copy)]
enum KeyKind {
    ProviderId,
    PluginName,
    Name,
}

/// A mapping key that must not repeat. The check runs inside the key's visitor so a duplicate
/// is reported at the second occurrence; `error` adds where the first one is.
struct UniqueKey<'a, V> {
    seen: &'a IndexMap<String, V>,
    what: KeyKind,
}

/// The start of every duplicate-key message (`error` recognises it to add the first line).
pub const DUPLICATE_KEY: &str = "duplicate key";

impl<'de, V> DeserializeSeed<'de> for UniqueKey<'_, V> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<String, D::Error> {
        de.deserialize_str(self)
    }
}

impl<V> Visitor<'_> for UniqueKey<'_, V> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.what {
            KeyKind::ProviderId => f.write_str("a provider id"),
            KeyKind::PluginName => f.write_str("a plugin name"),
            KeyKind::Name => f.write_str("a name"),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        match (self.what, provider_id_problem(v)) {
            (KeyKind::ProviderId, Some(problem)) => return Err(provider_id_error(v, problem)),
            (KeyKind::PluginName, Some(problem)) => return Err(plugin_name_error(v, problem)),
            _ => {}
        }
        if self.seen.contains_key(v) {
            return Err(E::custom(format_args!("{DUPLICATE_KEY} `{v}`")));
        }
        Ok(v.to_owned())
    }
}

/// A map of names to strings (`env`, `http.headers`). Numbers and booleans are kept as the text
/// written (`PORT: 8080` → "8080", `VERSION: 1.0` → "1.0"), an empty value is "".
pub struct StringMap(pub IndexMap<String, String>);

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringMap;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of names to strings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StringMap, A::Error> {
                let mut out = IndexMap::new();
                while let Some(key) = map.next_key_seed(UniqueKey {
                    seen: &out,
                    what: KeyKind::Name,
                })? {
                    let value = map.next_value::<ScalarText>()?;
                    out.insert(key, value.0);
                }
                Ok(StringMap(out))
            }
        }
        de.deserialize_map(V)
    }
}

/// A scalar kept as its text; null/empty is "".
struct ScalarText(String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        // `deserialize_str` hands over the scalar exactly as written, so `1.0` stays "1.0"
        // instead of round-tripping through a float.
        Option::<String>::deserialize(de).map(|v| ScalarText(v.unwrap_or_default()))
    }
}

/// An argv list. A single string is refused rather than split on spaces: the original never
/// split it either, and guessing the quoting of `sh -c '…'` is how commands break.
pub struct Argv(pub Vec<String>);

impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Argv;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings (one per argument)")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Argv, E> {
                let words: Vec<&str> = v.split_whitespace().collect();
                Err(E::custom(format_args!(
                    "expected a list of arguments, found the single string \"{v}\"; write it as \
                     a list, e.g. `[{}]` (the string is not split on spaces)",
                    words.join(", ")
                )))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Argv, A::Error> {
                let mut out = Vec::new();
                while let Some(arg) = seq.next_element::<String>()? {
                    out.push(arg);
                }
                Ok(Argv(out))
            }
        }
        de.deserialize_any(V)
    }
}

/// A tool prefix: `^[a-zA-Z0-9_-]*$` (empty = no prefix).
pub struct ToolPrefix(pub String);

impl<'de> Deserialize<'de> for ToolPrefix {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ToolPrefix;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a tool prefix (letters, digits, `_`, `-`)")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ToolPrefix, E> {
                if v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    Ok(ToolPrefix(v.to_owned()))
                } else {
                    Err(E::custom(format_args!(
                        "invalid tool prefix `{v}`: only letters, digits, `_` and `-` are \
                         allowed (it becomes part of every tool name)"
                    )))
                }
            }
        }
        de.deserialize_str(V)
    }
}

/// A JSON object (a tool's input or output schema).
pub struct JsonObject(pub serde_json::Map<String, serde_json::Value>);

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON Schema object (a map, e.g. `{type: object}`)")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                    out.insert(key, value);
                }
                Ok(JsonObject(out))
            }
        }
        de.deserialize_any(V)
    }
}

/// A boolean. Also takes YAML 1.1's `yes`/`no`/`on`/`off`, which the original's PyYAML reads
/// as booleans, so those files keep their meaning here.
#[derive(Clone, Copy)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true or false")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                match v.to_ascii_lowercase().as_str() {
                    "yes" | "on" | "true" => Ok(Flag(true)),
                    "no" | "off" | "false" => Ok(Flag(false)),
                    _ => Err(E::invalid_value(Unexpected::Str(v), &self)),
                }
            }
        }
        de.deserialize_any(V)
    }
}

/// Integers with a range; `expecting` says the range in words.
pub trait IntRange {
    const MIN: u64;
    const MAX: u64;
    /// What a value of the wrong type is told was expected.
    const EXPECTING: &'static str;
    /// What a number out of range is told was expected (includes the range).
    const IN_RANGE: &'static str;
}

/// An integer checked against `R`, stored as `u64` (every range here fits).
pub struct Int<R>(pub u64, PhantomData<R>);

impl<R> Int<R> {
    pub fn get(&self) -> u64 {
        self.0
    }
}

impl<'de, R: IntRange> Deserialize<'de> for Int<R> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V<R>(PhantomData<R>);
        impl<R: IntRange> Visitor<'_> for V<R> {
            type Value = Int<R>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(R::EXPECTING)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int<R>, E> {
                if (R::MIN..=R::MAX).contains(&v) {
                    Ok(Int(v, PhantomData))
                } else {
                    Err(E::invalid_value(Unexpected::Unsigned(v), &R::IN_RANGE))
                }
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int<R>, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &R::IN_RANGE)),
                }
            }
        }
        // `deserialize_any`, so a negative number reaches `visit_i64` and is reported as out
        // of range rather than as the wrong type.
        de.deserialize_any(V(PhantomData))
    }
}

pub enum SecondsRange {}
impl IntRange for SecondsRange {
    const MIN: u64 = 0;
    // Ten years: anything longer is a typo, and it keeps `Duration` arithmetic far from overflow.
    const MAX: u64 = 315_360_000;
    const EXPECTING: &'static str = "an integer (seconds)";
    const IN_RANGE: &'static str = "a number of seconds from 0 to 315360000 (ten years)";
}

pub enum PositiveRange {}
impl IntRange for PositiveRange {
    const MIN: u64 = 1;
    const MAX: u64 = u32::MAX as u64;
    const EXPECTING: &'static str = "a whole number of at least 1";
    const IN_RANGE: &'static str = "a whole number from 1 to 4294967295";
}

pub enum CountRange {}
impl IntRange for CountRange {
    const MIN: u64 = 0;
    const MAX: u64 = u32::MAX as u64;
    const EXPECTING: &'static str = "a whole number (0 or more)";
    const IN_RANGE: &'static str = "a whole number from 0 to 4294967295";
}

pub enum PercentRange {}
impl IntRange for PercentRange {
    const MIN: u64 = 1;
    const MAX: u64 = 100;
    const EXPECTING: &'static str = "an integer from 1 to 100";
    const IN_RANGE: &'static str = "an integer from 1 to 100";
}

pub enum DepthRange {}
impl IntRange for DepthRange {
    const MIN: u64 = 1;
    // The argument checker, the serializer and the schema validator each recurse once per
    // level, and serde_json's own parser stops at 128; a deeper limit could never be reached.
    const MAX: u64 = 128;
    const EXPECTING: &'static str = "a nesting depth from 1 to 128";
    const IN_RANGE: &'static str = "a nesting depth from 1 to 128";
}

pub enum PluginMemoryRange {}
impl IntRange for PluginMemoryRange {
    const MIN: u64 = 1;
    // A 32-bit WebAssembly memory cannot grow past 4 GiB (65536 pages of 64 KiB).
    const MAX: u64 = 4096;
    const EXPECTING: &'static str = "a number of MiB from 1 to 4096";
    const IN_RANGE: &'static str = "a number of MiB from 1 to 4096 (a 32-bit wasm memory's limit)";
}

pub enum FuelRange {}
impl IntRange for FuelRange {
    // No fuel at all would trap on the first instruction; leave `fuel:` out for no limit.
    const MIN: u64 = 1;
    const MAX: u64 = u64::MAX;
    const EXPECTING: &'static str = "a whole number of at least 1 (units of fuel)";
    const IN_RANGE: &'static str = "a whole number from 1 to 18446744073709551615";
}

/// Whole seconds (the original's `*_s` integer keys).
pub type WholeSecs = Int<SecondsRange>;
/// An integer ≥ 1 that fits `u32`.
pub type Positive = Int<PositiveRange>;
/// An integer ≥ 0 that fits `u32`.
pub type Count = Int<CountRange>;
/// An integer from 1 to 100 (member weight and priority).
pub type Percent = Int<PercentRange>;
/// Nesting depth of call arguments, 1 to 128.
pub type Depth = Int<DepthRange>;
/// A plugin's memory limit in MiB, 1 to 4096.
pub type PluginMemory = Int<PluginMemoryRange>;
/// A plugin's fuel per call, at least 1.
pub type Fuel = Int<FuelRange>;

/// Reals with a range, like `Int`.
pub trait RealRange {
    const MIN: f64;
    const MIN_INCLUSIVE: bool;
    const MAX: f64;
    const EXPECTING: &'static str;
}

pub struct Real<R>(pub f64, PhantomData<R>);

impl<R> Real<R> {
    pub fn get(&self) -> f64 {
        self.0
    }
}

impl<'de, R: RealRange> Deserialize<'de> for Real<R> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V<R>(PhantomData<R>);
        impl<R: RealRange> Visitor<'_> for V<R> {
            type Value = Real<R>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(R::EXPECTING)
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Real<R>, E> {
                let above_min = if R::MIN_INCLUSIVE {
                    v >= R::MIN
                } else {
                    v > R::MIN
                };
                if v.is_finite() && above_min && v <= R::MAX {
                    Ok(Real(v, PhantomData))
                } else {
                    Err(E::invalid_value(Unexpected::Float(v), &self))
                }
            }

            // Integer literals are converted; any integer that reaches here is small enough
            // that the conversion is exact or the range check rejects it anyway.
            #[allow(clippy::cast_precision_loss)]
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Real<R>, E> {
                self.visit_f64(v as f64)
            }

            #[allow(clippy::cast_precision_loss)]
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Real<R>, E> {
                self.visit_f64(v as f64)
            }
        }
        de.deserialize_any(V(PhantomData))
    }
}

pub enum SecsRange {}
impl RealRange for SecsRange {
    const MIN: f64 = 0.0;
    const MIN_INCLUSIVE: bool = true;
    const MAX: f64 = 315_360_000.0;
    const EXPECTING: &'static str = "a number of seconds (e.g. 30 or 2.5)";
}

pub enum PositiveRealRange {}
impl RealRange for PositiveRealRange {
    const MIN: f64 = 0.0;
    const MIN_INCLUSIVE: bool = false;
    const MAX: f64 = 1e9;
    const EXPECTING: &'static str = "a number greater than 0";
}

pub enum NonNegativeRange {}
impl RealRange for NonNegativeRange {
    const MIN: f64 = 0.0;
    const MIN_INCLUSIVE: bool = true;
    const MAX: f64 = 1e9;
    const EXPECTING: &'static str = "a number (0 or more)";
}

/// Seconds, fractions allowed (keys the original read as floats, and keys new in this build).
pub type Secs = Real<SecsRange>;
pub type PositiveReal = Real<PositiveRealRange>;
pub type NonNegative = Real<NonNegativeRange>;

/// A container memory limit: `512m`, `1g`, `256MiB`, or a plain number of bytes.
pub struct Memory {
    pub text: String,
    pub bytes: u64,
}

/// Bytes in `text`, or `None` if it is not `<number>[b|k|m|g|t][i][b]`.
pub fn parse_memory(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix('b')
        .filter(|u| !u.is_empty())
        .unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let multiplier: u64 = match unit {
        "" | "b" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    // Limits are at most terabytes; the float product is exact far beyond that.
    #[allow(clippy::cast_precision_loss)]
    let bytes = number * multiplier as f64;
    if (1.0..9.0e18).contains(&bytes) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(bytes as u64)
    } else {
        None
    }
}

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Memory;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a memory size such as \"512m\" or \"1g\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Memory, E> {
                match parse_memory(v) {
                    Some(bytes) => Ok(Memory {
                        text: v.to_owned(),
                        bytes,
                    }),
                    None => Err(E::invalid_value(Unexpected::Str(v), &self)),
                }
            }
        }
        // `deserialize_str` gives the text of numbers too, so `memory: 1048576` is bytes.
        de.deserialize_str(V)
    }
}

/// A container CPU limit in cores: `1.0`, `"0.5"`.
pub struct Cpu(pub f64);

impl<'de> Deserialize<'de> for Cpu {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Cpu;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of CPU cores greater than 0, such as 1.0 or \"0.5\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cpu, E> {
                match v.trim().parse::<f64>() {
                    Ok(cores) if cores.is_finite() && cores > 0.0 && cores <= 1024.0 => {
                        Ok(Cpu(cores))
                    }
                    _ => Err(E::invalid_value(Unexpected::Str(v), &self)),
                }
            }
        }
        de.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_follow_the_original_rule() {
        assert_eq!(provider_id_problem("math"), None);
        assert_eq!(provider_id_problem("a-b_C9"), None);
        assert!(provider_id_problem("9lives").is_some());
        assert!(provider_id_problem("has space").is_some());
        assert!(provider_id_problem("dot.ted").is_some());
        assert!(provider_id_problem("").is_some());
        assert_eq!(provider_id_problem(&"a".repeat(64)), None);
        assert!(provider_id_problem(&"a".repeat(65)).is_some());
    }

    #[test]
    fn memory_sizes_in_docker_notation_are_understood() {
        assert_eq!(parse_memory("512m"), Some(512 << 20));
        assert_eq!(parse_memory("1g"), Some(1 << 30));
        assert_eq!(parse_memory("256MiB"), Some(256 << 20));
        assert_eq!(parse_memory("64MB"), Some(64 << 20));
        assert_eq!(parse_memory("1.5g"), Some(3 << 29));
        assert_eq!(parse_memory("1048576"), Some(1 << 20));
        assert_eq!(parse_memory("lots"), None);
        assert_eq!(parse_memory("0"), None);
        assert_eq!(parse_memory("5x"), None);
    }
}
