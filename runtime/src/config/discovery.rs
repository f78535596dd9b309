//! The `discovery:` section: how often the hangar asks its discovery sources, what it does with
//! what they find, and the sources themselves.
//!
//! ```yaml
//! discovery:
//!   enabled: true
//!   refresh_interval_s: 30
//!   auto_register: true
//!   lifecycle: {default_ttl_s: 90, check_interval_s: 10, drain_timeout_s: 30}
//!   security:
//!     allowed_namespaces: []
//!     denied_namespaces: [kube-system, default]
//!     max_providers_per_source: 100
//!     max_registration_rate: 10/min
//!     require_health_check: false
//!     quarantine_on_failure: true
//!   sources:
//!     - {type: filesystem, mode: authoritative, path: /etc/mcp-hangar/providers.d}
//!     - {type: "plugin:my-cmdb", mode: additive}
//! ```
//!
//! A source's own keys (everything but `type`, `mode` and `name`) are handed to its plugin as
//! its config JSON: the plugin, not this file, says which keys it takes (its `configure`
//! refuses unknown ones), so they are not checked here.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::error::{ConfigError, ConfigErrorKind};
use super::locate::{KeyPath, SourceLocation, SourceMap};
use super::schema::{Flag, Positive, WholeSecs};
use super::spec::{PluginKind, PluginSpec};

/// The bundled discovery sources, by `type:` (each is the bundled plugin `discovery-<type>`),
/// in conflict precedence order: when two sources report the same provider id, the earlier
/// type here wins.
pub const BUNDLED_SOURCES: &[&str] = &["kubernetes", "docker", "filesystem", "entrypoints"];

/// `discovery:` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDiscovery {
    enabled: Option<Flag>,
    refresh_interval_s: Option<Positive>,
    auto_register: Option<Flag>,
    lifecycle: Option<RawLifecycle>,
    security: Option<RawSecurity>,
    sources: Option<Vec<RawSource>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLifecycle {
    default_ttl_s: Option<WholeSecs>,
    check_interval_s: Option<Positive>,
    drain_timeout_s: Option<WholeSecs>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    allowed_namespaces: Option<Vec<String>>,
    denied_namespaces: Option<Vec<String>>,
    max_providers_per_source: Option<Positive>,
    max_registration_rate: Option<RegistrationRate>,
    require_health_check: Option<Flag>,
    quarantine_on_failure: Option<Flag>,
}

/// `N/sec`, `N/min` or `N/hour` (also `N/s`, `N/m`, `N/h`): at most N registrations per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrationRate {
    pub count: u32,
    pub per: Duration,
}

impl fmt::Display for RegistrationRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "sec",
            60 => "min",
            _ => "hour",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl RegistrationRate {
    fn parse(text: &str) -> Option<Self> {
        let (count, unit) = text.split_once('/')?;
        let count: u32 = count.trim().parse().ok().filter(|n| *n > 0)?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return None,
        };
        Some(Self { count, per })
    }
}

impl<'de> Deserialize<'de> for RegistrationRate {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RegistrationRate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate such as `10/min` (N/sec, N/min or N/hour, N ≥ 1)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RegistrationRate, E> {
                RegistrationRate::parse(v)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        de.deserialize_str(V)
    }
}

/// What a source of `sources:` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceType {
    /// One of [`BUNDLED_SOURCES`]: the bundled plugin `discovery-<type>`.
    Bundled(String),
    /// `plugin:NAME`: the discovery plugin `NAME` of `plugins:`.
    Plugin(String),
}

impl SourceType {
    /// Conflict precedence: lower wins (kubernetes 0 … entrypoints 3, operator plugins 4).
    pub fn precedence(&self) -> usize {
        match self {
            Self::Bundled(t) => BUNDLED_SOURCES
                .iter()
                .position(|b| b == t)
                .unwrap_or(BUNDLED_SOURCES.len()),
            Self::Plugin(_) => BUNDLED_SOURCES.len(),
        }
    }
}

impl fmt::Display for SourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bundled(t) => f.write_str(t),
            Self::Plugin(name) => write!(f, "plugin:{name}"),
        }
    }
}

/// `additive` never deregisters; `authoritative` deregisters what the source stopped reporting
/// once its TTL has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceMode {
    Additive,
    Authoritative,
}

impl SourceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Additive => "additive",
            Self::Authoritative => "authoritative",
        }
    }
}

/// One entry of `sources:` as written.
struct RawSource {
    kind: SourceType,
    mode: Option<SourceMode>,
    name: Option<String>,
    config: serde_json::Map<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for RawSource {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSource;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a source: a mapping with `type:` and its own keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawSource, A::Error> {
                let mut kind = None;
                let mut mode = None;
                let mut name = None;
                let mut config = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "type" => {
                            let text: String = map.next_value()?;
                            kind = Some(parse_type(&text).map_err(de::Error::custom)?);
                        }
                        "mode" => mode = Some(map.next_value::<SourceMode>()?),
                        "name" => name = Some(map.next_value::<String>()?),
                        _ if config.contains_key(&key) => {
                            return Err(de::Error::custom(format_args!(
                                "{} `{key}`",
                                super::schema::DUPLICATE_KEY
                            )));
                        }
                        _ => {
                            let value: serde_json::Value = map.next_value()?;
                            config.insert(key, value);
                        }
                    }
                }
                let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
                Ok(RawSource {
                    kind,
                    mode,
                    name,
                    config,
                })
            }
        }
        de.deserialize_map(V)
    }
}

fn parse_type(text: &str) -> Result<SourceType, String> {
    if let Some(name) = text.strip_prefix("plugin:") {
        if name.is_empty() {
            return Err(
                "`plugin:` needs the name of a discovery plugin of `plugins:`, as in \
                        `plugin:my-source`"
                    .into(),
            );
        }
        return Ok(SourceType::Plugin(name.to_string()));
    }
    if BUNDLED_SOURCES.contains(&text) {
        return Ok(SourceType::Bundled(text.to_string()));
    }
    Err(format!(
        "unknown source type `{text}`; expected one of {}, or `plugin:NAME`",
        BUNDLED_SOURCES
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The `discovery:` section, with every default applied.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoverySpec {
    pub enabled: bool,
    pub refresh_interval: Duration,
    /// `false`: what sources find waits in `registry_discovered` for `registry_approve`.
    pub auto_register: bool,
    pub lifecycle: LifecycleSpec,
    pub security: SecuritySpec,
    pub sources: Vec<SourceSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleSpec {
    /// How long an authoritative source's provider outlives its last report.
    pub default_ttl: Duration,
    /// How often expired providers are looked for between refreshes.
    pub check_interval: Duration,
    /// How long calls in flight get before a replaced or removed provider stops.
    pub drain_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecuritySpec {
    /// Empty: every namespace not denied.
    pub allowed_namespaces: Vec<String>,
    pub denied_namespaces: Vec<String>,
    pub max_providers_per_source: usize,
    pub max_registration_rate: RegistrationRate,
    pub require_health_check: bool,
    /// `false`: a provider failing a check is refused (and reported) instead of held.
    pub quarantine_on_failure: bool,
}

impl Default for DiscoverySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            refresh_interval: Duration::from_secs(30),
            auto_register: true,
            lifecycle: LifecycleSpec {
                default_ttl: Duration::from_secs(90),
                check_interval: Duration::from_secs(10),
                drain_timeout: Duration::from_secs(30),
            },
            security: SecuritySpec {
                allowed_namespaces: Vec::new(),
                denied_namespaces: vec!["kube-system".into(), "default".into()],
                max_providers_per_source: 100,
                max_registration_rate: RegistrationRate {
                    count: 10,
                    per: Duration::from_secs(60),
                },
                require_health_check: false,
                quarantine_on_failure: true,
            },
            sources: Vec::new(),
        }
    }
}

/// One discovery source.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSpec {
    /// Unique among the sources: `name:`, else the type (`filesystem`, `plugin:cmdb`), with
    /// `#2`, `#3`, … for later sources of the same type.
    pub name: String,
    pub kind: SourceType,
    pub mode: SourceMode,
    /// The source's own keys, handed to its plugin as config JSON.
    pub config: serde_json::Map<String, serde_json::Value>,
    pub defined_at: Option<SourceLocation>,
}

/// Resolves `discovery:`: defaults, source names, and `plugin:NAME` checked against
/// `plugins:` (it must name a plugin of kind `discovery`).
pub(super) fn resolve(
    raw: RawDiscovery,
    file: &Path,
    map: &SourceMap,
    plugins: &IndexMap<String, PluginSpec>,
    warnings: &mut Vec<String>,
) -> Result<DiscoverySpec, ConfigError> {
    let mut spec = DiscoverySpec::default();
    let root = KeyPath::root().key("discovery");
    if let Some(v) = raw.enabled {
        spec.enabled = v.0;
    }
    if let Some(v) = raw.refresh_interval_s {
        spec.refresh_interval = Duration::from_secs(v.get());
    }
    if let Some(v) = raw.auto_register {
        spec.auto_register = v.0;
    }
    if let Some(l) = raw.lifecycle {
        if let Some(v) = l.default_ttl_s {
            spec.lifecycle.default_ttl = Duration::from_secs(v.get());
        }
        if let Some(v) = l.check_interval_s {
            spec.lifecycle.check_interval = Duration::from_secs(v.get());
        }
        if let Some(v) = l.drain_timeout_s {
            spec.lifecycle.drain_timeout = Duration::from_secs(v.get());
        }
    }
    if let Some(s) = raw.security {
        if let Some(v) = s.allowed_namespaces {
            spec.security.allowed_namespaces = v;
        }
        if let Some(v) = s.denied_namespaces {
            spec.security.denied_namespaces = v;
        }
        if let Some(v) = s.max_providers_per_source {
            spec.security.max_providers_per_source = usize::try_from(v.get()).unwrap_or(usize::MAX);
        }
        if let Some(v) = s.max_registration_rate {
            spec.security.max_registration_rate = v;
        }
        if let Some(v) = s.require_health_check {
            spec.security.require_health_check = v.0;
        }
        if let Some(v) = s.quarantine_on_failure {
            spec.security.quarantine_on_failure = v.0;
        }
    }
    let line_of = |path: &KeyPath| map.key(path, 0).map_or(1, |at| at.line);
    let mut seen: IndexMap<String, usize> = IndexMap::new();
    for (i, source) in raw.sources.unwrap_or_default().into_iter().enumerate() {
        let at = root.key("sources").index(i);
        let type_path = at.key("type");
        let defined_at = map.key(&type_path, 0);
        if let SourceType::Plugin(name) = &source.kind {
            match plugins.get(name) {
                Some(p) if p.kind == PluginKind::Discovery => {}
                Some(p) => {
                    return Err(error(
                        file,
                        defined_at,
                        &type_path,
                        format!(
                            "plugin `{name}` is a plugin of kind `{}`; a source needs one of \
                             kind `discovery`",
                            p.kind
                        ),
                    ));
                }
                None => {
                    let known: Vec<String> = plugins
                        .values()
                        .filter(|p| p.kind == PluginKind::Discovery)
                        .map(|p| format!("`{}`", p.name))
                        .collect();
                    return Err(error(
                        file,
                        defined_at,
                        &type_path,
                        format!(
                            "no plugin `{name}` in `plugins:`; discovery plugins defined: {}",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
        let mode = source.mode.unwrap_or_else(|| {
            warnings.push(format!(
                "{}:{}: discovery.sources[{i}]: no `mode:`; `additive` is used (found providers \
                 are never removed)",
                file.display(),
                line_of(&type_path)
            ));
            SourceMode::Additive
        });
        let base = source
            .name
            .clone()
            .unwrap_or_else(|| source.kind.to_string());
        let n = seen.entry(base.clone()).or_insert(0);
        *n += 1;
        if *n > 1 && source.name.is_some() {
            return Err(error(
                file,
                map.key(&at.key("name"), 0),
                &at.key("name"),
                format!("{DUP} `{base}`: two sources have this name"),
            ));
        }
        let name = if *n > 1 { format!("{base}#{n}") } else { base };
        spec.sources.push(SourceSpec {
            name,
            kind: source.kind,
            mode,
            config: source.config,
            defined_at,
        });
    }
    if spec.enabled && spec.sources.is_empty() {
        warnings.push(format!(
            "{}:{}: discovery: enabled, but no `sources:`; nothing is discovered",
            file.display(),
            line_of(&root)
        ));
    }
    if !spec.enabled && !spec.sources.is_empty() {
        warnings.push(format!(
            "{}:{}: discovery: `enabled: false`; its {} source(s) are not asked",
            file.display(),
            line_of(&root),
            spec.sources.len()
        ));
    }
    Ok(spec)
}

const DUP: &str = "duplicate";

fn error(file: &Path, at: Option<SourceLocation>, path: &KeyPath, message: String) -> ConfigError {
    ConfigError::at(
        file,
        at.unwrap_or(SourceLocation { line: 1, column: 1 }),
        path,
        ConfigErrorKind::Invalid,
        message,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<crate::config::Config, ConfigError> {
        crate::config::parse(text, Path::new("d.yaml"), &|_| None)
    }

    #[test]
    fn defaults_are_the_originals() {
        let c =
            parse("discovery:\n  sources:\n    - {type: filesystem, mode: additive}\n").unwrap();
        let d = c.discovery.unwrap();
        assert_eq!(d.refresh_interval, Duration::from_secs(30));
        assert_eq!(d.lifecycle.default_ttl, Duration::from_secs(90));
        assert_eq!(d.lifecycle.drain_timeout, Duration::from_secs(30));
        assert_eq!(d.security.denied_namespaces, ["kube-system", "default"]);
        assert_eq!(d.security.max_providers_per_source, 100);
        assert_eq!(d.security.max_registration_rate.to_string(), "10/min");
        assert!(d.auto_register && d.security.quarantine_on_failure);
        assert!(!d.security.require_health_check);
        assert_eq!(d.sources[0].name, "filesystem");
        assert!(c.warnings.iter().all(|w| !w.contains("`discovery`")));
    }

    #[test]
    fn source_keys_go_to_the_plugin_and_names_are_unique() {
        let c = parse(
            "discovery:\n  sources:\n    - {type: filesystem, mode: authoritative, path: /a}\n    - {type: filesystem, mode: additive, path: /b}\n",
        )
        .unwrap();
        let d = c.discovery.unwrap();
        assert_eq!(d.sources[0].config["path"], "/a");
        assert!(!d.sources[0].config.contains_key("mode"));
        assert_eq!(d.sources[1].name, "filesystem#2");
        assert_eq!(d.sources[0].mode, SourceMode::Authoritative);
    }

    #[test]
    fn check_prints_the_section_and_it_loads_back_the_same() {
        let c = parse(
            "discovery:\n  refresh_interval_s: 5\n  security: {max_registration_rate: 3/hour, allowed_namespaces: [mcp]}\n  sources:\n    - {type: docker, mode: authoritative, trusted: true, api_token: s3cret}\n    - {type: filesystem, mode: additive, path: 'p$$d'}\n",
        )
        .unwrap();
        let yaml = c.to_redacted_yaml();
        assert!(!yaml.contains("s3cret"), "{yaml}");
        assert!(yaml.contains("max_registration_rate: 3/hour"), "{yaml}");
        let again = parse(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let (mut a, mut b) = (c.discovery.unwrap(), again.discovery.unwrap());
        for s in a.sources.iter_mut().chain(b.sources.iter_mut()) {
            s.defined_at = None;
            s.config.remove("api_token");
        }
        assert_eq!(a, b, "{yaml}");
        // No section: none printed (an empty `discovery:` would turn discovery on).
        let plain = parse("mcp_servers:\n  a: {command: [x]}\n").unwrap();
        assert!(!plain.to_redacted_yaml().contains("discovery"));
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let e = parse("discovery:\n  refresh_intervl_s: 5\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().contains("refresh_interval_s"), "{e}");
        let e = parse("discovery:\n  security:\n    max_registration_rate: 10/week\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.to_string().contains("10/min"), "{e}");
        let e = parse("discovery:\n  sources:\n    - {type: ftp, mode: additive}\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.to_string().contains("unknown source type `ftp`"), "{e}");
        let e = parse("discovery:\n  sources:\n    - type: plugin:nope\n      mode: additive\n")
            .unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.to_string().contains("no plugin `nope`"), "{e}");
    }
}

#[cfg(test)]
mod precedence {
    use super::*;

    #[test]
    fn kubernetes_beats_docker_beats_filesystem_beats_entrypoints_beats_plugins() {
        let order: Vec<usize> = ["kubernetes", "docker", "filesystem", "entrypoints"]
            .iter()
            .map(|t| SourceType::Bundled(t.to_string()).precedence())
            .chain([SourceType::Plugin("cmdb".into()).precedence()])
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }
}
