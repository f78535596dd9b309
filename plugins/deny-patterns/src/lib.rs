//! `deny-patterns`: a validator plugin for the hangar (WIT `hangar:plugin@0.1.0`, world
//! `validator-plugin`).
//!
//! It refuses a call when any string in its arguments (at any depth) contains one of the
//! configured patterns, or names a path outside `allowed_root`. Patterns are plain substrings,
//! compared case-sensitively: no regular expressions, so a pattern means exactly what it says
//! and costs nothing to check.
//!
//! Config (`config:` of the plugin in the hangar's file, handed over as JSON):
//!
//! ```json
//! {"patterns": ["rm -rf", "DROP TABLE"], "allowed_root": "/data"}
//! ```
//!
//! A string is taken as a path when it starts with `/`, `~`, `./` or `../`, or when its key's
//! name contains `path`, `file` or `dir`. Relative paths are resolved against `allowed_root`;
//! `.` and `..` are resolved lexically (the plugin has no filesystem, so symlinks are not
//! followed — pair it with the provider's own sandbox for that).
//!
//! Build: `cargo build --release --target wasm32-wasip2`.

use hangar_plugin_sdk::{Config as PluginConfig, Invocation, Level, Validator, Verdict, log};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Substrings no argument string may contain.
    #[serde(default)]
    patterns: Vec<String>,
    /// When set, every path-like argument must lie under it.
    #[serde(default)]
    allowed_root: Option<String>,
}

#[derive(Default)]
struct DenyPatterns {
    config: Config,
}

impl Validator for DenyPatterns {
    fn configure(&mut self, config: &PluginConfig) -> Result<(), String> {
        let mut config: Config = config
            .parse()
            .map_err(|err| format!("deny-patterns: {err}"))?;
        if let Some(pattern) = config.patterns.iter().find(|p| p.is_empty()) {
            return Err(format!(
                "deny-patterns: invalid config: the empty pattern {pattern:?} would deny every call"
            ));
        }
        if let Some(root) = &config.allowed_root {
            if !root.starts_with('/') {
                return Err(format!(
                    "deny-patterns: invalid config: `allowed_root` must be absolute, got {root:?}"
                ));
            }
            config.allowed_root = Some(normalize("/", root));
        }
        self.config = config;
        Ok(())
    }

    fn validate(&mut self, call: &Invocation) -> Verdict {
        let config = &self.config;
        let arguments: Value = match call.arguments() {
            Ok(value) => value,
            Err(err) => {
                return Verdict::Deny(format!("deny-patterns: arguments are not JSON: {err}"));
            }
        };
        match check(config, None, &arguments).map(|denial| denial.reason()) {
            Some(reason) => {
                log(
                    Level::Info,
                    &format!("denied {}/{}: {reason}", call.provider, call.tool),
                );
                Verdict::Deny(reason)
            }
            None => Verdict::Allow,
        }
    }
}

/// The reason to deny `value` (under object key `key`), if any. `at` is the JSON pointer of
/// `value`, built only for a denial (most calls are allowed, and most values are short).
fn check(config: &Config, key: Option<&str>, value: &Value) -> Option<Denial> {
    match value {
        Value::String(text) => check_string(config, key, text),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| check(config, key, item).map(|d| d.under(&i.to_string()))),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| check(config, Some(k), v).map(|d| d.under(k))),
        _ => None,
    }
}

/// Why a string was denied, and the pointer to it, built from the leaf up.
struct Denial {
    /// Pointer segments, leaf first.
    at: Vec<String>,
    what: String,
}

impl Denial {
    fn under(mut self, segment: &str) -> Self {
        self.at.push(segment.replace('~', "~0").replace('/', "~1"));
        self
    }

    fn reason(&self) -> String {
        let at = if self.at.is_empty() {
            "/".to_owned()
        } else {
            self.at.iter().rev().map(|s| format!("/{s}")).collect()
        };
        format!("argument `{at}` {}", self.what)
    }
}

fn check_string(config: &Config, key: Option<&str>, text: &str) -> Option<Denial> {
    if let Some(pattern) = config.patterns.iter().find(|p| text.contains(p.as_str())) {
        return Some(Denial {
            at: Vec::new(),
            what: format!("contains the denied pattern `{pattern}`"),
        });
    }
    let root = config.allowed_root.as_deref()?;
    if !looks_like_path(key, text) {
        return None;
    }
    let resolved = normalize(root, text.strip_prefix('~').unwrap_or(text));
    let inside = resolved == root
        || root == "/"
        || resolved
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'));
    (!inside).then(|| Denial {
        at: Vec::new(),
        what: format!("names the path `{text}`, which is outside `{root}`"),
    })
}

fn looks_like_path(key: Option<&str>, text: &str) -> bool {
    let by_key = key.is_some_and(|k| {
        let k = k.to_ascii_lowercase();
        k.contains("path") || k.contains("file") || k.contains("dir")
    });
    by_key
        || text.starts_with('/')
        || text.starts_with('~')
        || text.starts_with("./")
        || text.starts_with("../")
}

/// `path` resolved against `base` (when relative), with `.`, `..` and repeated `/` removed.
/// `..` never climbs above `/`.
fn normalize(base: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{base}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

hangar_plugin_sdk::export_validator!(DenyPatterns);
