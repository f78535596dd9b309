//! `ConfigError`: what is wrong, where (file, line, column, key path), and what to write instead.
//!
//! Error text never contains a value that came from the environment: interpolation errors name
//! the variable, not its value, and deserialisation errors happen before interpolation, so the
//! only values they quote are ones written in the file itself.

use std::fmt;
use std::path::{Path, PathBuf};

use super::locate::{KeyPath, Seg, SourceLocation, SourceMap};
use super::schema::{DUPLICATE_KEY, SERVER_SECTIONS};

/// What kind of problem a `ConfigError` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Io,
    /// The text is not valid YAML.
    Syntax,
    /// A key that is not part of the format (usually a typo).
    UnknownKey,
    /// A value of the wrong type, out of range, or missing where it is required.
    Invalid,
    /// `${VAR}` with `VAR` unset, or a malformed `${...}`.
    Interpolation,
    /// The same key or provider id twice.
    Duplicate,
}

/// A problem with a config file. `Display` gives the full message:
/// `hangar.yaml:7:5: mcp_servers.math: unknown key `comand`; did you mean `command`? (…)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; `None` only when the file could not be read.
    pub line: Option<usize>,
    /// 1-based; `None` only when the file could not be read.
    pub column: Option<usize>,
    /// Where in the document, e.g. `mcp_servers.math.env.TOKEN`; empty for the whole file.
    pub key_path: String,
    pub kind: ConfigErrorKind,
    /// The problem and what to do about it, without the location prefix.
    pub message: String,
}

impl ConfigError {
    pub(super) fn at(
        file: &Path,
        location: SourceLocation,
        key_path: &KeyPath,
        kind: ConfigErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.to_path_buf(),
            line: Some(location.line),
            column: Some(location.column),
            key_path: key_path.to_string(),
            kind,
            message: message.into(),
        }
    }

    pub(super) fn io(file: &Path, err: &std::io::Error) -> Self {
        Self {
            file: file.to_path_buf(),
            line: None,
            column: None,
            key_path: String::new(),
            kind: ConfigErrorKind::Io,
            message: format!("cannot read the config file: {err}"),
        }
    }

    /// Line and column, when known.
    pub fn location(&self) -> Option<SourceLocation> {
        Some(SourceLocation {
            line: self.line?,
            column: self.column?,
        })
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if !self.key_path.is_empty() {
            write!(f, "{}: ", self.key_path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The known name closest to `unknown`, if it is close enough to be a plausible typo.
pub fn suggest<'a>(unknown: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let unknown = unknown.to_ascii_lowercase();
    let close = candidates
        .iter()
        .map(|candidate| {
            let distance = strsim::damerau_levenshtein(&unknown, &candidate.to_ascii_lowercase());
            (distance, *candidate)
        })
        // One edit in three characters reads as a typo (`comand`, `idle_ttl`, `mcpServers`);
        // more than that is a different word, and a wrong suggestion is worse than none.
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate);
    // A shortened name (`allow` for `allow_list`, `idle` for `idle_ttl_s`) is the other
    // common slip; only when it is long enough to mean one key.
    close.or_else(|| {
        let mut prefixed = candidates
            .iter()
            .filter(|candidate| unknown.len() >= 4 && candidate.starts_with(unknown.as_str()));
        match (prefixed.next(), prefixed.next()) {
            (Some(only), None) => Some(*only),
            _ => None,
        }
    })
}

/// The backticked names in a serde message, e.g. the unknown name and the expected ones in
/// "unknown field `x`, expected one of `a`, `b`".
fn backticked(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
}

/// "unknown key `x`; did you mean `y`? (valid keys: a, b)" from serde's unknown-field or
/// unknown-variant wording.
fn rewrite_unknown(message: &str, noun: &str, list_label: &str) -> String {
    let names = backticked(message);
    let Some((unknown, expected)) = names.split_first() else {
        return message.to_owned();
    };
    let mut out = format!("unknown {noun} `{unknown}`");
    if let Some(best) = suggest(unknown, expected) {
        out.push_str(&format!("; did you mean `{best}`?"));
    }
    if !expected.is_empty() {
        out.push_str(&format!(" ({list_label}: {})", expected.join(", ")));
    }
    out
}

/// The serde_path_to_error path as our `KeyPath`.
fn key_path_of(path: &serde_path_to_error::Path) -> KeyPath {
    let segs = path
        .iter()
        .filter_map(|seg| match seg {
            serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
            serde_path_to_error::Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            serde_path_to_error::Segment::Unknown => None,
        })
        .collect();
    KeyPath::from_segments(segs)
}

/// yaml_serde's error text is "[path: ]message at line L column C". Returns the message alone.
fn bare_message(display: &str, location: Option<SourceLocation>, path: &KeyPath) -> String {
    let mut message = display.to_owned();
    if let Some(at) = location {
        message = message.replacen(&format!(" at line {} column {}", at.line, at.column), "", 1);
    }
    // The prefix is the path of the value being read: the full path, or (for an error in a
    // key) its parent. Try the longest first.
    let mut candidate = Some(path.clone());
    while let Some(p) = candidate {
        let prefix = format!("{p}: ");
        if !p.segments().is_empty() && message.starts_with(&prefix) {
            return message[prefix.len()..].to_owned();
        }
        candidate = p.parent();
    }
    message
}

/// serde's names for our types, as a person would say them.
const WORDING: &[(&str, &str)] = &[
    (
        "expected struct RawSpec",
        "expected a map of provider settings",
    ),
    (
        "expected struct RawMember",
        "expected a member (a map with `id:` and provider settings)",
    ),
    (
        "expected struct RawTool",
        "expected a tool (a map with `name:`)",
    ),
    (
        "expected struct RawPlugin",
        "expected a plugin (a map with `kind:` and `path:`)",
    ),
    (
        "expected struct RawPreopen",
        "expected a preopen (a map with `host:` and `guest:`)",
    ),
    ("expected a sequence", "expected a list"),
    (
        "deserializing from YAML containing more than one document is not supported",
        "the file holds more than one YAML document (a second `---`); a config is one document",
    ),
];

fn plain_wording(message: &str) -> String {
    let mut out = message.to_owned();
    for (from, to) in WORDING {
        out = out.replace(from, to);
    }
    // Every other settings block (`auth`, `tls`, `http`, …) is a map of settings.
    while let Some(at) = out.find("expected struct Raw") {
        let name_end = out[at + "expected struct ".len()..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(out.len(), |end| at + "expected struct ".len() + end);
        out.replace_range(at..name_end, "expected a map of settings");
    }
    out
}

/// Turns a deserialisation failure into a `ConfigError` a person can act on.
pub(super) fn from_deserialize(
    file: &Path,
    text: &str,
    err: &serde_path_to_error::Error<yaml_serde::Error>,
) -> ConfigError {
    let inner = err.inner();
    let location = inner.location().map(|l| SourceLocation {
        line: l.line(),
        column: l.column(),
    });
    let path = key_path_of(err.path());
    let message = plain_wording(&bare_message(&inner.to_string(), location, &path));
    let at = location.unwrap_or(SourceLocation { line: 1, column: 1 });

    // A document that does not even parse as YAML is a syntax error, whatever the typed pass
    // happened to be doing when it stopped.
    if yaml_serde::from_str::<serde::de::IgnoredAny>(text).is_err() {
        let indented_with_tab = text
            .lines()
            .nth(at.line.saturating_sub(1))
            .is_some_and(|line| line.trim_start_matches(' ').starts_with('\t'));
        let hint = if indented_with_tab {
            " (YAML cannot be indented with tabs; use spaces)"
        } else {
            ""
        };
        return ConfigError::at(
            file,
            at,
            &KeyPath::root(),
            ConfigErrorKind::Syntax,
            format!("invalid YAML: {message}{hint}"),
        );
    }

    let parent = path.parent().unwrap_or_default();
    let last_key = path.last_key().unwrap_or_default().to_owned();

    if message.starts_with("unknown field") {
        let names = backticked(&message);
        let text = if names.first() == Some(&"<<") {
            "YAML merge keys (`<<: *anchor`) are not supported; write the keys out in full"
                .to_owned()
        } else {
            rewrite_unknown(&message, "key", "valid keys")
        };
        // serde_path_to_error includes the unknown key itself; the path names its parent.
        let shown = if last_key.is_empty() { &path } else { &parent };
        return ConfigError::at(file, at, shown, ConfigErrorKind::UnknownKey, text);
    }
    if message.starts_with("unknown variant") {
        let text = rewrite_unknown(&message, "value", "expected one of");
        return ConfigError::at(file, at, &path, ConfigErrorKind::Invalid, text);
    }
    if message.starts_with("duplicate field") {
        // serde reports a repeated struct key at the start of its mapping; point at the repeat.
        let key = backticked(&message).first().copied().unwrap_or_default();
        let map = SourceMap::build(text);
        let key_path = path.key(key);
        let second = map.key(&key_path, 1).unwrap_or(at);
        let first = map.key(&key_path, 0);
        let mut text = format!("key `{key}` is written twice");
        if let Some(first) = first {
            text.push_str(&format!(" (first at line {})", first.line));
        }
        return ConfigError::at(file, second, &path, ConfigErrorKind::Duplicate, text);
    }
    if message.starts_with(DUPLICATE_KEY) {
        let map = SourceMap::build(text);
        let noun = match parent.segments() {
            [Seg::Key(section)] if SERVER_SECTIONS.contains(&section.as_str()) => "provider id",
            [Seg::Key(section)] if section == "plugins" => "plugin name",
            _ => "key",
        };
        let mut text = format!("duplicate {noun} `{last_key}`");
        if let Some(first) = map.key(&path, 0) {
            text.push_str(&format!(" (first defined at line {})", first.line));
        }
        return ConfigError::at(file, at, &parent, ConfigErrorKind::Duplicate, text);
    }
    if message.starts_with(&format!("invalid provider id `{last_key}`"))
        || message.starts_with(&format!("invalid plugin name `{last_key}`:"))
    {
        return ConfigError::at(file, at, &parent, ConfigErrorKind::Invalid, message);
    }
    if message.starts_with(super::schema::BOTH_SECTIONS) {
        return ConfigError::at(
            file,
            at,
            &KeyPath::root(),
            ConfigErrorKind::Duplicate,
            message,
        );
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        let text = format!("missing required key {rest}");
        return ConfigError::at(file, at, &path, ConfigErrorKind::Invalid, text);
    }
    ConfigError::at(file, at, &path, ConfigErrorKind::Invalid, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_and_nothing_else() {
        let keys = ["mode", "command", "args", "idle_ttl_s", "env"];
        assert_eq!(suggest("comand", &keys), Some("command"));
        assert_eq!(suggest("Command", &keys), Some("command"));
        assert_eq!(suggest("idle_ttl", &keys), Some("idle_ttl_s"));
        assert_eq!(suggest("mdoe", &keys), Some("mode"));
        assert_eq!(suggest("banana", &keys), None);
        assert_eq!(suggest("idle", &keys), Some("idle_ttl_s"));
        assert_eq!(
            suggest("allow", &["allow_list", "deny_list"]),
            Some("allow_list")
        );
        assert_eq!(suggest("a", &["allow_list", "args"]), None);
        assert_eq!(suggest("x", &keys), None);
        assert_eq!(
            suggest("mcpServers", &["mcp_servers", "providers"]),
            Some("mcp_servers")
        );
    }

    #[test]
    fn unknown_field_wording_is_rewritten_with_a_suggestion() {
        let text = rewrite_unknown(
            "unknown field `comand`, expected one of `mode`, `command`, `args`",
            "key",
            "valid keys",
        );
        assert_eq!(
            text,
            "unknown key `comand`; did you mean `command`? (valid keys: mode, command, args)"
        );
        let text = rewrite_unknown(
            "unknown field `zzz`, expected `a` or `b`",
            "key",
            "valid keys",
        );
        assert_eq!(text, "unknown key `zzz` (valid keys: a, b)");
    }

    #[test]
    fn rust_type_names_never_reach_the_reader() {
        assert_eq!(
            plain_wording("invalid type: string \"x\", expected struct RawSpec"),
            "invalid type: string \"x\", expected a map of provider settings"
        );
        assert_eq!(
            plain_wording("invalid type: string \"x\", expected struct RawAuth"),
            "invalid type: string \"x\", expected a map of settings"
        );
        assert_eq!(
            plain_wording("invalid type: string \"x\", expected a sequence"),
            "invalid type: string \"x\", expected a list"
        );
    }

    #[test]
    fn display_puts_file_line_column_and_path_first() {
        let err = ConfigError::at(
            Path::new("examples/bad.yaml"),
            SourceLocation {
                line: 9,
                column: 18,
            },
            &KeyPath::root()
                .key("providers")
                .key("math")
                .key("idle_ttl_s"),
            ConfigErrorKind::Invalid,
            "invalid type: string \"soon\", expected an integer (seconds)",
        );
        assert_eq!(
            err.to_string(),
            "examples/bad.yaml:9:18: providers.math.idle_ttl_s: invalid type: string \"soon\", \
             expected an integer (seconds)"
        );
        let io = ConfigError::io(
            Path::new("nope.yaml"),
            &std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert!(
            io.to_string()
                .starts_with("nope.yaml: cannot read the config file")
        );
    }
}
