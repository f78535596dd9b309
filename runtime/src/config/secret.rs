//! A configured string that may be a secret.
//!
//! The clear text stays inside the process for the runtime to use (`expose`); every way of
//! printing the value (`Debug`, `Display`, the normalised config) shows `***` when it is secret.
//! There is deliberately no `Deref<Target = str>` and no `AsRef<str>`: reading the clear text
//! has to be spelled `expose()`, so a reviewer can find every place that does it.

use std::fmt;

/// What a secret prints as, everywhere.
pub const REDACTED: &str = "***";

/// Substrings of a key name (matched case-insensitively) that make its value a secret even when
/// it was written literally in the file: `API_KEY`, `Authorization`, `db_password`, …
const SECRET_KEY_MARKERS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "key",
    "credential",
    "auth",
];

/// Whether a key name (an env variable, an HTTP header, an auth field) looks like it holds a
/// secret. Deliberately over-inclusive: redacting a harmless value costs a `***` in a log,
/// printing a credential cannot be taken back.
pub fn key_looks_secret(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_KEY_MARKERS
        .iter()
        .any(|marker| lower.contains(marker))
}

/// A string from the config together with whether it must be redacted when shown.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MaybeSecret {
    value: String,
    secret: bool,
    /// Secret values that were substituted into `value` (see `Interpolated::secret_parts`).
    parts: Box<[String]>,
}

/// An environment value for a provider process (same type: value + secret flag).
pub type EnvValue = MaybeSecret;

impl MaybeSecret {
    /// A value that may be printed.
    pub fn plain(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            secret: false,
            parts: Box::default(),
        }
    }

    /// A value that must never be printed.
    pub fn secret(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            secret: true,
            parts: Box::default(),
        }
    }

    /// A value whose secrecy is decided by the caller.
    pub fn new(value: impl Into<String>, secret: bool) -> Self {
        Self {
            value: value.into(),
            secret,
            parts: Box::default(),
        }
    }

    /// This value, knowing which secrets were substituted into it.
    pub fn with_secret_parts(mut self, parts: Vec<String>) -> Self {
        self.parts = parts.into();
        self
    }

    /// The secrets substituted into this value, each as it was substituted.
    pub fn secret_parts(&self) -> &[String] {
        &self.parts
    }

    /// The clear text, for handing to a process, a header or a connection — never for logs.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Whether this value is redacted when shown.
    pub fn is_secret(&self) -> bool {
        self.secret
    }

    /// The text to show a person: the value, or `***` for a secret.
    pub fn redacted(&self) -> &str {
        if self.secret { REDACTED } else { &self.value }
    }
}

impl fmt::Debug for MaybeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.redacted(), f)
    }
}

impl fmt::Display for MaybeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_print_as_stars_but_expose_clear_text() {
        let token = MaybeSecret::secret("hunter2");
        assert_eq!(format!("{token}"), "***");
        assert_eq!(format!("{token:?}"), "\"***\"");
        assert_eq!(token.expose(), "hunter2");
        let plain = MaybeSecret::plain("python");
        assert_eq!(format!("{plain} {plain:?}"), "python \"python\"");
    }

    #[test]
    fn secret_looking_key_names_are_recognised() {
        for key in [
            "API_KEY",
            "Authorization",
            "GITHUB_TOKEN",
            "db_password",
            "PASSWD",
            "client_secret",
            "AWS_CREDENTIALS",
        ] {
            assert!(key_looks_secret(key), "{key} should look secret");
        }
        for key in ["PATH", "LOG_LEVEL", "HOME", "username", "X-Request-Id"] {
            assert!(!key_looks_secret(key), "{key} should not look secret");
        }
    }
}
