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
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
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

/// A W3C `traceparent` as sent (`00-<trace id>-<parent id>-<flags>`), formatted into a fixed
/// buffer: a traced call writes it into the provider's request without a map or an allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceParent([u8; TRACEPARENT_LEN]);

const TRACEPARENT_LEN: usize = 55;

impl TraceParent {
    fn new(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        fn put(out: &mut [u8], bytes: &[u8]) {
            for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
                pair[0] = HEX[usize::from(b >> 4)];
                pair[1] = HEX[usize::from(b & 0xf)];
            }
        }
        let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
        put(&mut text[3..35], &trace_id.to_bytes());
        put(&mut text[36..52], &span_id.to_bytes());
        // Flags other than `sampled` are not known to this version: sent as zero.
        put(&mut text[53..55], &[(flags & TraceFlags::SAMPLED).to_u8()]);
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        // Built only from ASCII hex digits and dashes.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The context a `traceparent` names, if it is valid by W3C Trace Context (level 1, 3.2):
    /// lowercase hex, version `ff` invalid, version 00 exactly 55 characters, a later version
    /// read as 00 when the rest starts with `-`, all-zero trace or parent ids invalid.
    fn parse(header: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
        fn hex(text: &[u8]) -> Option<u128> {
            text.iter().try_fold(0u128, |n, &c| {
                let digit = match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    _ => return None,
                };
                Some(n << 4 | u128::from(digit))
            })
        }
        let text = header.trim_matches([' ', '\t']).as_bytes();
        if text.len() < TRACEPARENT_LEN || text[2] != b'-' || text[35] != b'-' || text[52] != b'-' {
            return None;
        }
        let version = hex(&text[..2])?;
        let longer = text.len() > TRACEPARENT_LEN;
        if version == 0xff || (version == 0 && longer) || (longer && text[55] != b'-') {
            return None;
        }
        let trace_id = hex(&text[3..35]).filter(|&id| id != 0)?;
        let span_id = u64::try_from(hex(&text[36..52])?)
            .ok()
            .filter(|&id| id != 0)?;
        let flags = u8::try_from(hex(&text[53..55])?).ok()?;
        Some((
            TraceId::from(trace_id),
            SpanId::from(span_id),
            TraceFlags::new(flags) & TraceFlags::SAMPLED,
        ))
    }
}

impl std::fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `_meta` a provider is sent: the client's keys and the `traceparent` that continues the
/// trace, kept apart so that the raw path writes the latter straight into the request line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutgoingMeta {
    /// The client's keys, less its progress token, the protocol's own keys, and its
    /// `traceparent` when [`Self::traceparent`] replaces it.
    pub keys: Option<JsonObject>,
    pub traceparent: Option<TraceParent>,
}

impl OutgoingMeta {
    pub fn is_empty(&self) -> bool {
        self.traceparent.is_none() && self.keys.as_ref().is_none_or(JsonObject::is_empty)
    }

    /// Writes the `_meta` object as JSON.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.push(b'{');
        let mut first = true;
        if let Some(tp) = &self.traceparent {
            out.extend_from_slice(b"\"traceparent\":\"");
            out.extend_from_slice(&tp.0);
            out.push(b'"');
            first = false;
        }
        for (key, value) in self.keys.iter().flatten() {
            if !first {
                out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut *out, key)?;
            out.push(b':');
            serde_json::to_writer(&mut *out, value)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// The `_meta` object, for the typed (rmcp) path.
    pub fn into_object(self) -> Option<JsonObject> {
        let mut keys = self.keys.unwrap_or_default();
        if let Some(tp) = self.traceparent {
            keys.insert(TRACEPARENT.to_string(), Value::from(tp.as_str()));
        }
        (!keys.is_empty()).then_some(keys)
    }
}

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The client's `_meta` less what the provider must not get: its progress token (the hangar
/// routes progress itself) and the protocol's own keys (2026-07-28: version, client info,
/// capabilities), which describe the client's session, not the hangar's.
fn client_keys(client_meta: Option<JsonObject>) -> Option<JsonObject> {
    let mut meta = client_meta?;
    meta.retain(|key, _| key != "progressToken" && !key.starts_with("io.modelcontextprotocol/"));
    (!meta.is_empty()).then_some(meta)
}

/// The client's trace context: its `traceparent` (taken out of `keys`) as the remote parent,
/// with its `tracestate`. An invalid `traceparent` starts a new trace, so the `tracestate` that
/// went with it is dropped as well (W3C: a `tracestate` is read only with a valid parent).
fn take_parent(keys: &mut Option<JsonObject>) -> Option<SpanContext> {
    let map = keys.as_mut()?;
    let parent = map
        .remove(TRACEPARENT)
        .and_then(|v| v.as_str().and_then(TraceParent::parse));
    let Some((trace_id, span_id, flags)) = parent else {
        map.remove(TRACESTATE);
        return None;
    };
    let state = map
        .get(TRACESTATE)
        .and_then(Value::as_str)
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    Some(SpanContext::new(trace_id, span_id, flags, true, state))
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
) -> (CallSpan, OutgoingMeta) {
    let mut keys = client_keys(client_meta);
    let Some(tracer) = TRACER.get() else {
        // Tracing off: the client's own context goes on as it came.
        return (
            CallSpan { span: None },
            OutgoingMeta {
                keys,
                traceparent: None,
            },
        );
    };
    let parent = take_parent(&mut keys);
    let parent_cx = parent.as_ref().map_or_else(Context::new, |sc| {
        Context::new().with_remote_span_context(sc.clone())
    });
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
        .start_with_context(tracer, &parent_cx);
    let sc = span.span_context();
    if !sc.is_sampled() {
        // Not traced here: the provider continues the client's trace, if there is one.
        let traceparent =
            parent.map(|p| TraceParent::new(p.trace_id(), p.span_id(), p.trace_flags()));
        return (CallSpan { span: None }, OutgoingMeta { keys, traceparent });
    }
    let traceparent = Some(TraceParent::new(
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags(),
    ));
    (
        CallSpan { span: Some(span) },
        OutgoingMeta { keys, traceparent },
    )
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

    const CLIENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn without_tracing_the_clients_context_goes_on_unchanged_and_its_progress_token_does_not() {
        let sent = client_keys(Some(meta(&[
            ("traceparent", CLIENT),
            ("progressToken", "7"),
            ("vendor/x", "y"),
        ])))
        .unwrap();
        assert_eq!(sent["traceparent"], CLIENT);
        assert_eq!(sent["vendor/x"], "y");
        assert!(!sent.contains_key("progressToken"));
        assert_eq!(client_keys(Some(meta(&[("progressToken", "1")]))), None);
    }

    #[test]
    fn a_traceparent_is_written_and_read_as_w3c_trace_context_says() {
        let (trace_id, span_id, flags) = TraceParent::parse(CLIENT).unwrap();
        assert_eq!(
            trace_id,
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()
        );
        assert_eq!(span_id, SpanId::from_hex("b7ad6b7169203331").unwrap());
        assert!(flags.is_sampled());
        assert_eq!(TraceParent::new(trace_id, span_id, flags).as_str(), CLIENT);
        // Unknown flags are read and sent as zero; a later version is read as 00.
        let (_, _, flags) = TraceParent::parse(
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09-what-comes-later",
        )
        .unwrap();
        assert_eq!(flags, TraceFlags::SAMPLED);
        assert_eq!(
            TraceParent::new(trace_id, span_id, TraceFlags::new(0xfe)).as_str(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
        );
        for invalid in [
            "",
            "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
            "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
            "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
        ] {
            assert_eq!(TraceParent::parse(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn the_clients_traceparent_becomes_the_parent_and_an_invalid_one_takes_its_tracestate_along() {
        let mut keys = client_keys(Some(meta(&[
            ("traceparent", CLIENT),
            ("tracestate", "vendor=opaque"),
        ])));
        let parent = take_parent(&mut keys).unwrap();
        assert!(parent.is_remote() && parent.is_valid());
        assert_eq!(parent.trace_state().header(), "vendor=opaque");
        let keys = keys.unwrap();
        assert!(
            !keys.contains_key("traceparent"),
            "replaced by the hangar's"
        );
        assert_eq!(keys["tracestate"], "vendor=opaque");

        let mut keys = client_keys(Some(meta(&[
            ("traceparent", "00-nonsense"),
            ("tracestate", "vendor=opaque"),
            ("vendor/x", "y"),
        ])));
        assert!(take_parent(&mut keys).is_none());
        assert_eq!(keys.unwrap().keys().collect::<Vec<_>>(), ["vendor/x"]);
    }

    #[test]
    fn the_meta_a_provider_gets_is_the_same_json_on_both_paths() {
        let (trace_id, span_id, _) = TraceParent::parse(CLIENT).unwrap();
        let sent = OutgoingMeta {
            keys: Some(meta(&[
                ("tracestate", "v=1"),
                ("vendor/x", "a \"quoted\" y"),
            ])),
            traceparent: Some(TraceParent::new(trace_id, span_id, TraceFlags::SAMPLED)),
        };
        let mut raw = Vec::new();
        sent.write_json(&mut raw).unwrap();
        let raw: JsonObject = serde_json::from_slice(&raw).unwrap();
        assert_eq!(raw["traceparent"], CLIENT);
        assert_eq!(Some(raw), sent.into_object());
        assert!(OutgoingMeta::default().is_empty());
        assert_eq!(OutgoingMeta::default().into_object(), None);
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
