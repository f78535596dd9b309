//! The whole of MCP through the hangar, against a real provider (npm's
//! `@modelcontextprotocol/server-everything` on stdio) and a real rmcp client that offers
//! sampling, elicitation and roots: resources (list, templates, read, subscribe and updates),
//! prompts (prefixed names, get), completion, `logging/setLevel` and `notifications/message`,
//! progress of an aggregated call, and the provider's requests answered by the calling client.
//!
//! The same scenario runs three ways: stdio with the fast path, stdio with every request left to
//! rmcp (`MCP_HANGAR_STDIO_FAST_PATH=0`), and streamable HTTP.

#![allow(deprecated)] // sampling, roots, logging: deprecated by SEP-2577, spoken by all clients.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow, bail, ensure};
use hangar_tests::*;
use rmcp::model::{
    ArgumentInfo, CallToolRequestParams, ClientCapabilities, ClientConfig, CompleteRequestParams,
    ContentBlock, CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams,
    ElicitResult, ElicitationAction, GetPromptRequestParams, Implementation, ListRootsResult,
    LoggingLevel, LoggingMessageNotificationParam, ProgressNotificationParam,
    ReadResourceRequestParams, Reference, ResourceUpdatedNotificationParam, Root, SamplingMessage,
    SetLevelRequestParams, SubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, RoleClient, RunningService};
use rmcp::{ClientHandler, ErrorData as McpError, ServiceExt};
use serde_json::json;

const ROOT: &str = "file:///srv/hangar-aggregate-root";

/// A client that answers the provider's requests and keeps what it is sent.
#[derive(Clone, Default)]
struct Client {
    logs: Arc<Mutex<Vec<LoggingMessageNotificationParam>>>,
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    updated: Arc<Mutex<Vec<String>>>,
    sampled: Arc<Mutex<Vec<CreateMessageRequestParams>>>,
}

fn snapshot<T: Clone>(m: &Mutex<Vec<T>>) -> Vec<T> {
    m.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        let mut caps = ClientCapabilities::default();
        caps.sampling = Some(Default::default());
        caps.elicitation = Some(Default::default());
        caps.roots = Some(Default::default());
        ClientConfig::new(caps, Implementation::new("aggregate-e2e", "0"))
            .with_protocol_version(rmcp::model::ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        self.sampled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(params);
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text("sampled by the e2e client"),
            "e2e-model".into(),
        ))
    }

    async fn create_elicitation(
        &self,
        _params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        Ok(ElicitResult::new(ElicitationAction::Decline))
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, McpError> {
        Ok(ListRootsResult::new(vec![Root::new(ROOT)]))
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(params);
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(params);
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.updated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(params.uri);
    }
}

fn config(dir: &TestDir) -> Result<std::path::PathBuf> {
    let npm = npm_packages()?;
    Ok(dir.write(
        "h.yaml",
        &format!(
            "providers:\n  everything:\n    command: [\"{}\", \"{}\", \"stdio\"]\n    idle_ttl_s: 600\n",
            npm.node.display(),
            npm.everything.display()
        ),
    ))
}

async fn call_text(
    client: &RunningService<RoleClient, Client>,
    name: &str,
    args: serde_json::Value,
) -> Result<String> {
    let mut params = CallToolRequestParams::new(name.to_string());
    params.arguments = args.as_object().cloned();
    let r = client.peer().call_tool(params).await?;
    let body = text_of(&r.content);
    if r.is_error == Some(true) {
        bail!("{name} failed: {body}");
    }
    Ok(body)
}

fn text_of(content: &[ContentBlock]) -> String {
    content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> Result<T> {
    for _ in 0..100 {
        if let Some(v) = check() {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow!("{what} did not happen within 10 s"))
}

/// Everything the suite checks, on one connected client.
async fn scenario(client: &RunningService<RoleClient, Client>, handler: &Client) -> Result<()> {
    let peer = client.peer();
    // Nothing runs yet: nothing is listed, and listing starts nothing.
    ensure!(peer.list_all_resources().await?.is_empty());
    // A call starts the provider (its tools have the provider's prefix).
    let sum = call_text(client, "everything__get-sum", json!({"a": 2, "b": 3})).await?;
    ensure!(sum.contains('5'), "get-sum: {sum}");

    // Resources: listed with the provider's own URIs, read back through the hangar.
    let resources = peer.list_all_resources().await?;
    let first = resources
        .first()
        .ok_or_else(|| anyhow!("no resources listed"))?;
    ensure!(first.uri.starts_with("demo://"), "{}", first.uri);
    let read = peer
        .read_resource(ReadResourceRequestParams::new(first.uri.clone()))
        .await?;
    ensure!(
        !read.contents.is_empty(),
        "reading {} gave nothing",
        first.uri
    );
    let templates = peer.list_all_resource_templates().await?;
    ensure!(
        templates.iter().any(|t| t.uri_template.contains("{")),
        "templates: {templates:?}"
    );
    let dynamic = peer
        .read_resource(ReadResourceRequestParams::new(
            "demo://resource/dynamic/text/7",
        ))
        .await?;
    ensure!(
        serde_json::to_string(&dynamic.contents)?.contains("7"),
        "{dynamic:?}"
    );
    let unknown = peer
        .read_resource(ReadResourceRequestParams::new("nowhere://x"))
        .await;
    ensure!(unknown.is_err(), "an unknown URI must fail");

    // Prompts: prefixed like tools, fetched under the provider's own name.
    let prompts = peer.list_all_prompts().await?;
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    ensure!(names.contains(&"everything__simple-prompt"), "{names:?}");
    let prompt = peer
        .get_prompt(GetPromptRequestParams::new("everything__simple-prompt"))
        .await?;
    ensure!(
        serde_json::to_string(&prompt.messages)?.contains("simple prompt"),
        "{prompt:?}"
    );

    // Completion of a prompt argument, routed by the prompt's offered name.
    let completion = peer
        .complete(CompleteRequestParams::new(
            Reference::for_prompt("everything__completable-prompt"),
            ArgumentInfo::new("department", "En"),
        ))
        .await?;
    ensure!(
        completion.completion.values == vec!["Engineering".to_string()],
        "{completion:?}"
    );

    // Progress of an aggregated call reaches the caller under its own token.
    let before = snapshot(&handler.progress).len();
    call_text(
        client,
        "everything__trigger-long-running-operation",
        json!({"duration": 0.5, "steps": 5}),
    )
    .await?;
    // The hangar sends them all before the answer, but this client's rmcp hands each
    // notification to a task of its own, which may run after the call has returned.
    let progress = eventually("5 progress notifications", || {
        let progress = snapshot(&handler.progress);
        (progress.len() - before >= 5).then_some(progress)
    })
    .await?;
    ensure!(
        progress[before..]
            .iter()
            .any(|p| p.progress == 5.0 && p.total == Some(5.0)),
        "the last step is missing: {:?}",
        &progress[before..]
    );

    // The provider registers its sampling/elicitation/roots tools once it learns what the
    // client offers (the hangar offered what this client offered).
    let mut conditional = false;
    for _ in 0..50 {
        let names = tool_names_of(client).await?;
        if names
            .iter()
            .any(|n| n == "everything__trigger-sampling-request")
        {
            conditional = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        conditional,
        "server-everything never offered its sampling tool"
    );

    let sampled = call_text(
        client,
        "everything__trigger-sampling-request",
        json!({"prompt": "hello", "maxTokens": 10}),
    )
    .await?;
    ensure!(sampled.contains("sampled by the e2e client"), "{sampled}");
    ensure!(!snapshot(&handler.sampled).is_empty());
    // The same through `registry_invoke` and `registry_invoke_ex`: the provider's request
    // reaches the client that called the management tool.
    for tool in ["registry_invoke", "registry_invoke_ex"] {
        let before = snapshot(&handler.sampled).len();
        let sampled = call_text(
            client,
            tool,
            json!({
                "provider": "everything",
                "tool": "trigger-sampling-request",
                "arguments": {"prompt": "hello", "maxTokens": 10},
            }),
        )
        .await?;
        ensure!(
            sampled.contains("sampled by the e2e client"),
            "{tool}: {sampled}"
        );
        ensure!(snapshot(&handler.sampled).len() > before, "{tool}");
    }

    let roots = call_text(client, "everything__get-roots-list", json!({})).await?;
    ensure!(roots.contains(ROOT), "{roots}");

    let elicited = call_text(client, "everything__trigger-elicitation-request", json!({})).await?;
    ensure!(elicited.contains("declined"), "{elicited}");

    // Logging: the level goes to the provider; its messages come back marked with its id.
    peer.set_level(SetLevelRequestParams::new(LoggingLevel::Debug))
        .await?;
    call_text(client, "everything__toggle-simulated-logging", json!({})).await?;
    let log = eventually("a provider log message", || {
        snapshot(&handler.logs).into_iter().find(|l| {
            l.logger
                .as_deref()
                .is_some_and(|n| n.starts_with("everything"))
        })
    })
    .await?;
    drop(log);

    // Subscriptions: the provider's updates reach the subscribed client.
    peer.subscribe(SubscribeRequestParams::new(first.uri.clone()))
        .await?;
    call_text(client, "everything__toggle-subscriber-updates", json!({})).await?;
    eventually("a resources/updated notification", || {
        snapshot(&handler.updated)
            .contains(&first.uri)
            .then_some(())
    })
    .await?;
    Ok(())
}

async fn tool_names_of(client: &RunningService<RoleClient, Client>) -> Result<Vec<String>> {
    Ok(client
        .peer()
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect())
}

async fn over_stdio(fast_path: bool) -> Result<()> {
    let dir = TestDir::new(if fast_path { "agg-fast" } else { "agg-rmcp" });
    let cfg = config(&dir)?;
    let mut cmd = tokio::process::Command::new(hangar_bin());
    cmd.arg("serve")
        .arg("--config")
        .arg(&cfg)
        .env("XDG_DATA_HOME", data_home(&cfg))
        .env(
            "MCP_HANGAR_STDIO_FAST_PATH",
            if fast_path { "1" } else { "0" },
        );
    let log = cfg.with_extension("log");
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::from(std::fs::File::create(&log)?))
        .spawn()?;
    let handler = Client::default();
    let client = handler.clone().serve(transport).await?;
    let outcome = scenario(&client, &handler).await;
    let _ = client.cancel().await;
    outcome.map_err(|e| anyhow!("{e}\nhangar log:\n{}", read_log(&log)))
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_over_stdio_with_the_fast_path() -> Result<()> {
    over_stdio(true).await
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_over_stdio_through_rmcp_only() -> Result<()> {
    over_stdio(false).await
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_over_streamable_http() -> Result<()> {
    let dir = TestDir::new("agg-http");
    let cfg = config(&dir)?;
    let hangar = HttpHangar::start(&cfg).await?;
    let transport =
        rmcp::transport::StreamableHttpClientTransport::from_uri(format!("{}/mcp", hangar.base));
    let handler = Client::default();
    let client = handler.clone().serve(transport).await?;
    let outcome = scenario(&client, &handler).await;
    let _ = client.cancel().await;
    outcome.map_err(|e| anyhow!("{e}\nhangar log:\n{}", read_log(&hangar.log)))
}
