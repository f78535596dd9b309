//! The hangar's config file: load it, check it, and explain every problem with a file, line,
//! column and key path.
//!
//! The format is the original mcp-hangar's: providers under `mcp_servers:` (2.x) or
//! `providers:` (0.1.x), with `${VAR}` / `${VAR:-default}` interpolation, plus the hangar-wide
//! `rate_limit:` and two sections of this build: `limits:` (on call arguments) and `plugins:`
//! (WebAssembly validators, load-balancing policies and discovery). Loading goes
//!
//! ```text
//! text ──yaml_serde + serde_path_to_error──▶ schema::RawTop   (shape, types, ranges, unknown keys)
//!      ──resolve (+ locate::SourceMap)─────▶ Config           (defaults, ${VAR}, secrets, cross-checks)
//! ```
//!
//! Deliberately absent:
//! - No silent drops. An unknown key is an error with a suggestion; a top-level section of the
//!   original that this build does not implement is accepted with a warning naming it.
//! - No clear-text secrets in `Debug`, `Display`, errors or the normalised output. Values that
//!   came from `${...}`, and values under secret-looking keys, are `MaybeSecret`s that print
//!   as `***`; reading them takes an explicit `expose()`.
//! - No process environment in `parse`: variables come through a parameter, so tests never
//!   touch the real environment. Only `load` reads it.
//! - No YAML merge keys (`<<: *anchor`): yaml_serde does not expand them while deserialising,
//!   and expanding them through `yaml_serde::Value` would lose every line number. They are
//!   reported as an error that says so. Plain anchors and aliases work.

mod discovery;
mod error;
pub mod event_store;
mod http;
mod interpolate;
mod locate;
mod normalize;
mod observability;
mod resolve;
mod schema;
mod secret;
mod spec;
mod tracing;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

pub use self::discovery::{
    BUNDLED_SOURCES, DiscoverySpec, LifecycleSpec, RegistrationRate, SecuritySpec, SourceMode,
    SourceSpec, SourceType,
};
pub use self::error::{ConfigError, ConfigErrorKind};
pub use self::http::{ApiKeySpec, AuthSpec, HttpServeSpec, JWT_ALGORITHMS, JwtSpec, KeyDigest};
pub use self::locate::SourceLocation;
pub use self::observability::{
    DEFAULT_METRICS_PATH, LogLevel, LoggingSpec, MetricsSpec, ObservabilitySpec,
};
pub(crate) use self::resolve::namespace_problem;
pub use self::secret::{EnvValue, MaybeSecret, REDACTED, key_looks_secret};
pub use self::spec::{
    BUNDLED_PREFIX, BuildSpec, CircuitBreakerSpec, ContainerNetwork, ContainerResources,
    ContainerSpec, DEFAULT_MEMBER_PRIORITY, DEFAULT_MEMBER_WEIGHT, DockerGrant, GrantSettings,
    GroupMember, GroupSpec, GroupStrategy, HealthThresholds, HttpSpec, KubernetesGrant, Limits,
    MemberDefinition, OnError, PluginConfig, PluginGrant, PluginKind, PluginSpec, Preopen,
    ProviderMode, ProviderSpec, RateLimitSpec, RecoverySpec, RemoteAuth, RemoteSpec,
    RemoteTransport, TlsSpec, ToolFilter, ToolSpec, VolumeMount, tool_glob,
};
pub use self::tracing::{LangfuseSpec, OtlpProtocol, TracingSpec};

use self::locate::SourceMap;

/// A loaded config file.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file it was read from (as given).
    pub path: PathBuf,
    /// Top-level providers and groups, in file order. Inline group members live inside their
    /// group (`all_providers` lists them too; `group_members` pairs each member with its spec).
    pub providers: IndexMap<String, ProviderSpec>,
    /// `rate_limit:` for the whole hangar, on top of each provider's; `None`: no global limit.
    pub rate_limit: Option<RateLimitSpec>,
    /// `limits:` on call arguments; the defaults when the section is absent.
    pub limits: Limits,
    /// `plugins:`, by name, in file order.
    pub plugins: IndexMap<String, PluginSpec>,
    /// `observability.tracing:` (or the OTEL_* environment): span export over OTLP.
    pub tracing: Option<TracingSpec>,
    /// `observability.langfuse:`: span export to Langfuse.
    pub langfuse: Option<LangfuseSpec>,
    /// `event_store:`; the defaults (enabled, under the XDG data directory) when absent.
    pub event_store: event_store::EventStoreSpec,
    /// `discovery:`; `None` when the file has no such section.
    pub discovery: Option<DiscoverySpec>,
    /// `logging:`; the defaults (INFO, text, stderr only) when the section is absent.
    pub logging: LoggingSpec,
    /// `observability:` (metrics); the defaults (metrics on, no listener of its own) when absent.
    pub observability: ObservabilitySpec,
    /// `http:`: the HTTP face's origins, hosts, authentication and bounds; the defaults
    /// (loopback origins, no authentication) when absent.
    pub http: HttpServeSpec,
    /// Things accepted but not acted on, each `FILE:LINE: …`, in file order.
    pub warnings: Vec<String>,
}

impl Config {
    /// The normalised config: every key with its effective value, secrets as `***`, providers
    /// in file order. Safe to print.
    pub fn to_redacted_yaml(&self) -> String {
        normalize::to_redacted_yaml(self)
    }

    /// A provider by id: top-level, or an inline member of a group.
    pub fn provider(&self, id: &str) -> Option<&ProviderSpec> {
        self.all_providers().find(|spec| spec.id == id)
    }

    /// The members of group `group_id`, in order, each with the spec it runs: its own for an
    /// inline member, the top-level provider of the same id for a reference. Empty when
    /// `group_id` is not a top-level group. (A reference to a provider missing from
    /// `providers` cannot come from a file; in a `Config` built in code it is left out.)
    pub fn group_members(&self, group_id: &str) -> Vec<(&GroupMember, &ProviderSpec)> {
        let Some(group) = self.providers.get(group_id).and_then(|s| s.group.as_ref()) else {
            return Vec::new();
        };
        group
            .members
            .iter()
            .filter_map(|member| match &member.definition {
                MemberDefinition::Inline(spec) => Some((member, spec.as_ref())),
                MemberDefinition::Reference => {
                    self.providers.get(&member.id).map(|spec| (member, spec))
                }
            })
            .collect()
    }

    /// Every provider: each top-level one, followed by its inline group members.
    pub fn all_providers(&self) -> impl Iterator<Item = &ProviderSpec> {
        self.providers.values().flat_map(|spec| {
            let members = spec.group.iter().flat_map(|group| {
                group
                    .members
                    .iter()
                    .filter_map(|member| match &member.definition {
                        MemberDefinition::Inline(inline) => Some(inline.as_ref()),
                        MemberDefinition::Reference => None,
                    })
            });
            std::iter::once(spec).chain(members)
        })
    }
}

/// Reads `path`, resolves `${VAR}` from the process environment, and checks it.
///
/// # Errors
///
/// A `ConfigError` naming the file, line, column and key path of the first problem: the file
/// cannot be read, is not YAML, has an unknown key or a wrong value, refers to an unset
/// variable, or repeats an id.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, &process_env)
}

/// `load` with variables from `env` instead of the process environment.
///
/// # Errors
///
/// As `load`.
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError::io(path, &err))?;
    parse(&text, path, env)
}

/// Parses and checks config `text` (read from `path`, which is used in messages).
///
/// # Errors
///
/// As `load`, except that no file is read.
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let de = yaml_serde::Deserializer::from_str(text);
    let mut raw: schema::RawTop = serde_path_to_error::deserialize(de)
        .map_err(|err| error::from_deserialize(path, text, &err))?;
    let map = SourceMap::build(text);
    let event_store = event_store::resolve(raw.event_store.take(), path, &map, env)?;
    let raw_discovery = raw.discovery.take();
    let discovers = raw_discovery.is_some();
    raw.discovery = discovers.then(Default::default);
    let mut resolved = resolve::Resolver::new(path, &map, env).resolve(raw)?;
    let discovery = raw_discovery
        .map(|d| discovery::resolve(d, path, &map, &resolved.plugins, &mut resolved.warnings))
        .transpose()?;
    Ok(Config {
        discovery,
        path: path.to_path_buf(),
        providers: resolved.providers,
        rate_limit: resolved.rate_limit,
        limits: resolved.limits,
        plugins: resolved.plugins,
        tracing: resolved.tracing,
        langfuse: resolved.langfuse,
        event_store,
        logging: resolved.logging,
        observability: resolved.observability,
        http: resolved.http,
        warnings: resolved.warnings,
    })
}

fn process_env(name: &str) -> Option<String> {
    // A value that is not UTF-8 cannot be put in a command line or header as text; treat it as
    // unset so the error names the variable instead of passing on mangled bytes.
    std::env::var_os(name).and_then(|value| value.into_string().ok())
}

/// Configs loaded from text, for the tests of every section.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    use super::{Config, ConfigError, parse};

    /// `text` as the config at `file`, which must load.
    pub fn ok(text: &str, file: &str, env: &dyn Fn(&str) -> Option<String>) -> Config {
        parse(text, Path::new(file), env)
            .unwrap_or_else(|e| panic!("expected the config to load, got: {e}"))
    }

    /// `text` as the config at `file`, which must not load: the error.
    pub fn err(text: &str, file: &str, env: &dyn Fn(&str) -> Option<String>) -> ConfigError {
        match parse(text, Path::new(file), env) {
            Ok(config) => panic!("expected an error for:\n{text}\ngot: {config:?}"),
            Err(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    const FILE: &str = "hangar.yaml";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn ok(text: &str) -> Config {
        testing::ok(text, FILE, &no_env)
    }

    fn err(text: &str) -> ConfigError {
        testing::err(text, FILE, &no_env)
    }

    fn provider<'c>(config: &'c Config, id: &str) -> &'c ProviderSpec {
        match config.providers.get(id) {
            Some(spec) => spec,
            None => panic!("no provider `{id}` in {:?}", config.providers.keys()),
        }
    }

    // --- formats and defaults ------------------------------------------------------------

    #[test]
    fn both_formats_load_to_the_same_providers() {
        let body = "  math:\n    command: [python, -m, math]\n    idle_ttl_s: 180\n";
        let old = ok(&format!("providers:\n{body}"));
        let new = ok(&format!("mcp_servers:\n{body}"));
        assert_eq!(old.providers, new.providers);
        assert_eq!(provider(&old, "math").argv(), ["python", "-m", "math"]);
        assert_eq!(provider(&old, "math").idle_ttl, Duration::from_secs(180));
    }

    #[test]
    fn defaults_are_applied_to_every_unset_key() {
        let config = ok("mcp_servers:\n  math:\n    command: [python]\n");
        let math = provider(&config, "math");
        assert_eq!(math.mode, ProviderMode::Subprocess);
        assert_eq!(math.mode.as_str(), "subprocess");
        assert_eq!(math.idle_ttl, Duration::from_secs(300));
        assert_eq!(math.health_check_interval, Duration::from_secs(60));
        assert_eq!(math.max_consecutive_failures, 3);
        assert_eq!(math.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(math.call_timeout, None);
        assert_eq!(math.max_concurrency, None);
        assert!(!math.auto_start);
        assert_eq!(math.tool_prefix, None);
        assert!(math.tools.is_empty() && math.tool_filter.is_none());
        assert!(math.env.is_empty() && math.cwd.is_none());
        assert!(math.container.is_none() && math.remote.is_none() && math.group.is_none());
        assert_eq!(math.defined_at, Some(SourceLocation { line: 2, column: 3 }));
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn every_setting_can_be_written() {
        let config = ok("\
mcp_servers:
  math:
    command: [python, -m, math]
    args: [--verbose]
    cwd: /srv/math
    description: Adds numbers
    idle_ttl_s: 60
    health_check_interval_s: 15
    max_consecutive_failures: 5
    shutdown_timeout_s: 2.5
    call_timeout_s: 30
    max_concurrency: 4
    auto_start: yes
    tool_prefix: m_
    circuit_breaker: {failure_threshold: 4}
    recovery: {base_delay_s: 0.5, max_delay_s: 30, max_retries: 7}
    rate_limit: {requests_per_second: 2.5}
");
        let math = provider(&config, "math");
        assert_eq!(math.argv(), ["python", "-m", "math", "--verbose"]);
        assert_eq!(math.cwd.as_deref(), Some(Path::new("/srv/math")));
        assert_eq!(math.description.as_deref(), Some("Adds numbers"));
        assert_eq!(math.idle_ttl, Duration::from_secs(60));
        assert_eq!(math.health_check_interval, Duration::from_secs(15));
        assert_eq!(math.max_consecutive_failures, 5);
        assert_eq!(math.shutdown_timeout, Duration::from_millis(2500));
        assert_eq!(math.call_timeout, Some(Duration::from_secs(30)));
        assert_eq!(math.max_concurrency, Some(4));
        assert!(
            math.auto_start,
            "YAML 1.1 `yes` is true, as in the original"
        );
        assert_eq!(math.effective_tool_prefix(), Some("m_"));
        let cb = math.circuit_breaker;
        assert_eq!(
            (cb.failure_threshold, cb.reset_timeout),
            (4, Duration::from_secs(30)),
            "the unwritten key takes a provider's default"
        );
        let recovery = math.recovery;
        assert_eq!(recovery.base_delay, Duration::from_millis(500));
        assert_eq!(recovery.max_retries, 7);
        let rate = math.rate_limit.map(|r| (r.requests_per_second, r.burst));
        assert_eq!(rate, Some((2.5, 3)));
    }

    #[test]
    fn env_values_keep_the_text_written() {
        let config = ok("\
mcp_servers:
  math:
    command: [python]
    env: {PORT: 8080, DEBUG: false, VERSION: 1.0, EMPTY: , NAME: plain}
");
        assert_eq!(
            provider(&config, "math").env_pairs(),
            [
                ("PORT".into(), "8080".into()),
                ("DEBUG".into(), "false".into()),
                ("VERSION".into(), "1.0".into()),
                ("EMPTY".into(), String::new()),
                ("NAME".into(), "plain".into()),
            ]
        );
    }

    // --- errors a person can act on ----------------------------------------------------------

    #[test]
    fn a_typo_names_line_column_key_path_and_the_key_meant() {
        let e = err("providers:\n  math:\n    mode: subprocess\n    comand: [python]\n");
        assert_eq!(e.kind, ConfigErrorKind::UnknownKey);
        assert_eq!((e.line, e.column), (Some(4), Some(5)));
        assert_eq!(e.key_path, "providers.math");
        let text = e.to_string();
        assert!(
            text.starts_with(
                "hangar.yaml:4:5: providers.math: unknown key `comand`; did you mean \
                 `command`? (valid keys: mode, command, args,"
            ),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_key_that_resembles_nothing_gets_no_suggestion() {
        let e = err("mcp_servers:\n  math:\n    command: [x]\n    banana: 1\n");
        assert_eq!(e.kind, ConfigErrorKind::UnknownKey);
        assert!(!e.message.contains("did you mean"), "{e}");
        assert!(e.message.contains("(valid keys: mode, command"), "{e}");
    }

    #[test]
    fn unknown_keys_inside_nested_blocks_are_errors_too() {
        let e = err("\
mcp_servers:
  api:
    mode: remote
    endpoint: https://x.example/mcp
    tls: {verfy: false}
");
        assert_eq!(e.kind, ConfigErrorKind::UnknownKey);
        assert_eq!(e.key_path, "mcp_servers.api.tls");
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("did you mean `verify`?"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_line_column_and_what_was_expected() {
        let e = err("providers:\n  math:\n    command: [python]\n    idle_ttl_s: soon\n");
        assert_eq!(
            e.to_string(),
            "hangar.yaml:4:17: providers.math.idle_ttl_s: invalid type: string \"soon\", \
             expected an integer (seconds)"
        );
        let e = err(
            "mcp_servers:\n  g:\n    mode: group\n    members:\n      - {id: a, command: [x], weight: 101}\n",
        );
        assert_eq!(e.key_path, "mcp_servers.g.members[0].weight");
        assert!(
            e.message.contains("expected an integer from 1 to 100"),
            "{e}"
        );
        assert_eq!(e.line, Some(5));
    }

    #[test]
    fn an_unknown_mode_suggests_the_one_meant() {
        let e = err("mcp_servers:\n  math:\n    mode: dockr\n");
        assert_eq!(e.key_path, "mcp_servers.math.mode");
        assert_eq!((e.line, e.column), (Some(3), Some(11)));
        assert!(
            e.message
                .starts_with("unknown value `dockr`; did you mean `docker`?"),
            "{e}"
        );
    }

    #[test]
    fn a_yaml_syntax_error_names_its_line() {
        let e = err("mcp_servers:\n  math:\n    command: [python\n  other: {}\n");
        assert_eq!(e.kind, ConfigErrorKind::Syntax);
        assert_eq!(e.line, Some(4));
        assert!(e.to_string().starts_with("hangar.yaml:4:"), "{e}");
        assert!(e.message.contains("flow sequence"), "{e}");
        let e = err("mcp_servers:\n  math:\n   command: [x]\n    mode: subprocess\n");
        assert_eq!(e.kind, ConfigErrorKind::Syntax);
        assert_eq!(e.line, Some(4));
    }

    #[test]
    fn a_tab_indented_or_multi_document_file_says_so() {
        let e = err("mcp_servers:\n  a:\n\tcommand: [x]\n");
        assert_eq!((e.kind, e.line), (ConfigErrorKind::Syntax, Some(3)));
        assert!(
            e.message
                .ends_with("(YAML cannot be indented with tabs; use spaces)"),
            "{e}"
        );
        let e = err("mcp_servers:\n  a: {command: [x]}\n---\nlogging: {}\n");
        assert_eq!(e.kind, ConfigErrorKind::Syntax);
        assert!(e.message.contains("more than one YAML document"), "{e}");
    }

    #[test]
    fn wrong_shapes_are_described_in_words_not_type_names() {
        let cases = [
            (
                "mcp_servers:\n  a: python\n",
                "mcp_servers.a: invalid type: string \"python\", expected a map of provider settings",
            ),
            (
                "mcp_servers:\n  a: {command: [x], mode: [x]}\n",
                "mcp_servers.a.mode: invalid type: sequence, expected a mode (one of: subprocess, \
                 container, docker, podman, remote, http, group)",
            ),
            (
                "mcp_servers:\n  a: {command: [x], auth: x}\n",
                "mcp_servers.a.auth: invalid type: string \"x\", expected a map of settings",
            ),
            (
                "mcp_servers:\n  a: {command: [x], idle_ttl_s: -5}\n",
                "mcp_servers.a.idle_ttl_s: invalid value: integer `-5`, expected a number of \
                 seconds from 0 to 315360000 (ten years)",
            ),
            (
                "mcp_servers:\n  a: {command: [x], volumes: /data}\n",
                "mcp_servers.a.volumes: invalid type: string \"/data\", expected a list",
            ),
            (
                "mcp_servers:\n  g:\n    mode: group\n    members:\n      - command: [x]\n",
                "mcp_servers.g.members[0]: missing required key `id`",
            ),
        ];
        for (text, expected) in cases {
            let e = err(text);
            let shown = e.to_string();
            assert!(
                shown.ends_with(expected),
                "{shown}\n  does not end with\n{expected}"
            );
        }
    }

    #[test]
    fn a_command_written_as_one_string_is_refused_with_the_list_to_write() {
        let e = err("mcp_servers:\n  math:\n    command: python -m server\n");
        assert_eq!(e.key_path, "mcp_servers.math.command");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("`[python, -m, server]`"), "{e}");
    }

    #[test]
    fn a_subprocess_without_a_command_is_refused() {
        let e = err("mcp_servers:\n  math:\n    idle_ttl_s: 5\n");
        assert_eq!(e.kind, ConfigErrorKind::Invalid);
        assert_eq!((e.line, e.key_path.as_str()), (Some(2), "mcp_servers.math"));
        assert!(e.message.contains("has no command"), "{e}");
        let e = err("mcp_servers:\n  math:\n    command: []\n");
        assert_eq!(
            (e.line, e.key_path.as_str()),
            (Some(3), "mcp_servers.math.command")
        );
    }

    #[test]
    fn an_invalid_provider_id_is_refused_at_the_id() {
        let e = err("mcp_servers:\n  math:\n    command: [x]\n  9lives:\n    command: [x]\n");
        assert_eq!((e.line, e.column), (Some(4), Some(3)));
        assert_eq!(e.key_path, "mcp_servers");
        assert!(
            e.message
                .starts_with("invalid provider id `9lives`: it must start with a letter")
        );
        let e = err(
            "mcp_servers:\n  g:\n    mode: group\n    members:\n      - id: has.dot\n        command: [x]\n",
        );
        assert_eq!(e.key_path, "mcp_servers.g.members[0].id");
        assert_eq!((e.line, e.column), (Some(5), Some(13)));
    }

    #[test]
    fn a_provider_id_written_twice_names_both_lines() {
        let e = err("mcp_servers:\n  a:\n    command: [x]\n  a:\n    command: [y]\n");
        assert_eq!(e.kind, ConfigErrorKind::Duplicate);
        assert_eq!(
            e.to_string(),
            "hangar.yaml:4:3: mcp_servers: duplicate provider id `a` (first defined at line 2)"
        );
        let e = err("mcp_servers:\n  a:\n    command: [x]\n    env: {A: 1, A: 2}\n");
        assert_eq!(e.key_path, "mcp_servers.a.env");
        assert!(e.message.starts_with("duplicate key `A`"), "{e}");
        let e = err("mcp_servers:\n  a:\n    command: [x]\n    idle_ttl_s: 1\n    idle_ttl_s: 2\n");
        assert_eq!((e.line, e.column), (Some(5), Some(5)));
        assert!(
            e.message
                .contains("`idle_ttl_s` is written twice (first at line 4)"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_member_ids_across_groups_and_the_top_level_name_both() {
        let e = err("\
mcp_servers:
  g:
    mode: group
    members:
      - {id: m, command: [x]}
  h:
    mode: group
    members:
      - {id: m, command: [y]}
");
        assert_eq!(e.kind, ConfigErrorKind::Duplicate);
        assert_eq!(e.key_path, "mcp_servers.h.members[0].id");
        assert_eq!(e.line, Some(9));
        assert!(
            e.message.contains("mcp_servers.g.members[0] (line 5)"),
            "{e}"
        );

        let e = err("\
mcp_servers:
  m:
    command: [x]
  g:
    mode: group
    members:
      - {id: m, command: [y]}
");
        assert_eq!(e.line, Some(7));
        assert!(
            e.message
                .contains("group `g`, and under `mcp_servers` at line 2"),
            "{e}"
        );

        let e = err(
            "mcp_servers:\n  g:\n    mode: group\n    members:\n      - {id: a, command: [x]}\n      - {id: a, command: [y]}\n",
        );
        assert_eq!(e.line, Some(6));
        assert!(e.message.contains("listed twice in group `g`"), "{e}");
    }

    #[test]
    fn both_provider_sections_at_once_is_an_error() {
        let e = err("providers:\n  a: {command: [x]}\nmcp_servers:\n  b: {command: [y]}\n");
        assert_eq!(e.kind, ConfigErrorKind::Duplicate);
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("keep one"), "{e}");
    }

    #[test]
    fn a_file_without_providers_says_what_is_missing() {
        assert!(
            err("")
                .message
                .contains("expected an `mcp_servers:` section")
        );
        assert!(
            err("logging: {level: INFO}\n")
                .message
                .contains("no `mcp_servers:` section")
        );
        // A discovery-only deployment of the original has no static providers.
        let config = ok("discovery:\n  enabled: true\n");
        assert!(config.providers.is_empty());
        assert_eq!(config.warnings.len(), 1);
        // An explicitly empty section is fine.
        assert!(ok("mcp_servers: {}\n").providers.is_empty());
    }

    #[test]
    fn a_bad_tool_prefix_is_refused() {
        let e = err("mcp_servers:\n  a:\n    command: [x]\n    tool_prefix: \"my prefix\"\n");
        assert_eq!(e.key_path, "mcp_servers.a.tool_prefix");
        assert_eq!(e.line, Some(4));
        assert!(e.message.contains("invalid tool prefix `my prefix`"), "{e}");
        let config = ok("mcp_servers:\n  a:\n    command: [x]\n    tool_prefix: \"\"\n");
        assert_eq!(provider(&config, "a").tool_prefix.as_deref(), Some(""));
        assert_eq!(provider(&config, "a").effective_tool_prefix(), None);
    }

    #[test]
    fn yaml_merge_keys_are_refused_with_a_reason() {
        let e = err("base: &b {idle_ttl_s: 5}\n");
        assert_eq!(e.kind, ConfigErrorKind::UnknownKey);
        let e = err("mcp_servers:\n  a:\n    <<: {command: [x]}\n");
        assert!(e.message.contains("merge keys"), "{e}");
    }

    #[test]
    fn a_config_file_that_cannot_be_read_names_the_file() {
        let e = match load(Path::new("/nonexistent/hangar.yaml")) {
            Ok(_) => panic!("loaded a file that does not exist"),
            Err(e) => e,
        };
        assert_eq!(e.kind, ConfigErrorKind::Io);
        assert_eq!(e.location(), None);
        assert!(
            e.to_string()
                .starts_with("/nonexistent/hangar.yaml: cannot read"),
            "{e}"
        );
    }

    // --- interpolation and secrets -----------------------------------------------------------

    const INTERPOLATED: &str = "\
mcp_servers:
  math:
    command: [\"${PYTHON:-python3}\", -m, server, --price=$$5, \"--token=${TOKEN}\"]
    cwd: ${HOME}/math
    env:
      PLAIN: hello
      FROM_ENV: ${GREETING}
      DEFAULTED: ${UNSET:-fallback}
      API_KEY: literal-key
      ESCAPED: $${NOT_A_VAR}
";

    #[test]
    fn variables_defaults_and_double_dollar_are_resolved() {
        let env = env_of(&[("TOKEN", "t0k3n"), ("HOME", "/home/me"), ("GREETING", "hi")]);
        let config = match parse(INTERPOLATED, Path::new(FILE), &env) {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        };
        let math = provider(&config, "math");
        assert_eq!(
            math.argv(),
            ["python3", "-m", "server", "--price=$5", "--token=t0k3n"]
        );
        assert_eq!(math.cwd.as_deref(), Some(Path::new("/home/me/math")));
        let env: Vec<(String, String)> = math.env_pairs();
        assert_eq!(
            env,
            [
                ("PLAIN".into(), "hello".into()),
                ("FROM_ENV".into(), "hi".into()),
                ("DEFAULTED".into(), "fallback".into()),
                ("API_KEY".into(), "literal-key".into()),
                ("ESCAPED".into(), "${NOT_A_VAR}".into()),
            ]
        );
        let secret: Vec<bool> = math.env.values().map(EnvValue::is_secret).collect();
        assert_eq!(secret, [false, true, true, true, false]);
        let secret_args: Vec<bool> = math.command.iter().map(MaybeSecret::is_secret).collect();
        assert_eq!(secret_args, [true, false, false, false, true]);
    }

    #[test]
    fn a_missing_variable_names_file_line_key_path_and_variable() {
        let e = err(INTERPOLATED);
        assert_eq!(e.kind, ConfigErrorKind::Interpolation);
        assert_eq!(
            e.to_string(),
            "hangar.yaml:3:62: mcp_servers.math.command[4]: environment variable `TOKEN` is not \
             set; set it, or write `${TOKEN:-default}` to fall back to a default"
        );
        let e = err(
            "mcp_servers:\n  api:\n    mode: remote\n    endpoint: https://x/mcp\n    auth: {type: bearer, bearer_token: \"${API_TOKEN}\"}\n",
        );
        assert_eq!(e.key_path, "mcp_servers.api.auth.bearer_token");
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("`API_TOKEN` is not set"), "{e}");
    }

    #[test]
    fn langfuse_without_its_keys_is_off_with_a_warning_and_the_hangar_still_loads() {
        let config = ok(
            "observability:\n  langfuse:\n    secret_key: ${LANGFUSE_SECRET_KEY}\nmcp_servers:\n  a: {command: [x]}\n",
        );
        assert_eq!(config.providers.len(), 1);
        assert_eq!(config.langfuse.as_ref().map(|l| l.enabled), Some(false));
        assert!(
            config.warnings.iter().any(|w| w
                .starts_with("hangar.yaml:2: observability.langfuse: Langfuse export is off")
                && w.contains("LANGFUSE_PUBLIC_KEY")),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn secrets_are_redacted_in_normalised_output_debug_and_display() {
        let env = env_of(&[("TOKEN", "t0k3n"), ("HOME", "/home/me"), ("GREETING", "hi")]);
        let text = [
            INTERPOLATED,
            "  api:",
            "    mode: remote",
            "    endpoint: https://api.example.com/mcp",
            "    auth: {type: bearer, token: \"${TOKEN}\"}",
            "    http:",
            "      headers: {Authorization: Bearer s3cr3t-header, X-Trace: on}",
        ]
        .join("\n");
        let config = match parse(&text, Path::new(FILE), &env) {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        };
        let yaml = config.to_redacted_yaml();
        let debug = format!("{config:?}");
        for clear in ["t0k3n", "/home/me", "hi\"", "literal-key", "s3cr3t-header"] {
            assert!(!yaml.contains(clear), "`{clear}` leaked into:\n{yaml}");
            assert!(
                !debug.contains(clear),
                "`{clear}` leaked into Debug: {debug}"
            );
        }
        assert!(yaml.contains("API_KEY: '***'"), "{yaml}");
        assert!(
            yaml.contains("X-Trace: on"),
            "non-secret headers stay readable:\n{yaml}"
        );
        assert!(
            yaml.contains("ESCAPED: $${NOT_A_VAR}"),
            "a literal `$` stays escaped:\n{yaml}"
        );
        assert!(yaml.contains("PLAIN: hello"), "{yaml}");
        let api = provider(&config, "api");
        let remote = api.remote.as_ref().map(|r| (&r.auth, &r.http.headers));
        match remote {
            Some((RemoteAuth::Bearer { token }, headers)) => {
                assert_eq!(token.expose(), "t0k3n");
                assert_eq!(token.to_string(), "***");
                assert!(
                    headers
                        .get("Authorization")
                        .is_some_and(MaybeSecret::is_secret)
                );
            }
            other => panic!("unexpected remote settings {other:?}"),
        }
    }

    // --- modes -----------------------------------------------------------------------------

    #[test]
    fn group_keys_on_a_single_provider_are_warnings_too() {
        let config = ok("mcp_servers:\n  math:\n    command: [x]\n    members: []\n");
        assert_eq!(config.warnings.len(), 1);
        assert!(config.warnings[0].starts_with("hangar.yaml:4: mcp_servers.math.members:"));
    }

    #[test]
    fn keys_that_do_not_apply_to_the_mode_are_warnings() {
        let config = ok(
            "mcp_servers:\n  math:\n    command: [x]\n    image: nope\n    endpoint: https://x\n",
        );
        assert_eq!(
            config.warnings,
            [
                "hangar.yaml:4: mcp_servers.math.image: `image` has no effect on a `subprocess` provider and is ignored",
                "hangar.yaml:5: mcp_servers.math.endpoint: `endpoint` has no effect on a `subprocess` provider and is ignored",
            ]
        );
    }

    #[test]
    fn sections_of_the_original_we_do_not_implement_are_warnings_with_their_line() {
        let config = ok("\
logging:
  level: INFO
mcp_servers:
  a: {command: [x]}
relay_tasks_enabled: true
");
        assert_eq!(
            config.warnings,
            [
                "hangar.yaml:5: top-level section `relay_tasks_enabled` is not implemented by this version of mcp-hangar and is ignored",
            ]
        );
    }

    #[test]
    fn an_unknown_top_level_key_is_an_error_with_a_suggestion() {
        let e = err("mcp_server:\n  a: {command: [x]}\n");
        assert_eq!(e.kind, ConfigErrorKind::UnknownKey);
        assert_eq!((e.line, e.column), (Some(1), Some(1)));
        assert!(
            e.to_string().starts_with(
                "hangar.yaml:1:1: unknown key `mcp_server`; did you mean `mcp_servers`?"
            ),
            "{e}"
        );
        let e = err("mcp_servers:\n  a: {command: [x]}\nloging: {}\n");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("did you mean `logging`?"), "{e}");
    }

    #[test]
    fn container_and_remote_requirements_are_explained() {
        let cases = [
            (
                "mcp_servers:\n  db:\n    mode: container\n",
                (2, "mcp_servers.db"),
                "container provider `db` needs an `image:`",
            ),
            (
                "mcp_servers:\n  db:\n    mode: podman\n    image: x\n    volumes: [/data]\n",
                (5, "mcp_servers.db.volumes[0]"),
                "volume `/data` is not `host_path:container_path[:ro|rw]`",
            ),
            (
                "mcp_servers:\n  db:\n    mode: docker\n    image: x\n    volumes: [\"/a:/b:rx\"]\n",
                (5, "mcp_servers.db.volumes[0]"),
                "mode `rx` is not `ro` or `rw`",
            ),
            (
                "mcp_servers:\n  db:\n    mode: docker\n    image: x\n    resources: {memory: lots}\n",
                (5, "mcp_servers.db.resources.memory"),
                "expected a memory size such as \"512m\" or \"1g\"",
            ),
            (
                "mcp_servers:\n  db:\n    mode: docker\n    image: x\n    socket: \"\"\n",
                (5, "mcp_servers.db.socket"),
                "socket `` is empty",
            ),
            (
                "mcp_servers:\n  db:\n    mode: docker\n    image: x\n    socket: https://engine:2376\n",
                (5, "mcp_servers.db.socket"),
                "socket `https://engine:2376` uses a scheme this build cannot reach; give a \
                 socket path (`/var/run/docker.sock`) or a `unix://`, `tcp://` or `http://` URL",
            ),
            (
                "mcp_servers:\n  db:\n    mode: docker\n    image: x\n    socket: \"unix://\"\n",
                (5, "mcp_servers.db.socket"),
                "socket `unix://` has no address after the scheme",
            ),
            (
                "mcp_servers:\n  api:\n    mode: remote\n",
                (2, "mcp_servers.api"),
                "remote provider `api` needs an `endpoint:`",
            ),
            (
                "mcp_servers:\n  api:\n    mode: http\n    endpoint: api.example.com/mcp\n",
                (4, "mcp_servers.api.endpoint"),
                "endpoint `api.example.com/mcp` is not an http:// or https:// URL",
            ),
            (
                "mcp_servers:\n  api:\n    mode: remote\n    endpoint: https://x/mcp\n    auth:\n      token: abc\n",
                (5, "mcp_servers.api.auth"),
                "credentials without a `type:`",
            ),
            (
                "mcp_servers:\n  api:\n    mode: remote\n    endpoint: https://x/mcp\n    auth:\n      type: basic\n      username: me\n",
                (5, "mcp_servers.api.auth"),
                "`type: basic` needs `password:`",
            ),
            (
                "mcp_servers:\n  api:\n    mode: remote\n    endpoint: https://x/mcp\n    tls: {client_cert: /c.pem}\n",
                (5, "mcp_servers.api.tls"),
                "`client_cert` and `client_key` go together",
            ),
            (
                "mcp_servers:\n  api:\n    mode: remote\n    endpoint: https://x/mcp\n    http:\n      headers: {mcp-session-id: s}\n",
                (6, "mcp_servers.api.http.headers.mcp-session-id"),
                "`mcp-session-id` is set by the MCP transport on every request",
            ),
        ];
        for (text, (line, key_path), expected) in cases {
            let e = err(text);
            assert_eq!((e.line, e.key_path.as_str()), (Some(line), key_path), "{e}");
            assert!(
                e.message.contains(expected),
                "{e}\n  does not mention\n{expected}"
            );
        }
    }

    #[test]
    fn a_container_socket_is_read_interpolated_and_normalised() {
        let env = env_of(&[("XDG_RUNTIME_DIR", "/run/user/1000")]);
        let text = "\
mcp_servers:
  db:
    mode: podman
    image: x
    socket: unix://${XDG_RUNTIME_DIR}/podman/podman.sock
  local:
    mode: docker
    image: x
    socket: /var/run/docker.sock
  default:
    mode: docker
    image: x
";
        let config = match parse(text, Path::new(FILE), &env) {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        };
        let socket = |id: &str| {
            provider(&config, id)
                .container
                .as_ref()
                .and_then(|c| c.socket.clone())
        };
        let db = socket("db");
        assert_eq!(
            db.as_ref().map(MaybeSecret::expose),
            Some("unix:///run/user/1000/podman/podman.sock")
        );
        assert!(db.is_some_and(|s| s.is_secret()), "it came from ${{…}}");
        assert_eq!(
            socket("local").as_ref().map(MaybeSecret::expose),
            Some("/var/run/docker.sock")
        );
        assert_eq!(socket("default"), None, "left to the backend to find");
        let yaml = config.to_redacted_yaml();
        assert!(yaml.contains("socket: /var/run/docker.sock"), "{yaml}");
        assert!(!yaml.contains("/run/user/1000"), "{yaml}");
        // On another mode it means nothing, and the warning says so.
        let sub = ok("mcp_servers:\n  math:\n    command: [x]\n    socket: /s.sock\n");
        assert!(
            sub.warnings
                .iter()
                .any(|w| w.contains("`socket` has no effect on a `subprocess` provider")),
            "{:?}",
            sub.warnings
        );
    }

    #[test]
    fn a_header_that_auth_also_sends_is_loaded_with_a_warning_that_auth_wins() {
        let config = ok(
            "mcp_servers:\n  api:\n    mode: remote\n    endpoint: https://x/mcp\n    auth: {type: api_key, key: k}\n    http:\n      headers: {x-api-key: other, X-Tenant: t}\n",
        );
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
        assert!(
            config.warnings[0].ends_with(
                ":7: mcp_servers.api.http.headers.x-api-key: ignored: `auth:` sends `x-api-key` itself, with its own credentials"
            ),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn a_secret_endpoint_is_not_printed_in_its_error() {
        let env = env_of(&[("URL", "ftp://user:pw@host")]);
        let text = "mcp_servers:\n  api:\n    mode: remote\n    endpoint: ${URL}\n";
        let e = match parse(text, Path::new(FILE), &env) {
            Ok(_) => panic!("an ftp endpoint was accepted"),
            Err(e) => e,
        };
        assert!(!e.to_string().contains("pw@host"), "{e}");
        assert!(e.message.contains("value not shown"), "{e}");
    }

    // --- files of the original, unchanged ----------------------------------------------------

    #[test]
    fn files_shaped_like_the_originals_load_unchanged() {
        // 0.1.x `config.yaml.example`.
        let v01 = ok("\
providers:
  math:
    mode: subprocess
    command: [python, -m, examples.provider_math.server]
    idle_ttl_s: 180
    tools:
      - name: add
        description: \"Add two numbers\"
        inputSchema:
          type: object
          properties:
            a: { type: number }
            b: { type: number }
          required: [a, b]
logging:
  level: INFO  # DEBUG, INFO, WARNING, ERROR
  json_format: false
");
        assert_eq!(provider(&v01, "math").tools[0].name, "add");
        assert!(
            v01.warnings.is_empty(),
            "logging is read: {:?}",
            v01.warnings
        );

        // 2.x quickstart: a docker provider with a capability declaration.
        let quickstart = ok("\
logging:
  level: INFO
  json_format: true
mcp_servers:
  openai-proxy:
    mode: docker
    image: my-org/openai-mcp:latest
    command: [\"python\", \"-m\", \"openai_mcp_server\"]
    idle_ttl_s: 300
    capabilities:
      network:
        egress:
          - host: api.openai.com
            port: 443
            protocol: https
        dns_allowed: true
      enforcement_mode: alert
");
        let proxy = provider(&quickstart, "openai-proxy");
        assert_eq!(proxy.mode, ProviderMode::Container);
        assert_eq!(proxy.argv(), ["python", "-m", "openai_mcp_server"]);

        // 2.x task relay example: a remote upstream and a bare boolean section.
        let relay = ok("\
logging:
  level: INFO
relay_tasks_enabled: true
mcp_servers:
  task-upstream:
    mode: remote
    endpoint: http://task-upstream:8080/mcp
    idle_ttl_s: 600
");
        assert_eq!(
            relay.warnings.len(),
            1,
            "only relay_tasks_enabled: {:?}",
            relay.warnings
        );

        // 2.x HA acceptance config: sections we ignore, `discovery:`, and an empty server map.
        let ha = ok("\
persistence:
  backend: postgresql
  postgresql: {host: postgres, port: 5432, user: hangar, password: hangar, database: hangar}
coordination: {lease_ttl_s: 10, renew_interval_s: 3, renew_deadline_s: 6}
discovery:
  enabled: false
mcp_servers: {}
");
        assert!(ha.providers.is_empty());
        // `discovery:` is read now (off here, without sources: nothing to warn about).
        assert_eq!(ha.warnings.len(), 2, "{:?}", ha.warnings);
        assert_eq!(ha.discovery.map(|d| d.enabled), Some(false));
    }

    #[test]
    fn load_reads_a_file_from_disk() {
        let dir = std::env::temp_dir().join(format!("hangar-config-test-{}", std::process::id()));
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::write(
                dir.join("hangar.yaml"),
                "mcp_servers:\n  a: {command: [x]}\n",
            )
        });
        assert!(written.is_ok(), "{written:?}");
        let loaded = load(&dir.join("hangar.yaml"));
        let _ = std::fs::remove_dir_all(&dir);
        match loaded {
            Ok(config) => {
                assert_eq!(config.path, dir.join("hangar.yaml"));
                assert_eq!(provider(&config, "a").argv(), ["x"]);
            }
            Err(e) => panic!("{e}"),
        }
    }

    // --- tools -------------------------------------------------------------------------------

    #[test]
    fn tools_as_a_list_are_schemas_and_as_a_map_are_a_filter() {
        let config = ok("\
mcp_servers:
  listed:
    command: [x]
    tools:
      - name: add
        description: Add two numbers
        inputSchema: {type: object, properties: {a: {type: number}}}
      - name: sub
        input_schema: {type: object, required: [a]}
        output_schema: {type: object}
      - name: noop
  filtered:
    command: [x]
    tools:
      allow_list: [\"read_*\"]
      deny_list: [delete_all]
      approval_list: [\"deploy_*\"]
");
        let listed = provider(&config, "listed");
        assert_eq!(listed.tools.len(), 3);
        assert!(listed.tool_filter.is_none());
        let add = &listed.tools[0];
        assert_eq!(add.description.as_deref(), Some("Add two numbers"));
        assert_eq!(add.input_schema["properties"]["a"]["type"], "number");
        let sub = &listed.tools[1];
        assert_eq!(sub.input_schema["required"][0], "a");
        assert_eq!(
            sub.output_schema.as_ref().map(|o| o["type"].clone()),
            Some("object".into())
        );
        let noop = &listed.tools[2];
        assert_eq!(
            serde_json::Value::Object(noop.input_schema.clone()),
            serde_json::json!({"type": "object"})
        );
        assert!(noop.output_schema.is_none());

        let filtered = provider(&config, "filtered");
        assert!(filtered.tools.is_empty());
        let filter = filtered.tool_filter.as_ref();
        assert_eq!(
            filter.map(|f| f.allow_list.clone()),
            Some(vec!["read_*".to_owned()])
        );
        assert_eq!(
            filter.map(|f| f.approval_timeout),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            config.warnings,
            [
                "hangar.yaml:17: mcp_servers.filtered.tools.approval_list: `tools.approval_list` is accepted for compatibility with the original but not acted on by this build: there is no human approval, so the tools it names are exposed and called like any other (use `deny_list` to hide them)",
                "hangar.yaml:16: mcp_servers.filtered.tools.deny_list: both `allow_list` and `deny_list` are set; only `allow_list` is applied",
            ]
        );
    }

    #[test]
    fn tool_schema_problems_are_errors_with_their_line() {
        let e = err(
            "mcp_servers:\n  a:\n    command: [x]\n    tools:\n      - name: t\n        inputSchema: [1, 2]\n",
        );
        assert_eq!(e.key_path, "mcp_servers.a.tools[0].inputSchema");
        assert_eq!(e.line, Some(6));
        assert!(e.message.contains("expected a JSON Schema object"), "{e}");
        let e = err(
            "mcp_servers:\n  a:\n    command: [x]\n    tools:\n      - name: t\n        inputSchema: {}\n        input_schema: {}\n",
        );
        assert_eq!(e.kind, ConfigErrorKind::Duplicate);
        let e = err(
            "mcp_servers:\n  a:\n    command: [x]\n    tools:\n      - name: t\n      - name: t\n",
        );
        assert_eq!((e.kind, e.line), (ConfigErrorKind::Duplicate, Some(6)));
        let e = err("mcp_servers:\n  a:\n    command: [x]\n    tools:\n      allow: [t]\n");
        assert!(e.message.contains("did you mean `allow_list`?"), "{e}");
        let e = err("mcp_servers:\n  a:\n    command: [x]\n    tools: add\n");
        assert!(e.message.contains("a list of tool schemas"), "{e}");
    }

    // --- groups ------------------------------------------------------------------------------

    #[test]
    fn group_members_are_inline_specs_or_references_to_top_level_providers() {
        let config = ok("\
mcp_servers:
  math:
    command: [python, -m, math]
  pool:
    mode: group
    strategy: priority
    members:
      - id: math
        priority: 2
        tools: {deny_list: [divide]}
      - id: math-b
        command: [python, -m, math, --b]
        weight: 5
");
        let pool = provider(&config, "pool");
        assert!(
            pool.auto_start,
            "groups start their members unless told not to, as in the original"
        );
        let group = pool
            .group
            .as_ref()
            .map(|g| (g.strategy.clone(), g.min_healthy, g.members.len()));
        assert_eq!(group, Some((GroupStrategy::Priority, 1, 2)));
        let members = pool
            .group
            .as_ref()
            .map(|g| g.members.clone())
            .unwrap_or_default();
        assert_eq!(members[0].definition, MemberDefinition::Reference);
        assert_eq!((members[0].weight, members[0].priority), (1, 2));
        assert!(members[0].tool_filter.is_some());
        match &members[1].definition {
            MemberDefinition::Inline(spec) => {
                assert_eq!(spec.argv(), ["python", "-m", "math", "--b"]);
                assert_eq!(
                    spec.defined_at,
                    Some(SourceLocation {
                        line: 11,
                        column: 13
                    })
                );
            }
            MemberDefinition::Reference => panic!("math-b is defined inline"),
        }
        let all: Vec<&str> = config.all_providers().map(|p| p.id.as_str()).collect();
        assert_eq!(all, ["math", "pool", "math-b"]);
        assert_eq!(
            config.provider("math-b").map(|p| p.mode),
            Some(ProviderMode::Subprocess)
        );
        assert!(config.provider("nobody").is_none());
    }

    #[test]
    fn group_mistakes_are_explained() {
        let e = err("mcp_servers:\n  g:\n    mode: group\n");
        assert!(e.message.contains("group `g` has no members"), "{e}");
        let e = err("mcp_servers:\n  g:\n    mode: group\n    members:\n      - id: ghost\n");
        assert_eq!(e.line, Some(5));
        assert!(
            e.message.contains("names no provider under `mcp_servers`"),
            "{e}"
        );
        let e = err("mcp_servers:\n  g:\n    mode: group\n    members:\n      - {id: g}\n");
        assert!(e.message.contains("groups cannot contain groups"), "{e}");
        let config = ok(
            "mcp_servers:\n  g:\n    mode: group\n    min_healthy: 3\n    members:\n      - {id: a, command: [x]}\n",
        );
        assert!(
            config.warnings[0].contains("can never be healthy"),
            "{:?}",
            config.warnings
        );
    }

    // --- the whole format --------------------------------------------------------------------

    const ORIGINAL_FULL: &str = include_str!("testdata/original_full.yaml");

    fn original_env() -> impl Fn(&str) -> Option<String> + use<> {
        env_of(&[
            ("MCP_SEARCH_TOKEN", "search-token"),
            ("TRANSLATE_API_KEY", "translate-key"),
            ("INTERNAL_PASSWORD", "internal-pw"),
        ])
    }

    #[test]
    fn the_full_original_example_parses_with_every_option() {
        let config = match parse(ORIGINAL_FULL, Path::new("original.yaml"), &original_env()) {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        };
        let ids: Vec<&str> = config.providers.keys().map(String::as_str).collect();
        assert_eq!(
            ids,
            [
                "math",
                "sqlite",
                "fetch",
                "remote-search",
                "remote-translate",
                "internal",
                "restricted",
                "math-cluster"
            ]
        );
        // `rate_limit:`, `discovery:`, `event_store:`, `logging:` and `observability:` are read
        // now; the other top-level sections are still ignored, and
        // every provider key that loads but is not acted on says so, where it is written.
        let warned_keys: Vec<&str> = config
            .warnings
            .iter()
            .filter_map(|w| w.split('`').nth(1))
            .collect();
        assert_eq!(
            warned_keys,
            [
                "execution",
                // The example enables Langfuse with keys from unset variables: export is off.
                "LANGFUSE_PUBLIC_KEY",
                "capabilities",
                "access",
                "tool_access",
                "tool_projection",
                "tools.approval_list",
                "tools.approval_timeout_seconds",
                "auto_start",
                "canary"
            ],
            "{:#?}",
            config.warnings
        );
        assert!(config.warnings[0].starts_with("original.yaml:5: top-level section `execution`"));
        assert!(!config.warnings.iter().any(|w| w.contains("rate_limit")));
        assert_eq!(
            config.rate_limit.map(|r| (r.requests_per_second, r.burst)),
            Some((10.0, 20))
        );

        let math = provider(&config, "math");
        assert_eq!(math.idle_ttl, Duration::from_secs(180));
        assert_eq!(math.max_concurrency, Some(10));
        assert_eq!(math.tools.len(), 2);
        assert!(
            math.env
                .get("OPENAI_API_KEY")
                .is_some_and(EnvValue::is_secret)
        );
        assert!(math.env.get("LOG_LEVEL").is_some_and(|v| !v.is_secret()));

        let sqlite = provider(&config, "sqlite");
        let c = sqlite.container.as_ref();
        assert_eq!(sqlite.mode, ProviderMode::Container);
        assert_eq!(
            c.and_then(|c| c.image.as_ref()).map(MaybeSecret::expose),
            Some("localhost/mcp-sqlite:latest")
        );
        let volumes = c.map(|c| c.volumes.clone()).unwrap_or_default();
        assert_eq!(volumes.len(), 2);
        assert_eq!(
            (
                volumes[0].host.expose(),
                volumes[0].container.expose(),
                volumes[0].read_only
            ),
            ("/srv/data", "/data", false)
        );
        assert!(volumes[0].host.is_secret(), "it came from ${{DATA_DIR:-…}}");
        assert!(volumes[1].read_only);
        assert_eq!(c.map(|c| c.network.clone()), Some(ContainerNetwork::Bridge));
        assert_eq!(c.map(|c| c.read_only), Some(true));
        assert_eq!(
            c.map(|c| (c.resources.memory_bytes, c.resources.cpus)),
            Some((256 << 20, 0.5))
        );
        assert_eq!(
            c.and_then(|c| c.user.as_ref()).map(MaybeSecret::expose),
            Some("current")
        );

        let fetch = provider(&config, "fetch");
        let build = fetch.container.as_ref().and_then(|c| c.build.clone());
        assert_eq!(
            build.as_ref().map(|b| b.dockerfile.expose()),
            Some("Dockerfile.fetch")
        );
        assert_eq!(
            build.and_then(|b| b.tag),
            Some("localhost/mcp-fetch:dev".into())
        );
        assert_eq!(
            fetch
                .capabilities
                .as_ref()
                .map(|c| c["network"]["egress"][0]["port"].clone()),
            Some(443.into())
        );

        let search = provider(&config, "remote-search");
        let r = search.remote.as_ref();
        assert_eq!(r.map(|r| r.transport), Some(RemoteTransport::Sse));
        assert!(
            matches!(r.map(|r| &r.auth), Some(RemoteAuth::Bearer { token }) if token.expose() == "search-token")
        );

        let translate = provider(&config, "remote-translate");
        assert_eq!(translate.mode, ProviderMode::Remote);
        let r = translate.remote.as_ref();
        assert_eq!(
            r.map(|r| r.transport),
            Some(RemoteTransport::StreamableHttp)
        );
        assert!(matches!(
            r.map(|r| &r.auth),
            Some(RemoteAuth::ApiKey { header, key }) if header.expose() == "X-Translate-Key" && key.expose() == "translate-key"
        ));
        assert_eq!(
            r.and_then(|r| r.tls.ca_cert.as_ref())
                .map(MaybeSecret::expose),
            Some("/etc/ssl/certs/company-ca.pem")
        );
        assert_eq!(
            r.map(|r| (r.http.connect_timeout, r.http.timeout, r.http.max_retries)),
            Some((Duration::from_secs(5), Duration::from_secs(60), 5))
        );
        assert!(
            r.and_then(|r| r.http.headers.get("Authorization"))
                .is_some_and(MaybeSecret::is_secret)
        );
        assert!(
            r.and_then(|r| r.http.headers.get("X-Tenant"))
                .is_some_and(|v| !v.is_secret())
        );

        let internal = provider(&config, "internal").remote.as_ref();
        assert_eq!(
            internal.map(|r| r.endpoint.expose()),
            Some("https://internal.example.com/mcp")
        );
        assert_eq!(internal.map(|r| r.tls.verify), Some(false));
        assert!(
            matches!(internal.map(|r| &r.auth), Some(RemoteAuth::Basic { username, password }) if username.expose() == "svc-hangar" && password.expose() == "internal-pw")
        );

        let restricted = provider(&config, "restricted");
        assert_eq!(
            restricted.argv().last().map(String::as_str),
            Some("--budget=$5")
        );
        let filter = restricted.tool_filter.clone();
        assert_eq!(
            filter.as_ref().map(|f| f.approval_timeout),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            filter.map(|f| f.approval_list),
            Some(vec!["deploy_*".to_owned()])
        );
        assert!(
            restricted.tool_access.is_some()
                && restricted.tool_projection.is_some()
                && restricted.access.is_some()
        );

        let cluster = provider(&config, "math-cluster");
        let group = cluster.group.as_ref();
        assert_eq!(
            group.map(|g| g.strategy.clone()),
            Some(GroupStrategy::WeightedRoundRobin)
        );
        assert_eq!(cluster.circuit_breaker.failure_threshold, 10);
        assert_eq!(
            cluster.canary.as_ref().map(|c| c["split_pct"].clone()),
            Some(10.into())
        );
        let members = group.map(|g| g.members.clone()).unwrap_or_default();
        let shape: Vec<(&str, u32, u32, bool)> = members
            .iter()
            .map(|m| {
                (
                    m.id.as_str(),
                    m.weight,
                    m.priority,
                    m.definition == MemberDefinition::Reference,
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("math-1", 3, 1, false),
                ("math-2", 1, 2, false),
                ("math", 2, 3, true)
            ]
        );

        // Secrets from the environment never reach the normalised output.
        let yaml = config.to_redacted_yaml();
        for clear in [
            "search-token",
            "translate-key",
            "internal-pw",
            "sk-literal-in-file",
            "literal-token",
        ] {
            assert!(!yaml.contains(clear), "`{clear}` leaked:\n{yaml}");
        }
    }

    #[test]
    fn load_accepts_the_full_example_with_every_mode() {
        let config = parse(ORIGINAL_FULL, Path::new("original.yaml"), &original_env())
            .expect("every mode of the original's format runs in this build");
        assert_eq!(
            provider(&config, "remote-search").mode,
            ProviderMode::Remote
        );
    }

    #[test]
    fn the_normalised_output_loads_back_to_the_same_config() {
        // Without secrets, normalising is lossless: the output is itself a valid config.
        let text = ORIGINAL_FULL
            .replace("${MCP_SEARCH_TOKEN}", "a")
            .replace("${TRANSLATE_API_KEY}", "b")
            .replace("${INTERNAL_PASSWORD}", "c")
            .replace(
                "${INTERNAL_URL:-https://internal.example.com/mcp}",
                "https://internal.example.com/mcp",
            )
            .replace("${DATA_DIR:-/srv/data}", "/srv/data");
        let first = match parse(&text, Path::new(FILE), &no_env) {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        };
        let yaml = first.to_redacted_yaml();
        let second = match parse(&yaml, Path::new(FILE), &no_env) {
            Ok(config) => config,
            Err(e) => panic!("normalised output does not load: {e}\n{yaml}"),
        };
        let strip = |config: &Config| -> Vec<ProviderSpec> {
            config
                .all_providers()
                .map(|spec| {
                    let mut spec = spec.clone();
                    spec.defined_at = None;
                    // Values under secret-looking keys are `***` in the output by design.
                    spec.env.retain(|_, v| !v.is_secret());
                    spec.remote = None;
                    if let Some(group) = spec.group.as_mut() {
                        for member in &mut group.members {
                            if let MemberDefinition::Inline(inline) = &mut member.definition {
                                inline.defined_at = None;
                            }
                        }
                    }
                    spec
                })
                .collect()
        };
        assert_eq!(strip(&first), strip(&second));
        assert!(yaml.starts_with("# Normalised by mcp-hangar"), "{yaml}");
        assert!(
            yaml.contains("idle_ttl_s: 300"),
            "defaults are shown:\n{yaml}"
        );
        // Remote settings carry `***` for secret-named fields; the rest round-trips.
        let remote = |config: &Config| {
            config
                .providers
                .get("internal")
                .and_then(|p| p.remote.clone())
                .map(|r| (r.endpoint, r.tls, r.transport))
        };
        assert_eq!(remote(&first), remote(&second));
    }

    // --- hangar-wide settings: rate_limit, limits -------------------------------------------

    #[test]
    fn the_global_rate_limit_is_read_in_either_spelling_without_a_warning() {
        let config = ok("rate_limit: {rps: 10, burst: 20}\nmcp_servers:\n  a: {command: [x]}\n");
        assert_eq!(
            config.rate_limit,
            Some(RateLimitSpec {
                requests_per_second: 10.0,
                burst: 20
            })
        );
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let config = ok("rate_limit:\n  requests_per_second: 2.5\nmcp_servers: {}\n");
        assert_eq!(
            config.rate_limit.map(|r| (r.requests_per_second, r.burst)),
            Some((2.5, 3)),
            "burst defaults to the rate rounded up"
        );
        assert_eq!(ok("mcp_servers: {}\n").rate_limit, None);
    }

    #[test]
    fn global_rate_limit_mistakes_name_line_column_and_key() {
        let e = err("mcp_servers: {}\nrate_limit:\n  rps: 0\n");
        assert_eq!((e.line, e.column), (Some(3), Some(8)));
        assert_eq!(e.key_path, "rate_limit.rps");
        assert!(
            e.message.contains("expected a number greater than 0"),
            "{e}"
        );
        let e = err("mcp_servers: {}\nrate_limit: {rps: 1, brust: 2}\n");
        assert_eq!((e.kind, e.line), (ConfigErrorKind::UnknownKey, Some(2)));
        assert_eq!(e.key_path, "rate_limit");
        assert!(e.message.contains("did you mean `burst`?"), "{e}");
        let e = err("mcp_servers: {}\nrate_limit: {burst: 2}\n");
        assert!(
            e.message
                .contains("missing required key `requests_per_second`"),
            "{e}"
        );
        let e = err("rate_limit: {rps: 1}\nmcp_servers: {}\nrate_limit: {rps: 2}\n");
        assert_eq!((e.kind, e.line), (ConfigErrorKind::Duplicate, Some(3)));
        assert!(
            e.message
                .contains("duplicate key `rate_limit` (first defined at line 1)"),
            "{e}"
        );
    }

    #[test]
    fn argument_limits_default_when_absent_and_take_what_is_written() {
        let limits = ok("mcp_servers: {}\n").limits;
        assert_eq!(
            (limits.max_argument_bytes, limits.max_argument_depth),
            (1_048_576, 32)
        );
        assert_eq!(limits, Limits::default());
        let config = ok("limits: {max_argument_bytes: 2000}\nmcp_servers: {}\n");
        assert_eq!(
            (
                config.limits.max_argument_bytes,
                config.limits.max_argument_depth
            ),
            (2000, 32)
        );
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let limits = ok("limits:\n  max_argument_depth: 8\nmcp_servers: {}\n").limits;
        assert_eq!(
            (limits.max_argument_bytes, limits.max_argument_depth),
            (1_048_576, 8)
        );
    }

    #[test]
    fn argument_limits_below_one_or_deeper_than_json_allows_are_refused_at_the_value() {
        let e = err("mcp_servers: {}\nlimits:\n  max_argument_bytes: 0\n");
        assert_eq!((e.line, e.column), (Some(3), Some(23)));
        assert_eq!(e.key_path, "limits.max_argument_bytes");
        assert!(e.message.contains("a whole number from 1 to"), "{e}");
        let e = err("mcp_servers: {}\nlimits: {max_argument_depth: 0}\n");
        assert_eq!(e.key_path, "limits.max_argument_depth");
        assert!(e.message.contains("a nesting depth from 1 to 128"), "{e}");
        let e = err("mcp_servers: {}\nlimits: {max_argument_depth: 129}\n");
        assert!(e.message.contains("a nesting depth from 1 to 128"), "{e}");
        let e = err("mcp_servers: {}\nlimits: {max_argument_byte: 10}\n");
        assert_eq!(e.kind, ConfigErrorKind::UnknownKey);
        assert!(
            e.message.contains("did you mean `max_argument_bytes`?"),
            "{e}"
        );
        let e = err("mcp_servers: {}\nlimits: {max_argument_bytes: 1m}\n");
        assert!(e.message.contains("invalid type: string \"1m\""), "{e}");
    }

    // --- circuit breaker, recovery and queue defaults ---------------------------------------

    #[test]
    fn circuit_breaker_and_recovery_are_always_resolved_with_the_modes_defaults() {
        let config = ok("\
mcp_servers:
  single:
    command: [x]
  partial:
    command: [x]
    circuit_breaker: {reset_timeout_s: 5}
    recovery: {max_retries: 0}
  pool:
    mode: group
    members:
      - {id: inline, command: [y]}
  partial-pool:
    mode: group
    circuit_breaker: {failure_threshold: 3}
    members: [{id: single}]
");
        let cb = |spec: Option<&ProviderSpec>| {
            spec.map(|s| {
                (
                    s.circuit_breaker.failure_threshold,
                    s.circuit_breaker.reset_timeout,
                )
            })
        };
        let secs = Duration::from_secs;
        assert_eq!(cb(config.provider("single")), Some((5, secs(30))));
        assert_eq!(cb(config.provider("partial")), Some((5, secs(5))));
        assert_eq!(cb(config.provider("pool")), Some((10, secs(60))));
        assert_eq!(cb(config.provider("partial-pool")), Some((3, secs(60))));
        assert_eq!(
            cb(config.provider("inline")),
            Some((5, secs(30))),
            "an inline member is a provider, not a group"
        );
        assert_eq!(
            provider(&config, "single").recovery,
            RecoverySpec {
                base_delay: secs(1),
                max_delay: secs(60),
                max_retries: 5
            }
        );
        assert_eq!(
            provider(&config, "partial").recovery,
            RecoverySpec {
                base_delay: secs(1),
                max_delay: secs(60),
                max_retries: 0
            }
        );
        assert_eq!(provider(&config, "single").rate_limit, None);
        assert_eq!(
            ProviderSpec::new("g", ProviderMode::Group).circuit_breaker,
            CircuitBreakerSpec::GROUP_DEFAULT
        );
        assert_eq!(
            ProviderSpec::subprocess("p", &["x"]).circuit_breaker,
            CircuitBreakerSpec::PROVIDER_DEFAULT
        );
        let yaml = config.to_redacted_yaml();
        assert!(
            yaml.contains(
                "circuit_breaker:\n      failure_threshold: 5\n      reset_timeout_s: 30"
            ),
            "defaults are shown:\n{yaml}"
        );
    }

    #[test]
    fn max_queue_defaults_to_100_and_zero_means_refuse_at_once() {
        let config = ok("\
mcp_servers:
  default:
    command: [x]
    max_concurrency: 2
  refuse:
    command: [x]
    max_concurrency: 2
    max_queue: 0
  alone:
    command: [x]
    max_queue: 7
");
        assert_eq!(provider(&config, "default").max_queue, 100);
        assert_eq!(provider(&config, "refuse").max_queue, 0);
        assert_eq!(provider(&config, "alone").max_queue, 7);
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let e = err("mcp_servers:\n  a:\n    command: [x]\n    max_queue: -1\n");
        assert_eq!(
            (e.line, e.key_path.as_str()),
            (Some(4), "mcp_servers.a.max_queue")
        );
        assert!(e.message.contains("a whole number from 0 to"), "{e}");
    }

    // --- groups run --------------------------------------------------------------------------

    const SUBPROCESS_GROUP: &str = "\
mcp_servers:
  math:
    command: [python, -m, math]
  pool:
    mode: group
    strategy: weighted_round_robin
    members:
      - id: math
        weight: 3
      - id: math-b
        command: [python, -m, math, --b]
        priority: 2
";

    #[test]
    fn load_runs_a_group_of_subprocess_members_and_pairs_each_member_with_its_spec() {
        let config = match parse(SUBPROCESS_GROUP, Path::new(FILE), &no_env) {
            Ok(config) => config,
            Err(e) => panic!("a group of subprocess providers was refused: {e}"),
        };
        let members: Vec<(&str, u32, u32, Vec<String>)> = config
            .group_members("pool")
            .into_iter()
            .map(|(member, spec)| {
                (
                    member.id.as_str(),
                    member.weight,
                    member.priority,
                    spec.argv(),
                )
            })
            .collect();
        assert_eq!(
            members,
            [
                (
                    "math",
                    3,
                    1,
                    vec!["python".into(), "-m".into(), "math".into()]
                ),
                (
                    "math-b",
                    1,
                    2,
                    vec!["python".into(), "-m".into(), "math".into(), "--b".into()]
                ),
            ]
        );
        let by_reference = config.group_members("pool")[0].1;
        assert!(
            std::ptr::eq(by_reference, provider(&config, "math")),
            "a reference resolves to the top-level provider itself"
        );
        assert!(config.group_members("math").is_empty(), "not a group");
        assert!(config.group_members("nobody").is_empty());
        assert_eq!(
            config.providers.keys().collect::<Vec<_>>(),
            ["math", "pool"],
            "top-level entries only, groups included"
        );
    }

    // --- plugins -----------------------------------------------------------------------------

    fn parse_at(text: &str, file: &str) -> Config {
        match parse(text, Path::new(file), &no_env) {
            Ok(config) => config,
            Err(e) => panic!("expected the config to load, got: {e}"),
        }
    }

    fn plugin<'c>(config: &'c Config, name: &str) -> &'c PluginSpec {
        match config.plugins.get(name) {
            Some(spec) => spec,
            None => panic!("no plugin `{name}` in {:?}", config.plugins.keys()),
        }
    }

    #[test]
    fn plugins_are_read_with_every_setting_and_paths_taken_from_the_config_directory() {
        let config = parse_at(
            "\
plugins:
  discover:
    kind: discovery
    path: plugins/discover.wasm
    config: {namespace: mcp, interval_s: 30}
    timeout_ms: 250
    memory_mb: 128
    fuel: 1000000
    on_error: fail_closed
    grants: [kubernetes, docker, kubernetes]
    preopens:
      - {host: seeds, guest: /seeds}
      - {host: /srv/shared, guest: shared}
mcp_servers: {}
",
            "/etc/hangar/hangar.yaml",
        );
        let p = plugin(&config, "discover");
        assert_eq!(p.name, "discover");
        assert_eq!(p.kind, PluginKind::Discovery);
        assert_eq!(p.path, Path::new("/etc/hangar/plugins/discover.wasm"));
        assert_eq!(
            p.config.expose(),
            &serde_json::json!({"namespace": "mcp", "interval_s": 30})
        );
        assert_eq!(p.timeout, Duration::from_millis(250));
        assert_eq!((p.memory_mb, p.memory_bytes()), (128, 128 << 20));
        assert_eq!(p.fuel, Some(1_000_000));
        assert_eq!(p.on_error, OnError::FailClosed);
        assert_eq!(
            p.grants,
            [PluginGrant::Kubernetes, PluginGrant::Docker],
            "repeats are dropped, order kept"
        );
        assert_eq!(
            p.preopens,
            [
                Preopen {
                    host: "/etc/hangar/seeds".into(),
                    guest: "/seeds".into()
                },
                Preopen {
                    host: "/srv/shared".into(),
                    guest: "shared".into()
                },
            ]
        );
        assert_eq!(p.defined_at, Some(SourceLocation { line: 2, column: 3 }));
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn grants_take_settings_as_maps_and_words_as_defaults() {
        let config = parse_at(
            "\
plugins:
  kube:
    kind: discovery
    path: bundled:sticky-session
    grants:
      - docker
      - kubernetes: {kubeconfig: kube/config, context: prod, namespaces: [mcp, tools, mcp]}
  dock:
    kind: discovery
    path: /opt/d.wasm
    grants: [{docker: {socket: /run/user/1000/podman/podman.sock}}]
mcp_servers: {}
",
            "/etc/hangar/hangar.yaml",
        );
        let kube = plugin(&config, "kube");
        assert_eq!(kube.grants, [PluginGrant::Docker, PluginGrant::Kubernetes]);
        assert_eq!(kube.grant_settings.docker, DockerGrant::default());
        assert_eq!(
            kube.grant_settings.kubernetes,
            KubernetesGrant {
                kubeconfig: Some("/etc/hangar/kube/config".into()),
                context: Some("prod".into()),
                namespaces: vec!["mcp".into(), "tools".into()],
            }
        );
        assert_eq!(kube.timeout, Duration::from_secs(10), "discovery's default");
        let dock = plugin(&config, "dock");
        assert_eq!(dock.grants, [PluginGrant::Docker]);
        assert_eq!(
            dock.grant_settings.docker.socket.as_deref(),
            Some("/run/user/1000/podman/podman.sock")
        );
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn plugin_defaults_depend_on_the_kind() {
        let config = parse_at(
            "\
plugins:
  check: {kind: validator, path: /opt/check.wasm}
  sticky: {kind: lb_policy, path: /opt/sticky.wasm}
  find: {kind: discovery, path: /opt/find.wasm}
mcp_servers: {}
",
            "/etc/hangar/hangar.yaml",
        );
        let on_error: Vec<OnError> = config.plugins.values().map(|p| p.on_error).collect();
        assert_eq!(
            on_error,
            [OnError::FailClosed, OnError::FailOpen, OnError::FailOpen]
        );
        let check = plugin(&config, "check");
        assert_eq!(check.path, Path::new("/opt/check.wasm"));
        assert_eq!(check.timeout, Duration::from_millis(50));
        assert_eq!(check.memory_mb, 64);
        assert_eq!(check.fuel, None);
        assert!(check.grants.is_empty() && check.preopens.is_empty());
        assert_eq!(check.config.expose(), &serde_json::json!({}));
    }

    #[test]
    fn a_relative_plugin_path_is_absolute_even_when_the_config_path_is_relative() {
        let config = parse_at(
            "plugins:\n  v: {kind: validator, path: plugins/v.wasm}\nmcp_servers: {}\n",
            FILE,
        );
        let path = &plugin(&config, "v").path;
        assert!(path.is_absolute(), "{}", path.display());
        assert_eq!(
            std::path::absolute("plugins/v.wasm").ok().as_ref(),
            Some(path)
        );
    }

    #[test]
    fn plugin_config_strings_are_interpolated_and_secret_leaves_are_never_shown() {
        let text = "\
plugins:
  guard:
    kind: validator
    path: /opt/guard.wasm
    config:
      endpoint: https://${HOST}/check
      api_token: literal-tok
      nested: {credentials: [abc, 12345], level: 3}
      auth: {user: bob, realm: 7}
      price: $$5
mcp_servers: {}
";
        let env = env_of(&[("HOST", "policy.internal")]);
        let config = match parse(text, Path::new(FILE), &env) {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        };
        let guard = &plugin(&config, "guard").config;
        assert_eq!(
            guard.expose(),
            &serde_json::json!({
                "endpoint": "https://policy.internal/check",
                "api_token": "literal-tok",
                "nested": {"credentials": ["abc", 12345], "level": 3},
                "auth": {"user": "bob", "realm": 7},
                "price": "$5",
            })
        );
        let mut secret = guard.secret_pointers().to_vec();
        secret.sort();
        assert_eq!(
            secret,
            [
                "/api_token",
                "/auth/realm",
                "/auth/user",
                "/endpoint",
                "/nested/credentials/0",
                "/nested/credentials/1"
            ]
        );
        assert_eq!(
            guard.redacted(),
            serde_json::json!({
                "endpoint": "***",
                "api_token": "***",
                "nested": {"credentials": ["***", "***"], "level": 3},
                "auth": {"user": "***", "realm": "***"},
                "price": "$5",
            })
        );
        let yaml = config.to_redacted_yaml();
        let debug = format!("{config:?}");
        for clear in ["policy.internal", "literal-tok", "abc", "12345", "bob"] {
            assert!(!yaml.contains(clear), "`{clear}` leaked into:\n{yaml}");
            assert!(
                !debug.contains(clear),
                "`{clear}` leaked into Debug: {debug}"
            );
        }
        assert!(
            yaml.contains("price: $$5"),
            "a literal `$` stays escaped:\n{yaml}"
        );

        let e = err(
            "plugins:\n  guard:\n    kind: validator\n    path: g.wasm\n    config:\n      hosts: [a, \"${MISSING}\"]\nmcp_servers: {}\n",
        );
        assert_eq!(e.kind, ConfigErrorKind::Interpolation);
        assert_eq!((e.line, e.column), (Some(6), Some(18)));
        assert_eq!(e.key_path, "plugins.guard.config.hosts[1]");
        assert!(e.message.contains("`MISSING` is not set"), "{e}");
    }

    #[test]
    fn plugin_mistakes_are_errors_with_line_and_key_path() {
        let head = "mcp_servers: {}\nplugins:\n";
        let cases = [
            (
                "  v: {kind: validator, path: v.wasm, grants: [dockr]}\n",
                (3, "plugins.v.grants[0]"),
                "unknown value `dockr`; did you mean `docker`? (expected one of: docker, kubernetes)",
            ),
            (
                "  v: {kind: validatr, path: v.wasm}\n",
                (3, "plugins.v.kind"),
                "did you mean `validator`?",
            ),
            (
                "  v: {kind: validator, path: v.wasm, on_error: fail_shut}\n",
                (3, "plugins.v.on_error"),
                "expected one of: fail_open, fail_closed",
            ),
            (
                "  v: {kind: validator, path: v.wasm, timout_ms: 5}\n",
                (3, "plugins.v"),
                "unknown key `timout_ms`; did you mean `timeout_ms`?",
            ),
            (
                "  v: {kind: validator, path: v.wasm, timeout_ms: 0}\n",
                (3, "plugins.v.timeout_ms"),
                "a whole number from 1 to",
            ),
            (
                "  v: {kind: validator, path: v.wasm, memory_mb: 8192}\n",
                (3, "plugins.v.memory_mb"),
                "a number of MiB from 1 to 4096",
            ),
            (
                "  v: {kind: validator, path: v.wasm, fuel: 0}\n",
                (3, "plugins.v.fuel"),
                "a whole number from 1 to",
            ),
            (
                "  v: {path: v.wasm}\n",
                (3, "plugins.v"),
                "missing required key `kind`",
            ),
            (
                "  v: {kind: validator, path: \"\"}\n",
                (3, "plugins.v.path"),
                "plugin `v` has an empty `path`",
            ),
            (
                "  v: v.wasm\n",
                (3, "plugins.v"),
                "expected a plugin (a map with `kind:` and `path:`)",
            ),
            (
                "  v:\n    kind: validator\n    path: v.wasm\n    preopens:\n      - {host: a, guest: /data, read_only: false}\n",
                (7, "plugins.v.preopens[0]"),
                "unknown key `read_only`",
            ),
            (
                "  v:\n    kind: validator\n    path: v.wasm\n    preopens:\n      - {host: a, guest: /data}\n      - {host: b, guest: /data}\n",
                (8, "plugins.v.preopens[1].guest"),
                "guest directory `/data` is preopened twice (also preopens[0])",
            ),
            (
                "  v.1: {kind: validator, path: v.wasm}\n",
                (3, "plugins"),
                "invalid plugin name `v.1`: only letters, digits, `_` and `-` are allowed",
            ),
            (
                "  v: {kind: validator, path: a.wasm}\n  v: {kind: validator, path: b.wasm}\n",
                (4, "plugins"),
                "duplicate plugin name `v` (first defined at line 3)",
            ),
            (
                "  d:\n    kind: discovery\n    path: d.wasm\n    grants:\n      - kubernetes: {namespaces: [Mcp]}\n",
                (7, "plugins.d.grants[0].kubernetes.namespaces[0]"),
                "`Mcp` is not a Kubernetes namespace: only lowercase letters",
            ),
            (
                "  d:\n    kind: discovery\n    path: d.wasm\n    grants:\n      - kubernetes: {namespace: mcp}\n",
                (7, "plugins.d.grants[0].kubernetes"),
                "unknown key `namespace`",
            ),
            (
                "  d:\n    kind: discovery\n    path: d.wasm\n    grants:\n      - {docker: {}, kubernetes: {}}\n",
                (7, "plugins.d.grants[0]"),
                "`kubernetes` is a second one",
            ),
            (
                "  d:\n    kind: discovery\n    path: d.wasm\n    grants:\n      - docker: {socket: a}\n      - docker: {socket: b}\n",
                (8, "plugins.d.grants[1]"),
                "`docker` is granted twice with settings",
            ),
        ];
        for (body, (line, key_path), expected) in cases {
            let e = err(&format!("{head}{body}"));
            assert_eq!((e.line, e.key_path.as_str()), (Some(line), key_path), "{e}");
            assert!(
                e.message.contains(expected),
                "{e}\n  does not mention\n{expected}"
            );
        }
    }

    #[test]
    fn the_plugins_section_is_read_not_ignored() {
        let config = ok("plugins: {}\nmcp_servers:\n  a: {command: [x]}\n");
        assert!(config.plugins.is_empty());
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn a_discovery_plugin_alone_is_a_whole_config_but_other_plugins_are_not() {
        let config = ok("plugins:\n  find: {kind: discovery, path: /opt/find.wasm}\n");
        assert!(config.providers.is_empty());
        assert_eq!(config.plugins.len(), 1);
        let e = err("plugins:\n  check: {kind: validator, path: /opt/check.wasm}\n");
        assert!(e.message.contains("no `mcp_servers:` section"), "{e}");
    }

    // --- what names a plugin: validators, strategy ------------------------------------------

    const TWO_PLUGINS: &str = "\
plugins:
  check: {kind: validator, path: /opt/check.wasm}
  sticky: {kind: lb_policy, path: /opt/sticky.wasm}
";

    #[test]
    fn providers_and_inline_members_name_their_validator_plugins() {
        let config = ok(&format!(
            "{TWO_PLUGINS}  audit: {{kind: validator, path: /opt/audit.wasm}}
mcp_servers:
  a:
    command: [x]
    validators: [audit, check]
  b:
    command: [x]
  pool:
    mode: group
    members:
      - {{id: m, command: [y], validators: [check]}}
"
        ));
        assert_eq!(provider(&config, "a").validators, ["audit", "check"]);
        assert!(provider(&config, "b").validators.is_empty());
        assert_eq!(
            config.provider("m").map(|m| m.validators.clone()),
            Some(vec!["check".to_owned()])
        );
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn a_validator_that_is_missing_repeated_or_of_another_kind_is_refused_with_the_choices() {
        let e = err(&format!(
            "{TWO_PLUGINS}mcp_servers:\n  a:\n    command: [x]\n    validators: [check, sticky]\n"
        ));
        assert_eq!(e.kind, ConfigErrorKind::Invalid);
        assert_eq!((e.line, e.column), (Some(7), Some(25)));
        assert_eq!(e.key_path, "mcp_servers.a.validators[1]");
        assert_eq!(
            e.message,
            "provider `a`: validator `sticky` is a plugin of kind `lb_policy` (line 3); it must \
             be of kind `validator` (plugins of kind `validator`: `check`)"
        );
        let e = err(&format!(
            "{TWO_PLUGINS}mcp_servers:\n  a:\n    command: [x]\n    validators: [chek]\n"
        ));
        assert_eq!(e.line, Some(7));
        assert!(
            e.message.contains(
                "validator `chek` names no plugin under `plugins:` (plugins of kind \
                 `validator`: `check`)"
            ),
            "{e}"
        );
        let e = err("mcp_servers:\n  a:\n    command: [x]\n    validators: [check]\n");
        assert!(
            e.message
                .contains("(no plugins of kind `validator` are defined under `plugins:`)"),
            "{e}"
        );
        let e = err(&format!(
            "{TWO_PLUGINS}mcp_servers:\n  a:\n    command: [x]\n    validators: [check, check]\n"
        ));
        assert_eq!((e.kind, e.line), (ConfigErrorKind::Duplicate, Some(7)));
        assert!(
            e.message.contains("listed twice (also validators[0])"),
            "{e}"
        );
    }

    #[test]
    fn a_group_strategy_can_name_an_lb_policy_plugin() {
        let config = ok(&format!(
            "{TWO_PLUGINS}mcp_servers:\n  g:\n    mode: group\n    strategy: plugin:sticky\n    members: [{{id: a, command: [x]}}]\n"
        ));
        let strategy = provider(&config, "g")
            .group
            .as_ref()
            .map(|g| g.strategy.clone());
        assert_eq!(strategy, Some(GroupStrategy::Plugin("sticky".into())));
        let strategy = strategy.unwrap_or(GroupStrategy::RoundRobin);
        assert_eq!(strategy.as_str(), "plugin:sticky");
        assert_eq!(strategy.to_string(), "plugin:sticky");
        assert_eq!(strategy.plugin(), Some("sticky"));
        assert_eq!(GroupStrategy::Priority.as_str(), "priority");
        assert_eq!(GroupStrategy::Priority.plugin(), None);
    }

    #[test]
    fn a_strategy_plugin_that_is_missing_or_not_an_lb_policy_is_refused_with_the_choices() {
        let group = |strategy: &str| {
            format!(
                "{TWO_PLUGINS}mcp_servers:\n  g:\n    mode: group\n    strategy: {strategy}\n    members: [{{id: a, command: [x]}}]\n"
            )
        };
        let e = err(&group("plugin:check"));
        assert_eq!((e.line, e.column), (Some(7), Some(15)));
        assert_eq!(e.key_path, "mcp_servers.g.strategy");
        assert_eq!(
            e.message,
            "group `g`: strategy `plugin:check` is a plugin of kind `validator` (line 2); it \
             must be of kind `lb_policy` (plugins of kind `lb_policy`: `sticky`)"
        );
        let e = err(&group("plugin:stiky"));
        assert!(
            e.message.contains(
                "names no plugin under `plugins:` (plugins of kind `lb_policy`: `sticky`)"
            ),
            "{e}"
        );
        let e = err(&group("plugin"));
        assert!(e.message.contains("did you mean `plugin:<name>`?"), "{e}");
        let e = err(&group("plugin:9"));
        assert_eq!(e.line, Some(7));
        assert!(e.message.contains("invalid plugin name `9`"), "{e}");
        let e = err(&group("round_robbin"));
        assert!(e.message.contains("did you mean `round_robin`?"), "{e}");
    }

    // --- the new sections in the normalised output ------------------------------------------

    const NEW_SECTIONS: &str = "\
rate_limit: {rps: 50}
limits: {max_argument_bytes: 65536, max_argument_depth: 16}
plugins:
  check:
    kind: validator
    path: plugins/check.wasm
    config: {deny: [\"rm -rf\"], price: $$5, limits: {max: 3}}
    fuel: 5000
    grants: [docker]
    preopens: [{host: rules, guest: /rules}]
  sticky: {kind: lb_policy, path: /opt/sticky.wasm, on_error: fail_closed}
mcp_servers:
  math:
    command: [python, -m, math]
    max_concurrency: 4
    max_queue: 0
    validators: [check]
    circuit_breaker: {failure_threshold: 2}
  pool:
    mode: group
    strategy: plugin:sticky
    max_concurrency: 2
    rate_limit: {requests_per_second: 5}
    validators: [check]
    tools: {deny_list: [\"drop_*\"]}
    members:
      - id: math
      - {id: math-b, command: [python], validators: [check]}
";

    /// Everything but the source positions, which differ between a file and its normal form.
    fn without_positions(config: &Config) -> (Vec<ProviderSpec>, Vec<PluginSpec>) {
        let providers = config
            .all_providers()
            .map(|spec| {
                let mut spec = spec.clone();
                spec.defined_at = None;
                if let Some(group) = spec.group.as_mut() {
                    for member in &mut group.members {
                        if let MemberDefinition::Inline(inline) = &mut member.definition {
                            inline.defined_at = None;
                        }
                    }
                }
                spec
            })
            .collect();
        let plugins = config
            .plugins
            .values()
            .map(|p| {
                let mut p = p.clone();
                p.defined_at = None;
                p
            })
            .collect();
        (providers, plugins)
    }

    #[test]
    fn the_new_sections_round_trip_through_the_normalised_output_from_any_directory() {
        let first = parse_at(NEW_SECTIONS, "/etc/hangar/hangar.yaml");
        let yaml = first.to_redacted_yaml();
        for shown in [
            "rate_limit:\n  requests_per_second: 50.0\n  burst: 50\n",
            "limits:\n  max_argument_bytes: 65536\n  max_argument_depth: 16\n",
            "path: /etc/hangar/plugins/check.wasm",
            "host: /etc/hangar/rules",
            "on_error: fail_closed",
            "price: $$5",
            "max_queue: 0",
            "validators:\n    - check",
            "strategy: plugin:sticky",
        ] {
            assert!(yaml.contains(shown), "`{shown}` is not in:\n{yaml}");
        }
        // Loaded from elsewhere: the paths are absolute, so nothing moves.
        let second = parse_at(&yaml, "/somewhere/else/normalised.yaml");
        assert_eq!(second.rate_limit, first.rate_limit);
        assert_eq!(second.limits, first.limits);
        assert_eq!(without_positions(&second), without_positions(&first));
        assert!(second.warnings.is_empty(), "{:?}", second.warnings);
        assert!(
            parse(&yaml, Path::new(FILE), &no_env).is_ok(),
            "the normal form of a runnable file is runnable"
        );
    }

    // --- a key that loads is honoured or warned about -----------------------------------------

    /// What becomes of a field of the typed config, and so of the key it is read from.
    #[derive(Debug)]
    enum Fate {
        /// The runtime acts on it; the text says where.
        Read(&'static str),
        /// The container or remote backend reads it (built on another branch; `load` refuses
        /// those modes until it lands).
        Backend,
        /// Not a key of its own: filled from the key named.
        Derived(&'static str),
        /// Not acted on: a file with `yaml` (keys at the provider's level) loads with a warning
        /// that names `key`.
        Warned {
            key: &'static str,
            yaml: &'static str,
        },
    }
    use Fate::{Backend, Derived, Read, Warned};

    /// Pairs every field of a struct with its fate. The struct is destructured without `..`,
    /// so a field added to it fails to compile until it is listed here.
    macro_rules! fates {
        ($ty:ident { $($field:ident: $fate:expr),* $(,)? }) => {{
            #[allow(dead_code)]
            fn every_field_is_listed(value: $ty) {
                let $ty { $($field: _),* } = value;
            }
            vec![$((stringify!($field), $fate)),*]
        }};
    }

    const NOT_ACTED_ON: &str = "accepted for compatibility with the original but not acted on";

    /// The warnings of `text`, which must load.
    fn warnings_of(text: &str) -> Vec<String> {
        ok(text).warnings
    }

    /// Asserts that each `Warned` fate warns, naming its key at its line, when written on the
    /// provider `at` of `base` (whose keys sit at 4 spaces); `base` alone loads without warnings.
    fn assert_warned(what: &str, base: &str, at: &str, fates: &[(&str, Fate)]) {
        assert!(
            warnings_of(base).is_empty(),
            "{what}: the base config warns: {:?}",
            warnings_of(base)
        );
        let line = base.lines().count() + 1;
        for (field, fate) in fates {
            let (key, yaml) = match fate {
                Warned { key, yaml } => (key, yaml),
                Read(place) | Derived(place) => {
                    assert!(!place.is_empty(), "{what}: say where `{field}` comes from");
                    continue;
                }
                Backend => continue,
            };
            let text = format!("{base}    {yaml}\n");
            let warnings = warnings_of(&text);
            let named = format!("`{key}`");
            let place = format!("hangar.yaml:{line}: mcp_servers.{at}.");
            assert!(
                warnings
                    .iter()
                    .any(|w| w.starts_with(&place) && w.contains(&named)),
                "{what}: field `{field}` is classified as warned, but `{yaml}` loads with \
                 {warnings:?} (expected one at {place} naming {named})"
            );
        }
    }

    #[test]
    fn every_key_of_a_provider_is_read_by_the_runtime_or_warned_about_at_load() {
        let provider = fates!(ProviderSpec {
            id: Read("the registry's key; every event and result"),
            mode: Read("Registry::with_plugins: a provider or a group"),
            defined_at: Derived("the position of the provider's id"),
            command: Read("backend::subprocess::spawn, container::launch"),
            args: Read("backend::subprocess::spawn, container::launch"),
            cwd: Read("backend::subprocess::spawn"),
            cwd_secret: Derived("cwd"),
            env: Read("backend::subprocess::spawn"),
            inherit_env: Read("backend::subprocess::spawn: the base environment or all"),
            description: Read("registry_list, registry_details"),
            idle_ttl: Read("Registry::spawn_idle_collector"),
            health_check_interval: Read("Provider::health_loop"),
            max_consecutive_failures: Read("Provider::record_outcome"),
            shutdown_timeout: Read("Provider::stop"),
            call_timeout: Read("Registry::invoke"),
            max_concurrency: Read("Provider slots"),
            max_queue: Read("Provider slots"),
            auto_start: Read("serve::run starts it"),
            tool_prefix: Read("gateway catalog names"),
            tools: Read("predefined tools, offered before start"),
            tool_filter: Read("registry::exposure: lists and calls"),
            validators: Read("Provider::run_validators"),
            container: Backend,
            remote: Backend,
            group: Read("group::Group"),
            circuit_breaker: Read("Provider breaker"),
            recovery: Read("Provider::schedule_recovery"),
            rate_limit: Read("Provider::call"),
            capabilities: Warned {
                key: "capabilities",
                yaml: "capabilities: {network: {egress: []}}"
            },
            access: Warned {
                key: "access",
                yaml: "access: {prompt: {deny_list: [x]}}"
            },
            tool_access: Warned {
                key: "tool_access",
                yaml: "tool_access: {member: {}}"
            },
            tool_projection: Warned {
                key: "tool_projection",
                yaml: "tool_projection: {withdrawn: [x]}"
            },
            canary: Warned {
                key: "canary",
                yaml: "canary: {member: x, split_pct: 10}"
            },
        });
        let tools = fates!(ToolFilter {
            allow_list: Read("registry::exposure"),
            deny_list: Read("registry::exposure"),
            approval_list: Warned {
                key: "tools.approval_list",
                yaml: "tools: {approval_list: [\"deploy_*\"]}"
            },
            approval_timeout: Warned {
                key: "tools.approval_timeout_seconds",
                yaml: "tools: {approval_timeout_seconds: 60}",
            },
            approval_channel: Warned {
                key: "tools.approval_channel",
                yaml: "tools: {approval_channel: ops}"
            },
        });
        let container = fates!(ContainerSpec {
            image: Backend,
            build: Backend,
            volumes: Backend,
            network: Backend,
            read_only: Backend,
            resources: Backend,
            user: Backend,
            socket: Backend,
        });
        let remote = fates!(RemoteSpec {
            endpoint: Backend,
            transport: Backend,
            auth: Backend,
            tls: Backend,
            http: Backend,
        });
        assert!(container.len() + remote.len() > 0);

        let base = "mcp_servers:\n  p:\n    command: [x]\n";
        assert_warned("a provider", base, "p", &provider);
        assert_warned("a provider's tools", base, "p", &tools);
    }

    #[test]
    fn every_key_of_a_group_is_read_by_the_runtime_or_warned_about_at_load() {
        let has_no_effect = "has no effect on a `group` provider";
        let group = fates!(ProviderSpec {
            id: Read("the registry's key"),
            mode: Read("Registry::with_plugins"),
            defined_at: Derived("the position of the group's id"),
            command: Warned {
                key: "command",
                yaml: "command: [x]"
            },
            args: Warned {
                key: "args",
                yaml: "args: [x]"
            },
            cwd: Warned {
                key: "cwd",
                yaml: "cwd: /tmp"
            },
            cwd_secret: Derived("cwd"),
            env: Warned {
                key: "env",
                yaml: "env: {A: b}"
            },
            inherit_env: Warned {
                key: "inherit_env",
                yaml: "inherit_env: true"
            },
            description: Read("registry_list, registry_group_list"),
            idle_ttl: Warned {
                key: "idle_ttl_s",
                yaml: "idle_ttl_s: 10"
            },
            health_check_interval: Warned {
                key: "health_check_interval_s",
                yaml: "health_check_interval_s: 10"
            },
            max_consecutive_failures: Warned {
                key: "max_consecutive_failures",
                yaml: "max_consecutive_failures: 2"
            },
            shutdown_timeout: Warned {
                key: "shutdown_timeout_s",
                yaml: "shutdown_timeout_s: 1"
            },
            call_timeout: Read("Registry::invoke"),
            max_concurrency: Read("Group slots"),
            max_queue: Read("Group slots"),
            auto_start: Warned {
                key: "auto_start",
                yaml: "auto_start: true"
            },
            tool_prefix: Read("gateway catalog names"),
            tools: Read("Group::tools"),
            tool_filter: Read("Group exposure: lists and calls"),
            validators: Read("GroupValidators, run by the member"),
            container: Warned {
                key: "image",
                yaml: "image: x"
            },
            remote: Warned {
                key: "endpoint",
                yaml: "endpoint: http://x"
            },
            group: Read("group::Group"),
            circuit_breaker: Read("Group breaker"),
            recovery: Warned {
                key: "recovery",
                yaml: "recovery: {max_retries: 1}"
            },
            rate_limit: Read("Group::call"),
            capabilities: Warned {
                key: "capabilities",
                yaml: "capabilities: {}"
            },
            access: Warned {
                key: "access",
                yaml: "access: {}"
            },
            tool_access: Warned {
                key: "tool_access",
                yaml: "tool_access: {}"
            },
            tool_projection: Warned {
                key: "tool_projection",
                yaml: "tool_projection: {}"
            },
            canary: Warned {
                key: "canary",
                yaml: "canary: {member: p}"
            },
        });
        let spec = fates!(GroupSpec {
            strategy: Read("group::strategy"),
            min_healthy: Read("rotation::group_state"),
            members: Read("Registry::with_plugins"),
            health: Read("Group::thresholds"),
            failback_delay: Read("rotation: warming"),
        });
        let member = fates!(GroupMember {
            id: Read("the member's provider"),
            weight: Read("strategies"),
            priority: Read("strategies"),
            definition: Read("Registry::with_plugins"),
            tool_filter: Read("Member::hides, Group::tools"),
        });
        assert!(spec.len() + member.len() > 0);

        let base =
            "mcp_servers:\n  p:\n    command: [x]\n  g:\n    mode: group\n    members: [{id: p}]\n";
        assert_warned("a group", base, "g", &group);
        let key_warnings = warnings_of(&format!("{base}    idle_ttl_s: 10\n"));
        assert!(key_warnings[0].contains(has_no_effect), "{key_warnings:?}");
        let compat = warnings_of(&format!("{base}    canary: {{}}\n"));
        assert!(compat[0].contains(NOT_ACTED_ON), "{compat:?}");

        // An inline member is a provider like any other, but reached only through its group.
        let inline = "mcp_servers:\n  g:\n    mode: group\n    members:\n      - id: m\n        command: [x]\n        tool_prefix: mm\n";
        let warnings = warnings_of(inline);
        assert!(
            warnings.len() == 1
                && warnings[0].starts_with("hangar.yaml:7: mcp_servers.g.members[0].tool_prefix:")
                && warnings[0].contains("`tool_prefix` has no effect on member `m`"),
            "{warnings:?}"
        );
    }
}
