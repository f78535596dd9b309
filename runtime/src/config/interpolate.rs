//! `${VAR}`, `${VAR:-default}` and `$$` in config strings.
//!
//! Substitution runs once, on the typed value, only for the keys that are documented to take it
//! (command, args, cwd, env, endpoint, image, volumes, user, build, auth, tls, http headers, and
//! every string inside a plugin's `config:`). A plugin's `path` and `preopens` are not among
//! them: they are shown in full in the normalised output, and a substituted value would be `***`.
//! The original interpolated the whole document; doing it per key keeps a `${...}` in a
//! description or a tool schema literal, and means a section we ignore cannot fail the load
//! for a variable it alone needs. A substituted value is never scanned again, so a secret that
//! itself contains `${x}` is used as written (the original learned this the hard way).

use std::fmt;

use super::secret::key_looks_secret;

/// The result of interpolating one string.
#[derive(Debug, PartialEq, Eq)]
pub struct Interpolated {
    pub value: String,
    /// Whether any `${...}` was substituted; such values are treated as secrets.
    pub substituted: bool,
    /// The values substituted for variables whose names look secret (`${API_TOKEN}`), as
    /// they are: a provider may print the token alone, without the rest of the string it was
    /// written into, and that must be cut from what it prints too.
    pub secret_parts: Vec<String>,
}

/// Why a string could not be interpolated. Never carries a variable's value.
#[derive(Debug, PartialEq, Eq)]
pub enum InterpolationError {
    /// `${VAR}` with `VAR` unset and no default.
    Missing { var: String },
    /// `${` with no closing `}`.
    Unterminated,
    /// `${...}` whose name is not `[A-Za-z_][A-Za-z0-9_]*`.
    InvalidName { reference: String },
}

impl fmt::Display for InterpolationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { var } => write!(
                f,
                "environment variable `{var}` is not set; set it, or write `${{{var}:-default}}` \
                 to fall back to a default"
            ),
            Self::Unterminated => {
                f.write_str("`${` is not closed by `}`; write `$${` for a literal `${`")
            }
            Self::InvalidName { reference } => write!(
                f,
                "`${{{reference}}}` is not a variable reference (names are letters, digits and \
                 `_`, not starting with a digit); write `$$` for a literal `$`"
            ),
        }
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Substitutes `${VAR}` and `${VAR:-default}` from `env` and turns `$$` into `$`.
///
/// `${VAR:-default}` uses the default when `VAR` is unset *or empty*, as a POSIX shell and
/// docker compose do. A `$` not followed by `{` or `$` is kept as written.
pub fn interpolate(
    input: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, InterpolationError> {
    let mut value = String::with_capacity(input.len());
    let mut substituted = false;
    let mut secret_parts = Vec::new();
    let mut rest = input;
    while let Some(dollar) = rest.find('$') {
        value.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            value.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let close = body.find('}').ok_or(InterpolationError::Unterminated)?;
            let reference = &body[..close];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            if !is_var_name(name) {
                return Err(InterpolationError::InvalidName {
                    reference: reference.to_owned(),
                });
            }
            let resolved = match (env(name), default) {
                (Some(found), Some(default)) if found.is_empty() => default.to_owned(),
                (Some(found), _) => found,
                (None, Some(default)) => default.to_owned(),
                (None, None) => {
                    return Err(InterpolationError::Missing {
                        var: name.to_owned(),
                    });
                }
            };
            value.push_str(&resolved);
            substituted = true;
            if key_looks_secret(name) && !resolved.is_empty() {
                secret_parts.push(resolved);
            }
            rest = &body[close + 1..];
        } else {
            value.push('$');
            rest = after;
        }
    }
    value.push_str(rest);
    Ok(Interpolated {
        value,
        substituted,
        secret_parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/me".into()),
            "TOKEN" => Some("s3cr${x}t".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn run(input: &str) -> Result<Interpolated, InterpolationError> {
        interpolate(input, &env)
    }

    #[test]
    fn variables_are_substituted_and_marked() {
        assert_eq!(
            run("${HOME}/data").ok(),
            Some(Interpolated {
                value: "/home/me/data".into(),
                substituted: true,
                secret_parts: vec![],
            })
        );
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        assert_eq!(run("${NOPE:-x}").map(|i| i.value).ok(), Some("x".into()));
        assert_eq!(run("${EMPTY:-x}").map(|i| i.value).ok(), Some("x".into()));
        assert_eq!(run("${NOPE:-}").map(|i| i.value).ok(), Some(String::new()));
        assert_eq!(
            run("${HOME:-x}").map(|i| i.value).ok(),
            Some("/home/me".into())
        );
    }

    #[test]
    fn double_dollar_is_a_literal_dollar_and_plain_text_is_not_marked() {
        assert_eq!(
            run("price $$5 and $$${HOME} and $PATH").ok(),
            Some(Interpolated {
                value: "price $5 and $/home/me and $PATH".into(),
                substituted: true,
                secret_parts: vec![],
            })
        );
        assert_eq!(
            run("a$$b").ok(),
            Some(Interpolated {
                value: "a$b".into(),
                substituted: false,
                secret_parts: vec![],
            })
        );
    }

    #[test]
    fn substituted_text_is_not_interpolated_again() {
        assert_eq!(
            run("${TOKEN}").map(|i| i.value).ok(),
            Some("s3cr${x}t".into())
        );
    }

    #[test]
    fn missing_variable_is_named_and_malformed_references_are_errors() {
        assert_eq!(
            run("a${MISSING}b"),
            Err(InterpolationError::Missing {
                var: "MISSING".into()
            })
        );
        assert_eq!(run("${HOME"), Err(InterpolationError::Unterminated));
        assert_eq!(
            run("${1ABC}"),
            Err(InterpolationError::InvalidName {
                reference: "1ABC".into()
            })
        );
        let message = InterpolationError::Missing { var: "X".into() }.to_string();
        assert!(message.contains("`X` is not set"), "{message}");
        assert!(message.contains("${X:-default}"), "{message}");
    }

    #[test]
    fn values_of_secret_looking_variables_are_kept_apart() {
        let done = run("--token=${TOKEN} --home=${HOME}").expect("interpolates");
        assert_eq!(done.value, "--token=s3cr${x}t --home=/home/me");
        assert_eq!(done.secret_parts, vec!["s3cr${x}t".to_string()]);
    }
}
