//! `--http`: the provider serves streamable HTTP and announces where on its first stdout line.

use std::{process::Stdio, time::Duration};

use anyhow::Context as _;
use rmcp::{
    ClientServiceExt, ServiceExt,
    model::{CallToolRequestParams, CallToolResult, ProtocolVersion},
    transport::StreamableHttpClientTransport,
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

const PROVIDER: &str = env!("CARGO_BIN_EXE_example-provider");
const PROMPTLY: Duration = Duration::from_secs(10);

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|content| content.as_text())
        .map(|content| content.text.as_str())
        .collect()
}

async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &str,
    arguments: Value,
) -> anyhow::Result<CallToolResult> {
    let Value::Object(arguments) = arguments else {
        anyhow::bail!("tool arguments must be a JSON object");
    };
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
    Ok(client.call_tool(params).await?)
}

#[tokio::test]
async fn http_mode_announces_its_address_and_serves_tools() -> anyhow::Result<()> {
    let mut child = Command::new(PROVIDER)
        .args([
            "--http",
            "127.0.0.1:0",
            "--name",
            "http-provider",
            "--page-size",
            "4",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawning example-provider --http")?;
    let stdout = child.stdout.take().context("stdout")?;
    let first_line = tokio::time::timeout(PROMPTLY, BufReader::new(stdout).lines().next_line())
        .await
        .context("no address line in time")??
        .context("stdout closed before the address line")?;
    let url = first_line
        .strip_prefix("listening on ")
        .with_context(|| format!("unexpected first line {first_line:?}"))?;
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
        "unexpected url {url}"
    );

    let client = ().serve(StreamableHttpClientTransport::from_uri(url)).await?;
    let info = client.peer_info().context("initialize result")?;
    assert_eq!(
        info.server_info.as_ref().map(|server| server.name.as_str()),
        Some("http-provider")
    );
    assert_eq!(client.list_all_tools().await?.len(), 10);

    let sum = call(&client, "add", json!({"a": 20, "b": 22})).await?;
    assert_eq!(sum.structured_content, Some(json!({"result": 42})));
    let added = call(&client, "add_tool", json!({"name": "over_http"})).await?;
    assert_eq!(text(&added), "added over_http");
    let echoed = call(&client, "over_http", json!({"a": true})).await?;
    assert_eq!(text(&echoed), r#"{"a":true}"#);

    client.cancel().await?;

    // The 2026-07-28 lifecycle: no initialize, self-contained requests; the tool added by
    // the first client is there, since the catalog belongs to the process.
    let modern = ()
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(url),
            rmcp::ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await?;
    let echoed = call(&modern, "over_http", json!({"b": 1})).await?;
    assert_eq!(text(&echoed), r#"{"b":1}"#);
    modern.cancel().await?;

    child.kill().await?;
    Ok(())
}
