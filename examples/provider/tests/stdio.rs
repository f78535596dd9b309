//! Drives the built `example-provider` binary over stdio the way the hangar does: with
//! rmcp's client for MCP behaviour, and with raw pipes where the process itself (exit
//! codes, stderr, silence) is what a test of the hangar will rely on.

use std::{process::Stdio, time::Duration};

use anyhow::{Context as _, bail, ensure};
use rmcp::{
    ClientHandler, ClientServiceExt, ServiceExt,
    model::{
        CallToolRequestParams, CallToolResult, ClientRequest, JsonObject,
        ProgressNotificationParam, ProtocolVersion, ServerNotification, ServerResult,
        SubscriptionFilter, Tool,
    },
    service::{NotificationContext, PeerRequestOptions, RoleClient, RunningService},
    transport::{ConfigureCommandExt, TokioChildProcess},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::Command,
    sync::mpsc,
};

const PROVIDER: &str = env!("CARGO_BIN_EXE_example-provider");

/// Upper bound for anything that should happen promptly; generous for loaded CI machines.
const PROMPTLY: Duration = Duration::from_secs(10);

/// The built-in tools, in the order tools/list returns them (sorted by name).
const BUILTIN_TOOLS: [&str; 10] = [
    "add", "add_tool", "crash", "echo", "env", "fail", "meta", "pid", "progress", "sleep",
];

#[derive(Debug)]
enum Event {
    ToolListChanged,
    Progress(ProgressNotificationParam),
}

/// A client that reports the notifications it receives on a channel.
#[derive(Clone)]
struct Recorder {
    events: mpsc::UnboundedSender<Event>,
}

impl ClientHandler for Recorder {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.events.send(Event::ToolListChanged);
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.events.send(Event::Progress(params));
    }
}

type Client = RunningService<RoleClient, Recorder>;

fn provider_command(args: &[&str]) -> Command {
    Command::new(PROVIDER).configure(|command| {
        command.args(args).kill_on_drop(true);
    })
}

/// Starts the provider with `args` and completes the `initialize` handshake.
async fn start(args: &[&str]) -> anyhow::Result<(Client, mpsc::UnboundedReceiver<Event>)> {
    start_command(provider_command(args)).await
}

async fn start_command(
    command: Command,
) -> anyhow::Result<(Client, mpsc::UnboundedReceiver<Event>)> {
    let (events, received) = mpsc::unbounded_channel();
    let transport = TokioChildProcess::new(command).context("spawning example-provider")?;
    let client = Recorder { events }.serve(transport).await?;
    Ok((client, received))
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        other => panic!("tool arguments must be a JSON object, got {other}"),
    }
}

async fn call(client: &Client, tool: &str, arguments: Value) -> anyhow::Result<CallToolResult> {
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(object(arguments));
    Ok(client.call_tool(params).await?)
}

/// The result's text contents, concatenated.
fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|content| content.as_text())
        .map(|content| content.text.as_str())
        .collect()
}

fn names(tools: &[Tool]) -> Vec<&str> {
    tools.iter().map(|tool| tool.name.as_ref()).collect()
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<Event>) -> anyhow::Result<Event> {
    tokio::time::timeout(PROMPTLY, events.recv())
        .await
        .context("no notification arrived in time")?
        .context("the client stopped")
}

#[tokio::test]
async fn initialize_session_pages_tools_calls_them_and_announces_added_tools() -> anyhow::Result<()>
{
    let (client, mut events) = start(&["--page-size", "2", "--name", "paged-provider"]).await?;

    let info = client.peer_info().context("initialize result")?;
    assert_eq!(
        info.server_info.as_ref().map(|server| server.name.as_str()),
        Some("paged-provider")
    );
    assert_eq!(
        info.capabilities
            .tools
            .as_ref()
            .and_then(|tools| tools.list_changed),
        Some(true)
    );

    let first_page = client.list_tools(None).await?;
    assert_eq!(names(&first_page.tools), ["add", "add_tool"]);
    assert_eq!(first_page.next_cursor.as_deref(), Some("2"));
    let tools = client.list_all_tools().await?;
    assert_eq!(names(&tools), BUILTIN_TOOLS);
    let add = tools
        .iter()
        .find(|tool| tool.name == "add")
        .context("add tool")?;
    let output_schema = add
        .output_schema
        .as_ref()
        .context("add declares an outputSchema")?;
    assert_eq!(output_schema.get("required"), Some(&json!(["result"])));

    let sum = call(&client, "add", json!({"a": 2, "b": 3})).await?;
    assert_eq!(sum.is_error, Some(false));
    assert_eq!(sum.structured_content, Some(json!({"result": 5})));
    assert_eq!(text(&sum), r#"{"result":5}"#);
    let sum = call(&client, "add", json!({"a": 0.25, "b": 1})).await?;
    assert_eq!(sum.structured_content, Some(json!({"result": 1.25})));

    let echoed = call(&client, "echo", json!({"text": "hello hangar"})).await?;
    assert_eq!(echoed.is_error, Some(false));
    assert_eq!(text(&echoed), "hello hangar");

    let failed = call(&client, "fail", json!({"message": "boom"})).await?;
    assert_eq!(failed.is_error, Some(true));
    assert_eq!(text(&failed), "boom");

    let added = call(&client, "add_tool", json!({"name": "late_tool"})).await?;
    assert_eq!(text(&added), "added late_tool");
    let event = next_event(&mut events).await?;
    assert!(
        matches!(event, Event::ToolListChanged),
        "expected tools/list_changed, got {event:?}"
    );
    let tools = client.list_all_tools().await?;
    assert_eq!(
        names(&tools),
        [
            "add",
            "add_tool",
            "crash",
            "echo",
            "env",
            "fail",
            "late_tool",
            "meta",
            "pid",
            "progress",
            "sleep"
        ]
    );
    let echoed = call(&client, "late_tool", json!({"y": "two", "x": 1})).await?;
    assert_eq!(text(&echoed), r#"{"x":1,"y":"two"}"#);

    let again = call(&client, "add_tool", json!({"name": "late_tool"})).await?;
    assert_eq!(again.is_error, Some(true));
    assert_eq!(text(&again), "a tool named late_tool already exists");

    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn unknown_tools_and_bad_arguments_are_reported() -> anyhow::Result<()> {
    let (client, _events) = start(&[]).await?;

    let unknown = call(&client, "no_such_tool", json!({})).await;
    let error = unknown.expect_err("calling an unknown tool is a protocol error");
    assert!(
        error.to_string().contains("unknown tool \"no_such_tool\""),
        "unexpected error: {error}"
    );

    let missing = call(&client, "echo", json!({})).await?;
    assert_eq!(missing.is_error, Some(true));
    assert!(text(&missing).contains("missing field `text`"));

    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn extra_tools_are_generated_and_echo_their_arguments() -> anyhow::Result<()> {
    let (client, _events) = start(&["--extra-tools", "3", "--page-size", "4"]).await?;

    let tools = client.list_all_tools().await?;
    let generated: Vec<&str> = names(&tools)
        .into_iter()
        .filter(|name| name.starts_with("tool_"))
        .collect();
    assert_eq!(generated, ["tool_0", "tool_1", "tool_2"]);
    assert_eq!(tools.len(), BUILTIN_TOOLS.len() + 3);

    let echoed = call(&client, "tool_2", json!({"k": [1, 2]})).await?;
    assert_eq!(text(&echoed), r#"{"k":[1,2]}"#);

    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn fail_every_injects_failures_by_call_ordinal() -> anyhow::Result<()> {
    let (client, _events) = start(&["--fail-every", "2"]).await?;

    let mut texts = Vec::new();
    for index in 1..=4 {
        let result = call(&client, "echo", json!({"text": format!("call {index}")})).await?;
        texts.push((result.is_error, text(&result)));
    }
    assert_eq!(
        texts,
        [
            (Some(false), "call 1".to_owned()),
            (Some(true), "injected failure 2".to_owned()),
            (Some(false), "call 3".to_owned()),
            (Some(true), "injected failure 4".to_owned()),
        ]
    );

    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn pid_env_and_sleep_answer_exactly() -> anyhow::Result<()> {
    let command = provider_command(&[]).configure(|command| {
        command.env("EXAMPLE_PROVIDER_TEST_VALUE", "blue");
        command.env_remove("EXAMPLE_PROVIDER_UNSET");
    });
    let transport = TokioChildProcess::new(command)?;
    let child_pid = transport.id().context("child pid")?;
    let (events, _received) = mpsc::unbounded_channel();
    let client = Recorder { events }.serve(transport).await?;

    let pid = call(&client, "pid", json!({})).await?;
    assert_eq!(text(&pid), child_pid.to_string());

    let value = call(
        &client,
        "env",
        json!({"name": "EXAMPLE_PROVIDER_TEST_VALUE"}),
    )
    .await?;
    assert_eq!(
        (value.is_error, text(&value)),
        (Some(false), "blue".to_owned())
    );
    let unset = call(&client, "env", json!({"name": "EXAMPLE_PROVIDER_UNSET"})).await?;
    assert_eq!(
        (unset.is_error, text(&unset)),
        (
            Some(true),
            "environment variable EXAMPLE_PROVIDER_UNSET is not set".to_owned()
        )
    );

    let slept = call(&client, "sleep", json!({"ms": 20})).await?;
    assert_eq!(text(&slept), "slept 20 ms");

    client.cancel().await?;
    Ok(())
}

/// A `tools/call` of `progress`; rmcp's client adds the progress token.
fn progress_call(steps: u64, delay_ms: u64) -> ClientRequest {
    let params = CallToolRequestParams::new("progress")
        .with_arguments(object(json!({"steps": steps, "delay_ms": delay_ms})));
    ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(params))
}

#[tokio::test]
async fn progress_reports_every_step_with_the_callers_token() -> anyhow::Result<()> {
    let (client, mut events) = start(&[]).await?;

    // The handle tells which progress token rmcp's client gave the request.
    let handle = client
        .send_cancellable_request(progress_call(3, 0), PeerRequestOptions::no_options())
        .await?;
    let token = handle.progress_token.clone();
    let result = match handle.await_response().await? {
        ServerResult::CallToolResult(result) => result,
        other => bail!("expected a tool result, got {other:?}"),
    };
    assert_eq!(text(&result), "done 3");

    let mut steps = Vec::new();
    for _ in 0..3 {
        match next_event(&mut events).await? {
            Event::Progress(progress) => {
                assert_eq!(progress.progress_token, token);
                assert_eq!(progress.total, Some(3.0));
                steps.push(progress.progress);
            }
            other => bail!("expected a progress notification, got {other:?}"),
        }
    }
    // The client handles notifications concurrently, so arrival order is not asserted.
    steps.sort_by(f64::total_cmp);
    assert_eq!(steps, [1.0, 2.0, 3.0]);

    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn cancelling_a_call_stops_the_tool() -> anyhow::Result<()> {
    let (client, mut events) = start(&[]).await?;

    // 50 steps of 100 ms: about five notifications in the half second watched below,
    // unless the cancellation stops the tool.
    let handle = client
        .send_cancellable_request(progress_call(50, 100), PeerRequestOptions::no_options())
        .await?;
    let first = next_event(&mut events).await?;
    ensure!(
        matches!(first, Event::Progress(_)),
        "expected progress, got {first:?}"
    );
    handle.cancel(Some("test cancels".to_owned())).await?;

    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut after_cancel = 0;
    while events.try_recv().is_ok() {
        after_cancel += 1;
    }
    // One step may already be on the wire when the cancellation lands.
    assert!(
        after_cancel <= 1,
        "{after_cancel} progress notifications after cancelling"
    );

    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn discover_session_delivers_list_changed_to_subscribers() -> anyhow::Result<()> {
    let (events, _received) = mpsc::unbounded_channel();
    let transport = TokioChildProcess::new(provider_command(&["--page-size", "3"]))?;
    let client = Recorder { events }
        .serve_with_lifecycle(
            transport,
            rmcp::ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await?;

    assert_eq!(names(&client.list_all_tools().await?), BUILTIN_TOOLS);
    let sum = call(&client, "add", json!({"a": 40, "b": 2})).await?;
    assert_eq!(sum.structured_content, Some(json!({"result": 42})));

    let mut subscription = client
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await?;
    let added = call(&client, "add_tool", json!({"name": "modern_tool"})).await?;
    assert_eq!(text(&added), "added modern_tool");
    let notification = tokio::time::timeout(PROMPTLY, subscription.next())
        .await
        .context("no list_changed on the subscription")??;
    assert!(
        matches!(
            notification,
            Some(ServerNotification::ToolListChangedNotification(_))
        ),
        "expected tools/list_changed, got {notification:?}"
    );
    assert!(names(&client.list_all_tools().await?).contains(&"modern_tool"));

    subscription.cancel().await?;
    client.cancel().await?;
    Ok(())
}

/// A provider under raw pipes, for behaviour below the MCP layer.
struct RawProvider {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl RawProvider {
    fn spawn(args: &[&str]) -> anyhow::Result<Self> {
        let mut child = provider_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?).lines();
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    async fn send(&mut self, message: Value) -> anyhow::Result<()> {
        let mut line = message.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        Ok(self.stdin.flush().await?)
    }

    async fn next_line(&mut self) -> anyhow::Result<Option<String>> {
        Ok(tokio::time::timeout(PROMPTLY, self.stdout.next_line())
            .await
            .context("no stdout line in time")??)
    }

    async fn initialize(&mut self) -> anyhow::Result<()> {
        self.send(json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw-test", "version": "0"}
            }
        }))
        .await
    }

    async fn exit_code(mut self) -> anyhow::Result<(Option<i32>, String)> {
        drop(self.stdin);
        let output = tokio::time::timeout(PROMPTLY, async {
            let status = self.child.wait().await?;
            let mut stderr = String::new();
            if let Some(mut pipe) = self.child.stderr.take() {
                tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut stderr).await?;
            }
            anyhow::Ok((status.code(), stderr))
        })
        .await
        .context("the provider did not exit in time")??;
        Ok(output)
    }
}

#[tokio::test]
async fn crash_exits_with_the_code_without_answering() -> anyhow::Result<()> {
    let mut provider = RawProvider::spawn(&[])?;
    provider.initialize().await?;
    let response = provider.next_line().await?.context("initialize response")?;
    assert!(response.contains(r#""id":1"#), "unexpected line {response}");
    provider
        .send(json!({
            "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "crash", "arguments": {"code": 9}}
        }))
        .await?;
    assert_eq!(provider.next_line().await?, None, "crash must not answer");
    let (code, _stderr) = provider.exit_code().await?;
    assert_eq!(code, Some(9));
    Ok(())
}

#[tokio::test]
async fn exit_at_start_prints_stderr_lines_then_the_fatal_line() -> anyhow::Result<()> {
    let mut provider = RawProvider::spawn(&["--stderr-lines", "2", "--exit-at-start", "7"])?;
    assert_eq!(provider.next_line().await?, None, "nothing on stdout");
    let (code, stderr) = provider.exit_code().await?;
    assert_eq!(code, Some(7));
    assert_eq!(
        stderr,
        "example-provider stderr line 1\nexample-provider stderr line 2\n\
         fatal: exiting at start with code 7\n"
    );
    Ok(())
}

#[tokio::test]
async fn garbage_stdout_precedes_a_working_session() -> anyhow::Result<()> {
    let mut provider = RawProvider::spawn(&["--garbage-stdout"])?;
    provider.initialize().await?;
    let mut garbage = 0;
    loop {
        let line = provider.next_line().await?.context("stdout closed early")?;
        if serde_json::from_str::<Value>(&line).is_ok_and(|message| message["id"] == 1) {
            break;
        }
        garbage += 1;
    }
    assert_eq!(garbage, 3);
    let (code, _stderr) = provider.exit_code().await?;
    assert_eq!(code, Some(0));
    Ok(())
}

#[tokio::test]
async fn hang_on_initialize_never_answers_and_exits_at_eof() -> anyhow::Result<()> {
    let mut provider = RawProvider::spawn(&["--hang-on-initialize"])?;
    provider.initialize().await?;
    let silence = tokio::time::timeout(Duration::from_millis(300), provider.stdout.next_line());
    assert!(silence.await.is_err(), "a hung provider must not answer");
    let (code, _stderr) = provider.exit_code().await?;
    assert_eq!(code, Some(0));
    Ok(())
}

#[tokio::test]
async fn eof_stops_a_long_call_and_the_process_promptly() -> anyhow::Result<()> {
    let mut provider = RawProvider::spawn(&[])?;
    provider.initialize().await?;
    provider.next_line().await?.context("initialize response")?;
    provider
        .send(json!({
            "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "sleep", "arguments": {"ms": 60_000}}
        }))
        .await?;
    let started = std::time::Instant::now();
    let (code, _stderr) = provider.exit_code().await?;
    assert_eq!(code, Some(0));
    // rmcp alone would wait five seconds for the sleeping handler.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "exit took {:?}",
        started.elapsed()
    );
    Ok(())
}
