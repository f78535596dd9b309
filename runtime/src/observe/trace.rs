//! OpenTelemetry traces: one span per `tools/call`, per provider start and per health check,
//! exported over OTLP (gRPC or HTTP/protobuf) by a batch processor on the runtime, never on the
//! call path; Langfuse through its OTLP endpoint as a second exporter.
//!
//! Spans are made with the SDK's tracer directly (no `tracing` layer in between): a sampled call
//! costs one span start and end, an unsampled or untraced one a single load of [`TRACER`].
//!
//! W3C trace context: a client's `_meta.traceparent`/`tracestate` is the parent of the call's
//! span, and the provider gets the call span's own context in its `_meta`. With tracing off the
//! client's context goes on to the provider unchanged, so a trace is never cut at the hangar.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};
use rmcp::model::{CallToolResult, JsonObject};
use serde_json::Value;

use crate::config::{LangfuseSpec, MaybeSecret, OtlpProtocol, TracingSpec};
use crate::registry::InvokeError;

/// The tracer, once `install` has run with tracing or Langfuse on.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();
/// Whether spans carry the call's arguments and result for Langfuse (`scrub_inputs: false`,
/// `scrub_outputs: false`); only the Langfuse exporter sees them.
static CARRY: OnceLock<Carry> = OnceLock::new();

#[derive(Clone, Copy, Default)]
struct Carry {
    inputs: bool,
    outputs: bool,
}

/// Attributes only the Langfuse exporter receives: the other exporter drops them.
const LANGFUSE_INPUT: &str = "langfuse.observation.input";
const LANGFUSE_OUTPUT: &str = "langfuse.observation.output";

/// The `_meta` keys of W3C trace context.
const TRACE_KEYS: [&str; 2] = ["traceparent", "tracestate"];

/// What keeps the exporters running; [`Tracing::shutdown`] flushes what is queued.
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Sends what is queued (up to `timeout`) and stops the exporters.
    pub fn shutdown(&self, timeout: Duration) {
        if let Err(e) = self.provider.shutdown_with_timeout(timeout) {
            tracing::warn!("trace exporter did not flush before shutdown: {e}");
        }
    }
}

/// Starts the exporters the config asks for; `None` when neither tracing nor Langfuse is on.
/// Must run inside the tokio runtime: exports run on it.
///
/// Each exporter sits behind the SDK's thread-based batch processor, which wakes its thread only
/// when a batch is full or due; the async-runtime processor woke a task for every span, a
/// cross-CPU wakeup on the call path of every traced call.
pub fn install(
    tracing_spec: Option<&TracingSpec>,
    langfuse: Option<&LangfuseSpec>,
) -> Result<Option<Tracing>, String> {
    let tracing_spec = tracing_spec.filter(|t| t.enabled);
    let langfuse = langfuse.filter(|l| l.enabled);
    if tracing_spec.is_none() && langfuse.is_none() {
        return Ok(None);
    }
    let service = tracing_spec.map_or("mcp-hangar", |t| t.service_name.as_str());
    let mut builder = SdkTracerProvider::builder().with_resource(
        Resource::builder()
            .with_service_name(service.to_string())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    // The sampler keeps what the busier exporter wants; the other thins it by trace id.
    let rate = tracing_spec
        .map_or(0.0, |t| t.sample_rate)
        .max(langfuse.map_or(0.0, |l| l.sample_rate));
    builder = builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
        rate,
    ))));
    if let Some(spec) = tracing_spec {
        let exporter = OnRuntime::new(otlp_exporter(spec)?);
        let batch = BatchSpanProcessor::builder(exporter).build();
        builder = builder.with_span_processor(Filtered {
            inner: batch,
            ratio: (spec.sample_rate < rate).then_some(spec.sample_rate),
            keep_langfuse: false,
        });
    }
    if let Some(spec) = langfuse {
        let exporter = OnRuntime::new(langfuse_exporter(spec)?);
        let batch = BatchSpanProcessor::builder(exporter).build();
        builder = builder.with_span_processor(Filtered {
            inner: batch,
            ratio: (spec.sample_rate < rate).then_some(spec.sample_rate),
            keep_langfuse: true,
        });
        let _ = CARRY.set(Carry {
            inputs: !spec.scrub_inputs,
            outputs: !spec.scrub_outputs,
        });
    }
    let provider = builder.build();
    let _ = TRACER.set(provider.tracer("mcp-hangar"));
    Ok(Some(Tracing { provider }))
}

/// An exporter whose exports run on the tokio runtime it was made on: the batch processor's
/// thread has no reactor, and the OTLP clients (tonic, reqwest) need one.
#[derive(Debug)]
struct OnRuntime<E> {
    inner: Arc<E>,
    runtime: tokio::runtime::Handle,
}

impl<E> OnRuntime<E> {
    fn new(inner: E) -> Self {
        Self {
            inner: Arc::new(inner),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let inner = self.inner.clone();
        let task = self.runtime.spawn(async move { inner.export(batch).await });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(OTelSdkError::InternalFailure(format!(
                    "the export task did not finish: {e}"
                )))
            })
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called while the provider is built, before any export holds a clone.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

fn otlp_exporter(spec: &TracingSpec) -> Result<opentelemetry_otlp::SpanExporter, String> {
    let built = match spec.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(spec.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .with_metadata(metadata(&spec.headers)?)
            .build(),
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(reqwest::Client::new())
            .with_endpoint(traces_url(&spec.endpoint))
            .with_timeout(EXPORT_TIMEOUT)
            .with_headers(
                spec.headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_string()))
                    .collect(),
            )
            .build(),
    };
    built.map_err(|e| format!("observability.tracing: cannot set up the OTLP exporter: {e}"))
}

/// Langfuse's OTLP endpoint takes HTTP/protobuf with Basic auth of the key pair.
fn langfuse_exporter(spec: &LangfuseSpec) -> Result<opentelemetry_otlp::SpanExporter, String> {
    use base64::Engine as _;
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        spec.public_key.expose(),
        spec.secret_key.expose()
    ));
    let url = format!(
        "{}/api/public/otel/v1/traces",
        spec.host.trim_end_matches('/')
    );
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(reqwest::Client::new())
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .with_headers(HashMap::from([(
            "Authorization".to_string(),
            format!("Basic {credentials}"),
        )]))
        .build()
        .map_err(|e| format!("observability.langfuse: cannot set up the exporter: {e}"))
}

/// How long one export may take before the batch is dropped (it never holds up a call).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP/protobuf endpoint given as the collector's base URL gets the traces path, as the
/// OTLP exporter spec says for `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn traces_url(endpoint: &str) -> String {
    if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        endpoint.to_string()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    }
}

fn metadata(headers: &[(String, MaybeSecret)]) -> Result<tonic::metadata::MetadataMap, String> {
    let mut map = tonic::metadata::MetadataMap::new();
    for (k, v) in headers {
        let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|e| {
                format!("observability.tracing.headers: `{k}` is not a header name: {e}")
            })?;
        let value = v.expose().parse().map_err(|e| {
            format!("observability.tracing.headers: `{k}` has an invalid value: {e}")
        })?;
        map.insert(key, value);
    }
    Ok(map)
}

/// One exporter's processor: drops the Langfuse-only attributes for the OTLP collector, and
/// thins traces to the exporter's own rate when the other one samples more.
#[derive(Debug)]
struct Filtered<P> {
    inner: P,
    ratio: Option<f64>,
    keep_langfuse: bool,
}

impl<P: SpanProcessor> SpanProcessor for Filtered<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        if let Some(ratio) = self.ratio
            && !keeps(span.span_context.trace_id(), ratio)
        {
            return;
        }
        if !self.keep_langfuse {
            span.attributes
                .retain(|kv| !kv.key.as_str().starts_with("langfuse."));
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The trace-id ratio rule of OTel's `TraceIdRatioBased`: the low 8 bytes against the rate, so
/// every span of a trace gets the same answer.
fn keeps(trace_id: TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let bytes = trace_id.to_bytes();
    let low = u64::from_be_bytes(bytes[8..].try_into().expect("16-byte trace id")) >> 1;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    low < bound
}

/// `_meta` read as a carrier of trace context.
struct MetaCarrier<'a>(&'a JsonObject);

impl Extractor for MetaCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct MetaWriter<'a>(&'a mut JsonObject);

impl Injector for MetaWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), Value::String(value));
    }
}

/// The `_meta` a provider is sent for a call whose client sent `client_meta`: the client's
/// keys but its progress token (the hangar routes progress itself), with trace context.
fn outgoing(client_meta: Option<JsonObject>, cx: Option<&Context>) -> Option<JsonObject> {
    let mut meta = client_meta.unwrap_or_default();
    // The hangar routes progress itself, and the protocol's own keys (2026-07-28: version,
    // client info, capabilities) describe the client's session, not the hangar's.
    meta.retain(|key, _| key != "progressToken" && !key.starts_with("io.modelcontextprotocol/"));
    if let Some(cx) = cx {
        for key in TRACE_KEYS {
            meta.remove(key);
        }
        TraceContextPropagator::new().inject_context(cx, &mut MetaWriter(&mut meta));
    }
    (!meta.is_empty()).then_some(meta)
}

/// What a tools/call span needs to know at its start.
pub struct CallStart<'a> {
    pub target: &'a str,
    pub tool: &'a str,
    pub session: Option<&'a str>,
    pub correlation_id: &'a str,
    pub arguments: Option<&'a JsonObject>,
}

/// The span of one tools/call, ended by [`CallSpan::finish`] or, if the call is dropped
/// (cancelled, client gone), when it is dropped.
pub struct CallSpan {
    span: Option<opentelemetry_sdk::trace::Span>,
}

/// Opens the call's span (when tracing is on and the call is sampled) and returns it with the
/// `_meta` to send the provider.
pub fn start_call(
    start: &CallStart<'_>,
    client_meta: Option<JsonObject>,
) -> (CallSpan, Option<JsonObject>) {
    let Some(tracer) = TRACER.get() else {
        // Tracing off: the client's own context goes on as it came.
        return (CallSpan { span: None }, outgoing(client_meta, None));
    };
    let parent = client_meta
        .as_ref()
        .map(|meta| TraceContextPropagator::new().extract(&MetaCarrier(meta)))
        .unwrap_or_default();
    let mut attributes = Vec::with_capacity(8);
    attributes.push(KeyValue::new("mcp.method.name", "tools/call"));
    attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
    attributes.push(KeyValue::new("gen_ai.tool.name", start.tool.to_string()));
    attributes.push(KeyValue::new(
        "mcp_hangar.provider",
        start.target.to_string(),
    ));
    attributes.push(KeyValue::new(
        "mcp_hangar.correlation_id",
        start.correlation_id.to_string(),
    ));
    if let Some(session) = start.session {
        attributes.push(KeyValue::new("mcp.session.id", session.to_string()));
    }
    if CARRY.get().is_some_and(|c| c.inputs)
        && let Some(args) = start.arguments
        && let Ok(json) = serde_json::to_string(args)
    {
        attributes.push(KeyValue::new(LANGFUSE_INPUT, json));
    }
    let span = tracer
        .span_builder(span_name("tools/call", start.tool))
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(tracer, &parent);
    if !span.span_context().is_sampled() {
        return (
            CallSpan { span: None },
            outgoing(client_meta, Some(&parent)),
        );
    }
    let cx = parent.with_remote_span_context(span.span_context().clone());
    let meta = outgoing(client_meta, Some(&cx));
    (CallSpan { span: Some(span) }, meta)
}

fn span_name(method: &'static str, tool: &str) -> Cow<'static, str> {
    let mut name = String::with_capacity(method.len() + 1 + tool.len());
    name.push_str(method);
    name.push(' ');
    name.push_str(tool);
    Cow::Owned(name)
}

impl CallSpan {
    /// Records the outcome and ends the span.
    pub fn finish(mut self, result: &Result<CallToolResult, InvokeError>) {
        let Some(mut span) = self.span.take() else {
            return;
        };
        match result {
            Ok(r) if r.is_error == Some(true) => {
                span.set_attribute(KeyValue::new("error.type", "tool_error"));
                span.set_status(Status::error("the tool answered with isError"));
            }
            Ok(_) => span.set_status(Status::Ok),
            Err(e) => {
                span.set_attribute(KeyValue::new("error.type", e.kind()));
                span.set_status(Status::error(e.to_string()));
            }
        }
        if let Ok(r) = result
            && CARRY.get().is_some_and(|c| c.outputs)
            && let Ok(json) = serde_json::to_string(&r.content)
        {
            span.set_attribute(KeyValue::new(LANGFUSE_OUTPUT, json));
        }
        span.end();
    }
}

impl Drop for CallSpan {
    fn drop(&mut self) {
        if let Some(mut span) = self.span.take() {
            span.set_attribute(KeyValue::new("error.type", "cancelled"));
            span.set_status(Status::error("the call was abandoned before its answer"));
            span.end();
        }
    }
}

/// A span around a provider's start or health check, a root of its own: a start is shared by
/// every call that waits for it, so it belongs to none of them.
pub struct OpSpan {
    span: Option<opentelemetry_sdk::trace::Span>,
}

/// Opens the span of a provider operation (`start`, `health_check`).
pub fn start_op(op: &'static str, provider: &str) -> OpSpan {
    let Some(tracer) = TRACER.get() else {
        return OpSpan { span: None };
    };
    let span = tracer
        .span_builder(span_name_op(op, provider))
        .with_kind(SpanKind::Internal)
        .with_attributes([
            KeyValue::new("mcp_hangar.operation", op),
            KeyValue::new("mcp_hangar.provider", provider.to_string()),
        ])
        .start_with_context(tracer, &Context::new());
    OpSpan {
        span: span.span_context().is_sampled().then_some(span),
    }
}

fn span_name_op(op: &'static str, provider: &str) -> Cow<'static, str> {
    Cow::Owned(format!("{op} {provider}"))
}

impl OpSpan {
    /// Ends the span with the operation's outcome (`Err` holds the error's text).
    pub fn finish(mut self, outcome: Result<(), String>) {
        if let Some(mut span) = self.span.take() {
            match outcome {
                Ok(()) => span.set_status(Status::Ok),
                Err(e) => {
                    span.set_attribute(KeyValue::new("error.type", "failed"));
                    span.set_status(Status::error(e));
                }
            }
            span.end();
        }
    }
}

impl Drop for OpSpan {
    fn drop(&mut self) {
        if let Some(mut span) = self.span.take() {
            span.set_status(Status::error("abandoned"));
            span.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> JsonObject {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
            .collect()
    }

    #[test]
    fn without_tracing_the_clients_context_goes_on_unchanged_and_its_progress_token_does_not() {
        let sent = outgoing(
            Some(meta(&[
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
                ("progressToken", "7"),
                ("vendor/x", "y"),
            ])),
            None,
        )
        .unwrap();
        assert_eq!(
            sent["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(sent["vendor/x"], "y");
        assert!(!sent.contains_key("progressToken"));
        assert_eq!(outgoing(Some(meta(&[("progressToken", "1")])), None), None);
    }

    #[test]
    fn a_context_replaces_the_clients_traceparent() {
        let client = meta(&[(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )]);
        let parent = TraceContextPropagator::new().extract(&MetaCarrier(&client));
        assert!(parent.span().span_context().is_remote());
        let child = opentelemetry::trace::SpanContext::new(
            parent.span().span_context().trace_id(),
            opentelemetry::trace::SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            opentelemetry::trace::TraceFlags::SAMPLED,
            false,
            Default::default(),
        );
        let cx = parent.with_remote_span_context(child);
        let sent = outgoing(Some(client), Some(&cx)).unwrap();
        assert_eq!(
            sent["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
        );
    }

    #[test]
    fn the_ratio_rule_keeps_about_its_share_and_all_at_one() {
        let kept = (0..10_000u128)
            .filter(|i| {
                keeps(
                    TraceId::from(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)),
                    0.25,
                )
            })
            .count();
        assert!((2_000..3_000).contains(&kept), "{kept}");
        assert!(keeps(TraceId::from(u128::MAX), 1.0));
        assert!(!keeps(TraceId::from(1u128), 0.0));
    }

    #[test]
    fn an_http_endpoint_gets_the_traces_path_once() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }
}
