//! The tools the hangar offers: its management tools plus every provider's tools under an
//! aggregated name, and the route from each name back to where it goes.

use std::sync::{Arc, OnceLock};

// Looked up on every call: a fast hash.
use foldhash::HashMap;
use rmcp::model::{ListToolsResult, ServerResult, Tool};

use super::management::{self, ManagementTool};
use crate::registry::Registry;

/// Where a tool name leads.
#[derive(Debug, Clone)]
pub enum Route {
    Management(ManagementTool),
    Provider { provider: String, tool: String },
}

/// One consistent view of the offered tools; rebuilt and swapped whole when any provider's tools
/// change, so a `tools/list` never sees half an update.
#[derive(Debug, Default)]
pub struct Catalog {
    pub tools: Arc<Vec<Tool>>,
    pub routes: HashMap<String, Route>,
    /// `tools` as a handshake-era `tools/list` result, encoded on first use: every list of
    /// this catalog on the stdio fast path sends these bytes (10,000 tools are 1.4 MB of JSON).
    legacy_list: OnceLock<Box<[u8]>>,
}

/// Names common MCP clients accept.
pub fn is_valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The aggregated name of a provider's tool: `<prefix>__<tool>`, where the prefix is the
/// provider id unless `tool_prefix` overrides it; an empty prefix means the bare tool name.
pub fn aggregated_name(provider: &str, tool_prefix: Option<&str>, tool: &str) -> String {
    match tool_prefix.unwrap_or(provider) {
        "" => tool.to_string(),
        prefix => format!("{prefix}__{tool}"),
    }
}

impl Catalog {
    /// `{"tools":[…]}` as rmcp's server answers a peer of a protocol version before
    /// 2026-07-28 (no `resultType`, object output schemas only), encoded once per catalog.
    pub fn legacy_list_result(&self) -> &[u8] {
        self.legacy_list.get_or_init(|| {
            let mut result =
                ServerResult::ListToolsResult(ListToolsResult::with_all_items(self.tools.to_vec()));
            result.strip_result_type_for_legacy_peer();
            result.strip_non_object_output_for_legacy_peer();
            let ServerResult::ListToolsResult(list) = result else {
                unreachable!("built as a ListToolsResult above")
            };
            serde_json::to_vec(&list)
                .unwrap_or_else(|e| {
                    tracing::error!("could not encode the tool list: {e}");
                    b"{\"tools\":[]}".to_vec()
                })
                .into_boxed_slice()
        })
    }

    /// Builds the catalog. A tool whose aggregated name is invalid or already taken is left out
    /// (it stays reachable through `registry_invoke`), and each such case is returned as a
    /// message naming both sources.
    pub fn build(registry: &Registry) -> (Catalog, Vec<String>) {
        let mut tools = Vec::new();
        let mut routes = HashMap::default();
        let mut sources: HashMap<String, String> = HashMap::default();
        let mut problems = Vec::new();
        for (tool, which) in management::tools() {
            sources.insert(
                tool.name.to_string(),
                "the hangar's management tools".into(),
            );
            routes.insert(tool.name.to_string(), Route::Management(which));
            tools.push(tool);
        }
        for (id, prefix, offered) in registry.exposed() {
            for tool in offered.iter() {
                let name = aggregated_name(&id, prefix.as_deref(), &tool.name);
                let source = format!("tool `{}` of provider `{id}`", tool.name);
                if !is_valid_tool_name(&name) {
                    problems.push(format!(
                        "{source} would be offered as `{name}`, which is not a valid tool name (1-64 characters of a-z A-Z 0-9 _ -); set `tool_prefix` on provider `{id}` or call it through registry_invoke"
                    ));
                    continue;
                }
                if let Some(first) = sources.get(&name) {
                    problems.push(format!(
                        "{source} would be offered as `{name}`, which is already taken by {first}; set a different `tool_prefix` on provider `{id}`"
                    ));
                    continue;
                }
                sources.insert(name.clone(), source);
                let mut exposed = tool.clone();
                exposed.name = name.clone().into();
                routes.insert(
                    name,
                    Route::Provider {
                        provider: id.clone(),
                        tool: tool.name.to_string(),
                    },
                );
                tools.push(exposed);
            }
        }
        (
            Catalog {
                tools: Arc::new(tools),
                routes,
                legacy_list: OnceLock::new(),
            },
            problems,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_id_is_the_default_prefix() {
        assert_eq!(aggregated_name("math", None, "add"), "math__add");
    }

    #[test]
    fn tool_prefix_overrides_and_empty_means_bare() {
        assert_eq!(aggregated_name("math", Some("m"), "add"), "m__add");
        assert_eq!(aggregated_name("math", Some(""), "add"), "add");
    }

    #[test]
    fn names_outside_the_common_charset_or_length_are_invalid() {
        assert!(is_valid_tool_name("math__add"));
        assert!(is_valid_tool_name("a-b_C9"));
        assert!(!is_valid_tool_name(""));
        assert!(!is_valid_tool_name("math.add"));
        assert!(!is_valid_tool_name("with space"));
        assert!(!is_valid_tool_name(&"x".repeat(65)));
        assert!(is_valid_tool_name(&"x".repeat(64)));
    }

    #[test]
    fn the_encoded_legacy_list_is_what_rmcp_sends_an_older_peer() {
        let schema = |v: serde_json::Value| Arc::new(v.as_object().cloned().unwrap_or_default());
        let object = Tool::new("a", "A", schema(serde_json::json!({"type": "object"})))
            .with_raw_output_schema(schema(serde_json::json!({"type": "object"})));
        let array = Tool::new("b", "B", schema(serde_json::json!({"type": "object"})))
            .with_raw_output_schema(schema(serde_json::json!({"type": "array"})));
        let catalog = Catalog {
            tools: Arc::new(vec![object, array]),
            ..Catalog::default()
        };
        let encoded: serde_json::Value =
            serde_json::from_slice(catalog.legacy_list_result()).expect("JSON");
        assert!(encoded.get("resultType").is_none(), "{encoded}");
        assert_eq!(encoded["tools"][0]["outputSchema"]["type"], "object");
        assert!(
            encoded["tools"][1].get("outputSchema").is_none(),
            "{encoded}"
        );
        // Encoded once: the same bytes every time.
        assert!(std::ptr::eq(
            catalog.legacy_list_result(),
            catalog.legacy_list_result()
        ));
    }
}
