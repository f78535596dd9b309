//! From the file as written (`schema`) to the typed config (`spec`): defaults, `${VAR}`
//! interpolation, secret marking, checks that need more than one value, and warnings.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

use super::error::{ConfigError, ConfigErrorKind};
use super::interpolate::interpolate;
use super::locate::{KeyPath, SourceLocation, SourceMap};
use super::observability::{self, LoggingSpec, ObservabilitySpec};
use super::schema::{
    self, RawAuth, RawAuthType, RawGrant, RawGrantEntry, RawHttp, RawLimits, RawMode, RawOnError,
    RawPlugin, RawPluginKind, RawRateLimit, RawSpec, RawStrategy, RawTls, RawToolFilter, RawTools,
    RawTransport, Reads,
};
use super::secret::{MaybeSecret, key_looks_secret};
use super::spec::{
    BUNDLED_PREFIX, BuildSpec, CircuitBreakerSpec, ContainerNetwork, ContainerResources,
    ContainerSpec, DEFAULT_API_KEY_HEADER, DEFAULT_APPROVAL_TIMEOUT, DEFAULT_FAILBACK_DELAY,
    DEFAULT_HEALTH_CHECK_INTERVAL, DEFAULT_IDLE_TTL, DEFAULT_MAX_ARGUMENT_BYTES,
    DEFAULT_MAX_ARGUMENT_DEPTH, DEFAULT_MAX_CONSECUTIVE_FAILURES, DEFAULT_MAX_QUEUE,
    DEFAULT_MEMBER_PRIORITY, DEFAULT_MEMBER_WEIGHT, DEFAULT_MIN_HEALTHY, DEFAULT_PLUGIN_MEMORY_MB,
    DEFAULT_SHUTDOWN_TIMEOUT, DockerGrant, GrantSettings, GroupMember, GroupSpec, GroupStrategy,
    HealthThresholds, HttpSpec, KubernetesGrant, Limits, MemberDefinition, OnError, PluginConfig,
    PluginGrant, PluginKind, PluginSpec, Preopen, ProviderMode, ProviderSpec, RateLimitSpec,
    RecoverySpec, RemoteAuth, RemoteSpec, RemoteTransport, TlsSpec, ToolFilter, ToolSpec,
    VolumeMount, tool_glob,
};
use super::tracing::{LangfuseSpec, TracingSpec};

/// Open-shaped blocks of the original's 2.x that load (so its files do) but that no feature of
/// this build reads, each with what an operator loses.
const KEPT_NOT_ACTED_ON: &[(&str, &str)] = &[
    (
        "capabilities",
        "the declared network and filesystem needs are neither enforced nor checked",
    ),
    (
        "access",
        "prompt and resource access policies are not applied",
    ),
    (
        "tool_access",
        "per-tenant tool policies are not applied (`tools: {allow_list, deny_list}` is)",
    ),
    (
        "tool_projection",
        "tool withdrawals and digest pins are not applied; every tool the provider lists is \
         offered",
    ),
    (
        "canary",
        "canary and per-tenant routing is not applied; the group's `strategy` picks every \
         member",
    ),
];

/// Keys that make a group member a definition of its own rather than a reference to a
/// top-level provider of the same id.
fn defines_provider(raw: &RawSpec) -> bool {
    raw.present_keys().iter().any(|(key, _)| *key != "tools")
        || matches!(raw.tools, Some(RawTools::Schemas(_)))
}

fn normalise_mode(mode: Option<RawMode>) -> ProviderMode {
    match mode {
        None | Some(RawMode::Subprocess) => ProviderMode::Subprocess,
        Some(RawMode::Container | RawMode::Docker | RawMode::Podman) => ProviderMode::Container,
        Some(RawMode::Remote | RawMode::Http) => ProviderMode::Remote,
        Some(RawMode::Group) => ProviderMode::Group,
    }
}

fn secs(value: f64) -> Duration {
    // Ranges are checked while reading (0 ..= ten years, finite), so this cannot panic.
    Duration::from_secs_f64(value)
}

/// What `resolve` produces.
pub(super) struct Resolved {
    pub providers: IndexMap<String, ProviderSpec>,
    pub rate_limit: Option<RateLimitSpec>,
    pub limits: Limits,
    pub plugins: IndexMap<String, PluginSpec>,
    pub tracing: Option<TracingSpec>,
    pub langfuse: Option<LangfuseSpec>,
    pub logging: LoggingSpec,
    pub observability: ObservabilitySpec,
    pub http: super::http::HttpServeSpec,
    pub warnings: Vec<String>,
}

pub(super) struct Resolver<'a> {
    file: &'a Path,
    map: &'a SourceMap,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    warnings: Vec<String>,
}

impl<'a> Resolver<'a> {
    pub fn new(
        file: &'a Path,
        map: &'a SourceMap,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> Self {
        Self {
            file,
            map,
            env,
            warnings: Vec::new(),
        }
    }

    pub(super) fn error_at_value(
        &self,
        path: &KeyPath,
        kind: ConfigErrorKind,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::at(self.file, self.map.nearest_value(path), path, kind, message)
    }

    fn error_at_key(
        &self,
        path: &KeyPath,
        kind: ConfigErrorKind,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::at(self.file, self.map.nearest_key(path), path, kind, message)
    }

    pub(super) fn invalid(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        self.error_at_value(path, ConfigErrorKind::Invalid, message)
    }

    /// The config file being read.
    pub(super) fn file(&self) -> &Path {
        self.file
    }

    pub(super) fn env_var(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    pub(super) fn warn(&mut self, path: &KeyPath, message: &str) {
        let line = self.map.nearest_key(path).line;
        let prefix = if path.segments().is_empty() {
            String::new()
        } else {
            format!("{path}: ")
        };
        self.warnings
            .push(format!("{}:{line}: {prefix}{message}", self.file.display()));
    }

    /// The path of whichever spelling of a key is written (`token` or `bearer_token`, …).
    fn written(&self, parent: &KeyPath, spellings: &[&str]) -> KeyPath {
        spellings
            .iter()
            .map(|key| parent.key(*key))
            .find(|path| self.map.key(path, 0).is_some())
            .unwrap_or_else(|| parent.key(spellings.first().copied().unwrap_or_default()))
    }

    /// Interpolates one string. Substituted values are secret, and so is every value whose
    /// key looks secret (`secret_by_name`).
    pub(super) fn text(
        &self,
        path: &KeyPath,
        raw: &str,
        secret_by_name: bool,
    ) -> Result<MaybeSecret, ConfigError> {
        match interpolate(raw, self.env) {
            Ok(done) => Ok(
                MaybeSecret::new(done.value, done.substituted || secret_by_name)
                    .with_secret_parts(done.secret_parts),
            ),
            Err(err) => {
                Err(self.error_at_value(path, ConfigErrorKind::Interpolation, err.to_string()))
            }
        }
    }

    fn optional_text(
        &self,
        path: &KeyPath,
        raw: Option<&String>,
        secret_by_name: bool,
    ) -> Result<Option<MaybeSecret>, ConfigError> {
        raw.map(|raw| self.text(path, raw, secret_by_name))
            .transpose()
    }

    fn texts(&self, path: &KeyPath, raw: &[String]) -> Result<Vec<MaybeSecret>, ConfigError> {
        raw.iter()
            .enumerate()
            .map(|(i, arg)| self.text(&path.index(i), arg, false))
            .collect()
    }

    /// A map whose values are secret when their key looks secret (`env`, `http.headers`).
    pub(super) fn text_map(
        &self,
        path: &KeyPath,
        raw: &IndexMap<String, String>,
    ) -> Result<IndexMap<String, MaybeSecret>, ConfigError> {
        raw.iter()
            .map(|(key, value)| {
                let value = self.text(&path.key(key.as_str()), value, key_looks_secret(key))?;
                Ok((key.clone(), value))
            })
            .collect()
    }

    /// The whole document.
    pub fn resolve(mut self, raw: schema::RawTop) -> Result<Resolved, ConfigError> {
        for section in &raw.ignored {
            let line = self
                .map
                .key(&KeyPath::root().key(*section), 0)
                .map_or(1, |at| at.line);
            self.warnings.push(format!(
                "{}:{line}: top-level section `{section}` is not implemented by this version of \
                 mcp-hangar and is ignored",
                self.file.display()
            ));
        }

        let observability = observability::resolve(raw.observability.as_ref(), &self)?;
        let logging = observability::resolve_logging(raw.logging.as_ref(), &self)?;
        let http = super::http::resolve(raw.http.as_ref(), &self)?;
        let rate_limit = raw.rate_limit.as_ref().map(rate_limit);
        let limits = raw
            .limits
            .as_ref()
            .map_or_else(Limits::default, resolve_limits);
        let plugins = self.plugins(raw.plugins)?;
        let tracing = self.tracing(raw.observability.as_ref().and_then(|o| o.tracing.as_ref()))?;
        let langfuse =
            self.langfuse(raw.observability.as_ref().and_then(|o| o.langfuse.as_ref()))?;

        let Some((section, raw_providers)) = raw.servers else {
            // A discovery-only deployment (the original's `discovery:` section, or a discovery
            // plugin) has no static section; everything else without one is a mistake (the
            // wrong file, or a misspelt section).
            let discovers = raw.discovery.is_some()
                || plugins.values().any(|p| p.kind == PluginKind::Discovery);
            if discovers {
                return Ok(Resolved {
                    providers: IndexMap::new(),
                    rate_limit,
                    limits,
                    plugins,
                    tracing,
                    langfuse,
                    logging,
                    observability,
                    http,
                    warnings: self.warnings,
                });
            }
            let message = if raw.any_section {
                "no `mcp_servers:` section (0.1.x files call it `providers:`); add one mapping \
                 provider ids to their settings"
            } else {
                "the file has no settings; expected an `mcp_servers:` section mapping provider \
                 ids to their settings"
            };
            return Err(ConfigError::at(
                self.file,
                SourceLocation { line: 1, column: 1 },
                &KeyPath::root(),
                ConfigErrorKind::Invalid,
                message,
            ));
        };

        let base = KeyPath::root().key(section);
        let top_modes: HashMap<String, Option<RawMode>> = raw_providers
            .iter()
            .map(|(id, spec)| (id.clone(), spec.mode))
            .collect();
        let inline_members = RefCell::new(HashMap::new());
        let ctx = SpecContext {
            base: &base,
            top_modes: &top_modes,
            inline_members: &inline_members,
            plugins: &plugins,
        };
        let mut providers = IndexMap::new();
        for (id, spec) in raw_providers {
            let path = base.key(id.as_str());
            let defined_at = self.map.key(&path, 0);
            let resolved = self.spec(&path, &id, spec, defined_at, &ctx)?;
            providers.insert(id, resolved);
        }
        Ok(Resolved {
            providers,
            rate_limit,
            limits,
            plugins,
            tracing,
            langfuse,
            logging,
            observability,
            http,
            warnings: self.warnings,
        })
    }

    /// One provider, top-level or inline member.
    fn spec(
        &mut self,
        path: &KeyPath,
        id: &str,
        mut raw: RawSpec,
        defined_at: Option<SourceLocation>,
        ctx: &SpecContext<'_>,
    ) -> Result<ProviderSpec, ConfigError> {
        let mode = normalise_mode(raw.mode);
        for (key, reads) in raw.present_keys() {
            if mode == ProviderMode::Group && reads == Reads::RUNNING {
                self.warn(
                    &path.key(key),
                    &format!(
                        "`{key}` has no effect on a `group` provider and is ignored: its \
                         members run on their own settings; set it on the members"
                    ),
                );
            } else if !reads.applies_to(mode) {
                self.warn(
                    &path.key(key),
                    &format!("`{key}` has no effect on a `{mode}` provider and is ignored"),
                );
            } else if mode == ProviderMode::Group && key == "auto_start" {
                self.warn(
                    &path.key(key),
                    "`auto_start` on a group is accepted for compatibility with the original \
                     (which starts a group's members when it loads) but not acted on by this \
                     build: the members start on the group's first call, or ahead of it with \
                     `registry_start` or `registry_warm`",
                );
            } else if let Some((_, lost)) = KEPT_NOT_ACTED_ON.iter().find(|(k, _)| *k == key) {
                self.warn(
                    &path.key(key),
                    &format!(
                        "`{key}` is accepted for compatibility with the original but not acted \
                         on by this build: {lost}"
                    ),
                );
            }
        }
        // Members are moved out (each becomes its own spec); the rest is only read.
        let raw_members = std::mem::take(&mut raw.members);
        let raw = &raw;

        let mut spec = ProviderSpec::new(id, mode);
        spec.defined_at = defined_at;
        spec.description = raw.description.clone();
        spec.idle_ttl = raw
            .idle_ttl_s
            .as_ref()
            .map_or(DEFAULT_IDLE_TTL, |v| Duration::from_secs(v.get()));
        spec.health_check_interval = raw
            .health_check_interval_s
            .as_ref()
            .map_or(DEFAULT_HEALTH_CHECK_INTERVAL, |v| {
                Duration::from_secs(v.get())
            });
        spec.max_consecutive_failures = raw
            .max_consecutive_failures
            .as_ref()
            .map_or(DEFAULT_MAX_CONSECUTIVE_FAILURES, |v| to_u32(v.get()));
        spec.shutdown_timeout = raw
            .shutdown_timeout_s
            .as_ref()
            .map_or(DEFAULT_SHUTDOWN_TIMEOUT, |v| secs(v.get()));
        spec.call_timeout = raw.call_timeout_s.as_ref().map(|v| secs(v.get()));
        // The original treats 0 as "no limit"; so does the runtime, by `None`.
        spec.max_concurrency = raw
            .max_concurrency
            .as_ref()
            .map(|v| to_u32(v.get()))
            .filter(|limit| *limit > 0);
        spec.max_queue = raw
            .max_queue
            .as_ref()
            .map_or(DEFAULT_MAX_QUEUE, |v| to_u32(v.get()));
        // The original starts a group's members when the group is created unless told not to;
        // single providers start on first use.
        spec.auto_start = raw
            .auto_start
            .map_or(mode == ProviderMode::Group, |flag| flag.0);
        spec.tool_prefix = raw.tool_prefix.as_ref().map(|p| p.0.clone());

        match &raw.tools {
            Some(RawTools::Schemas(tools)) => spec.tools = self.tools(&path.key("tools"), tools)?,
            Some(RawTools::Filter(filter)) => {
                spec.tool_filter = Some(self.tool_filter(&path.key("tools"), filter)?);
            }
            None => {}
        }
        if let Some(names) = &raw.validators {
            spec.validators = self.validators(&path.key("validators"), id, names, ctx)?;
        }

        if matches!(mode, ProviderMode::Subprocess | ProviderMode::Container) {
            spec.command = self.texts(&path.key("command"), command_of(raw))?;
            spec.args = self.texts(
                &path.key("args"),
                raw.args.as_ref().map_or(&[][..], |a| &a.0),
            )?;
            if let Some(env) = &raw.env {
                let env_path = path.key("env");
                if let Some(bad) = env.0.keys().find(|name| !is_env_name(name)) {
                    return Err(self.error_at_key(
                        &env_path.key(bad.as_str()),
                        ConfigErrorKind::Invalid,
                        format!(
                            "`{bad}` cannot be an environment variable name (it is empty or \
                             contains `=` or a NUL byte)"
                        ),
                    ));
                }
                spec.env = self.text_map(&env_path, &env.0)?;
            }
            spec.inherit_env = raw.inherit_env.is_some_and(|flag| flag.0);
        }
        match mode {
            ProviderMode::Subprocess => {
                if spec.command.iter().all(|arg| arg.expose().is_empty()) {
                    let message = format!(
                        "provider `{id}` has no command; a subprocess provider needs \
                         `command:` as a list, e.g. `command: [python, -m, my_server]`"
                    );
                    return Err(if raw.command.is_some() {
                        self.invalid(&path.key("command"), message)
                    } else {
                        self.error_at_key(path, ConfigErrorKind::Invalid, message)
                    });
                }
                if let Some(cwd) = self.optional_text(&path.key("cwd"), raw.cwd.as_ref(), false)? {
                    spec.cwd_secret = cwd.is_secret();
                    spec.cwd = Some(PathBuf::from(cwd.expose()));
                }
            }
            ProviderMode::Container => spec.container = Some(self.container(path, id, raw)?),
            ProviderMode::Remote => spec.remote = Some(self.remote(path, id, raw)?),
            ProviderMode::Group => {
                spec.group = Some(self.group(path, id, raw, raw_members, ctx)?);
            }
        }

        let cb_default = CircuitBreakerSpec::default_for(mode);
        spec.circuit_breaker =
            raw.circuit_breaker
                .as_ref()
                .map_or(cb_default, |cb| CircuitBreakerSpec {
                    failure_threshold: cb
                        .failure_threshold
                        .as_ref()
                        .map_or(cb_default.failure_threshold, |v| to_u32(v.get())),
                    reset_timeout: cb
                        .reset_timeout_s
                        .as_ref()
                        .map_or(cb_default.reset_timeout, |v| secs(v.get())),
                });
        if let Some(recovery) = &raw.recovery {
            let default = RecoverySpec::default();
            let resolved = RecoverySpec {
                base_delay: recovery
                    .base_delay_s
                    .as_ref()
                    .map_or(default.base_delay, |v| secs(v.get())),
                max_delay: recovery
                    .max_delay_s
                    .as_ref()
                    .map_or(default.max_delay, |v| secs(v.get())),
                max_retries: recovery
                    .max_retries
                    .as_ref()
                    .map_or(default.max_retries, |v| to_u32(v.get())),
            };
            if resolved.max_delay < resolved.base_delay {
                return Err(self.invalid(
                    &path.key("recovery").key("max_delay_s"),
                    "`max_delay_s` is shorter than `base_delay_s`; the backoff could never grow",
                ));
            }
            spec.recovery = resolved;
        }
        spec.rate_limit = raw.rate_limit.as_ref().map(rate_limit);
        spec.capabilities = raw.capabilities.clone();
        spec.access = raw.access.clone();
        spec.tool_access = raw.tool_access.clone();
        spec.tool_projection = raw.tool_projection.clone();
        spec.canary = raw.canary.clone();
        Ok(spec)
    }

    fn tools(&self, path: &KeyPath, raw: &[schema::RawTool]) -> Result<Vec<ToolSpec>, ConfigError> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        for (i, tool) in raw.iter().enumerate() {
            let tool_path = path.index(i);
            if tool.name.trim().is_empty() {
                return Err(self.invalid(&tool_path.key("name"), "a tool needs a non-empty `name`"));
            }
            if let Some(first) = seen.insert(tool.name.as_str(), i) {
                return Err(self.error_at_value(
                    &tool_path.key("name"),
                    ConfigErrorKind::Duplicate,
                    format!(
                        "tool `{}` is listed twice (also at tools[{first}])",
                        tool.name
                    ),
                ));
            }
            let input_schema = tool.input_schema.as_ref().map_or_else(
                || {
                    let mut schema = serde_json::Map::new();
                    schema.insert("type".into(), serde_json::Value::from("object"));
                    schema
                },
                |schema| schema.0.clone(),
            );
            out.push(ToolSpec {
                name: tool.name.clone(),
                description: tool.description.clone(),
                input_schema,
                output_schema: tool.output_schema.as_ref().map(|s| s.0.clone()),
            });
        }
        Ok(out)
    }

    fn tool_filter(
        &mut self,
        path: &KeyPath,
        raw: &RawToolFilter,
    ) -> Result<ToolFilter, ConfigError> {
        let list = |key: &str, values: &Option<Vec<String>>| -> Result<Vec<String>, ConfigError> {
            let values = values.clone().unwrap_or_default();
            for (i, value) in values.iter().enumerate() {
                if value.trim().is_empty() {
                    return Err(self.invalid(
                        &path.key(key).index(i),
                        "an empty tool name pattern matches nothing; remove it",
                    ));
                }
                // Checked here so a pattern that cannot match is a load error at its line,
                // not a filter that silently hides or exposes nothing at run time.
                if let Err(e) = tool_glob(value) {
                    return Err(self.invalid(
                        &path.key(key).index(i),
                        format!(
                            "`{value}` is not a valid tool name pattern ({}); patterns are \
                             fnmatch globs: `*` any text, `?` one character, `[abc]` one of",
                            e.kind()
                        ),
                    ));
                }
            }
            Ok(values)
        };
        let filter = ToolFilter {
            allow_list: list("allow_list", &raw.allow_list)?,
            deny_list: list("deny_list", &raw.deny_list)?,
            approval_list: list("approval_list", &raw.approval_list)?,
            approval_timeout: raw
                .approval_timeout_seconds
                .as_ref()
                .map_or(DEFAULT_APPROVAL_TIMEOUT, |v| Duration::from_secs(v.get())),
            approval_channel: raw.approval_channel.clone().filter(|c| !c.is_empty()),
        };
        // Human approval needs a channel to a person, which this build does not have: say so
        // rather than let an operator believe those calls wait for one.
        for (key, written) in [
            // An empty list asks for nothing.
            (
                "approval_list",
                raw.approval_list.as_ref().is_some_and(|l| !l.is_empty()),
            ),
            (
                "approval_timeout_seconds",
                raw.approval_timeout_seconds.is_some(),
            ),
            ("approval_channel", raw.approval_channel.is_some()),
        ] {
            if written {
                self.warn(
                    &path.key(key),
                    &format!(
                        "`tools.{key}` is accepted for compatibility with the original but not \
                         acted on by this build: there is no human approval, so the tools it \
                         names are exposed and called like any other (use `deny_list` to hide \
                         them)"
                    ),
                );
            }
        }
        if !filter.allow_list.is_empty() && !filter.deny_list.is_empty() {
            self.warn(
                &path.key("deny_list"),
                "both `allow_list` and `deny_list` are set; only `allow_list` is applied",
            );
        }
        Ok(filter)
    }

    fn container(
        &mut self,
        path: &KeyPath,
        id: &str,
        raw: &RawSpec,
    ) -> Result<ContainerSpec, ConfigError> {
        let image = self.optional_text(&path.key("image"), raw.image.as_ref(), false)?;
        let build = match &raw.build {
            Some(build) => {
                let build_path = path.key("build");
                Some(BuildSpec {
                    context: self.text(
                        &build_path.key("context"),
                        build.context.as_deref().unwrap_or("."),
                        false,
                    )?,
                    dockerfile: self.text(
                        &build_path.key("dockerfile"),
                        build.dockerfile.as_deref().unwrap_or("Dockerfile"),
                        false,
                    )?,
                    tag: build.tag.clone(),
                })
            }
            None => None,
        };
        if image.as_ref().is_none_or(|i| i.expose().is_empty()) && build.is_none() {
            return Err(self.error_at_key(
                path,
                ConfigErrorKind::Invalid,
                format!(
                    "container provider `{id}` needs an `image:` (or a `build:` with a \
                     `dockerfile`)"
                ),
            ));
        }
        let mut volumes = Vec::new();
        for (i, volume) in raw.volumes.iter().flatten().enumerate() {
            let volume_path = path.key("volumes").index(i);
            let text = self.text(&volume_path, volume, false)?;
            volumes.push(self.volume(&volume_path, &text)?);
        }
        let network = match raw.network.as_deref() {
            None | Some("none") => ContainerNetwork::None,
            Some("bridge") => ContainerNetwork::Bridge,
            Some("host") => ContainerNetwork::Host,
            Some("") => {
                return Err(self.invalid(
                    &self.written(path, &["network", "network_mode"]),
                    "network name is empty; use `none`, `bridge`, `host` or a network's name",
                ));
            }
            Some(name) => ContainerNetwork::Named(name.to_owned()),
        };
        let mut resources = ContainerResources::default();
        if let Some(raw_resources) = &raw.resources {
            if let Some(memory) = &raw_resources.memory {
                resources.memory.clone_from(&memory.text);
                resources.memory_bytes = memory.bytes;
            }
            if let Some(cpu) = &raw_resources.cpu {
                resources.cpus = cpu.0;
            }
        }
        Ok(ContainerSpec {
            image,
            build,
            volumes,
            network,
            read_only: raw.read_only.is_none_or(|flag| flag.0),
            resources,
            user: self.optional_text(&path.key("user"), raw.user.as_ref(), false)?,
            socket: self.socket(&path.key("socket"), raw.socket.as_ref())?,
        })
    }

    /// `socket:` — a path, or a URL of a scheme the engine client speaks.
    fn socket(
        &self,
        path: &KeyPath,
        raw: Option<&String>,
    ) -> Result<Option<MaybeSecret>, ConfigError> {
        let Some(socket) = self.optional_text(path, raw, false)? else {
            return Ok(None);
        };
        let text = socket.expose();
        let problem = match text.split_once("://") {
            _ if text.is_empty() => Some("is empty"),
            Some(("unix" | "tcp" | "http", rest)) if !rest.is_empty() => None,
            Some(("unix" | "tcp" | "http", _)) => Some("has no address after the scheme"),
            // No TLS stack is linked for the engine: a TLS endpoint cannot work, so say so now.
            Some(("https" | "ssh" | "npipe", _)) => Some("uses a scheme this build cannot reach"),
            Some(_) => Some("has an unknown scheme"),
            None => None,
        };
        match problem {
            None => Ok(Some(socket)),
            Some(problem) => {
                let shown = if socket.is_secret() {
                    "the socket".to_owned()
                } else {
                    format!("socket `{text}`")
                };
                Err(self.invalid(
                    path,
                    format!(
                        "{shown} {problem}; give a socket path (`/var/run/docker.sock`) or a \
                         `unix://`, `tcp://` or `http://` URL"
                    ),
                ))
            }
        }
    }

    /// `host:container[:ro|rw]`.
    fn volume(&self, path: &KeyPath, text: &MaybeSecret) -> Result<VolumeMount, ConfigError> {
        let shown = if text.is_secret() {
            "this volume".to_owned()
        } else {
            format!("volume `{}`", text.expose())
        };
        let parts: Vec<&str> = text.expose().split(':').collect();
        let (host, container, read_only) = match parts.as_slice() {
            [host, container] => (*host, *container, false),
            [host, container, "ro"] => (*host, *container, true),
            [host, container, "rw"] => (*host, *container, false),
            [_, _, mode] => {
                return Err(
                    self.invalid(path, format!("{shown}: mode `{mode}` is not `ro` or `rw`"))
                );
            }
            _ => {
                return Err(self.invalid(
                    path,
                    format!("{shown} is not `host_path:container_path[:ro|rw]`"),
                ));
            }
        };
        if host.is_empty() || !container.starts_with('/') {
            return Err(self.invalid(
                path,
                format!(
                    "{shown} is not `host_path:container_path[:ro|rw]` (the container path must \
                     be absolute)"
                ),
            ));
        }
        Ok(VolumeMount {
            host: MaybeSecret::new(host, text.is_secret()),
            container: MaybeSecret::new(container, text.is_secret()),
            read_only,
        })
    }

    fn remote(
        &mut self,
        path: &KeyPath,
        id: &str,
        raw: &RawSpec,
    ) -> Result<RemoteSpec, ConfigError> {
        let endpoint_path = path.key("endpoint");
        let Some(raw_endpoint) = &raw.endpoint else {
            return Err(self.error_at_key(
                path,
                ConfigErrorKind::Invalid,
                format!("remote provider `{id}` needs an `endpoint:` (an http:// or https:// URL)"),
            ));
        };
        let endpoint = self.text(&endpoint_path, raw_endpoint, false)?;
        if !is_http_url(endpoint.expose()) {
            let shown = if endpoint.is_secret() {
                "the endpoint (value not shown: it comes from the environment)".to_owned()
            } else {
                format!("endpoint `{}`", endpoint.expose())
            };
            return Err(self.invalid(
                &endpoint_path,
                format!("{shown} is not an http:// or https:// URL"),
            ));
        }
        // Unset transport: the original's examples point SSE servers at `…/sse`.
        let transport = match raw.transport {
            Some(RawTransport::Sse) => RemoteTransport::Sse,
            Some(RawTransport::StreamableHttp) => RemoteTransport::StreamableHttp,
            None if url_path_ends_with_sse(endpoint.expose()) => RemoteTransport::Sse,
            None => RemoteTransport::StreamableHttp,
        };
        let auth = match &raw.auth {
            Some(auth) => self.auth(&path.key("auth"), auth)?,
            None => RemoteAuth::None,
        };
        let tls = match &raw.tls {
            Some(tls) => self.tls(&path.key("tls"), tls)?,
            None => TlsSpec::default(),
        };
        let http = match &raw.http {
            Some(http) => self.http(&path.key("http"), http)?,
            None => HttpSpec::default(),
        };
        let auth_header = match &auth {
            RemoteAuth::None => None,
            RemoteAuth::Bearer { .. } | RemoteAuth::Basic { .. } => Some("Authorization"),
            RemoteAuth::ApiKey { header, .. } => Some(header.expose()),
        };
        if let Some(name) = auth_header
            && let Some(clash) = http
                .headers
                .keys()
                .find(|h| h.eq_ignore_ascii_case(name))
                .cloned()
        {
            // The original's files do this; `auth:` is the more specific of the two.
            self.warn(
                &path.key("http").key("headers").key(clash.as_str()),
                &format!("ignored: `auth:` sends `{clash}` itself, with its own credentials"),
            );
        }
        Ok(RemoteSpec {
            endpoint,
            transport,
            auth,
            tls,
            http,
        })
    }

    fn auth(&mut self, path: &KeyPath, raw: &RawAuth) -> Result<RemoteAuth, ConfigError> {
        let token_path = self.written(path, &["token", "bearer_token"]);
        let key_path = self.written(path, &["key", "api_key"]);
        let header_path = self.written(path, &["header", "api_key_header"]);
        let username_path = path.key("username");
        let password_path = path.key("password");
        let Some(kind) = raw.kind else {
            if raw.token.is_some() || raw.key.is_some() || raw.username.is_some() {
                return Err(self.error_at_key(
                    path,
                    ConfigErrorKind::Invalid,
                    "credentials without a `type:`; add `type: bearer`, `basic` or `api_key` \
                     (without it the original sent no credentials at all)",
                ));
            }
            return Ok(RemoteAuth::None);
        };
        let unused: Vec<(&str, bool)> = match kind {
            RawAuthType::None => vec![
                ("token", raw.token.is_some()),
                ("username", raw.username.is_some()),
                ("password", raw.password.is_some()),
                ("header", raw.header.is_some()),
                ("key", raw.key.is_some()),
            ],
            RawAuthType::Bearer => vec![
                ("username", raw.username.is_some()),
                ("password", raw.password.is_some()),
                ("header", raw.header.is_some()),
                ("key", raw.key.is_some()),
            ],
            RawAuthType::Basic => vec![
                ("token", raw.token.is_some()),
                ("header", raw.header.is_some()),
                ("key", raw.key.is_some()),
            ],
            RawAuthType::ApiKey => vec![
                ("token", raw.token.is_some()),
                ("username", raw.username.is_some()),
                ("password", raw.password.is_some()),
            ],
        };
        for (field, present) in unused {
            if present {
                self.warn(
                    &path.key(field),
                    &format!(
                        "`{field}` has no effect with `type: {}` and is ignored",
                        auth_type_name(kind)
                    ),
                );
            }
        }
        Ok(match kind {
            RawAuthType::None => RemoteAuth::None,
            RawAuthType::Bearer => {
                let token = self.required(path, kind, raw.token.as_ref(), &token_path)?;
                RemoteAuth::Bearer {
                    token: self.text(&token_path, token, true)?,
                }
            }
            RawAuthType::Basic => {
                let username = self.required(path, kind, raw.username.as_ref(), &username_path)?;
                let password = self.required(path, kind, raw.password.as_ref(), &password_path)?;
                RemoteAuth::Basic {
                    username: self.text(&username_path, username, false)?,
                    password: self.text(&password_path, password, true)?,
                }
            }
            RawAuthType::ApiKey => {
                let key = self.required(path, kind, raw.key.as_ref(), &key_path)?;
                let header = match &raw.header {
                    Some(header) => self.text(&header_path, header, false)?,
                    None => MaybeSecret::plain(DEFAULT_API_KEY_HEADER),
                };
                if !is_header_name(header.expose()) {
                    return Err(self.invalid(&header_path, "not a valid HTTP header name"));
                }
                RemoteAuth::ApiKey {
                    header,
                    key: self.text(&key_path, key, true)?,
                }
            }
        })
    }

    /// A credential field that `type:` requires.
    fn required<'v>(
        &self,
        auth_path: &KeyPath,
        kind: RawAuthType,
        field: Option<&'v String>,
        field_path: &KeyPath,
    ) -> Result<&'v String, ConfigError> {
        field.ok_or_else(|| {
            self.error_at_key(
                auth_path,
                ConfigErrorKind::Invalid,
                format!(
                    "`type: {}` needs `{}:`",
                    auth_type_name(kind),
                    field_path.last_key().unwrap_or_default()
                ),
            )
        })
    }

    fn tls(&self, path: &KeyPath, raw: &RawTls) -> Result<TlsSpec, ConfigError> {
        let tls = TlsSpec {
            verify: raw.verify.is_none_or(|flag| flag.0),
            ca_cert: self.optional_text(
                &self.written(path, &["ca_cert", "ca_cert_path"]),
                raw.ca_cert.as_ref(),
                false,
            )?,
            client_cert: self.optional_text(
                &path.key("client_cert"),
                raw.client_cert.as_ref(),
                false,
            )?,
            client_key: self.optional_text(
                &path.key("client_key"),
                raw.client_key.as_ref(),
                false,
            )?,
        };
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            return Err(self.error_at_key(
                path,
                ConfigErrorKind::Invalid,
                "`client_cert` and `client_key` go together; set both or neither",
            ));
        }
        Ok(tls)
    }

    fn http(&self, path: &KeyPath, raw: &RawHttp) -> Result<HttpSpec, ConfigError> {
        let default = HttpSpec::default();
        let headers = match &raw.headers {
            Some(headers) => {
                let headers_path = path.key("headers");
                if let Some(bad) = headers.0.keys().find(|name| !is_header_name(name)) {
                    return Err(self.error_at_key(
                        &headers_path.key(bad.as_str()),
                        ConfigErrorKind::Invalid,
                        format!("`{bad}` is not a valid HTTP header name"),
                    ));
                }
                // The MCP transports set these on every request; a configured value would be
                // silently replaced, so it is refused instead.
                if let Some(reserved) = headers.0.keys().find(|name| {
                    TRANSPORT_HEADERS
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(name))
                }) {
                    return Err(self.error_at_key(
                        &headers_path.key(reserved.as_str()),
                        ConfigErrorKind::Invalid,
                        format!(
                            "`{reserved}` is set by the MCP transport on every request; remove it \
                             from `http.headers`"
                        ),
                    ));
                }
                self.text_map(&headers_path, &headers.0)?
            }
            None => IndexMap::new(),
        };
        Ok(HttpSpec {
            headers,
            timeout: raw
                .timeout_s
                .as_ref()
                .map_or(default.timeout, |v| secs(v.get())),
            connect_timeout: raw
                .connect_timeout_s
                .as_ref()
                .map_or(default.connect_timeout, |v| secs(v.get())),
            max_retries: raw
                .max_retries
                .as_ref()
                .map_or(default.max_retries, |v| to_u32(v.get())),
            retry_backoff_factor: raw
                .retry_backoff_factor
                .as_ref()
                .map_or(default.retry_backoff_factor, |v| v.get()),
            keep_alive: raw.keep_alive.is_none_or(|flag| flag.0),
        })
    }

    fn group(
        &mut self,
        path: &KeyPath,
        id: &str,
        raw: &RawSpec,
        raw_members: Option<Vec<schema::RawMember>>,
        ctx: &SpecContext<'_>,
    ) -> Result<GroupSpec, ConfigError> {
        let members_path = path.key("members");
        let written = raw_members.is_some();
        let raw_members = raw_members.unwrap_or_default();
        if raw_members.is_empty() {
            return Err(self.error_at_key(
                if written { &members_path } else { path },
                ConfigErrorKind::Invalid,
                format!("group `{id}` has no members; list them under `members:`"),
            ));
        }
        let mut members = Vec::with_capacity(raw_members.len());
        let mut in_this_group: HashMap<String, usize> = HashMap::new();
        for (i, member) in raw_members.into_iter().enumerate() {
            members.push(self.member(&members_path, i, id, member, ctx, &mut in_this_group)?);
        }
        let min_healthy = raw
            .min_healthy
            .as_ref()
            .map_or(DEFAULT_MIN_HEALTHY, |v| to_u32(v.get()));
        if usize::try_from(min_healthy).is_ok_and(|min| min > members.len()) {
            self.warn(
                &path.key("min_healthy"),
                &format!(
                    "`min_healthy: {min_healthy}` is more than the group's {} member(s); the \
                     group can never be healthy",
                    members.len()
                ),
            );
        }
        let health = raw
            .health
            .as_ref()
            .map_or_else(HealthThresholds::default, |h| {
                let default = HealthThresholds::default();
                HealthThresholds {
                    unhealthy_threshold: h
                        .unhealthy_threshold
                        .as_ref()
                        .map_or(default.unhealthy_threshold, |v| to_u32(v.get())),
                    healthy_threshold: h
                        .healthy_threshold
                        .as_ref()
                        .map_or(default.healthy_threshold, |v| to_u32(v.get())),
                }
            });
        Ok(GroupSpec {
            strategy: match &raw.strategy {
                None | Some(RawStrategy::RoundRobin) => GroupStrategy::RoundRobin,
                Some(RawStrategy::WeightedRoundRobin) => GroupStrategy::WeightedRoundRobin,
                Some(RawStrategy::LeastConnections) => GroupStrategy::LeastConnections,
                Some(RawStrategy::Random) => GroupStrategy::Random,
                Some(RawStrategy::Priority) => GroupStrategy::Priority,
                Some(RawStrategy::Plugin(name)) => {
                    self.plugin_of_kind(
                        &path.key("strategy"),
                        &format!("group `{id}`: strategy `plugin:{name}`"),
                        name,
                        PluginKind::LbPolicy,
                        ctx.plugins,
                    )?;
                    GroupStrategy::Plugin(name.clone())
                }
            },
            min_healthy,
            members,
            health,
            failback_delay: raw
                .failback_delay_s
                .as_ref()
                .map_or(DEFAULT_FAILBACK_DELAY, |v| secs(v.get())),
        })
    }

    fn member(
        &mut self,
        members_path: &KeyPath,
        index: usize,
        group_id: &str,
        raw: schema::RawMember,
        ctx: &SpecContext<'_>,
        in_this_group: &mut HashMap<String, usize>,
    ) -> Result<GroupMember, ConfigError> {
        let path = &members_path.index(index);
        let (id, weight, priority, spec) = raw.split();
        let id = id.0;
        let id_path = path.key("id");
        if let Some(first) = in_this_group.insert(id.clone(), index) {
            return Err(self.error_at_value(
                &id_path,
                ConfigErrorKind::Duplicate,
                format!(
                    "member `{id}` is listed twice in group `{group_id}` (also members[{first}])"
                ),
            ));
        }
        let weight = weight.map_or(DEFAULT_MEMBER_WEIGHT, |v| to_u32(v.get()));
        let priority = priority.map_or(DEFAULT_MEMBER_PRIORITY, |v| to_u32(v.get()));

        if !defines_provider(&spec) {
            return match ctx.top_modes.get(&id) {
                Some(Some(RawMode::Group)) => Err(self.error_at_value(
                    &id_path,
                    ConfigErrorKind::Invalid,
                    format!("member `{id}` is a group; groups cannot contain groups"),
                )),
                Some(_) => {
                    let tool_filter = match &spec.tools {
                        Some(RawTools::Filter(filter)) => {
                            Some(self.tool_filter(&path.key("tools"), filter)?)
                        }
                        _ => None,
                    };
                    Ok(GroupMember {
                        id,
                        weight,
                        priority,
                        definition: MemberDefinition::Reference,
                        tool_filter,
                    })
                }
                None => Err(self.error_at_value(
                    &id_path,
                    ConfigErrorKind::Invalid,
                    format!(
                        "member `{id}` names no provider under `{}` and defines none here; \
                         give it settings (e.g. `command:`) or define `{id}` at the top level",
                        ctx.base
                    ),
                )),
            };
        }

        if matches!(spec.mode, Some(RawMode::Group)) {
            return Err(self.invalid(
                &path.key("mode"),
                format!(
                    "member `{id}` of group `{group_id}` is a group; groups cannot contain groups"
                ),
            ));
        }
        if ctx.top_modes.contains_key(&id) {
            let first = self.map.key(&ctx.base.key(id.as_str()), 0);
            return Err(self.error_at_value(
                &id_path,
                ConfigErrorKind::Duplicate,
                format!(
                    "provider id `{id}` is defined twice: here as a member of group \
                     `{group_id}`, and under `{}`{}; rename one, or drop this member's \
                     settings to refer to that provider",
                    ctx.base,
                    first
                        .map(|at| format!(" at line {}", at.line))
                        .unwrap_or_default()
                ),
            ));
        }
        {
            let mut inline = ctx.inline_members.borrow_mut();
            if let Some(first) = inline.get(&id) {
                let first_line = self.map.value(&first.key("id")).map(|at| at.line);
                return Err(self.error_at_value(
                    &id_path,
                    ConfigErrorKind::Duplicate,
                    format!(
                        "provider id `{id}` is defined twice: here and at {first}{}; member ids \
                         must be unique across all groups",
                        first_line
                            .map(|l| format!(" (line {l})"))
                            .unwrap_or_default()
                    ),
                ));
            }
            inline.insert(id.clone(), path.clone());
        }
        let defined_at = self.map.value(&id_path);
        let member_spec = self.spec(path, &id, spec, defined_at, ctx)?;
        if member_spec.tool_prefix.is_some() {
            // An inline member is reached only through its group, under the group's names.
            self.warn(
                &path.key("tool_prefix"),
                &format!(
                    "`tool_prefix` has no effect on member `{id}`: its tools are offered under \
                     group `{group_id}`'s names; set `tool_prefix` on the group"
                ),
            );
        }
        Ok(GroupMember {
            id,
            weight,
            priority,
            definition: MemberDefinition::Inline(Box::new(member_spec)),
            tool_filter: None,
        })
    }
}

/// Plugins, and the provider keys that name them.
impl Resolver<'_> {
    fn plugins(
        &self,
        raw: IndexMap<String, RawPlugin>,
    ) -> Result<IndexMap<String, PluginSpec>, ConfigError> {
        let base = KeyPath::root().key("plugins");
        let mut out = IndexMap::with_capacity(raw.len());
        for (name, plugin) in raw {
            let spec = self.plugin(&base.key(name.as_str()), &name, plugin)?;
            out.insert(name, spec);
        }
        Ok(out)
    }

    fn plugin(
        &self,
        path: &KeyPath,
        name: &str,
        raw: RawPlugin,
    ) -> Result<PluginSpec, ConfigError> {
        let kind = match raw.kind {
            RawPluginKind::Validator => PluginKind::Validator,
            RawPluginKind::LbPolicy => PluginKind::LbPolicy,
            RawPluginKind::Discovery => PluginKind::Discovery,
        };
        // `path` and `preopens` are deliberately not interpolated: they decide which code runs
        // and which host files it reads, so the normalised output shows them in full instead
        // of as `***`. A relative path is taken from the config file's directory instead.
        if raw.path.trim().is_empty() {
            return Err(self.invalid(
                &path.key("path"),
                format!("plugin `{name}` has an empty `path`; give the .wasm file to load"),
            ));
        }
        if let Some(bundled) = raw.path.strip_prefix(BUNDLED_PREFIX)
            && crate::bundled::get(bundled).is_none()
        {
            return Err(self.invalid(
                &path.key("path"),
                format!(
                    "there is no bundled plugin `{bundled}`; this hangar bundles {}",
                    crate::bundled::names()
                        .map(|n| format!("`{BUNDLED_PREFIX}{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let mut preopens: Vec<Preopen> = Vec::new();
        for (i, preopen) in raw.preopens.iter().flatten().enumerate() {
            let preopen_path = path.key("preopens").index(i);
            if preopen.host.trim().is_empty() {
                return Err(self.invalid(
                    &preopen_path.key("host"),
                    "`host` is empty; give the directory on this machine to expose",
                ));
            }
            if preopen.guest.trim().is_empty() {
                return Err(self.invalid(
                    &preopen_path.key("guest"),
                    "`guest` is empty; give the directory name the plugin sees",
                ));
            }
            if let Some(first) = preopens.iter().position(|p| p.guest == preopen.guest) {
                return Err(self.error_at_value(
                    &preopen_path.key("guest"),
                    ConfigErrorKind::Duplicate,
                    format!(
                        "guest directory `{}` is preopened twice (also preopens[{first}]); a \
                         plugin can see only one directory there",
                        preopen.guest
                    ),
                ));
            }
            preopens.push(Preopen {
                host: self.beside_config(&preopen.host),
                guest: preopen.guest.clone(),
            });
        }
        let (grants, grant_settings) = self.grants(&path.key("grants"), raw.grants)?;
        let config = match raw.config {
            Some(value) => self.plugin_config(&path.key("config"), value)?,
            None => PluginConfig::default(),
        };
        Ok(PluginSpec {
            name: name.to_owned(),
            kind,
            defined_at: self.map.key(path, 0),
            path: if raw.path.starts_with(BUNDLED_PREFIX) {
                PathBuf::from(&raw.path)
            } else {
                self.beside_config(&raw.path)
            },
            config,
            timeout: raw
                .timeout_ms
                .as_ref()
                .map_or(kind.default_timeout(), |v| Duration::from_millis(v.get())),
            memory_mb: raw
                .memory_mb
                .as_ref()
                .map_or(DEFAULT_PLUGIN_MEMORY_MB, |v| to_u32(v.get())),
            fuel: raw.fuel.as_ref().map(schema::Int::get),
            on_error: match raw.on_error {
                None => kind.default_on_error(),
                Some(RawOnError::FailOpen) => OnError::FailOpen,
                Some(RawOnError::FailClosed) => OnError::FailClosed,
            },
            grants,
            preopens,
            grant_settings,
        })
    }

    /// `grants:` of a plugin: each capability once, with its settings when written as a map.
    fn grants(
        &self,
        path: &KeyPath,
        raw: Option<Vec<RawGrantEntry>>,
    ) -> Result<(Vec<PluginGrant>, GrantSettings), ConfigError> {
        let mut grants = Vec::new();
        let mut settings = GrantSettings::default();
        let mut with_settings: Vec<PluginGrant> = Vec::new();
        for (i, entry) in raw.into_iter().flatten().enumerate() {
            let entry_path = path.index(i);
            let has_settings = !matches!(entry, RawGrantEntry::Word(_));
            let grant = match entry {
                RawGrantEntry::Word(RawGrant::Docker) => PluginGrant::Docker,
                RawGrantEntry::Word(RawGrant::Kubernetes) => PluginGrant::Kubernetes,
                RawGrantEntry::Docker(docker) => {
                    if docker
                        .socket
                        .as_deref()
                        .is_some_and(|s| s.trim().is_empty())
                    {
                        return Err(self.invalid(
                            &entry_path.key("docker").key("socket"),
                            "`socket` is empty; give the engine's socket path or URL, or leave \
                             it out to use DOCKER_HOST or the usual sockets",
                        ));
                    }
                    settings.docker = DockerGrant {
                        socket: docker.socket,
                    };
                    PluginGrant::Docker
                }
                RawGrantEntry::Kubernetes(kube) => {
                    let kube_path = entry_path.key("kubernetes");
                    let mut namespaces: Vec<String> = Vec::new();
                    for (n, namespace) in kube.namespaces.into_iter().flatten().enumerate() {
                        if let Some(problem) = namespace_problem(&namespace) {
                            return Err(self.invalid(
                                &kube_path.key("namespaces").index(n),
                                format!("`{namespace}` is not a Kubernetes namespace: {problem}"),
                            ));
                        }
                        if !namespaces.contains(&namespace) {
                            namespaces.push(namespace);
                        }
                    }
                    settings.kubernetes = KubernetesGrant {
                        kubeconfig: kube
                            .kubeconfig
                            .filter(|k| !k.trim().is_empty())
                            .map(|k| self.beside_config(&k)),
                        context: kube.context.filter(|c| !c.trim().is_empty()),
                        namespaces,
                    };
                    PluginGrant::Kubernetes
                }
            };
            if has_settings {
                if with_settings.contains(&grant) {
                    return Err(self.error_at_value(
                        &entry_path,
                        ConfigErrorKind::Duplicate,
                        format!(
                            "`{}` is granted twice with settings; write its settings once",
                            grant.as_str()
                        ),
                    ));
                }
                with_settings.push(grant);
            }
            if !grants.contains(&grant) {
                grants.push(grant);
            }
        }
        Ok((grants, settings))
    }

    /// `written` taken from the config file's directory, made absolute without touching the
    /// file system (the file need not exist yet). `..` is kept: removing it by hand would be
    /// wrong when the directory before it is a symlink.
    fn beside_config(&self, written: &str) -> PathBuf {
        let dir = self.file.parent().unwrap_or_else(|| Path::new(""));
        let joined = dir.join(written);
        // `absolute` fails only when the current directory cannot be read (it was removed);
        // the joined path is then the best there is, and the plugin host reports it.
        std::path::absolute(&joined).unwrap_or(joined)
    }

    /// `config:` of a plugin: every string leaf is interpolated. A leaf is secret when a
    /// `${...}` was substituted in it, or when any key above it (within `config`) looks secret
    /// — plugin configs carry tokens as freely as `env:` does.
    fn plugin_config(
        &self,
        path: &KeyPath,
        raw: serde_json::Value,
    ) -> Result<PluginConfig, ConfigError> {
        let mut secrets = Vec::new();
        let value = self.config_leaves(path, "", raw, false, &mut secrets)?;
        Ok(PluginConfig::new(value, secrets))
    }

    fn config_leaves(
        &self,
        path: &KeyPath,
        pointer: &str,
        value: serde_json::Value,
        under_secret_key: bool,
        secrets: &mut Vec<String>,
    ) -> Result<serde_json::Value, ConfigError> {
        use serde_json::Value;
        Ok(match value {
            Value::String(raw) => {
                let text = self.text(path, &raw, under_secret_key)?;
                if text.is_secret() {
                    secrets.push(pointer.to_owned());
                }
                Value::String(text.expose().to_owned())
            }
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let pointer = format!("{pointer}/{i}");
                        self.config_leaves(
                            &path.index(i),
                            &pointer,
                            item,
                            under_secret_key,
                            secrets,
                        )
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (key, item) in map {
                    let pointer = format!("{pointer}/{}", pointer_token(&key));
                    let secret = under_secret_key || key_looks_secret(&key);
                    let item = self.config_leaves(
                        &path.key(key.as_str()),
                        &pointer,
                        item,
                        secret,
                        secrets,
                    )?;
                    out.insert(key, item);
                }
                Value::Object(out)
            }
            Value::Null => Value::Null,
            scalar @ (Value::Bool(_) | Value::Number(_)) => {
                if under_secret_key {
                    secrets.push(pointer.to_owned());
                }
                scalar
            }
        })
    }

    /// `validators:` of a provider: each names a `validator` plugin, once.
    fn validators(
        &self,
        path: &KeyPath,
        id: &str,
        names: &[String],
        ctx: &SpecContext<'_>,
    ) -> Result<Vec<String>, ConfigError> {
        let mut out: Vec<String> = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let entry = path.index(i);
            if let Some(first) = out.iter().position(|n| n == name) {
                return Err(self.error_at_value(
                    &entry,
                    ConfigErrorKind::Duplicate,
                    format!(
                        "provider `{id}`: validator `{name}` is listed twice (also \
                         validators[{first}])"
                    ),
                ));
            }
            self.plugin_of_kind(
                &entry,
                &format!("provider `{id}`: validator `{name}`"),
                name,
                PluginKind::Validator,
                ctx.plugins,
            )?;
            out.push(name.clone());
        }
        Ok(out)
    }

    /// Checks that `name` is a plugin of `kind`; `what` starts the message (`group `g`: …`).
    fn plugin_of_kind(
        &self,
        path: &KeyPath,
        what: &str,
        name: &str,
        kind: PluginKind,
        plugins: &IndexMap<String, PluginSpec>,
    ) -> Result<(), ConfigError> {
        let problem = match plugins.get(name) {
            Some(plugin) if plugin.kind == kind => return Ok(()),
            Some(plugin) => format!(
                "is a plugin of kind `{}`{}; it must be of kind `{kind}`",
                plugin.kind,
                plugin
                    .defined_at
                    .map(|at| format!(" (line {})", at.line))
                    .unwrap_or_default()
            ),
            None => "names no plugin under `plugins:`".to_owned(),
        };
        Err(self.invalid(
            path,
            format!("{what} {problem} ({})", plugins_of_kind(plugins, kind)),
        ))
    }
}

/// What resolving one provider needs to know about the rest of the file.
pub(super) struct SpecContext<'c> {
    /// The provider section's path (`mcp_servers` or `providers`).
    base: &'c KeyPath,
    /// Top-level ids and their modes, for member references.
    top_modes: &'c HashMap<String, Option<RawMode>>,
    /// Inline member ids seen so far (any group), with their paths, to report duplicates.
    inline_members: &'c RefCell<HashMap<String, KeyPath>>,
    /// Every plugin, for `validators:` and `strategy: plugin:NAME`.
    plugins: &'c IndexMap<String, PluginSpec>,
}

/// `rate_limit:`, of a provider or of the whole hangar.
pub(super) fn rate_limit(raw: &RawRateLimit) -> RateLimitSpec {
    let rps = raw.requests_per_second.get();
    RateLimitSpec {
        requests_per_second: rps,
        burst: raw
            .burst
            .as_ref()
            .map_or_else(|| ceil_u32(rps).max(1), |b| to_u32(b.get())),
    }
}

fn resolve_limits(raw: &RawLimits) -> Limits {
    Limits {
        max_argument_bytes: raw
            .max_argument_bytes
            .as_ref()
            .map_or(DEFAULT_MAX_ARGUMENT_BYTES, |v| to_usize(v.get())),
        max_argument_depth: raw
            .max_argument_depth
            .as_ref()
            .map_or(DEFAULT_MAX_ARGUMENT_DEPTH, |v| to_usize(v.get())),
    }
}

/// The plugins of `kind`, for messages: "plugins of kind `validator`: `a`, `b`", or a sentence
/// saying there are none.
fn plugins_of_kind(plugins: &IndexMap<String, PluginSpec>, kind: PluginKind) -> String {
    let names: Vec<String> = plugins
        .values()
        .filter(|p| p.kind == kind)
        .map(|p| format!("`{}`", p.name))
        .collect();
    if names.is_empty() {
        format!("no plugins of kind `{kind}` are defined under `plugins:`")
    } else {
        format!("plugins of kind `{kind}`: {}", names.join(", "))
    }
}

/// One RFC 6901 reference token.
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn command_of(raw: &RawSpec) -> &[String] {
    raw.command.as_ref().map_or(&[][..], |c| &c.0)
}

fn to_u32(value: u64) -> u32 {
    // Every `Positive`/`Count` was range-checked to fit `u32` while reading.
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn to_usize(value: u64) -> usize {
    // Every value passed here was range-checked to fit `u32`, and so `usize`.
    usize::try_from(value).unwrap_or(usize::MAX)
}

fn ceil_u32(value: f64) -> u32 {
    // `value` is finite and at most 1e9 (checked while reading), so this fits.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rounded = value.ceil().min(f64::from(u32::MAX)) as u32;
    rounded
}

/// Why `name` is not a Kubernetes namespace name (an RFC 1123 label), if it is not one.
pub(crate) fn namespace_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 63 {
        Some("it is longer than 63 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("only lowercase letters, digits and `-` are allowed")
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("it must start and end with a letter or a digit")
    } else {
        None
    }
}

fn auth_type_name(kind: RawAuthType) -> &'static str {
    match kind {
        RawAuthType::None => "none",
        RawAuthType::Bearer => "bearer",
        RawAuthType::Basic => "basic",
        RawAuthType::ApiKey => "api_key",
    }
}

fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    rest.is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty() && !host.contains(char::is_whitespace)
    })
}

/// Headers the remote transports write themselves (content negotiation, the session, the
/// protocol version, SSE resumption, framing).
const TRANSPORT_HEADERS: &[&str] = &[
    "Accept",
    "Content-Type",
    "Content-Length",
    "Host",
    "Mcp-Session-Id",
    "Mcp-Protocol-Version",
    "Last-Event-ID",
];

fn url_path_ends_with_sse(url: &str) -> bool {
    let without_query = url.split(['?', '#']).next().unwrap_or_default();
    without_query.trim_end_matches('/').ends_with("/sse")
}

/// What a process environment can hold as a name.
fn is_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

/// RFC 9110 token characters.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(is_http_url("https://mcp.example.com/mcp"));
        assert!(is_http_url("http://127.0.0.1:8080"));
        assert!(!is_http_url("ftp://x"));
        assert!(!is_http_url("https://"));
        assert!(!is_http_url("mcp.example.com"));
    }

    #[test]
    fn sse_is_inferred_only_from_the_path() {
        assert!(url_path_ends_with_sse("https://x/sse"));
        assert!(url_path_ends_with_sse("https://x/sse/?a=b"));
        assert!(!url_path_ends_with_sse("https://sse.example.com/mcp"));
    }

    #[test]
    fn header_names_are_tokens() {
        assert!(is_header_name("X-API-Key"));
        assert!(!is_header_name("Bad Header"));
        assert!(!is_header_name("a:b"));
        assert!(!is_header_name(""));
    }
}
