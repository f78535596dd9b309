//! OpenTelemetry traces: one span per `tools/call`, per provider start and per health check,
//! exported over OTLP (gRPC or HTTP/protobuf) by a batch processor on the runtime, never on the
//! call path; Langfuse through its OTLP endpoint as a second exporter.
//!
//! A sampled call records its span as a small fixed-size record handed to a batch thread
//! ([`super::span_export`]), which builds the SDK's spans for the exporters; no `tracing` layer
//! and no SDK tracer on the call path. An unsampled or untraced call costs a load of [`SPANS`].
//!
//! W3C trace context: a client's `_meta.traceparent`/`tracestate` is the parent of the call's
//! span, and the provider gets the call span's own context in its `_meta`. With tracing off the
//! client's context goes on to the provider unchanged, so a trace is never cut at the hangar.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SpanExporter as _};
use rmcp::model::{CallToolResult, JsonObject};
use serde_json::Value;

use super::span_export::{self, BatchConfig, Kind, Outcome, Queue, Record, Sink, Texts, keeps};
use crate::config::{LangfuseSpec, MaybeSecret, OtlpProtocol, TracingSpec};
use crate::registry::InvokeError;

/// Where sampled spans go, once `install` has run with tracing or Langfuse on.
static SPANS: OnceLock<Spans> = OnceLock::new();

struct Spans {
    queue: Arc<Queue>,
    /// The rate a new trace (one without a client's parent) is sampled at.
    rate: f64,
    carry: Carry,
}

/// Whether spans carry the call's arguments and result for Langfuse (`scrub_inputs: false`,
/// `scrub_outputs: false`); only the Langfuse exporter sees them.
#[derive(Clone, Copy, Default)]
struct Carry {
    inputs: bool,
    outputs: bool,
}

/// What keeps the exporters running; [`Tracing::shutdown`] flushes what is queued.
pub struct Tracing {
    queue: Arc<Queue>,
}

impl Tracing {
    /// Sends what is queued (up to `timeout`) and stops the exporters.
    pub fn shutdown(&self, timeout: Duration) {
        if !self.queue.shutdown(timeout) {
            tracing::warn!("trace exporter did not flush within {timeout:?} before shutdown");
        }
    }
}

/// Starts the exporters the config asks for; `None` when neither tracing nor Langfuse is on.
/// Must run inside the tokio runtime: exports run on it.
///
/// Calls hand their spans to a batch thread as small records ([`span_export`]); it wakes when
/// a batch is full or due (`OTEL_BSP_*`, as the SDK's batch processor), builds the SDK's spans
/// and has the exporters send them from the runtime.
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
    let resource = Resource::builder()
        .with_service_name(service.to_string())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    // New traces are sampled at what the busier exporter wants; the other thins them by trace
    // id. A client's sampled parent is followed (the SDK's `ParentBased` rule).
    let rate = tracing_spec
        .map_or(0.0, |t| t.sample_rate)
        .max(langfuse.map_or(0.0, |l| l.sample_rate));
    let mut sinks = Vec::new();
    if let Some(spec) = tracing_spec {
        let mut exporter = otlp_exporter(spec)?;
        exporter.set_resource(&resource);
        sinks.push(Sink {
            exporter,
            ratio: (spec.sample_rate < rate).then_some(spec.sample_rate),
            keep_langfuse: false,
        });
    }
    let mut carry = Carry::default();
    if let Some(spec) = langfuse {
        let mut exporter = langfuse_exporter(spec)?;
        exporter.set_resource(&resource);
        sinks.push(Sink {
            exporter,
            ratio: (spec.sample_rate < rate).then_some(spec.sample_rate),
            keep_langfuse: true,
        });
        carry = Carry {
            inputs: !spec.scrub_inputs,
            outputs: !spec.scrub_outputs,
        };
    }
    let queue = span_export::spawn(
        sinks,
        BatchConfig::from_env(),
        tokio::runtime::Handle::current(),
    )
    .map_err(|e| format!("cannot start the trace export thread: {e}"))?;
    let _ = SPANS.set(Spans {
        queue: queue.clone(),
        rate,
        carry,
    });
    Ok(Some(Tracing { queue }))
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
        self.write_members(out, true)?;
        out.push(b'}');
        Ok(())
    }

    /// Writes the object's members, for an object the caller has opened (and, unless `first`,
    /// written members of its own into) and closes.
    pub fn write_members(&self, out: &mut Vec<u8>, mut first: bool) -> serde_json::Result<()> {
        if let Some(tp) = &self.traceparent {
            if !first {
                out.push(b',');
            }
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
    open: Option<Open>,
}

/// A sampled span under way: its record, completed at the end and queued for export.
struct Open {
    record: Record,
    spans: &'static Spans,
}

impl Open {
    /// The span, if sampled: a client's parent decides by its W3C `sampled` flag, else the rate
    /// by the new trace id (OTel's `ParentBased(TraceIdRatioBased)`).
    fn sampled(
        spans: &'static Spans,
        kind: Kind,
        parent: Option<&SpanContext>,
        texts: impl FnOnce() -> Texts,
    ) -> Option<Self> {
        let ids = RandomIdGenerator::default();
        let (trace_id, parent, trace_state) = match parent {
            Some(p) if p.is_sampled() => (p.trace_id(), p.span_id(), p.trace_state().clone()),
            Some(_) => return None,
            None => {
                let id = ids.new_trace_id();
                if !keeps(id, spans.rate) {
                    return None;
                }
                (id, SpanId::INVALID, TraceState::default())
            }
        };
        Some(Self {
            record: Record {
                kind,
                trace_id,
                span_id: ids.new_span_id(),
                parent,
                trace_state,
                start: SystemTime::now(),
                end: SystemTime::UNIX_EPOCH,
                texts: texts(),
                outcome: Outcome::Ok,
                input: None,
                output: None,
            },
            spans,
        })
    }

    fn end(mut self, outcome: Outcome) {
        self.record.end = SystemTime::now();
        self.record.outcome = outcome;
        self.spans.queue.push(self.record);
    }
}

/// Opens the call's span (when tracing is on and the call is sampled) and returns it with the
/// `_meta` to send the provider.
pub fn start_call(
    start: &CallStart<'_>,
    client_meta: Option<JsonObject>,
) -> (CallSpan, OutgoingMeta) {
    let mut keys = client_keys(client_meta);
    let Some(spans) = SPANS.get() else {
        // Tracing off: the client's own context goes on as it came.
        return (
            CallSpan { open: None },
            OutgoingMeta {
                keys,
                traceparent: None,
            },
        );
    };
    let parent = take_parent(&mut keys);
    let open = Open::sampled(spans, Kind::Call, parent.as_ref(), || {
        Texts::new([
            start.tool,
            start.target,
            start.correlation_id,
            start.session.unwrap_or_default(),
        ])
    });
    let Some(mut open) = open else {
        // Not traced here: the provider continues the client's trace, if there is one.
        let traceparent =
            parent.map(|p| TraceParent::new(p.trace_id(), p.span_id(), p.trace_flags()));
        return (CallSpan { open: None }, OutgoingMeta { keys, traceparent });
    };
    if spans.carry.inputs
        && let Some(args) = start.arguments
    {
        open.record.input = serde_json::to_string(args).ok();
    }
    let traceparent = Some(TraceParent::new(
        open.record.trace_id,
        open.record.span_id,
        TraceFlags::SAMPLED,
    ));
    (
        CallSpan { open: Some(open) },
        OutgoingMeta { keys, traceparent },
    )
}

impl CallSpan {
    /// Records the outcome and ends the span.
    pub fn finish(mut self, result: &Result<CallToolResult, InvokeError>) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        let outcome = match result {
            Ok(r) if r.is_error == Some(true) => Outcome::Error {
                kind: Some("tool_error"),
                message: "the tool answered with isError".into(),
            },
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Error {
                kind: Some(e.kind()),
                message: e.to_string().into(),
            },
        };
        if let Ok(r) = result
            && open.spans.carry.outputs
        {
            open.record.output = serde_json::to_string(&r.content).ok();
        }
        open.end(outcome);
    }
}

impl Drop for CallSpan {
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            open.end(Outcome::Error {
                kind: Some("cancelled"),
                message: "the call was abandoned before its answer".into(),
            });
        }
    }
}

/// A span around a provider's start or health check, a root of its own: a start is shared by
/// every call that waits for it, so it belongs to none of them.
pub struct OpSpan {
    open: Option<Open>,
}

/// Opens the span of a provider operation (`start`, `health_check`).
pub fn start_op(op: &'static str, provider: &str) -> OpSpan {
    let open = SPANS.get().and_then(|spans| {
        Open::sampled(spans, Kind::Op(op), None, || {
            Texts::new([provider, "", "", ""])
        })
    });
    OpSpan { open }
}

impl OpSpan {
    /// Ends the span with the operation's outcome (`Err` holds the error's text).
    pub fn finish(mut self, outcome: Result<(), String>) {
        if let Some(open) = self.open.take() {
            open.end(match outcome {
                Ok(()) => Outcome::Ok,
                Err(e) => Outcome::Error {
                    kind: Some("failed"),
                    message: e.into(),
                },
            });
        }
    }
}

impl Drop for OpSpan {
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            open.end(Outcome::Error {
                kind: None,
                message: "abandoned".into(),
            });
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
        // After a member of the raw path's own (its progress token), with and without keys.
        for meta in [sent.clone(), OutgoingMeta::default()] {
            let mut after = b"{\"progressToken\":\"hangar-1\"".to_vec();
            meta.write_members(&mut after, false).unwrap();
            after.push(b'}');
            let mut after: JsonObject = serde_json::from_slice(&after).unwrap();
            assert_eq!(after.remove("progressToken").unwrap(), "hangar-1");
            assert_eq!((!after.is_empty()).then_some(after), meta.into_object());
        }
        assert_eq!(Some(raw), sent.into_object());
        assert!(OutgoingMeta::default().is_empty());
        assert_eq!(OutgoingMeta::default().into_object(), None);
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
