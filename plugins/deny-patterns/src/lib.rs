//! `deny-patterns`: a validator plugin for the hangar (WIT `hangar:plugin@0.2.0`, world
//! `validator-plugin`).
//!
//! It refuses a call when any string in its arguments (at any depth) contains one of the
//! configured patterns, or names a path outside `allowed_root`. Patterns are plain substrings,
//! compared case-sensitively: no regular expressions, so a pattern means exactly what it says
//! and costs nothing to check. Strings are compared as JSON decodes them, so an escape
//! (`rm \u002drf`) hides nothing. Object keys are not checked, only values.
//!
//! Config (`config:` of the plugin in the hangar's file, handed over as JSON):
//!
//! ```json
//! {"patterns": ["rm -rf", "DROP TABLE"], "allowed_root": "/data"}
//! ```
//!
//! A string is taken as a path when it starts with `/`, `~`, `./` or `../`, or when its key's
//! name (the nearest key above it, for a string in an array) contains `path`, `file` or `dir`.
//! Relative paths are resolved against `allowed_root`; `.` and `..` are resolved lexically (the
//! plugin has no filesystem, so symlinks are not followed — pair it with the provider's own
//! sandbox for that).
//!
//! A denial names the argument by its JSON pointer and the pattern it contains, never the
//! string itself (it may be the secret the pattern is there to stop); a path outside the root is
//! named, with the root. Arguments that are not JSON are denied, with what is wrong and where.
//!
//! Build: `cargo build --release --target wasm32-wasip2`.

use hangar_plugin_sdk::{Config as PluginConfig, Invocation, Level, Validator, Verdict, log};
use memchr::memmem::Finder;
use serde::Deserialize;

mod scan;

use self::scan::{Malformed, Scanner};

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

/// A denied substring and its searcher, built once per config.
struct Pattern {
    text: String,
    finder: Finder<'static>,
}

/// `allowed_root`, normalised, and its segments (`/data/x` → `data`, `x`).
struct Root {
    path: String,
    segments: Vec<String>,
}

#[derive(Default)]
struct DenyPatterns {
    patterns: Vec<Pattern>,
    root: Option<Root>,
    /// Buffers of the scan, kept from call to call so a call allocates nothing once the
    /// instance has seen arguments as deep and as escaped as these.
    scratch: scan::Scratch,
}

impl Validator for DenyPatterns {
    fn configure(&mut self, config: &PluginConfig) -> Result<(), String> {
        let config: Config = config
            .parse()
            .map_err(|err| format!("deny-patterns: {err}"))?;
        if let Some(pattern) = config.patterns.iter().find(|p| p.is_empty()) {
            return Err(format!(
                "deny-patterns: invalid config: the empty pattern {pattern:?} would deny every call"
            ));
        }
        let root = match &config.allowed_root {
            Some(root) if !root.starts_with('/') => {
                return Err(format!(
                    "deny-patterns: invalid config: `allowed_root` must be absolute, got {root:?}"
                ));
            }
            Some(root) => {
                let path = normalize("/", root);
                let segments = path
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                Some(Root { path, segments })
            }
            None => None,
        };
        self.patterns = config
            .patterns
            .into_iter()
            .map(|text| Pattern {
                finder: Finder::new(text.as_bytes()).into_owned(),
                text,
            })
            .collect();
        self.root = root;
        Ok(())
    }

    fn validate(&mut self, call: &Invocation) -> Verdict {
        // The arguments are the only part read, unless there is a denial to log.
        let scanned = Scanner::new(
            &self.patterns,
            self.root.as_ref(),
            &mut self.scratch,
            call.arguments_json(),
        )
        .run();
        match scanned {
            Ok(None) => Verdict::Allow,
            Ok(Some(reason)) => {
                log(
                    Level::Info,
                    &format!("denied {}/{}: {reason}", call.provider(), call.tool()),
                );
                Verdict::Deny(reason)
            }
            Err(Malformed { what, at }) => Verdict::Deny(format!(
                "deny-patterns: arguments are not JSON: {what} at byte {at}"
            )),
        }
    }
}

/// Why `text` (a string value) is denied, if it is. `escaped`: it had escapes, so it is
/// searched for every pattern; otherwise only for those the raw arguments contain
/// (`in_text`), since an unescaped string is a piece of the raw text.
fn denial(
    patterns: &[Pattern],
    in_text: &[bool],
    escaped: bool,
    root: Option<&Root>,
    key_is_pathy: bool,
    text: &str,
) -> Option<String> {
    let found = patterns.iter().zip(in_text).find(|(pattern, hit)| {
        (escaped || **hit) && pattern.finder.find(text.as_bytes()).is_some()
    });
    if let Some((pattern, _)) = found {
        return Some(format!("contains the denied pattern `{}`", pattern.text));
    }
    let root = root?;
    (looks_like_path(key_is_pathy, text) && outside(root, text))
        .then(|| format!("names the path `{text}`, which is outside `{}`", root.path))
}

fn looks_like_path(key_is_pathy: bool, text: &str) -> bool {
    key_is_pathy
        || text.starts_with('/')
        || text.starts_with('~')
        || text.starts_with("./")
        || text.starts_with("../")
}

/// Whether a key names a path: it contains `path`, `file` or `dir`, in any ASCII case.
fn key_is_pathy(key: &str) -> bool {
    ["path", "file", "dir"]
        .iter()
        .any(|word| contains_ignoring_ascii_case(key, word))
}

/// Whether `word` (lowercase ASCII) occurs in `text`, ignoring ASCII case; no allocation, as
/// it runs for every key of every call that has an `allowed_root`.
fn contains_ignoring_ascii_case(text: &str, word: &str) -> bool {
    text.as_bytes()
        .windows(word.len())
        .any(|window| window.eq_ignore_ascii_case(word.as_bytes()))
}

/// Whether `text` (a leading `~` taken as `/`), resolved against the root when relative and
/// normalised lexically (`.`, `..`, repeated `/`; `..` never climbs above `/`), lies outside
/// the root. Without building the resolved path: it follows how many of the root's segments
/// the resolved path begins with, as segments are pushed and popped.
fn outside(root: &Root, text: &str) -> bool {
    let wanted = root.segments.len();
    let path = text.strip_prefix('~').unwrap_or(text);
    // (segments of the resolved path so far, how many of them are the root's first ones)
    let (mut depth, mut matched) = if path.starts_with('/') {
        (0, 0)
    } else {
        (wanted, wanted)
    };
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth = depth.saturating_sub(1);
                matched = matched.min(depth);
            }
            part => {
                if matched == depth && root.segments.get(depth).is_some_and(|s| s == part) {
                    matched += 1;
                }
                depth += 1;
            }
        }
    }
    matched < wanted
}

/// `path` resolved against `base` (when relative), with `.`, `..` and repeated `/` removed.
/// `..` never climbs above `/`. For the config only: calls use [`outside`], which allocates
/// nothing.
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

#[cfg(test)]
mod tests;
