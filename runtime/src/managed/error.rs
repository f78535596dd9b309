//! Errors a caller of the registry gets: each says what failed and what to do about it.

use std::time::Duration;

use serde_json::{Value, json};

#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    #[error("provider `{provider}` not found{}", did_you_mean(.suggestions))]
    ProviderNotFound {
        provider: String,
        suggestions: Vec<String>,
    },
    #[error("tool `{tool}` not found on provider `{provider}`{}", did_you_mean(.suggestions))]
    ToolNotFound {
        provider: String,
        tool: String,
        suggestions: Vec<String>,
    },
    /// The `tools:` policy of the provider (or of the member within its group, or of the
    /// group) hides the tool. Refused before anything reached a provider.
    #[error(
        "tool `{tool}` of provider `{provider}` is not exposed ({reason}); the `tools:` policy in the config hides it: call another tool, or change that policy"
    )]
    ToolNotExposed {
        provider: String,
        tool: String,
        /// Why, e.g. "denied by tools.deny_list pattern `delete_*`".
        reason: String,
    },
    #[error("{message}{}", stderr_section(*.has_stderr, .stderr_tail))]
    StartFailed {
        provider: String,
        message: String,
        stderr_tail: Vec<String>,
        /// Whether the provider runs here and has a stderr to show (not a remote one).
        has_stderr: bool,
    },
    #[error(
        "call to `{tool}` on provider `{provider}` timed out after {:.1}s; the provider was sent notifications/cancelled. Pass a larger `timeout` or check the provider",
        .limit.as_secs_f64()
    )]
    Timeout {
        provider: String,
        tool: String,
        limit: Duration,
    },
    #[error(
        "provider `{provider}` failed while calling `{tool}`: {detail}; it will be restarted on the next call"
    )]
    ProviderFailed {
        provider: String,
        tool: String,
        detail: String,
    },
    #[error("provider `{provider}` answered `{tool}` with a protocol error: {message}")]
    Protocol {
        provider: String,
        tool: String,
        code: i32,
        message: String,
    },
    #[error(
        "the hangar is shutting down; provider `{provider}` takes no new calls and is not started"
    )]
    ShuttingDown { provider: String },
    #[error(
        "rate limit of {scope} exceeded; retry after {:.2}s",
        .retry_after.as_secs_f64()
    )]
    RateLimited {
        scope: String,
        retry_after: Duration,
    },
    #[error(
        "circuit breaker of {scope} is open after repeated failures; calls fail fast until the next attempt is allowed in {:.1}s",
        .retry_after.as_secs_f64()
    )]
    CircuitOpen {
        scope: String,
        retry_after: Duration,
    },
    #[error(
        "provider `{provider}` is busy: {running} call(s) running at its max_concurrency and {queued} queued; retry later, or raise `max_concurrency` / `max_queue`"
    )]
    Overloaded {
        provider: String,
        running: u32,
        queued: u32,
    },
    #[error("{detail}")]
    InvalidArguments {
        provider: String,
        tool: String,
        detail: String,
        violations: Value,
    },
    #[error(
        "no member of group `{group}` could take the call{}",
        render_attempts(.attempts)
    )]
    NoHealthyMember {
        group: String,
        /// What happened on each member tried, in order.
        attempts: Vec<String>,
    },
    /// A validator plugin refused the call (or failed with `on_error: fail_closed`). The
    /// provider never saw it.
    #[error(
        "call to `{tool}` on provider `{provider}` was refused by validator plugin `{plugin}`: {reason}"
    )]
    Denied {
        provider: String,
        tool: String,
        plugin: String,
        reason: String,
    },
    /// A group's policy plugin failed and its `on_error` is fail_closed.
    #[error(
        "group `{group}` could not pick a member: its policy plugin failed ({detail}) and its on_error is fail_closed; fix the plugin or set `on_error: fail_open` to fall back to round_robin"
    )]
    PolicyFailed { group: String, detail: String },
}

impl InvokeError {
    /// A stable name for the kind of failure, as the original's clients expect in `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            InvokeError::ProviderNotFound { .. } => "ProviderNotFoundError",
            InvokeError::ToolNotFound { .. } => "ToolNotFoundError",
            InvokeError::ToolNotExposed { .. } => "ToolAccessDeniedError",
            InvokeError::StartFailed { .. } => "ProviderStartError",
            InvokeError::Timeout { .. } => "ToolTimeoutError",
            InvokeError::ProviderFailed { .. } => "ProviderFailedError",
            InvokeError::Protocol { .. } => "ToolInvocationError",
            InvokeError::ShuttingDown { .. } => "ShuttingDownError",
            InvokeError::RateLimited { .. } => "RateLimitExceeded",
            InvokeError::CircuitOpen { .. } => "CircuitOpenError",
            InvokeError::Overloaded { .. } => "ProviderOverloadedError",
            InvokeError::InvalidArguments { .. } => "ValidationError",
            InvokeError::NoHealthyMember { .. } => "NoHealthyMemberError",
            InvokeError::Denied { .. } => "PolicyDeniedError",
            InvokeError::PolicyFailed { .. } => "PolicyError",
        }
    }

    pub fn provider(&self) -> &str {
        match self {
            InvokeError::ProviderNotFound { provider, .. }
            | InvokeError::ToolNotFound { provider, .. }
            | InvokeError::ToolNotExposed { provider, .. }
            | InvokeError::StartFailed { provider, .. }
            | InvokeError::Timeout { provider, .. }
            | InvokeError::ProviderFailed { provider, .. }
            | InvokeError::Protocol { provider, .. }
            | InvokeError::ShuttingDown { provider }
            | InvokeError::Overloaded { provider, .. }
            | InvokeError::InvalidArguments { provider, .. }
            | InvokeError::Denied { provider, .. } => provider,
            InvokeError::RateLimited { scope, .. } | InvokeError::CircuitOpen { scope, .. } => {
                scope
            }
            InvokeError::NoHealthyMember { group, .. }
            | InvokeError::PolicyFailed { group, .. } => group,
        }
    }

    /// Whether the provider itself failed (as opposed to the caller asking for something wrong).
    pub fn is_provider_failure(&self) -> bool {
        matches!(
            self,
            InvokeError::StartFailed { .. }
                | InvokeError::Timeout { .. }
                | InvokeError::ProviderFailed { .. }
        )
    }

    /// Whether a group may retry the call on another member: nothing reached this member's
    /// tool (it did not start, its connection broke before an answer, or it refused admission).
    pub fn allows_failover(&self) -> bool {
        matches!(
            self,
            InvokeError::StartFailed { .. }
                | InvokeError::ProviderFailed { .. }
                | InvokeError::CircuitOpen { .. }
                | InvokeError::Overloaded { .. }
                | InvokeError::RateLimited { .. }
        )
    }

    /// The structured form sent to clients next to the text.
    pub fn to_json(&self) -> Value {
        let mut details = json!({});
        match self {
            InvokeError::ProviderNotFound { suggestions, .. } => {
                details["suggestions"] = json!(suggestions)
            }
            InvokeError::ToolNotFound {
                tool, suggestions, ..
            } => {
                details["tool"] = json!(tool);
                details["suggestions"] = json!(suggestions);
            }
            InvokeError::ToolNotExposed { tool, reason, .. } => {
                details["tool"] = json!(tool);
                details["reason"] = json!(reason);
            }
            InvokeError::StartFailed { stderr_tail, .. } => {
                details["stderr_tail"] = json!(stderr_tail)
            }
            InvokeError::Timeout { tool, limit, .. } => {
                details["tool"] = json!(tool);
                details["timeout_s"] = json!(limit.as_secs_f64());
            }
            InvokeError::ProviderFailed { tool, .. } => details["tool"] = json!(tool),
            InvokeError::Protocol { tool, code, .. } => {
                details["tool"] = json!(tool);
                details["code"] = json!(code);
            }
            InvokeError::ShuttingDown { .. } => {}
            InvokeError::RateLimited { retry_after, .. }
            | InvokeError::CircuitOpen { retry_after, .. } => {
                details["retry_after_s"] = json!(retry_after.as_secs_f64())
            }
            InvokeError::Overloaded {
                running, queued, ..
            } => {
                details["running"] = json!(running);
                details["queued"] = json!(queued);
            }
            InvokeError::InvalidArguments {
                tool, violations, ..
            } => {
                details["tool"] = json!(tool);
                details["validation"] = violations.clone();
            }
            InvokeError::NoHealthyMember { attempts, .. } => details["attempts"] = json!(attempts),
            InvokeError::Denied {
                tool,
                plugin,
                reason,
                ..
            } => {
                details["tool"] = json!(tool);
                details["plugin"] = json!(plugin);
                details["reason"] = json!(reason);
            }
            InvokeError::PolicyFailed { detail, .. } => details["plugin_error"] = json!(detail),
        }
        json!({
            "error": self.to_string(),
            "type": self.kind(),
            "provider": self.provider(),
            "details": details,
        })
    }
}

fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => format!(
            "; did you mean one of: {}?",
            many.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn render_attempts(attempts: &[String]) -> String {
    if attempts.is_empty() {
        "; none is in rotation (see registry_group_list)".to_string()
    } else {
        format!(": {}", attempts.join("; "))
    }
}

fn stderr_section(has_stderr: bool, tail: &[String]) -> String {
    if !has_stderr {
        String::new()
    } else if tail.is_empty() {
        "; last stderr lines of the provider:\n(the provider wrote nothing to stderr)".to_string()
    } else {
        format!("; last stderr lines of the provider:\n{}", tail.join("\n"))
    }
}

/// The names closest to `wanted`, best first: close edit distance or a shared prefix/substring.
/// With nothing close, all names (up to 10) so the caller still sees what exists.
pub fn closest<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let names: Vec<&str> = names.into_iter().collect();
    let wanted_lc = wanted.to_lowercase();
    let mut scored: Vec<(f64, &str)> = names
        .iter()
        .map(|n| {
            let n_lc = n.to_lowercase();
            let mut score = strsim::jaro_winkler(&wanted_lc, &n_lc);
            if !wanted_lc.is_empty() && (n_lc.contains(&wanted_lc) || wanted_lc.contains(&n_lc)) {
                score = score.max(0.9);
            }
            (score, *n)
        })
        .filter(|(s, _)| *s >= 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    if scored.is_empty() {
        let mut all: Vec<String> = names.iter().take(10).map(|s| s.to_string()).collect();
        all.sort();
        return all;
    }
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_puts_the_typo_match_first() {
        let got = closest("ad", ["add", "echo", "sleep"]);
        assert_eq!(got.first().map(String::as_str), Some("add"));
    }

    #[test]
    fn closest_lists_what_exists_when_nothing_is_close() {
        let got = closest("zzz", ["add", "echo"]);
        assert_eq!(got, vec!["add".to_string(), "echo".to_string()]);
    }

    #[test]
    fn a_hidden_tool_says_which_pattern_hides_it() {
        let e = InvokeError::ToolNotExposed {
            provider: "files".into(),
            tool: "delete_all".into(),
            reason: "denied by tools.deny_list pattern `delete_*`".into(),
        };
        assert!(
            e.to_string().starts_with(
                "tool `delete_all` of provider `files` is not exposed (denied by tools.deny_list pattern `delete_*`)"
            ),
            "{e}"
        );
        let j = e.to_json();
        assert_eq!(j["type"], "ToolAccessDeniedError");
        assert_eq!(j["details"]["tool"], "delete_all");
        assert!(!e.is_provider_failure() && !e.allows_failover());
    }

    #[test]
    fn not_found_message_names_the_suggestion() {
        let e = InvokeError::ProviderNotFound {
            provider: "mth".into(),
            suggestions: vec!["math".into()],
        };
        assert_eq!(
            e.to_string(),
            "provider `mth` not found; did you mean `math`?"
        );
        assert_eq!(e.to_json()["type"], "ProviderNotFoundError");
    }
}
