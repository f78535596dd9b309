//! Traces: the real hangar exporting to an OTLP receiver run by the test, over gRPC (tonic) and
//! HTTP/protobuf, each request decoded from the real protobuf. Checks the span of a call, its
//! parent (the client's `_meta.traceparent`), the context the provider receives (the hangar's
//! span as parent), on the stdio fast path and on rmcp's path over HTTP, and Langfuse's
//! Basic auth and input/output attributes.

use anyhow::{Context as _, Result, anyhow};
use hangar_tests::otlp::{grpc_receiver, http_receiver};
use hangar_tests::*;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use rmcp::model::{CallToolRequestParams, MetaObject, RequestMetaObject};
use serde_json::{Value, json};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// `math__meta` with the client's trace context in `_meta`: the provider's answer is the
/// `_meta` it received.
async fn call_with_trace(
    client: &rmcp::service::RunningService<rmcp::RoleClient, TestClient>,
    name: &str,
    arguments: Value,
) -> Result<rmcp::model::CallToolResult> {
    let mut meta = serde_json::Map::new();
    meta.insert(
        "traceparent".into(),
        json!(format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")),
    );
    meta.insert("vendor.example/tag".into(), json!("kept"));
    let mut params = CallToolRequestParams::new(name.to_string());
    params.arguments = arguments.as_object().cloned();
    params.meta = Some(RequestMetaObject(MetaObject(meta)));
    Ok(client.peer().call_tool(params).await?)
}

/// The provider's view of `_meta`, and the span id its traceparent names as parent.
fn provider_parent(result: &rmcp::model::CallToolResult) -> Result<(Value, String)> {
    let meta: Value = serde_json::from_str(&text(result))
        .with_context(|| format!("meta tool answered {}", text(result)))?;
    let traceparent = meta["traceparent"]
        .as_str()
        .ok_or_else(|| anyhow!("the provider got no traceparent: {meta}"))?;
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[1], CLIENT_TRACE, "the trace goes on: {traceparent}");
    Ok((meta.clone(), parts[2].to_string()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stdio_call_is_a_span_under_the_clients_context_and_the_provider_continues_it_over_grpc()
-> Result<()> {
    let (addr, received) = grpc_receiver().await?;
    let dir = TestDir::new("trace-grpc");
    let token = unique_token("trace-grpc");
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "observability:\n  tracing:\n    enabled: true\n    otlp_endpoint: http://{addr}\n    \
             protocol: grpc\n    service_name: hangar-under-test\nproviders:\n{}",
            provider_yaml("math", &token, &[], "")
        ),
    );
    let hangar = Hangar::stdio_with_env(&cfg, &[("OTEL_BSP_SCHEDULE_DELAY", "100")]).await?;

    let result = call_with_trace(&hangar.client, "math__meta", json!({})).await?;
    let (meta, parent_of_provider) = provider_parent(&result)?;
    assert_eq!(meta["vendor.example/tag"], "kept", "other _meta keys go on");
    // The client's progress token is not passed on as it came: rmcp clients ask for progress
    // on every call, and the provider is then given the hangar's own token (on a stdio
    // provider the call's own id, `hangar-N`), whose progress the hangar relays (none when
    // the call came before the session's link to the client was up).
    assert!(
        meta.get("progressToken")
            .is_none_or(|t| t.as_str().is_some_and(|t| t.starts_with("hangar-"))),
        "{meta}"
    );
    assert_ne!(
        parent_of_provider, CLIENT_SPAN,
        "the hangar's span sits between"
    );

    let call = received
        .wait_for("tools/call meta", |s| s.name == "tools/call meta")
        .await?;
    assert_eq!(call.service, "hangar-under-test");
    assert_eq!(call.trace_id, CLIENT_TRACE);
    assert_eq!(call.parent, CLIENT_SPAN, "the client's span is the parent");
    assert_eq!(
        call.span_id, parent_of_provider,
        "the provider's parent is the call span"
    );
    assert_eq!(call.kind, SpanKind::Server as i32);
    assert_eq!(call.status, StatusCode::Ok as i32);
    assert_eq!(call.attributes["mcp.method.name"], "tools/call");
    assert_eq!(call.attributes["gen_ai.tool.name"], "meta");
    assert_eq!(call.attributes["mcp_hangar.provider"], "math");
    assert!(
        !call.attributes.keys().any(|k| k.starts_with("langfuse.")),
        "no call data leaves without Langfuse: {:?}",
        call.attributes
    );

    let start = received
        .wait_for("start math", |s| s.name == "start math")
        .await?;
    assert_eq!(start.status, StatusCode::Ok as i32);
    assert_eq!(
        start.parent, "",
        "a start is a root: it serves every waiting call"
    );

    // A tool error is a failed span, with its type; an untraced call gets a trace of its own.
    let failed = hangar
        .call("math__fail", json!({"message": "boom"}))
        .await?;
    assert_eq!(failed.is_error, Some(true));
    let span = received
        .wait_for("tools/call fail", |s| s.name == "tools/call fail")
        .await?;
    assert_eq!(span.status, StatusCode::Error as i32);
    assert_eq!(span.attributes["error.type"], "tool_error");
    assert_eq!(span.parent, "");
    assert_ne!(span.trace_id, CLIENT_TRACE);

    // registry_invoke takes the same path, trace context included.
    let via_management = call_with_trace(
        &hangar.client,
        "registry_invoke",
        json!({"provider": "math", "tool": "meta", "arguments": {}}),
    )
    .await?;
    let (_, parent) = provider_parent(&via_management)?;
    let span = received
        .wait_for("the registry_invoke call", |s| s.span_id == parent)
        .await?;
    assert_eq!(span.parent, CLIENT_SPAN);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_call_reaches_an_otlp_http_collector_and_langfuse_with_basic_auth() -> Result<()> {
    let (collector, to_collector) = http_receiver("/v1/traces").await?;
    let (langfuse, to_langfuse) = http_receiver("/api/public/otel/v1/traces").await?;
    let dir = TestDir::new("trace-http");
    let token = unique_token("trace-http");
    let cfg = dir.write(
        "h.yaml",
        &format!(
            "observability:\n  tracing:\n    otlp_endpoint: http://{collector}\n    \
             protocol: http/protobuf\n  langfuse:\n    enabled: true\n    public_key: pk-lf-test\n    \
             secret_key: ${{TEST_LANGFUSE_SECRET}}\n    host: http://{langfuse}\n\
             providers:\n{}",
            provider_yaml("math", &token, &[], "")
        ),
    );
    let h = HttpHangar::start_with_env(
        &cfg,
        &[],
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("TEST_LANGFUSE_SECRET", "sk-lf-secret"),
        ],
    )
    .await?;
    let client = h.client().await?;

    let result = call_with_trace(&client, "math__meta", json!({})).await?;
    let (_, parent_of_provider) = provider_parent(&result)?;
    let add = call_with_trace(&client, "math__add", json!({"a": 2, "b": 40})).await?;
    assert_eq!(add.structured_content, Some(json!({"result": 42})));

    let call = to_collector
        .wait_for("tools/call meta", |s| s.name == "tools/call meta")
        .await?;
    assert_eq!(call.trace_id, CLIENT_TRACE);
    assert_eq!(call.parent, CLIENT_SPAN);
    assert_eq!(call.span_id, parent_of_provider);
    assert_eq!(call.service, "mcp-hangar");

    let plain = to_collector
        .wait_for("tools/call add", |s| s.name == "tools/call add")
        .await?;
    assert!(
        !plain.attributes.contains_key("langfuse.observation.input"),
        "the collector never gets call data: {:?}",
        plain.attributes
    );
    let with_data = to_langfuse
        .wait_for("tools/call add", |s| s.name == "tools/call add")
        .await?;
    let input: Value = serde_json::from_str(&with_data.attributes["langfuse.observation.input"])?;
    assert_eq!(input, json!({"a": 2, "b": 40}));
    assert!(
        with_data.attributes["langfuse.observation.output"].contains("42"),
        "{:?}",
        with_data.attributes
    );
    let expected = format!("Basic {}", base64_encode(b"pk-lf-test:sk-lf-secret"));
    let auth = to_langfuse.auth.lock().unwrap().clone();
    assert!(
        !auth.is_empty() && auth.iter().all(|a| *a == expected),
        "{auth:?}"
    );
    assert!(
        to_collector.auth.lock().unwrap().is_empty(),
        "Langfuse's credentials go to Langfuse only"
    );
    let log = read_log(&h.log);
    assert!(
        !log.contains("sk-lf-secret"),
        "the secret stays out of the log:\n{log}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn tracing_off_passes_the_clients_context_through_unchanged() -> Result<()> {
    let (_dir, hangar) = Hangar::one_provider("trace-off", &[], "").await?;
    let result = call_with_trace(&hangar.client, "math__meta", json!({})).await?;
    let (_, parent) = provider_parent(&result)?;
    assert_eq!(
        parent, CLIENT_SPAN,
        "no hangar span: the client's own is the parent"
    );
    Ok(())
}

#[test]
fn a_bad_tracing_section_names_its_line() {
    let dir = TestDir::new("trace-bad");
    let cfg = dir.write(
        "h.yaml",
        "observability:\n  tracing:\n    protocol: carrier-pigeon\nproviders:\n  a: {command: [x]}\n",
    );
    let out = std::process::Command::new(hangar_bin())
        .arg("check")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("h.yaml:3") && stderr.contains("carrier-pigeon"),
        "{stderr}"
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
