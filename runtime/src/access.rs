//! Who is calling, and which tools they may see and call.
//!
//! A [`Principal`] is made by the HTTP face once a request's credentials check out (an API key
//! or a bearer JWT) and travels to the gateway in the request's extensions: rmcp hands the
//! gateway the request's `http::request::Parts`, so the gateway reads it from there. A call
//! without a principal (stdio, or HTTP without `http.auth`) may do everything.
//!
//! Architecture invariant: the gateway lists exactly what it would let the caller call. Both
//! `tools/list` and `tools/call` ask [`Principal::may_call`] about the same offered name, and
//! the `registry_invoke*` tools ask it about the offered name of the tool they reach.

use std::fmt;
use std::sync::Arc;

use globset::{GlobSet, GlobSetBuilder};

use crate::config::tool_glob;

/// An authenticated caller of the HTTP face.
pub struct Principal {
    /// `api_key:NAME` or `jwt:SUBJECT`: what logs and errors call it.
    name: String,
    /// Patterns over offered tool names, as configured; empty: every tool.
    patterns: Vec<String>,
    tools: Option<GlobSet>,
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("name", &self.name)
            .field("tools", &self.patterns)
            .finish()
    }
}

impl Principal {
    /// A principal that may call the tools `patterns` match (every tool when empty). Patterns
    /// were checked when the config loaded; one that does not compile here matches nothing.
    pub fn new(name: impl Into<String>, patterns: &[String]) -> Arc<Self> {
        let tools = (!patterns.is_empty()).then(|| {
            let mut set = GlobSetBuilder::new();
            for p in patterns {
                if let Ok(glob) = tool_glob(p) {
                    set.add(glob);
                }
            }
            set.build().unwrap_or_else(|_| GlobSet::empty())
        });
        Arc::new(Self {
            name: name.into(),
            patterns: patterns.to_vec(),
            tools,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this principal may list and call the tool offered as `offered`.
    pub fn may_call(&self, offered: &str) -> bool {
        self.tools.as_ref().is_none_or(|set| set.is_match(offered))
    }

    /// Whether every tool is allowed (no list to filter).
    pub fn unrestricted(&self) -> bool {
        self.tools.is_none()
    }

    /// The refusal a call to `offered` gets, naming what this principal may call instead.
    pub fn refusal(&self, offered: &str) -> String {
        format!(
            "`{}` may not call `{offered}`: its tools are limited to {}; ask an operator to \
             extend `tools:` of its credentials in the hangar's `http.auth` config",
            self.name,
            self.patterns
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The principal a request carries in its extensions (HTTP with `http.auth`), if any.
pub fn of_request(extensions: &axum::http::Extensions) -> Option<Arc<Principal>> {
    extensions.get::<Arc<Principal>>().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_limit_what_a_principal_may_call_and_none_means_everything() {
        let p = Principal::new("api_key:ci", &["math__*".into(), "registry_list".into()]);
        assert!(p.may_call("math__add"));
        assert!(p.may_call("registry_list"));
        assert!(!p.may_call("registry_invoke"));
        assert!(!p.may_call("files__read"));
        assert!(
            p.refusal("files__read")
                .contains("`math__*`, `registry_list`")
        );
        let all = Principal::new("api_key:ops", &[]);
        assert!(all.unrestricted() && all.may_call("anything"));
    }
}
