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

/// A provider or group as clients see it: (id, tool prefix, tools offered now).
pub(crate) type Exposed = (String, Option<String>, Arc<Vec<Tool>>);

/// Where a name that no catalog offers goes, among the `exposed` providers (as
/// [`Registry::exposed`] lists them). A provider without predefined tools offers nothing until it
/// starts, and its first call is what starts it; the registry then says whether the tool exists.
/// So a name with a provider's prefix goes to that provider (the longest prefix wins), and a bare
/// name goes to the provider with an empty `tool_prefix` that offers nothing yet, if there is
/// exactly one (with several, nothing says which one the name is meant for).
pub(crate) fn route_unoffered(exposed: &[Exposed], name: &str) -> Option<Route> {
    let prefixed = exposed
        .iter()
        .filter_map(|(id, prefix, _)| {
            let prefix = prefix.as_deref().unwrap_or(id);
            let tool = name.strip_prefix(prefix)?.strip_prefix("__")?;
            (!prefix.is_empty() && !tool.is_empty()).then_some((prefix.len(), id, tool))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, provider, tool)| Route::Provider {
            provider: provider.clone(),
            tool: tool.to_string(),
        });
    if prefixed.is_some() {
        return prefixed;
    }
    let mut bare = exposed
        .iter()
        .filter(|(_, prefix, tools)| prefix.as_deref() == Some("") && tools.is_empty());
    match (bare.next(), bare.next()) {
        (Some((id, _, _)), None) => Some(Route::Provider {
            provider: id.clone(),
            tool: name.to_string(),
        }),
        _ => None,
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

    fn exposed(providers: &[(&str, Option<&str>, &[&str])]) -> Vec<Exposed> {
        let schema = Arc::new(serde_json::Map::new());
        providers
            .iter()
            .map(|(id, prefix, tools)| {
                let tools = tools
                    .iter()
                    .map(|t| Tool::new(t.to_string(), "", schema.clone()))
                    .collect();
                (id.to_string(), prefix.map(str::to_string), Arc::new(tools))
            })
            .collect()
    }

    fn provider_of(route: Option<Route>) -> Option<(String, String)> {
        match route? {
            Route::Provider { provider, tool } => Some((provider, tool)),
            Route::Management(_) => None,
        }
    }

    #[test]
    fn an_unoffered_name_goes_to_the_provider_of_its_longest_prefix() {
        let exposed = exposed(&[("math", None, &[]), ("m", Some("math__x"), &[])]);
        let to = |name| provider_of(route_unoffered(&exposed, name));
        assert_eq!(to("math__add"), Some(("math".into(), "add".into())));
        assert_eq!(to("math__x__add"), Some(("m".into(), "add".into())));
        assert_eq!(to("other__add"), None);
        assert_eq!(to("math__"), None);
    }

    #[test]
    fn a_bare_name_goes_to_the_one_unprefixed_provider_that_offers_nothing_yet() {
        let cold = exposed(&[("math", None, &[]), ("fixture", Some(""), &[])]);
        assert_eq!(
            provider_of(route_unoffered(&cold, "test_simple_text")),
            Some(("fixture".into(), "test_simple_text".into()))
        );
        // Running (or with predefined tools), it offers its names and others are unknown.
        let running = exposed(&[("fixture", Some(""), &["echo"])]);
        assert!(route_unoffered(&running, "test_simple_text").is_none());
        // Two cold unprefixed providers: nothing says which one a bare name is for.
        let two = exposed(&[("a", Some(""), &[]), ("b", Some(""), &[])]);
        assert!(route_unoffered(&two, "echo").is_none());
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
