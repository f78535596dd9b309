use std::fmt;

use serde_json::{Value, json};

/// Config keys named in error messages, so that the person who hits a limit knows what to change.
pub(super) const MAX_BYTES_SETTING: &str = "limits.max_argument_bytes";
pub(super) const MAX_DEPTH_SETTING: &str = "limits.max_argument_depth";

/// One way in which the arguments break the tool's input schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// RFC 6901 JSON pointer into the arguments; `""` is the arguments object itself (shown as `/`).
    pub pointer: String,
    /// What is wrong there, in the words of the JSON Schema keyword that failed.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{pointer}: {}", self.message)
    }
}

/// Why the hangar refused to forward a call's arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Counting stops as soon as the limit is passed, so `bytes` is a lower bound: the bytes
    /// counted up to that point.
    #[error(
        "arguments are too large: at least {bytes} bytes when serialized, over the limit of \
         {limit} bytes; send smaller arguments, or raise `{MAX_BYTES_SETTING}` in the config"
    )]
    TooLarge { bytes: usize, limit: usize },
    #[error(
        "arguments are nested {depth} levels deep, over the limit of {limit}; flatten them, or \
         raise `{MAX_DEPTH_SETTING}` in the config"
    )]
    TooDeep { depth: usize, limit: usize },
    /// `violations` holds the first few violations; `more` counts the ones left out.
    #[error("invalid arguments for tool `{tool}` of provider `{provider}`: {}", ListDisplay(violations, *more))]
    Schema {
        provider: String,
        tool: String,
        violations: Vec<Violation>,
        more: usize,
    },
}

impl ValidationError {
    /// The machine-readable form, for the `data` of the MCP error returned to the client.
    ///
    /// Every variant carries a `violations` list so that a client can read them all the same way;
    /// the limit errors report one violation at the root.
    pub fn to_json(&self) -> Value {
        let message = self.to_string();
        match self {
            Self::TooLarge { bytes, limit } => json!({
                "kind": "arguments_too_large",
                "message": message,
                "bytes": bytes,
                "limit": limit,
                "setting": MAX_BYTES_SETTING,
                "violations": [{ "pointer": "", "message": message }],
                "more": 0,
            }),
            Self::TooDeep { depth, limit } => json!({
                "kind": "arguments_too_deep",
                "message": message,
                "depth": depth,
                "limit": limit,
                "setting": MAX_DEPTH_SETTING,
                "violations": [{ "pointer": "", "message": message }],
                "more": 0,
            }),
            Self::Schema {
                provider,
                tool,
                violations,
                more,
            } => json!({
                "kind": "invalid_arguments",
                "message": message,
                "provider": provider,
                "tool": tool,
                "violations": violations
                    .iter()
                    .map(|v| json!({ "pointer": v.pointer, "message": v.message }))
                    .collect::<Vec<_>>(),
                "more": more,
            }),
        }
    }
}

/// `a; b; c … and 3 more`, without building an intermediate string.
struct ListDisplay<'a>(&'a [Violation], usize);

impl fmt::Display for ListDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, violation) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{violation}")?;
        }
        if self.1 > 0 {
            write!(f, "; … and {} more", self.1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_error(more: usize) -> ValidationError {
        ValidationError::Schema {
            provider: "math".into(),
            tool: "add".into(),
            violations: vec![
                Violation {
                    pointer: "/a".into(),
                    message: r#""x" is not of type "number""#.into(),
                },
                Violation {
                    pointer: String::new(),
                    message: r#""b" is a required property"#.into(),
                },
            ],
            more,
        }
    }

    #[test]
    fn schema_error_lists_violations_and_shows_root_pointer_as_slash() {
        assert_eq!(
            schema_error(0).to_string(),
            r#"invalid arguments for tool `add` of provider `math`: /a: "x" is not of type "number"; /: "b" is a required property"#
        );
    }

    #[test]
    fn schema_error_says_how_many_violations_were_left_out() {
        assert!(schema_error(7).to_string().ends_with("; … and 7 more"));
    }

    #[test]
    fn to_json_keeps_rfc6901_pointers_and_the_left_out_count() {
        let value = schema_error(3).to_json();
        assert_eq!(value["kind"], "invalid_arguments");
        assert_eq!(value["violations"][0]["pointer"], "/a");
        assert_eq!(value["violations"][1]["pointer"], "");
        assert_eq!(
            value["violations"][1]["message"],
            r#""b" is a required property"#
        );
        assert_eq!(value["more"], 3);
    }

    #[test]
    fn limit_errors_name_the_setting_in_json_and_text() {
        let error = ValidationError::TooDeep {
            depth: 40,
            limit: 32,
        };
        let value = error.to_json();
        assert_eq!(value["setting"], MAX_DEPTH_SETTING);
        assert_eq!(value["depth"], 40);
        assert_eq!(value["violations"][0]["pointer"], "");
        assert!(error.to_string().contains(MAX_DEPTH_SETTING));
    }
}
