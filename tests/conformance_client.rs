//! The client the MCP conformance suite drives (`conformance client --command …`): the hangar's
//! own remote backend, through the library's `Registry`, exactly as `mcp-hangar serve` would
//! reach a remote provider. The suite appends the server URL as the last argument and names
//! the scenario in `MCP_CONFORMANCE_SCENARIO`.
//!
//! It starts one remote provider at that URL, lists its tools and calls each of them once, with
//! arguments made up from the tool's input schema (numbers for numbers, text for strings). That
//! covers the scenarios run in CI: `initialize` (handshake and tools/list), `tools_call`
//! (`add_numbers`) and `sse-retry` (a call whose answer arrives after the server closed the
//! stream and the client reconnected with `Last-Event-ID`).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use mcp_hangar::events::EventBus;
use mcp_hangar::registry::{Invocation, Registry};
use serde_json::{Map, Value};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_init();
    let Some(url) = std::env::args().skip(1).last() else {
        eprintln!("usage: conformance-client <server-url>");
        return ExitCode::from(2);
    };
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    match run(&url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conformance-client ({scenario}): {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str) -> Result<(), String> {
    // JSON is YAML: the URL goes in quoted whatever it holds.
    let yaml = format!(
        "providers:\n  server:\n    mode: remote\n    endpoint: {}\n    health_check_interval_s: 0\n    http: {{max_retries: 0}}\n",
        serde_json::to_string(url).map_err(|e| e.to_string())?
    );
    let config = mcp_hangar::config::parse(&yaml, Path::new("conformance.yaml"), &|_| None)
        .map_err(|e| e.to_string())?;
    let registry = Registry::new(&config, EventBus::new());
    let outcome = exercise(&registry).await;
    registry.shutdown().await;
    outcome
}

async fn exercise(registry: &Registry) -> Result<(), String> {
    registry.start("server").await.map_err(|e| e.to_string())?;
    let provider = registry.get("server").map_err(|e| e.to_string())?;
    let tools = provider.tools();
    eprintln!(
        "conformance-client: tools {:?}",
        tools.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>()
    );
    for tool in tools.iter() {
        let arguments = arguments_for(&tool.input_schema);
        let result = registry
            .invoke(Invocation {
                provider: "server".to_string(),
                tool: tool.name.to_string(),
                arguments: Some(arguments),
                timeout: Some(Duration::from_secs(20)),
                ..Invocation::default()
            })
            .await
            .map_err(|e| format!("calling `{}`: {e}", tool.name))?;
        eprintln!("conformance-client: {} -> {:?}", tool.name, result.content);
    }
    Ok(())
}

/// Every required property, with a value of its declared type.
fn arguments_for(schema: &Map<String, Value>) -> Map<String, Value> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let properties = schema.get("properties").and_then(Value::as_object);
    required
        .into_iter()
        .map(|name| {
            let kind = properties
                .and_then(|p| p.get(name))
                .and_then(|p| p.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("string");
            let value = match kind {
                "number" | "integer" => Value::from(2),
                "boolean" => Value::from(true),
                "array" => Value::Array(Vec::new()),
                "object" => Value::Object(Map::new()),
                _ => Value::from("conformance"),
            };
            (name.to_string(), value)
        })
        .collect()
}

/// The hangar's log on stderr (the suite keeps it as `stderr.txt`); `RUST_LOG` refines it.
fn tracing_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}
