//! `event_store:` — whether the audit trail is kept, where, and for how long.
//!
//! ```yaml
//! event_store:
//!   enabled: true            # default
//!   driver: sqlite           # or `memory`: kept for the process's lifetime only
//!   path: data/events.db     # beside this file; default $XDG_DATA_HOME/mcp-hangar/events.db
//!   retention: 30d           # s, m, h, d or w
//!   record_arguments: false  # true: argument values too (secret-looking keys as ***)
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::error::{ConfigError, ConfigErrorKind};
use super::interpolate::interpolate;
use super::locate::{KeyPath, SourceMap};

/// How long events are kept when `retention` is not written.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// `event_store:` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawEventStore {
    pub enabled: Option<bool>,
    pub driver: Option<EventStoreDriver>,
    pub path: Option<String>,
    pub retention: Option<Retention>,
    pub record_arguments: Option<bool>,
}

/// Where events go.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum EventStoreDriver {
    /// A SQLite file: survives restarts and crashes; `mcp-hangar events` reads it.
    #[default]
    Sqlite,
    /// An in-memory SQLite database: the same store, gone when the process ends.
    Memory,
}

impl EventStoreDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Memory => "memory",
        }
    }
}

/// `event_store:` resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventStoreSpec {
    pub enabled: bool,
    pub driver: EventStoreDriver,
    /// The file as written, taken from the config file's directory when relative; `None`: the
    /// default under the XDG data directory (`default_path`).
    pub path: Option<PathBuf>,
    pub retention: Duration,
    /// Write argument values (with secret-looking keys redacted), not only their digest.
    pub record_arguments: bool,
}

impl Default for EventStoreSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            driver: EventStoreDriver::Sqlite,
            path: None,
            retention: DEFAULT_RETENTION,
            record_arguments: false,
        }
    }
}

impl EventStoreSpec {
    /// The file the store uses: `path`, else `default_path()`.
    ///
    /// # Errors
    ///
    /// When no path is written and neither `XDG_DATA_HOME` nor `HOME` says where data goes.
    pub fn file(&self) -> Result<PathBuf, String> {
        match &self.path {
            Some(path) => Ok(path.clone()),
            None => default_path(),
        }
    }
}

/// `$XDG_DATA_HOME/mcp-hangar/events.db`, else `~/.local/share/mcp-hangar/events.db`. Never the
/// working directory: a hangar started from wherever a client happens to run must not scatter
/// databases there. A relative `XDG_DATA_HOME` is ignored, as the XDG spec says.
///
/// # Errors
///
/// When neither variable gives an absolute directory.
pub fn default_path() -> Result<PathBuf, String> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let data = absolute("XDG_DATA_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".local/share")))
        .ok_or_else(|| {
            "no data directory for the event store: neither XDG_DATA_HOME nor HOME is set to an \
             absolute path; set one, or `event_store.path` in the config"
                .to_owned()
        })?;
    Ok(data.join("mcp-hangar").join("events.db"))
}

/// A retention period written as a number and a unit: `90s`, `45m`, `12h`, `30d`, `2w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub Duration);

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Retention;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `30d`, `12h`, `45m` or `90s`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Retention, E> {
                match parse_duration(v) {
                    Some(d) if !d.is_zero() => Ok(Retention(d)),
                    Some(_) => Err(E::custom(
                        "a retention of 0 would delete every event as it is written; write a \
                         positive duration, or `enabled: false` to keep none",
                    )),
                    None => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        de.deserialize_str(V)
    }
}

/// `<number><unit>` with unit `s`, `m`, `h`, `d` or `w` (a bare number is seconds). `None` for
/// anything else, or a period past ten years.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let unit_secs = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    let secs = n.checked_mul(unit_secs)?;
    (secs <= 10 * 366 * 86_400).then(|| Duration::from_secs(secs))
}

/// Resolves `event_store:` of the file at `file` (`${VAR}` in `path`, relative paths beside the
/// file).
///
/// # Errors
///
/// A `${VAR}` in `path` that cannot be resolved, or an empty path; at the value's line.
pub(super) fn resolve(
    raw: Option<RawEventStore>,
    file: &Path,
    map: &SourceMap,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<EventStoreSpec, ConfigError> {
    let Some(raw) = raw else {
        return Ok(EventStoreSpec::default());
    };
    let key = KeyPath::root().key("event_store").key("path");
    let invalid =
        |kind, message: String| ConfigError::at(file, map.nearest_value(&key), &key, kind, message);
    let path = match &raw.path {
        None => None,
        Some(written) => {
            let value = interpolate(written, env)
                .map_err(|e| invalid(ConfigErrorKind::Interpolation, e.to_string()))?
                .value;
            if value.trim().is_empty() {
                return Err(invalid(
                    ConfigErrorKind::Invalid,
                    "the path is empty; leave `path` out for the default \
                     ($XDG_DATA_HOME/mcp-hangar/events.db)"
                        .to_owned(),
                ));
            }
            let dir = file.parent().unwrap_or_else(|| Path::new(""));
            let joined = dir.join(value);
            Some(std::path::absolute(&joined).unwrap_or(joined))
        }
    };
    Ok(EventStoreSpec {
        enabled: raw.enabled.unwrap_or(true),
        driver: raw.driver.unwrap_or_default(),
        path,
        retention: raw.retention.map_or(DEFAULT_RETENTION, |r| r.0),
        record_arguments: raw.record_arguments.unwrap_or(false),
    })
}

/// `retention` as the shortest exact spelling (`30d`, `36h`, `90s`), for the normalised config.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs > 0 && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_every_unit_and_refuse_the_rest() {
        assert_eq!(
            parse_duration("30d"),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(parse_duration("12h"), Some(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2w"), Some(Duration::from_secs(14 * 86_400)));
        for bad in ["", "d", "3x", "-1d", "1.5h", "100000w"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn retention_prints_back_the_way_it_is_read() {
        for text in ["30d", "2w", "36h", "45m", "90s"] {
            let d = parse_duration(text).unwrap_or_default();
            assert_eq!(format_duration(d), text);
        }
    }
}
