//! Which tools a provider (or a member within its group) offers: the `tools: {allow_list,
//! deny_list}` policy of the config, compiled once.
//!
//! Both sides of the gateway read the same policy: lists (`tools/list`, `registry_tools`,
//! `registry_list`'s counts) drop the hidden tools, and a call of a hidden tool is refused
//! before anything reaches the provider — it is not even started for it.

use std::fmt;

use globset::{GlobSet, GlobSetBuilder};
use rmcp::model::Tool;

use crate::config::{ToolFilter, tool_glob};

/// A compiled `tools:` policy. When `allow_list` is not empty only the tools it matches are
/// offered and `deny_list` is not consulted (as in the original); otherwise every tool but those
/// `deny_list` matches.
#[derive(Debug)]
pub struct ToolExposure {
    rule: Rule,
}

#[derive(Debug)]
enum Rule {
    Allow { set: GlobSet, patterns: Vec<String> },
    Deny { set: GlobSet, patterns: Vec<String> },
}

/// Why a tool is not offered, worded to follow "tool `x` is not exposed (…)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hidden {
    /// No `allow_list` pattern matches the tool.
    NotAllowed { patterns: Vec<String> },
    /// This `deny_list` pattern matches it (the first that does, in file order).
    Denied { pattern: String },
}

impl fmt::Display for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hidden::Denied { pattern } => {
                write!(f, "denied by tools.deny_list pattern `{pattern}`")
            }
            Hidden::NotAllowed { patterns } => {
                f.write_str("matched by no tools.allow_list pattern: ")?;
                for (i, p) in patterns.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "`{p}`")?;
                }
                Ok(())
            }
        }
    }
}

impl ToolExposure {
    /// The policy of `filter`, or `None` when it hides nothing (both lists empty: only approval
    /// keys, say). A pattern that does not compile is refused at load, so `Err` here means a
    /// spec built in code with a bad pattern.
    pub fn new(filter: &ToolFilter) -> Result<Option<Self>, globset::Error> {
        let compile = |patterns: &[String]| -> Result<GlobSet, globset::Error> {
            let mut set = GlobSetBuilder::new();
            for p in patterns {
                set.add(tool_glob(p)?);
            }
            set.build()
        };
        let rule = if !filter.allow_list.is_empty() {
            Rule::Allow {
                set: compile(&filter.allow_list)?,
                patterns: filter.allow_list.clone(),
            }
        } else if !filter.deny_list.is_empty() {
            Rule::Deny {
                set: compile(&filter.deny_list)?,
                patterns: filter.deny_list.clone(),
            }
        } else {
            return Ok(None);
        };
        Ok(Some(Self { rule }))
    }

    /// The policy of an optional `tools:` map. A pattern that does not compile hides every
    /// tool: failing closed is the safe side of an access policy, and the config check at load
    /// makes it unreachable for specs read from a file.
    pub fn from_spec(filter: Option<&ToolFilter>, owner: &str) -> Option<Self> {
        let filter = filter?;
        match Self::new(filter) {
            Ok(exposure) => exposure,
            Err(e) => {
                tracing::error!(
                    "`tools:` of `{owner}` has a pattern that does not compile ({e}); none of its tools is offered"
                );
                Some(Self {
                    rule: Rule::Allow {
                        set: GlobSet::empty(),
                        patterns: Vec::new(),
                    },
                })
            }
        }
    }

    /// Whether `tool` is offered, and if not, why.
    pub fn check(&self, tool: &str) -> Result<(), Hidden> {
        match &self.rule {
            Rule::Allow { set, patterns } => {
                if set.is_match(tool) {
                    Ok(())
                } else {
                    Err(Hidden::NotAllowed {
                        patterns: patterns.clone(),
                    })
                }
            }
            Rule::Deny { set, patterns } => match set.matches(tool).first() {
                None => Ok(()),
                Some(&i) => Err(Hidden::Denied {
                    pattern: patterns.get(i).cloned().unwrap_or_default(),
                }),
            },
        }
    }

    pub fn exposes(&self, tool: &str) -> bool {
        self.check(tool).is_ok()
    }

    /// The tools of `tools` this policy offers, in their order.
    pub fn retain(&self, tools: &[Tool]) -> Vec<Tool> {
        tools
            .iter()
            .filter(|t| self.exposes(&t.name))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn filter(allow: &[&str], deny: &[&str]) -> ToolFilter {
        ToolFilter {
            allow_list: allow.iter().map(|s| s.to_string()).collect(),
            deny_list: deny.iter().map(|s| s.to_string()).collect(),
            approval_list: Vec::new(),
            approval_timeout: Duration::from_secs(300),
            approval_channel: None,
        }
    }

    fn exposure(allow: &[&str], deny: &[&str]) -> ToolExposure {
        match ToolExposure::new(&filter(allow, deny)) {
            Ok(Some(e)) => e,
            other => panic!("expected a policy, got {other:?}"),
        }
    }

    #[test]
    fn a_deny_list_hides_what_it_matches_and_names_the_pattern() {
        let e = exposure(&[], &["drop_table", "delete_*"]);
        assert!(e.exposes("read_file"));
        assert!(
            e.exposes("undelete_file"),
            "a pattern matches the whole name"
        );
        assert_eq!(
            e.check("delete_all"),
            Err(Hidden::Denied {
                pattern: "delete_*".into()
            })
        );
        assert_eq!(
            e.check("delete_all").map_err(|h| h.to_string()),
            Err("denied by tools.deny_list pattern `delete_*`".into())
        );
    }

    #[test]
    fn an_allow_list_offers_only_its_matches_and_ignores_the_deny_list() {
        let e = exposure(&["read_*", "list_?"], &["read_secret"]);
        assert!(e.exposes("read_secret"), "deny_list is not consulted");
        assert!(e.exposes("list_a"));
        assert!(!e.exposes("list_ab"), "`?` is exactly one character");
        assert_eq!(
            e.check("write_file").map_err(|h| h.to_string()),
            Err("matched by no tools.allow_list pattern: `read_*`, `list_?`".into())
        );
    }

    #[test]
    fn patterns_read_like_fnmatch() {
        let e = exposure(&[], &["a*z", "[xy]_tool", "[!m]ath", "back\\slash"]);
        assert!(
            !e.exposes("a/b/z"),
            "`*` crosses `/`: tool names are not paths"
        );
        assert!(!e.exposes("x_tool") && e.exposes("z_tool"));
        assert!(!e.exposes("bath") && e.exposes("math"));
        assert!(
            !e.exposes("back\\slash"),
            "a backslash is a plain character"
        );
        assert!(
            e.exposes("A_Z") && e.exposes("X_tool"),
            "matching is case-sensitive"
        );
    }

    #[test]
    fn empty_lists_hide_nothing_so_there_is_no_policy() {
        assert!(matches!(ToolExposure::new(&filter(&[], &[])), Ok(None)));
    }

    #[test]
    fn retain_keeps_the_offered_tools_in_order() {
        let tool = |n: &str| Tool::new(n.to_string(), "", std::sync::Arc::default());
        let e = exposure(&[], &["delete_*"]);
        let kept = e.retain(&[tool("b"), tool("delete_x"), tool("a")]);
        let names: Vec<&str> = kept.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn a_pattern_that_does_not_compile_hides_everything() {
        let e = ToolExposure::from_spec(Some(&filter(&[], &["[unclosed"])), "p");
        assert!(e.is_some_and(|e| !e.exposes("anything")));
    }
}
