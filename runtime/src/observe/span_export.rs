//! The hand-off of finished spans from the call path to the exporters.
//!
//! A call records its span as one fixed-size [`Record`] (ids, two timestamps, the outcome, its
//! few strings copied into an inline buffer) and appends it to a queue under an uncontended
//! lock: no allocation, no SDK span, no wakeup of another thread except once per full batch.
//! The batch thread builds the SDK's `SpanData` from the records, and the exporters (OTLP,
//! Langfuse) send them from the tokio runtime, as the SDK's batch processor would.
//!
//! Deliberately absent: the SDK's `Tracer`/`Span` on the call path. A span there cost six
//! allocations, a `SpanData` of ~300 bytes moved through a channel, and frees on the batch
//! thread of memory allocated on the call's thread, which left the call's allocator reaching
//! for fresh (cold, sometimes unmapped) memory on every traced call.

use std::borrow::Cow;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};

/// Attributes only the Langfuse exporter receives: the other exporter drops them.
const LANGFUSE_INPUT: &str = "langfuse.observation.input";
const LANGFUSE_OUTPUT: &str = "langfuse.observation.output";

/// What a span is of; decides its name, kind and fixed attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A `tools/call`; texts: tool, provider, correlation id, session (empty: none).
    Call,
    /// A provider operation (`start`, `health_check`); texts: provider.
    Op(&'static str),
}

/// How a span ended.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Ok,
    /// `error.type` (if any) and the status description.
    Error {
        kind: Option<&'static str>,
        message: Cow<'static, str>,
    },
}

/// One finished (or, until its end, open) span: everything the exporters need, kept without
/// allocating for calls whose strings fit [`Texts`].
#[derive(Debug)]
pub struct Record {
    pub kind: Kind,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `SpanId::INVALID` for a root span; a parent is always the client's (remote).
    pub parent: SpanId,
    pub trace_state: TraceState,
    pub start: SystemTime,
    pub end: SystemTime,
    pub texts: Texts,
    pub outcome: Outcome,
    /// Langfuse's input and output (the call's arguments and result as JSON), when carried.
    pub input: Option<String>,
    pub output: Option<String>,
}

const TEXTS: usize = 4;
const INLINE: usize = 112;

/// Up to four strings of a span, copied into one inline buffer when they fit (tool and
/// provider names, a correlation id, a session id: they nearly always do), else onto the heap.
#[derive(Clone)]
pub enum Texts {
    Inline {
        ends: [u8; TEXTS],
        bytes: [u8; INLINE],
    },
    Heap(Box<[Box<str>; TEXTS]>),
}

impl Texts {
    pub fn new(parts: [&str; TEXTS]) -> Self {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > INLINE {
            return Self::Heap(Box::new(parts.map(Box::from)));
        }
        let mut bytes = [0u8; INLINE];
        let mut ends = [0u8; TEXTS];
        let mut at = 0;
        for (part, end) in parts.iter().zip(&mut ends) {
            bytes[at..at + part.len()].copy_from_slice(part.as_bytes());
            at += part.len();
            // `at <= INLINE < 256`.
            *end = u8::try_from(at).unwrap_or(u8::MAX);
        }
        Self::Inline { ends, bytes }
    }

    pub fn get(&self, i: usize) -> &str {
        match self {
            Self::Inline { ends, bytes } => {
                let start = if i == 0 { 0 } else { usize::from(ends[i - 1]) };
                // Whole `&str`s were copied in, so each part is valid UTF-8.
                std::str::from_utf8(&bytes[start..usize::from(ends[i])]).unwrap_or_default()
            }
            Self::Heap(parts) => &parts[i],
        }
    }
}

impl std::fmt::Debug for Texts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries((0..TEXTS).map(|i| self.get(i)))
            .finish()
    }
}

/// The batch processor's settings, read as the SDK reads them (`OTEL_BSP_*`).
#[derive(Clone, Copy, Debug)]
pub struct BatchConfig {
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
    pub scheduled_delay: Duration,
}

impl BatchConfig {
    pub fn from_env() -> Self {
        fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
            std::env::var(name).ok()?.trim().parse().ok()
        }
        let max_queue_size = var("OTEL_BSP_MAX_QUEUE_SIZE")
            .filter(|&n| n > 0)
            .unwrap_or(2048);
        let max_export_batch_size = var("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
            .filter(|&n| n > 0)
            .unwrap_or(512)
            .min(max_queue_size);
        let scheduled_delay = Duration::from_millis(var("OTEL_BSP_SCHEDULE_DELAY").unwrap_or(5000));
        Self {
            max_queue_size,
            max_export_batch_size,
            scheduled_delay,
        }
    }
}

/// One exporter with what it takes of the spans.
pub struct Sink {
    pub exporter: opentelemetry_otlp::SpanExporter,
    /// The exporter's own rate, when lower than the rate spans are sampled at.
    pub ratio: Option<f64>,
    /// Whether it gets the Langfuse-only attributes.
    pub keep_langfuse: bool,
}

/// The queue between the calls and the batch thread.
pub struct Queue {
    pending: Mutex<Pending>,
    wake: Condvar,
    config: BatchConfig,
}

#[derive(Default)]
struct Pending {
    records: Vec<Record>,
    /// A shutdown asked for (its timeout), answered when done.
    stop: Option<(Duration, mpsc::SyncSender<()>)>,
    stopped: bool,
    dropped: u64,
}

impl Queue {
    fn new(config: BatchConfig) -> Self {
        Self {
            pending: Mutex::new(Pending {
                records: Vec::with_capacity(config.max_export_batch_size),
                ..Pending::default()
            }),
            wake: Condvar::new(),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a finished span; drops it (and counts it) when the queue is full, so a slow or
    /// absent collector never holds up a call. Wakes the batch thread only for a full batch.
    pub fn push(&self, record: Record) {
        let mut pending = self.lock();
        if pending.stopped || pending.records.len() >= self.config.max_queue_size {
            pending.dropped += 1;
            return;
        }
        pending.records.push(record);
        let full = pending.records.len() == self.config.max_export_batch_size;
        drop(pending);
        if full {
            self.wake.notify_one();
        }
    }

    /// Exports what is queued and shuts the exporters down; waits up to `timeout` for it.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let mut pending = self.lock();
            if pending.stopped {
                return true;
            }
            pending.stop = Some((timeout, tx));
        }
        self.wake.notify_one();
        rx.recv_timeout(timeout).is_ok()
    }
}

/// Starts the batch thread; exports run in `runtime`'s context (the OTLP clients need its
/// reactor), which must be a multi-thread runtime: its workers drive the connections.
pub fn spawn(
    sinks: Vec<Sink>,
    config: BatchConfig,
    runtime: tokio::runtime::Handle,
) -> std::io::Result<Arc<Queue>> {
    let queue = Arc::new(Queue::new(config));
    let worker = Worker {
        queue: queue.clone(),
        sinks,
        runtime,
        scope: InstrumentationScope::builder("mcp-hangar").build(),
    };
    std::thread::Builder::new()
        .name("hangar-span-export".to_string())
        .spawn(move || worker.run())?;
    Ok(queue)
}

struct Worker {
    queue: Arc<Queue>,
    sinks: Vec<Sink>,
    runtime: tokio::runtime::Handle,
    scope: InstrumentationScope,
}

impl Worker {
    fn run(self) {
        let config = self.queue.config;
        // The records taken from the queue; swapped with its vector, so neither side allocates
        // once both have grown to a batch.
        let mut taken: Vec<Record> = Vec::with_capacity(config.max_export_batch_size);
        let mut due = Instant::now() + config.scheduled_delay;
        loop {
            let mut pending = self.queue.lock();
            loop {
                if pending.records.len() >= config.max_export_batch_size || pending.stop.is_some() {
                    break;
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                pending = self
                    .queue
                    .wake
                    .wait_timeout(pending, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            std::mem::swap(&mut pending.records, &mut taken);
            let stop = pending.stop.take();
            if stop.is_some() {
                pending.stopped = true;
            }
            let dropped = std::mem::take(&mut pending.dropped);
            drop(pending);
            if dropped > 0 {
                tracing::warn!(
                    "{dropped} spans dropped: the trace export queue was full \
                     (OTEL_BSP_MAX_QUEUE_SIZE {})",
                    config.max_queue_size
                );
            }
            for chunk in taken.chunks(config.max_export_batch_size) {
                self.export(chunk);
            }
            taken.clear();
            due = Instant::now() + config.scheduled_delay;
            if let Some((timeout, reply)) = stop {
                for sink in &self.sinks {
                    if let Err(e) = sink.exporter.shutdown_with_timeout(timeout) {
                        tracing::warn!("trace exporter did not shut down cleanly: {e}");
                    }
                }
                let _ = reply.try_send(());
                return;
            }
        }
    }

    fn export(&self, records: &[Record]) {
        for sink in &self.sinks {
            let batch: Vec<SpanData> = records
                .iter()
                .filter(|r| sink.ratio.is_none_or(|ratio| keeps(r.trace_id, ratio)))
                .map(|r| span_data(r, &self.scope, sink.keep_langfuse))
                .collect();
            if batch.is_empty() {
                continue;
            }
            // Run here, in the runtime's context: the SDK-to-protobuf transform stays on this
            // thread; the runtime's workers only do the connection's I/O.
            if let Err(e) = self.runtime.block_on(sink.exporter.export(batch)) {
                tracing::warn!("trace export failed: {e}");
            }
        }
    }
}

/// The trace-id ratio rule of OTel's `TraceIdRatioBased`: the low 8 bytes against the rate, so
/// every span of a trace gets the same answer.
pub fn keeps(trace_id: TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let bytes = trace_id.to_bytes();
    let low = u64::from_be_bytes(bytes[8..].try_into().expect("16-byte trace id")) >> 1;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    low < bound
}

/// The SDK's form of a record, with the attributes of OTel's MCP and GenAI conventions.
fn span_data(r: &Record, scope: &InstrumentationScope, keep_langfuse: bool) -> SpanData {
    let mut attributes = Vec::with_capacity(9);
    let (name, span_kind) = match r.kind {
        Kind::Call => {
            let (tool, provider, correlation, session) = (
                r.texts.get(0),
                r.texts.get(1),
                r.texts.get(2),
                r.texts.get(3),
            );
            attributes.push(KeyValue::new("mcp.method.name", "tools/call"));
            attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
            attributes.push(KeyValue::new("gen_ai.tool.name", tool.to_string()));
            attributes.push(KeyValue::new("mcp_hangar.provider", provider.to_string()));
            attributes.push(KeyValue::new(
                "mcp_hangar.correlation_id",
                correlation.to_string(),
            ));
            if !session.is_empty() {
                attributes.push(KeyValue::new("mcp.session.id", session.to_string()));
            }
            (format!("tools/call {tool}"), SpanKind::Server)
        }
        Kind::Op(op) => {
            let provider = r.texts.get(0);
            attributes.push(KeyValue::new("mcp_hangar.operation", op));
            attributes.push(KeyValue::new("mcp_hangar.provider", provider.to_string()));
            (format!("{op} {provider}"), SpanKind::Internal)
        }
    };
    if keep_langfuse && let Some(input) = &r.input {
        attributes.push(KeyValue::new(LANGFUSE_INPUT, input.clone()));
    }
    let status = match &r.outcome {
        Outcome::Ok => Status::Ok,
        Outcome::Error { kind, message } => {
            if let Some(kind) = kind {
                attributes.push(KeyValue::new("error.type", *kind));
            }
            Status::Error {
                description: message.clone(),
            }
        }
    };
    if keep_langfuse && let Some(output) = &r.output {
        attributes.push(KeyValue::new(LANGFUSE_OUTPUT, output.clone()));
    }
    SpanData {
        span_context: SpanContext::new(
            r.trace_id,
            r.span_id,
            TraceFlags::SAMPLED,
            false,
            r.trace_state.clone(),
        ),
        parent_span_id: r.parent,
        parent_span_is_remote: r.parent != SpanId::INVALID,
        span_kind,
        name: Cow::Owned(name),
        start_time: r.start,
        end_time: r.end,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_that_fit_stay_inline_and_longer_ones_go_to_the_heap_unchanged() {
        let t = Texts::new(["echo", "math", "0000abcd-17", ""]);
        assert!(matches!(t, Texts::Inline { .. }));
        assert_eq!(
            (0..4).map(|i| t.get(i)).collect::<Vec<_>>(),
            ["echo", "math", "0000abcd-17", ""]
        );
        let long = "ü".repeat(60);
        let t = Texts::new([&long, "p", "c", "s"]);
        assert!(matches!(t, Texts::Heap(_)));
        assert_eq!(t.get(0), long);
        assert_eq!(t.get(3), "s");
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

    fn record(outcome: Outcome) -> Record {
        Record {
            kind: Kind::Call,
            trace_id: TraceId::from(7u128),
            span_id: SpanId::from(9u64),
            parent: SpanId::from(3u64),
            trace_state: TraceState::default(),
            start: SystemTime::UNIX_EPOCH,
            end: SystemTime::UNIX_EPOCH + Duration::from_micros(5),
            texts: Texts::new(["echo", "math", "c-1", ""]),
            outcome,
            input: Some("{\"text\":\"x\"}".to_string()),
            output: None,
        }
    }

    #[test]
    fn a_full_queue_drops_spans_and_counts_them_instead_of_waiting() {
        let queue = Queue::new(BatchConfig {
            max_queue_size: 2,
            max_export_batch_size: 2,
            scheduled_delay: Duration::from_secs(5),
        });
        for _ in 0..3 {
            queue.push(record(Outcome::Ok));
        }
        let pending = queue.lock();
        assert_eq!((pending.records.len(), pending.dropped), (2, 1));
    }

    #[test]
    fn a_call_record_becomes_a_server_span_with_the_conventions_attributes() {
        let scope = InstrumentationScope::builder("mcp-hangar").build();
        let span = span_data(
            &record(Outcome::Error {
                kind: Some("tool_error"),
                message: Cow::Borrowed("the tool answered with isError"),
            }),
            &scope,
            false,
        );
        assert_eq!(span.name, "tools/call echo");
        assert_eq!(span.span_kind, SpanKind::Server);
        assert!(span.parent_span_is_remote);
        assert_eq!(span.parent_span_id, SpanId::from(3u64));
        let keys: Vec<_> = span.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "mcp.method.name",
                "gen_ai.operation.name",
                "gen_ai.tool.name",
                "mcp_hangar.provider",
                "mcp_hangar.correlation_id",
                "error.type"
            ],
            "no session, and the Langfuse input only for Langfuse"
        );
        assert!(matches!(span.status, Status::Error { .. }));
        let langfuse = span_data(&record(Outcome::Ok), &scope, true);
        assert!(
            langfuse
                .attributes
                .iter()
                .any(|kv| kv.key.as_str() == LANGFUSE_INPUT)
        );
        assert_eq!(langfuse.status, Status::Ok);
    }
}
