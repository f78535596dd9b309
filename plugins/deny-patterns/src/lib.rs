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
use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

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
        let scanned = scan(&self.config, &call.arguments_json);
        match scanned {
            Ok(None) => Verdict::Allow,
            Ok(Some(denial)) => {
                let reason = denial.reason();
                log(
                    Level::Info,
                    &format!("denied {}/{}: {reason}", call.provider, call.tool),
                );
                Verdict::Deny(reason)
            }
            Err(err) => Verdict::Deny(format!("deny-patterns: arguments are not JSON: {err}")),
        }
    }
}

/// The first denial in the arguments, in document order. The JSON is checked as it is parsed,
/// string by string, without building a tree: validation is on every call's path, and most
/// calls are allowed.
fn scan(config: &Config, json: &str) -> Result<Option<Denial>, serde_json::Error> {
    let mut parser = serde_json::Deserializer::from_str(json);
    let found = Node { config, key: None }.deserialize(&mut parser)?;
    parser.end()?;
    Ok(found)
}

/// A value under object key `key` (the nearest one above it, for arrays).
struct Node<'a> {
    config: &'a Config,
    key: Option<&'a str>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Option<Denial>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Option<Denial>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(check_string(self.config, self.key, text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut index = 0usize;
        while let Some(denial) = items.next_element_seed(Node {
            config: self.config,
            key: self.key,
        })? {
            if found.is_none() {
                found = denial.map(|d| d.under(&index.to_string()));
            }
            index += 1;
        }
        Ok(found)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key_seed(Key)? {
            let denial = map.next_value_seed(Node {
                config: self.config,
                key: Some(&key),
            })?;
            if found.is_none() {
                found = denial.map(|d| d.under(&key));
            }
        }
        Ok(found)
    }
}

/// An object key, borrowed from the input unless it has escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
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
        ["path", "file", "dir"]
            .iter()
            .any(|word| contains_ignoring_ascii_case(k, word))
    });
    by_key
        || text.starts_with('/')
        || text.starts_with('~')
        || text.starts_with("./")
        || text.starts_with("../")
}

/// Whether `word` (lowercase ASCII) occurs in `text`, ignoring ASCII case; no allocation, as
/// it runs for every keyed string of every call.
fn contains_ignoring_ascii_case(text: &str, word: &str) -> bool {
    text.as_bytes()
        .windows(word.len())
        .any(|window| window.eq_ignore_ascii_case(word.as_bytes()))
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
