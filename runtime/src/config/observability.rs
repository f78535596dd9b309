//! `observability:` and `logging:`: the file format of both sections, their checks and their
//! effective values.
//!
//! What is read: `observability.metrics {enabled, listen, endpoint,
//! allow_unauthenticated_remote}` and `logging {level, json_format, file}`.
//!
//! `observability.tracing` and `observability.langfuse` are read in `config/tracing.rs`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use yaml_serde::{Mapping, Value};

use super::error::ConfigError;
use super::locate::KeyPath;
use super::normalize::put;
use super::resolve::Resolver;
use super::schema::Flag;

/// Where `/metrics` is served unless `observability.metrics.endpoint` says otherwise.
pub const DEFAULT_METRICS_PATH: &str = "/metrics";

/// Paths of the HTTP face that the metrics endpoint may not take.
const RESERVED_PATHS: &[&str] = &["/mcp", "/health", "/ready"];

// ---------------------------------------------------------------------------------------------
// Effective values
// ---------------------------------------------------------------------------------------------

/// `observability:` as the hangar acts on it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservabilitySpec {
    pub metrics: MetricsSpec,
}

/// `observability.metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsSpec {
    /// Whether Prometheus text is served at all (on the HTTP face and on `listen`).
    pub enabled: bool,
    /// The path it is served at (`endpoint`), on the HTTP face and on `listen`.
    pub path: String,
    /// A listener of its own, whichever way MCP is served (for stdio, the only way to
    /// scrape). `None`: no listener of its own.
    pub listen: Option<SocketAddr>,
    /// A non-loopback `listen` was allowed explicitly.
    pub allow_unauthenticated_remote: bool,
}

impl Default for MetricsSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            path: DEFAULT_METRICS_PATH.to_owned(),
            listen: None,
            allow_unauthenticated_remote: false,
        }
    }
}

impl MetricsSpec {
    /// The path to serve on the HTTP face, if metrics are on.
    pub fn http_path(&self) -> Option<&str> {
        self.enabled.then_some(self.path.as_str())
    }

    /// The listener of its own to open, if metrics are on and one is configured.
    pub fn own_listener(&self) -> Option<SocketAddr> {
        self.listen.filter(|_| self.enabled)
    }
}

/// `logging:` as the hangar acts on it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoggingSpec {
    pub level: LogLevel,
    /// One JSON object per line instead of text.
    pub json_format: bool,
    /// Also append the log to this file (resolved against the config file's directory).
    pub file: Option<PathBuf>,
}

/// The original's levels. `CRITICAL` (which this build has no separate level for) reads as
/// `ERROR`, `WARN` as `WARNING`; `TRACE` is this build's own, below `DEBUG`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    #[default]
    Info,
    Warning,
    Error,
}

impl LogLevel {
    /// The level as written in the original's files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "TRACE",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        }
    }

    /// The level as a `tracing` filter directive.
    pub fn directive(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warning => "warn",
            Self::Error => "error",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text.trim().to_ascii_uppercase().as_str() {
            "TRACE" => Self::Trace,
            "DEBUG" => Self::Debug,
            "INFO" => Self::Info,
            "WARNING" | "WARN" => Self::Warning,
            "ERROR" | "CRITICAL" => Self::Error,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The file format
// ---------------------------------------------------------------------------------------------

/// `observability:` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawObservability {
    pub metrics: Option<RawMetrics>,
    /// Read in `config/tracing.rs`.
    pub tracing: Option<super::tracing::RawTracing>,
    /// Read in `config/tracing.rs`.
    pub langfuse: Option<super::tracing::RawLangfuse>,
}

/// `observability.metrics`; `endpoint` is the original's name for the path.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub enabled: Option<Flag>,
    pub listen: Option<Scalar>,
    pub endpoint: Option<String>,
    pub allow_unauthenticated_remote: Option<Flag>,
}

/// `logging:` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    pub level: Option<RawLevel>,
    pub json_format: Option<Flag>,
    pub file: Option<String>,
}

/// A scalar kept as text: `listen: 9464` and `listen: "127.0.0.1:9464"` both read.
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address such as \"127.0.0.1:9464\", or a port")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        de.deserialize_any(V)
    }
}

/// A log level, checked where it is written.
pub struct RawLevel(pub LogLevel);

impl<'de> Deserialize<'de> for RawLevel {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawLevel;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a log level: DEBUG, INFO, WARNING or ERROR")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawLevel, E> {
                LogLevel::parse(v).map(RawLevel).ok_or_else(|| {
                    E::custom(format_args!(
                        "unknown log level `{v}`; expected one of DEBUG, INFO, WARNING, ERROR \
                         (any case; CRITICAL reads as ERROR, TRACE is below DEBUG)"
                    ))
                })
            }
        }
        de.deserialize_str(V)
    }
}

// ---------------------------------------------------------------------------------------------
// From the file to the effective values
// ---------------------------------------------------------------------------------------------

/// `${VAR}` resolved, as plain text (nothing in these sections is a secret); an unset
/// variable is an error at the value.
fn plain(r: &Resolver<'_>, path: &KeyPath, raw: &str) -> Result<String, ConfigError> {
    r.text(path, raw, false).map(|t| t.expose().to_owned())
}

/// `observability.metrics`.
pub(super) fn resolve(
    raw: Option<&RawObservability>,
    r: &Resolver<'_>,
) -> Result<ObservabilitySpec, ConfigError> {
    let Some(raw) = raw else {
        return Ok(ObservabilitySpec::default());
    };
    let base = KeyPath::root().key("observability");
    let metrics = match &raw.metrics {
        None => MetricsSpec::default(),
        Some(m) => metrics(m, &base.key("metrics"), r)?,
    };
    Ok(ObservabilitySpec { metrics })
}

fn metrics(raw: &RawMetrics, base: &KeyPath, r: &Resolver<'_>) -> Result<MetricsSpec, ConfigError> {
    let allow_remote = raw.allow_unauthenticated_remote.is_some_and(|f| f.0);
    let path = match &raw.endpoint {
        None => DEFAULT_METRICS_PATH.to_owned(),
        Some(p) => {
            let at = base.key("endpoint");
            let p = plain(r, &at, p)?;
            check_path(&p).map_err(|why| r.invalid(&at, why))?;
            p
        }
    };
    let listen = match &raw.listen {
        None => None,
        Some(Scalar(text)) => {
            let at = base.key("listen");
            let text = plain(r, &at, text)?;
            let addr = parse_listen(&text).map_err(|why| r.invalid(&at, why))?;
            if !addr.ip().is_loopback() && !allow_remote {
                return Err(r.invalid(
                    &at,
                    format!(
                        "`{addr}` is not a loopback address and /metrics has no \
                         authentication; listen on 127.0.0.1 (let Prometheus reach it through \
                         a proxy or tunnel), or set `allow_unauthenticated_remote: true` if a \
                         firewall or proxy in front decides who can reach it"
                    ),
                ));
            }
            Some(addr)
        }
    };
    Ok(MetricsSpec {
        enabled: raw.enabled.is_none_or(|f| f.0),
        path,
        listen,
        allow_unauthenticated_remote: allow_remote,
    })
}

/// `9464` (loopback), `localhost:9464`, `127.0.0.1:9464`, `[::1]:9464`, `0.0.0.0:9464`.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Some(port) = text.strip_prefix("localhost:")
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        format!(
            "`{text}` is not an address to listen on; write HOST:PORT (e.g. \"127.0.0.1:9464\", \
             \"[::1]:9464\") or just a port (loopback)"
        )
    })
}

fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.len() < 2 || path.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{path}` is not a URL path for the metrics endpoint; write one such as `/metrics`"
        ));
    }
    if let Some(taken) = RESERVED_PATHS
        .iter()
        .find(|r| path == **r || path.starts_with(&format!("{r}/")))
    {
        return Err(format!(
            "`{path}` is taken by the hangar's own `{taken}` endpoint; choose another path, \
             e.g. `/metrics`"
        ));
    }
    Ok(())
}

/// `logging:`.
pub(super) fn resolve_logging(
    raw: Option<&RawLogging>,
    r: &Resolver<'_>,
) -> Result<LoggingSpec, ConfigError> {
    let Some(raw) = raw else {
        return Ok(LoggingSpec::default());
    };
    let file = match &raw.file {
        None => None,
        Some(text) => {
            let at = KeyPath::root().key("logging").key("file");
            let text = plain(r, &at, text)?;
            if text.trim().is_empty() {
                return Err(r.invalid(
                    &at,
                    "an empty log file name; remove `file` to log to stderr only",
                ));
            }
            let path = Path::new(&text);
            // As plugin paths: relative to the config file, not to wherever the hangar runs.
            Some(if path.is_absolute() {
                path.to_path_buf()
            } else {
                r.file()
                    .parent()
                    .unwrap_or_else(|| Path::new(""))
                    .join(path)
            })
        }
    };
    Ok(LoggingSpec {
        level: raw.level.as_ref().map_or_else(LogLevel::default, |l| l.0),
        json_format: raw.json_format.is_some_and(|f| f.0),
        file,
    })
}

// ---------------------------------------------------------------------------------------------
// The normalised output
// ---------------------------------------------------------------------------------------------

/// `observability.metrics` with its effective values; keys that load back to the same config.
pub(super) fn normalised_metrics(m: &MetricsSpec) -> Value {
    let mut metrics = Mapping::new();
    put(&mut metrics, "enabled", m.enabled);
    put(&mut metrics, "endpoint", m.path.replace('$', "$$"));
    if let Some(listen) = m.listen {
        put(&mut metrics, "listen", listen.to_string());
    }
    if m.allow_unauthenticated_remote {
        put(&mut metrics, "allow_unauthenticated_remote", true);
    }
    Value::Mapping(metrics)
}

/// `logging:` with its effective values (the file resolved, so it loads back from anywhere).
pub(super) fn normalised_logging(spec: &LoggingSpec) -> Value {
    let mut out = Mapping::new();
    put(&mut out, "level", spec.level.as_str());
    put(&mut out, "json_format", spec.json_format);
    if let Some(file) = &spec.file {
        put(
            &mut out,
            "file",
            file.display().to_string().replace('$', "$$"),
        );
    }
    Value::Mapping(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, ConfigError, ConfigErrorKind, testing};
    use super::*;

    const SERVERS: &str = "mcp_servers:\n  a: {command: [x]}\n";

    fn env(name: &str) -> Option<String> {
        (name == "PORT").then(|| "9999".to_owned())
    }

    fn ok(text: &str) -> Config {
        testing::ok(text, "/etc/hangar/h.yaml", &env)
    }

    fn err(text: &str) -> ConfigError {
        testing::err(text, "/etc/hangar/h.yaml", &env)
    }

    #[test]
    fn without_the_sections_metrics_are_on_without_a_listener_and_the_log_is_info_text() {
        let c = ok(SERVERS);
        assert_eq!(c.observability.metrics, MetricsSpec::default());
        assert_eq!(c.observability.metrics.http_path(), Some("/metrics"));
        assert_eq!(c.observability.metrics.own_listener(), None);
        assert_eq!(c.logging, LoggingSpec::default());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn a_bare_port_listens_on_loopback_and_variables_are_resolved() {
        let c = ok(&format!(
            "observability:\n  metrics: {{listen: 9464}}\n{SERVERS}"
        ));
        assert_eq!(
            c.observability.metrics.own_listener(),
            Some("127.0.0.1:9464".parse().expect("addr"))
        );
        let c = ok(&format!(
            "observability:\n  metrics: {{listen: \"[::1]:${{PORT}}\", endpoint: /m}}\n{SERVERS}"
        ));
        assert_eq!(
            c.observability.metrics.listen,
            Some("[::1]:9999".parse().expect("addr"))
        );
        assert_eq!(c.observability.metrics.http_path(), Some("/m"));
        let c = ok(&format!(
            "observability:\n  metrics: {{listen: 9464, enabled: false}}\n{SERVERS}"
        ));
        assert_eq!(c.observability.metrics.own_listener(), None, "off is off");
        assert_eq!(c.observability.metrics.http_path(), None);
    }

    #[test]
    fn a_non_loopback_listener_needs_to_be_allowed() {
        let e = err(&format!(
            "observability:\n  metrics:\n    listen: 0.0.0.0:9464\n{SERVERS}"
        ));
        assert_eq!(e.kind, ConfigErrorKind::Invalid);
        assert_eq!(e.line, Some(3), "{e}");
        assert!(
            e.to_string().contains("observability.metrics.listen"),
            "{e}"
        );
        assert!(e.message.contains("allow_unauthenticated_remote"), "{e}");
        let c = ok(&format!(
            "observability:\n  metrics:\n    listen: 0.0.0.0:9464\n    allow_unauthenticated_remote: true\n{SERVERS}"
        ));
        assert_eq!(
            c.observability.metrics.listen,
            Some("0.0.0.0:9464".parse().expect("addr"))
        );
    }

    #[test]
    fn bad_addresses_paths_and_keys_are_errors_at_their_line() {
        let e = err(&format!(
            "observability:\n  metrics:\n    listen: nowhere\n{SERVERS}"
        ));
        assert_eq!((e.line, e.kind), (Some(3), ConfigErrorKind::Invalid), "{e}");
        assert!(e.message.contains("HOST:PORT"), "{e}");
        let e = err(&format!(
            "observability:\n  metrics:\n    endpoint: /mcp\n{SERVERS}"
        ));
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("`/mcp`"), "{e}");
        let e = err(&format!(
            "observability:\n  metrics:\n    enabeld: true\n{SERVERS}"
        ));
        assert_eq!(
            (e.line, e.kind),
            (Some(3), ConfigErrorKind::UnknownKey),
            "{e}"
        );
        assert!(e.message.contains("did you mean `enabled`?"), "{e}");
        let e = err(&format!(
            "observability:\n  tracing:\n    sample_rate: 2\n{SERVERS}"
        ));
        assert_eq!(e.line, Some(3), "{e}");
    }

    #[test]
    fn log_levels_are_the_originals_in_any_case() {
        for (written, level) in [
            ("DEBUG", LogLevel::Debug),
            ("info", LogLevel::Info),
            ("Warning", LogLevel::Warning),
            ("WARN", LogLevel::Warning),
            ("ERROR", LogLevel::Error),
            ("critical", LogLevel::Error),
        ] {
            let c = ok(&format!("logging: {{level: {written}}}\n{SERVERS}"));
            assert_eq!(c.logging.level, level, "{written}");
        }
        let e = err(&format!("{SERVERS}logging:\n  level: LOUD\n"));
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("unknown log level `LOUD`"), "{e}");
    }

    #[test]
    fn the_log_file_is_taken_from_the_config_files_directory() {
        let c = ok(&format!(
            "logging: {{file: logs/h.log, json_format: true}}\n{SERVERS}"
        ));
        assert_eq!(
            c.logging.file.as_deref(),
            Some(Path::new("/etc/hangar/logs/h.log"))
        );
        assert!(c.logging.json_format);
        let c = ok(&format!("logging: {{file: /var/log/h.log}}\n{SERVERS}"));
        assert_eq!(c.logging.file.as_deref(), Some(Path::new("/var/log/h.log")));
    }

    #[test]
    fn both_sections_round_trip_through_the_normalised_output() {
        let c = ok(&format!(
            "logging: {{level: debug, file: logs/h.log}}\nobservability:\n  metrics: {{listen: 9464, endpoint: /prom}}\n{SERVERS}"
        ));
        let again = ok(&c.to_redacted_yaml());
        assert_eq!(again.logging, c.logging);
        assert_eq!(again.observability, c.observability);
    }
}
