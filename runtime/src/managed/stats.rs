//! A provider's own counters: what the metrics endpoint reads when it is scraped.
//!
//! Kept on the provider, not counted from the event bus: the bus drops events when a subscriber
//! falls behind, and a counter that loses increments under load says the opposite of what it
//! should. Everything on the call path is a relaxed atomic add; the per-tool map is an
//! `ArcSwap` snapshot that a call only reads (a new tool name copies the map once, which
//! happens a handful of times in a provider's life).
//!
//! Deliberately absent: any lock on the call path, and unbounded label growth — a tool name
//! that the provider does not know (a typo, a hidden tool) is counted under
//! `errors_total{kind}` only, never as a tool of its own, and at most [`MAX_TOOLS`] names are
//! kept per provider (the rest are counted under [`OTHER_TOOL`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rmcp::model::CallToolResult;

use super::error::InvokeError;

/// Upper bounds of the call-duration histogram, in seconds.
pub const CALL_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds of the cold-start histogram, in seconds.
pub const START_BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// How many tool names one provider keeps counters for.
pub const MAX_TOOLS: usize = 512;

/// Where calls to tools past [`MAX_TOOLS`] are counted.
pub const OTHER_TOOL: &str = "_other";

/// How a call ended, as `tool_calls_total{status}` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallStatus {
    /// The tool answered and did not flag an error.
    Success,
    /// The tool answered with `isError: true`: the provider worked, the tool said no.
    ToolError,
    /// The hangar or the provider failed the call (timeout, crash, limit, breaker, …).
    Error,
}

impl CallStatus {
    pub const ALL: [Self; 3] = [Self::Success, Self::ToolError, Self::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::ToolError => "tool_error",
            Self::Error => "error",
        }
    }

    fn of(result: &Result<CallToolResult, InvokeError>) -> Self {
        match result {
            Ok(r) if r.is_error == Some(true) => Self::ToolError,
            Ok(_) => Self::Success,
            Err(_) => Self::Error,
        }
    }
}

/// The kinds `errors_total{kind}` counts, one per [`InvokeError`] variant.
pub const ERROR_KINDS: [&str; 15] = [
    "provider_not_found",
    "tool_not_found",
    "tool_not_exposed",
    "start_failed",
    "timeout",
    "provider_failed",
    "protocol",
    "shutting_down",
    "rate_limited",
    "circuit_open",
    "overloaded",
    "invalid_arguments",
    "no_healthy_member",
    "denied",
    "policy_failed",
];

/// The index of `e`'s kind in [`ERROR_KINDS`]. Exhaustive on purpose: a new variant does not
/// compile until it has a kind.
pub fn error_kind(e: &InvokeError) -> usize {
    match e {
        InvokeError::ProviderNotFound { .. } => 0,
        InvokeError::ToolNotFound { .. } => 1,
        InvokeError::ToolNotExposed { .. } => 2,
        InvokeError::StartFailed { .. } => 3,
        InvokeError::Timeout { .. } => 4,
        InvokeError::ProviderFailed { .. } => 5,
        InvokeError::Protocol { .. } => 6,
        InvokeError::ShuttingDown { .. } => 7,
        InvokeError::RateLimited { .. } => 8,
        InvokeError::CircuitOpen { .. } => 9,
        InvokeError::Overloaded { .. } => 10,
        InvokeError::InvalidArguments { .. } => 11,
        InvokeError::NoHealthyMember { .. } => 12,
        InvokeError::Denied { .. } => 13,
        InvokeError::PolicyFailed { .. } => 14,
    }
}

/// Why a running provider stopped, as `provider_stops_total{reason}` says it.
pub const STOP_REASONS: [&str; 5] = ["idle", "request", "shutdown", "exited", "other"];

fn stop_reason(reason: &str) -> usize {
    match reason {
        "idle" => 0,
        "hangar shutdown" => 2,
        r if r.contains("registry_stop") || r.contains("user_request") => 1,
        _ => 4,
    }
}

/// A histogram of durations with fixed bounds, kept as per-bucket counts (not cumulative)
/// plus the sum in microseconds.
pub struct Histogram<const N: usize> {
    /// Bounds in microseconds, for a comparison without floating point.
    bounds_us: [u64; N],
    /// One count per bound, and the last for everything above.
    counts: [AtomicU64; N],
    above: AtomicU64,
    sum_us: AtomicU64,
}

/// A histogram read at one moment: cumulative counts per bound, as Prometheus wants them.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    pub bounds: Vec<f64>,
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: &[f64; N]) -> Self {
        Self {
            bounds_us: bounds.map(|b| (b * 1e6) as u64),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            above: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        match self.bounds_us.iter().position(|b| us <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Relaxed),
            None => self.above.fetch_add(1, Relaxed),
        };
        self.sum_us.fetch_add(us, Relaxed);
    }

    pub fn snapshot(&self, bounds: &[f64; N]) -> HistogramSnapshot {
        let mut running = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                running += c.load(Relaxed);
                running
            })
            .collect();
        HistogramSnapshot {
            bounds: bounds.to_vec(),
            cumulative,
            count: running + self.above.load(Relaxed),
            sum_seconds: self.sum_us.load(Relaxed) as f64 / 1e6,
        }
    }
}

/// One tool's counters.
pub struct ToolStats {
    calls: [AtomicU64; 3],
    duration: Histogram<{ CALL_BUCKETS.len() }>,
}

impl ToolStats {
    fn new() -> Self {
        Self {
            calls: std::array::from_fn(|_| AtomicU64::new(0)),
            duration: Histogram::new(&CALL_BUCKETS),
        }
    }

    fn record(&self, status: CallStatus, took: Duration) {
        self.calls[status as usize].fetch_add(1, Relaxed);
        self.duration.observe(took);
    }
}

/// One tool's counters read at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSnapshot {
    pub tool: String,
    /// Calls by [`CallStatus`], in `CallStatus::ALL` order.
    pub calls: [u64; 3],
    pub duration: HistogramSnapshot,
}

impl ToolSnapshot {
    pub fn total(&self) -> u64 {
        self.calls.iter().sum()
    }
}

type ToolMap = HashMap<Box<str>, Arc<ToolStats>, foldhash::fast::RandomState>;

/// Every counter a provider keeps for metrics.
pub struct ProviderStats {
    tools: ArcSwap<ToolMap>,
    errors: [AtomicU64; ERROR_KINDS.len()],
    starts: AtomicU64,
    start_failures: AtomicU64,
    cold_start: Histogram<{ START_BUCKETS.len() }>,
    stops: [AtomicU64; STOP_REASONS.len()],
    health_ok: AtomicU64,
    health_failed: AtomicU64,
}

/// What a provider's counters say at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsSnapshot {
    pub tools: Vec<ToolSnapshot>,
    /// `(kind, count)` for every kind in [`ERROR_KINDS`].
    pub errors: Vec<(&'static str, u64)>,
    pub starts: u64,
    pub start_failures: u64,
    pub cold_start: HistogramSnapshot,
    /// `(reason, count)` for every reason in [`STOP_REASONS`].
    pub stops: Vec<(&'static str, u64)>,
    pub health_ok: u64,
    pub health_failed: u64,
}

/// A call being measured: its tool's counters if the tool is known, and when it began.
pub struct CallMeter {
    tool: Result<Arc<ToolStats>, Box<str>>,
    started: Instant,
}

impl Default for ProviderStats {
    fn default() -> Self {
        Self {
            tools: ArcSwap::from_pointee(ToolMap::default()),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            starts: AtomicU64::new(0),
            start_failures: AtomicU64::new(0),
            cold_start: Histogram::new(&START_BUCKETS),
            stops: std::array::from_fn(|_| AtomicU64::new(0)),
            health_ok: AtomicU64::new(0),
            health_failed: AtomicU64::new(0),
        }
    }
}

impl ProviderStats {
    /// Starts measuring a call of `tool`. A tool seen before costs one map lookup and no
    /// allocation.
    pub fn begin(&self, tool: &str) -> CallMeter {
        let known = self.tools.load().get(tool).cloned();
        CallMeter {
            tool: known.ok_or_else(|| Box::from(tool)),
            started: Instant::now(),
        }
    }

    /// Records how the call `meter` measured ended.
    pub fn finish(&self, meter: CallMeter, result: &Result<CallToolResult, InvokeError>) {
        let took = meter.started.elapsed();
        if let Err(e) = result {
            self.errors[error_kind(e)].fetch_add(1, Relaxed);
        }
        let tool = match meter.tool {
            Ok(tool) => tool,
            // A name the provider does not offer is not a tool: counted by kind only.
            Err(_)
                if matches!(
                    result,
                    Err(InvokeError::ToolNotFound { .. } | InvokeError::ToolNotExposed { .. })
                ) =>
            {
                return;
            }
            Err(name) => self.add_tool(name),
        };
        tool.record(CallStatus::of(result), took);
    }

    /// The counters of a tool seen for the first time (or of [`OTHER_TOOL`] past the cap).
    #[cold]
    fn add_tool(&self, name: Box<str>) -> Arc<ToolStats> {
        let mut added = None;
        self.tools.rcu(|map| {
            let mut map = ToolMap::clone(map);
            let key = if map.len() >= MAX_TOOLS && !map.contains_key(&name) {
                Box::from(OTHER_TOOL)
            } else {
                name.clone()
            };
            let stats = map
                .entry(key)
                .or_insert_with(|| Arc::new(ToolStats::new()))
                .clone();
            added = Some(stats);
            map
        });
        added.unwrap_or_else(|| Arc::new(ToolStats::new()))
    }

    pub fn started(&self, took: Duration) {
        self.starts.fetch_add(1, Relaxed);
        self.cold_start.observe(took);
    }

    pub fn start_failed(&self) {
        self.start_failures.fetch_add(1, Relaxed);
    }

    /// A running provider was stopped for `reason` (as `Provider::stop` is given it).
    pub fn stopped(&self, reason: &str) {
        self.stops[stop_reason(reason)].fetch_add(1, Relaxed);
    }

    /// A running provider's process ended on its own.
    pub fn exited(&self) {
        self.stops[3].fetch_add(1, Relaxed);
    }

    pub fn health_checked(&self, ok: bool) {
        if ok {
            self.health_ok.fetch_add(1, Relaxed);
        } else {
            self.health_failed.fetch_add(1, Relaxed);
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let mut tools: Vec<ToolSnapshot> = self
            .tools
            .load()
            .iter()
            .map(|(name, t)| ToolSnapshot {
                tool: name.to_string(),
                calls: std::array::from_fn(|i| t.calls[i].load(Relaxed)),
                duration: t.duration.snapshot(&CALL_BUCKETS),
            })
            .collect();
        tools.sort_by(|a, b| a.tool.cmp(&b.tool));
        StatsSnapshot {
            tools,
            errors: ERROR_KINDS
                .iter()
                .zip(&self.errors)
                .map(|(k, n)| (*k, n.load(Relaxed)))
                .collect(),
            starts: self.starts.load(Relaxed),
            start_failures: self.start_failures.load(Relaxed),
            cold_start: self.cold_start.snapshot(&START_BUCKETS),
            stops: STOP_REASONS
                .iter()
                .zip(&self.stops)
                .map(|(k, n)| (*k, n.load(Relaxed)))
                .collect(),
            health_ok: self.health_ok.load(Relaxed),
            health_failed: self.health_failed.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::ContentBlock;

    use super::*;

    fn ok() -> Result<CallToolResult, InvokeError> {
        Ok(CallToolResult::success(vec![ContentBlock::text("x")]))
    }

    fn tool_error() -> Result<CallToolResult, InvokeError> {
        Ok(CallToolResult::error(vec![ContentBlock::text("no")]))
    }

    fn timeout() -> Result<CallToolResult, InvokeError> {
        Err(InvokeError::Timeout {
            provider: "p".into(),
            tool: "echo".into(),
            limit: Duration::from_secs(1),
        })
    }

    #[test]
    fn calls_are_counted_per_tool_and_status_and_errors_per_kind() {
        let stats = ProviderStats::default();
        for result in [ok(), ok(), tool_error(), timeout()] {
            let meter = stats.begin("echo");
            stats.finish(meter, &result);
        }
        let s = stats.snapshot();
        assert_eq!(s.tools.len(), 1);
        assert_eq!(s.tools[0].tool, "echo");
        assert_eq!(s.tools[0].calls, [2, 1, 1]);
        assert_eq!(s.tools[0].duration.count, 4);
        let timeouts = s.errors.iter().find(|(k, _)| *k == "timeout");
        assert_eq!(timeouts, Some(&("timeout", 1)));
        assert_eq!(s.errors.iter().map(|(_, n)| n).sum::<u64>(), 1);
    }

    #[test]
    fn an_unknown_tool_name_is_counted_by_kind_but_never_becomes_a_series() {
        let stats = ProviderStats::default();
        let meter = stats.begin("no-such-tool");
        stats.finish(
            meter,
            &Err(InvokeError::ToolNotFound {
                provider: "p".into(),
                tool: "no-such-tool".into(),
                suggestions: vec![],
            }),
        );
        let s = stats.snapshot();
        assert!(s.tools.is_empty(), "{:?}", s.tools);
        assert_eq!(s.errors[1], ("tool_not_found", 1));
    }

    #[test]
    fn tool_names_past_the_cap_are_counted_together() {
        let stats = ProviderStats::default();
        for i in 0..MAX_TOOLS + 3 {
            let meter = stats.begin(&format!("t{i}"));
            stats.finish(meter, &ok());
        }
        let s = stats.snapshot();
        assert_eq!(s.tools.len(), MAX_TOOLS + 1);
        let other = s.tools.iter().find(|t| t.tool == OTHER_TOOL);
        assert_eq!(other.map(ToolSnapshot::total), Some(3));
    }

    #[test]
    fn the_histogram_is_cumulative_with_everything_in_the_count() {
        let h = Histogram::new(&[0.001, 0.01]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(2));
        let s = h.snapshot(&[0.001, 0.01]);
        assert_eq!(s.cumulative, [1, 3]);
        assert_eq!(s.count, 4);
        assert!((s.sum_seconds - 2.0105).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn stop_reasons_are_classified() {
        let stats = ProviderStats::default();
        stats.stopped("idle");
        stats.stopped("hangar shutdown");
        stats.stopped("stopped by registry_stop");
        stats.stopped("group pool stopped");
        stats.exited();
        let s = stats.snapshot();
        assert_eq!(
            s.stops,
            [
                ("idle", 1),
                ("request", 1),
                ("shutdown", 1),
                ("exited", 1),
                ("other", 1)
            ]
        );
    }
}
