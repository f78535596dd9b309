//! Prometheus metrics: a collector that reads the registry's own state when it is scraped.
//!
//! Nothing here is counted as it happens: every value comes from what the providers, groups,
//! limits and plugins already keep (their states, breakers, relaxed atomic counters), read at
//! scrape time. So metrics cost the call path only those counters, and nothing is lost when the
//! event bus drops events under load. Families are prefixed `mcp_hangar_`; the README lists them.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};
use serde_json::{Map, Value, json};

use crate::discovery::Discovery;
use crate::group::rotation::GroupState;
use crate::provider::ProviderState;
use crate::provider::breaker::BreakerState;
use crate::registry::{CallStatus, HistogramSnapshot, Registry, StatsSnapshot};

/// The prefix of every family.
pub const PREFIX: &str = "mcp_hangar_";

/// The content type of the text exposition format this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

use MetricType::{COUNTER, GAUGE, HISTOGRAM, SUMMARY};

/// Every family: (name without prefix, help, labels, type). Order is the output's.
const FAMILIES: &[(&str, &str, &[&str], MetricType)] = &[
    (
        "build_info",
        "Version of this mcp-hangar; always 1.",
        &["version"],
        GAUGE,
    ),
    (
        "providers",
        "Providers configured (group members included).",
        &[],
        GAUGE,
    ),
    (
        "provider_state",
        "1 for the provider's current state, 0 for the others.",
        &["provider", "state"],
        GAUGE,
    ),
    (
        "provider_up",
        "1 while the provider runs (ready or degraded).",
        &["provider"],
        GAUGE,
    ),
    (
        "provider_in_flight",
        "Calls the provider is answering now.",
        &["provider"],
        GAUGE,
    ),
    (
        "provider_queued",
        "Calls waiting for a max_concurrency slot.",
        &["provider"],
        GAUGE,
    ),
    (
        "provider_max_concurrency",
        "The provider's max_concurrency (absent when unlimited).",
        &["provider"],
        GAUGE,
    ),
    (
        "provider_starts_total",
        "Starts of the provider, by outcome.",
        &["provider", "result"],
        COUNTER,
    ),
    (
        "provider_stops_total",
        "Stops of a running provider, by reason (idle, request, shutdown, exited, other).",
        &["provider", "reason"],
        COUNTER,
    ),
    (
        "provider_cold_start_seconds",
        "Time from start to ready (handshake and tool list included).",
        &["provider"],
        HISTOGRAM,
    ),
    (
        "tool_calls_total",
        "Tool calls, by outcome: success, tool_error (the tool's own isError), error (the hangar or the provider failed it).",
        &["provider", "tool", "status"],
        COUNTER,
    ),
    (
        "tool_call_duration_seconds",
        "Duration of tool calls as the hangar saw them (a cold start included).",
        &["provider", "tool"],
        HISTOGRAM,
    ),
    (
        "errors_total",
        "Failed calls, by kind.",
        &["provider", "kind"],
        COUNTER,
    ),
    (
        "health_checks_total",
        "Periodic health checks, by result.",
        &["provider", "result"],
        COUNTER,
    ),
    (
        "health_check_consecutive_failures",
        "Failures in a row (calls and checks).",
        &["provider"],
        GAUGE,
    ),
    (
        "circuit_breaker_state",
        "Circuit breaker of a provider or group: 0 closed, 1 open, 2 half open.",
        &["provider"],
        GAUGE,
    ),
    (
        "rate_limit_hits_total",
        "Calls refused by a rate limit, by scope (global, or the provider or group id).",
        &["scope"],
        COUNTER,
    ),
    (
        "rate_limit_requests_per_second",
        "A configured rate limit, by scope.",
        &["scope"],
        GAUGE,
    ),
    (
        "rate_limit_burst",
        "A configured rate limit's burst, by scope.",
        &["scope"],
        GAUGE,
    ),
    (
        "gc_idle_stops_total",
        "Providers stopped by the idle collector (idle_ttl_s passed).",
        &["provider"],
        COUNTER,
    ),
    (
        "gc_idle_ttl_seconds",
        "The provider's idle_ttl_s.",
        &["provider"],
        GAUGE,
    ),
    ("group_members", "Members of the group.", &["group"], GAUGE),
    (
        "group_healthy_members",
        "Members of the group in the rotation.",
        &["group"],
        GAUGE,
    ),
    (
        "group_state",
        "1 for the group's current state, 0 for the others.",
        &["group", "state"],
        GAUGE,
    ),
    (
        "plugin_loaded",
        "1 while a version of the plugin is in service.",
        &["plugin", "kind"],
        GAUGE,
    ),
    (
        "plugin_version",
        "Version in service (1 at load, +1 per hot swap).",
        &["plugin"],
        GAUGE,
    ),
    (
        "plugin_calls_total",
        "Calls into the plugin, failed ones included.",
        &["plugin"],
        COUNTER,
    ),
    (
        "plugin_denials_total",
        "Validator answers that denied the call.",
        &["plugin"],
        COUNTER,
    ),
    (
        "plugin_rewrites_total",
        "Validator answers that rewrote the arguments.",
        &["plugin"],
        COUNTER,
    ),
    (
        "plugin_failures_total",
        "Failed plugin calls, by kind (trap, timeout, out_of_fuel, …).",
        &["plugin", "kind"],
        COUNTER,
    ),
    (
        "plugin_failure_outcomes_total",
        "What failed plugin calls became, by the plugin's on_error.",
        &["plugin", "on_error"],
        COUNTER,
    ),
    (
        "plugin_call_duration_seconds",
        "Time spent in plugin calls, from the caller's side.",
        &["plugin"],
        SUMMARY,
    ),
    (
        "plugin_reloads_total",
        "Hot swaps of the plugin, by outcome.",
        &["plugin", "result"],
        COUNTER,
    ),
    (
        "discovery_source_up",
        "1 when the discovery source's last cycle answered, 0 when it failed.",
        &["source", "type", "mode"],
        GAUGE,
    ),
    (
        "discovery_source_providers",
        "Providers in the discovery source's last answer.",
        &["source"],
        GAUGE,
    ),
    (
        "discovery_source_registered",
        "Providers of the discovery source in the registry now.",
        &["source"],
        GAUGE,
    ),
    (
        "discovery_source_failures_total",
        "Discovery cycles in which the source failed, trapped or timed out.",
        &["source"],
        COUNTER,
    ),
    (
        "discovery_source_cycle_seconds",
        "How long the source's last discovery cycle took.",
        &["source"],
        GAUGE,
    ),
    (
        "discovery_held_providers",
        "Discovered providers held out of the registry, by status (pending, quarantined) and reason.",
        &["status", "reason"],
        GAUGE,
    ),
    (
        "http_rejections_total",
        "Requests and connections the HTTP face turned away, by reason (unauthenticated, invalid_token, rate_limited, max_sessions, max_connections, header_timeout, origin_or_host).",
        &["reason"],
        COUNTER,
    ),
    (
        "http_sessions",
        "MCP sessions open on the HTTP face.",
        &[],
        GAUGE,
    ),
    (
        "http_connections",
        "Connections open on the HTTP face.",
        &[],
        GAUGE,
    ),
];

/// A family's index in [`FAMILIES`], by name. A name not in the table is a bug: debug builds
/// (the tests) stop on it, a release build leaves the sample out.
fn index(name: &str) -> Option<usize> {
    let i = FAMILIES.iter().position(|(n, ..)| *n == name);
    debug_assert!(i.is_some(), "metric family `{name}` is not in FAMILIES");
    i
}

/// The families being built during one scrape.
struct Out {
    families: Vec<MetricFamily>,
}

impl Out {
    fn new() -> Self {
        let families = FAMILIES
            .iter()
            .map(|(name, help, _, kind)| {
                let mut f = MetricFamily::default();
                f.set_name(format!("{PREFIX}{name}"));
                f.set_help((*help).to_owned());
                f.set_field_type(*kind);
                f
            })
            .collect();
        Self { families }
    }

    fn metric(
        &mut self,
        family: &str,
        values: &[&str],
    ) -> Option<(&mut MetricFamily, proto::Metric)> {
        let i = index(family)?;
        let names = FAMILIES[i].2;
        debug_assert_eq!(names.len(), values.len(), "labels of {family}");
        let mut m = proto::Metric::default();
        m.set_label(
            names
                .iter()
                .zip(values)
                .map(|(n, v)| {
                    let mut l = LabelPair::default();
                    l.set_name((*n).to_owned());
                    l.set_value((*v).to_owned());
                    l
                })
                .collect(),
        );
        Some((&mut self.families[i], m))
    }

    fn gauge(&mut self, family: &str, values: &[&str], value: f64) {
        let Some((f, mut m)) = self.metric(family, values) else {
            return;
        };
        let mut g = proto::Gauge::default();
        g.set_value(value);
        m.set_gauge(g);
        f.mut_metric().push(m);
    }

    fn counter(&mut self, family: &str, values: &[&str], value: u64) {
        let Some((f, mut m)) = self.metric(family, values) else {
            return;
        };
        let mut c = proto::Counter::default();
        c.set_value(value as f64);
        m.set_counter(c);
        f.mut_metric().push(m);
    }

    fn histogram(&mut self, family: &str, values: &[&str], h: &HistogramSnapshot) {
        let Some((f, mut m)) = self.metric(family, values) else {
            return;
        };
        let mut p = proto::Histogram::default();
        p.set_sample_count(h.count);
        p.set_sample_sum(h.sum_seconds);
        p.set_bucket(
            h.bounds
                .iter()
                .zip(&h.cumulative)
                .map(|(bound, count)| {
                    let mut b = proto::Bucket::default();
                    b.set_upper_bound(*bound);
                    b.set_cumulative_count(*count);
                    b
                })
                .collect(),
        );
        m.set_histogram(p);
        f.mut_metric().push(m);
    }

    fn summary(&mut self, family: &str, values: &[&str], count: u64, sum: f64) {
        let Some((f, mut m)) = self.metric(family, values) else {
            return;
        };
        let mut s = proto::Summary::default();
        s.set_sample_count(count);
        s.set_sample_sum(sum);
        m.set_summary(s);
        f.mut_metric().push(m);
    }
}

fn breaker_value(state: BreakerState) -> f64 {
    match state {
        BreakerState::Closed => 0.0,
        BreakerState::Open { .. } => 1.0,
        BreakerState::HalfOpen => 2.0,
    }
}

fn breaker_value_of(text: &str) -> f64 {
    match text {
        "open" => 1.0,
        "half_open" => 2.0,
        _ => 0.0,
    }
}

const GROUP_STATES: [GroupState; 4] = [
    GroupState::Inactive,
    GroupState::Partial,
    GroupState::Healthy,
    GroupState::Degraded,
];

/// Reads a [`Registry`] into Prometheus families when collected.
pub struct HangarCollector {
    registry: Arc<Registry>,
    descs: Vec<Desc>,
}

impl HangarCollector {
    pub fn new(registry: Arc<Registry>) -> Self {
        let descs = FAMILIES
            .iter()
            .filter_map(|(name, help, labels, _)| {
                Desc::new(
                    format!("{PREFIX}{name}"),
                    (*help).to_owned(),
                    labels.iter().map(|l| (*l).to_owned()).collect(),
                    Default::default(),
                )
                .ok()
            })
            .collect();
        Self { registry, descs }
    }

    fn build(&self) -> Vec<MetricFamily> {
        let reg = &self.registry;
        let mut out = Out::new();
        out.gauge("build_info", &[env!("CARGO_PKG_VERSION")], 1.0);
        let mut providers = 0;
        for p in reg.providers() {
            providers += 1;
            let id = p.id();
            let snap = p.snapshot();
            let stats = p.stats().snapshot();
            for state in ProviderState::ALL {
                let on = if snap.state == state { 1.0 } else { 0.0 };
                out.gauge("provider_state", &[id, state.as_str()], on);
            }
            out.gauge(
                "provider_up",
                &[id],
                f64::from(u8::from(snap.state.is_running())),
            );
            out.gauge("provider_in_flight", &[id], f64::from(snap.in_flight));
            out.gauge("provider_queued", &[id], f64::from(snap.queued));
            if let Some(max) = p.spec().max_concurrency {
                out.gauge("provider_max_concurrency", &[id], f64::from(max));
            }
            provider_stats(&mut out, id, &stats);
            out.gauge(
                "health_check_consecutive_failures",
                &[id],
                f64::from(snap.consecutive_failures),
            );
            out.gauge("circuit_breaker_state", &[id], breaker_value(snap.breaker));
            if let Some(limit) = &p.spec().rate_limit {
                out.counter("rate_limit_hits_total", &[id], p.rate_limit_hits());
                out.gauge(
                    "rate_limit_requests_per_second",
                    &[id],
                    limit.requests_per_second,
                );
                out.gauge("rate_limit_burst", &[id], f64::from(limit.burst));
            }
            out.gauge(
                "gc_idle_ttl_seconds",
                &[id],
                p.spec().idle_ttl.as_secs_f64(),
            );
        }
        out.gauge("providers", &[], f64::from(providers));
        if let Some(limit) = reg.global_rate_limit() {
            out.counter(
                "rate_limit_hits_total",
                &["global"],
                reg.global_rate_limit_hits(),
            );
            out.gauge(
                "rate_limit_requests_per_second",
                &["global"],
                limit.requests_per_second,
            );
            out.gauge("rate_limit_burst", &["global"], f64::from(limit.burst));
        }
        for g in reg.groups() {
            let id = g.id();
            let snap = g.snapshot();
            out.gauge("group_members", &[id], snap.members.len() as f64);
            let healthy = snap.members.iter().filter(|m| m.in_rotation).count();
            out.gauge("group_healthy_members", &[id], healthy as f64);
            for state in GROUP_STATES {
                let on = if snap.state == state { 1.0 } else { 0.0 };
                out.gauge("group_state", &[id, state.as_str()], on);
            }
            out.gauge(
                "circuit_breaker_state",
                &[id],
                breaker_value_of(&snap.breaker),
            );
            if let Some(limit) = &g.spec().rate_limit {
                out.counter("rate_limit_hits_total", &[id], g.rate_limit_hits());
                out.gauge(
                    "rate_limit_requests_per_second",
                    &[id],
                    limit.requests_per_second,
                );
                out.gauge("rate_limit_burst", &[id], f64::from(limit.burst));
            }
        }
        for slot in reg.plugins().slots() {
            let st = slot.status();
            let name = st.name.as_str();
            let s = &st.stats;
            out.gauge(
                "plugin_loaded",
                &[name, st.kind.as_str()],
                f64::from(u8::from(st.version.is_some())),
            );
            if let Some(v) = st.version {
                out.gauge("plugin_version", &[name], v as f64);
            }
            out.counter("plugin_calls_total", &[name], s.calls);
            out.counter("plugin_denials_total", &[name], s.denials);
            out.counter("plugin_rewrites_total", &[name], s.rewrites);
            for (kind, n) in &s.failures {
                out.counter("plugin_failures_total", &[name, kind.as_str()], *n);
            }
            out.counter(
                "plugin_failure_outcomes_total",
                &[name, "fail_open"],
                s.failed_open,
            );
            out.counter(
                "plugin_failure_outcomes_total",
                &[name, "fail_closed"],
                s.failed_closed,
            );
            out.summary(
                "plugin_call_duration_seconds",
                &[name],
                s.calls,
                s.total_latency.as_secs_f64(),
            );
            out.counter("plugin_reloads_total", &[name, "success"], s.reloads);
            out.counter(
                "plugin_reloads_total",
                &[name, "failure"],
                s.reload_failures,
            );
        }
        if let Some(discovery) = reg.discovery() {
            discovery_metrics(&mut out, discovery);
        }
        let http = reg.http_stats();
        if http.serving() {
            for why in crate::http::Rejection::ALL {
                out.counter(
                    "http_rejections_total",
                    &[why.as_str()],
                    http.rejections(why),
                );
            }
            if let Some(open) = http.sessions() {
                out.gauge("http_sessions", &[], open as f64);
            }
            out.gauge("http_connections", &[], http.connections() as f64);
        }
        out.families
    }
}

fn discovery_metrics(out: &mut Out, discovery: &Discovery) {
    for src in discovery.sources() {
        let name = src.name.as_str();
        if let Some(up) = src.healthy {
            out.gauge(
                "discovery_source_up",
                &[name, &src.kind, src.mode],
                f64::from(u8::from(up)),
            );
        }
        out.gauge("discovery_source_providers", &[name], src.count as f64);
        out.gauge(
            "discovery_source_registered",
            &[name],
            src.registered as f64,
        );
        out.counter("discovery_source_failures_total", &[name], src.failures);
        if let Some(ms) = src.last_duration_ms {
            out.gauge(
                "discovery_source_cycle_seconds",
                &[name],
                ms as f64 / 1000.0,
            );
        }
    }
    let mut held: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
    for h in discovery.held() {
        let reason = h.reason.map_or("none", crate::discovery::reason_str);
        *held.entry((h.status, reason)).or_default() += 1;
    }
    for ((status, reason), n) in held {
        out.gauge("discovery_held_providers", &[status, reason], n as f64);
    }
}

fn provider_stats(out: &mut Out, id: &str, s: &StatsSnapshot) {
    out.counter("provider_starts_total", &[id, "success"], s.starts);
    out.counter("provider_starts_total", &[id, "failure"], s.start_failures);
    for (reason, n) in &s.stops {
        out.counter("provider_stops_total", &[id, reason], *n);
        if *reason == "idle" {
            out.counter("gc_idle_stops_total", &[id], *n);
        }
    }
    out.histogram("provider_cold_start_seconds", &[id], &s.cold_start);
    for t in &s.tools {
        for (status, n) in CallStatus::ALL.iter().zip(t.calls) {
            out.counter("tool_calls_total", &[id, &t.tool, status.as_str()], n);
        }
        out.histogram("tool_call_duration_seconds", &[id, &t.tool], &t.duration);
    }
    for (kind, n) in &s.errors {
        out.counter("errors_total", &[id, kind], *n);
    }
    out.counter("health_checks_total", &[id, "success"], s.health_ok);
    out.counter("health_checks_total", &[id, "failure"], s.health_failed);
}

impl Collector for HangarCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.build()
    }
}

/// The Prometheus text of `registry` now.
pub fn render(registry: &Arc<Registry>) -> String {
    let families = HangarCollector::new(registry.clone()).collect();
    let mut text = Vec::new();
    // The encoder only fails on a family without metrics of a known type, which `gather`
    // would drop; encode what has samples.
    let families: Vec<MetricFamily> = families
        .into_iter()
        .filter(|f| !f.get_metric().is_empty())
        .collect();
    if let Err(e) = TextEncoder::new().encode(&families, &mut text) {
        return format!("# metrics could not be encoded: {e}\n");
    }
    String::from_utf8(text).unwrap_or_default()
}

/// `registry_metrics` in JSON: the original's `providers`, `groups`, `tool_calls`, `discovery`,
/// `errors`, `performance` and `summary`, with our own fields in addition.
pub fn summary_json(registry: &Registry) -> Value {
    let mut providers = Map::new();
    let mut tool_calls = Map::new();
    let mut errors: Map<String, Value> = Map::new();
    let mut performance = Map::new();
    let (mut total_calls, mut total_errors) = (0u64, 0u64);
    for p in registry.providers() {
        let id = p.id();
        let snap = p.snapshot();
        let s = p.stats().snapshot();
        let (mut invocations, mut failed, mut sum, mut count) = (0u64, 0u64, 0.0f64, 0u64);
        for t in &s.tools {
            let total = t.total();
            let errs =
                t.calls[CallStatus::ToolError as usize] + t.calls[CallStatus::Error as usize];
            invocations += total;
            failed += errs;
            sum += t.duration.sum_seconds;
            count += t.duration.count;
            tool_calls.insert(
                format!("{id}.{}", t.tool),
                json!({
                    "count": total,
                    "errors": errs,
                    "success": t.calls[CallStatus::Success as usize],
                    "tool_error": t.calls[CallStatus::ToolError as usize],
                    "error": t.calls[CallStatus::Error as usize],
                    "avg_latency_ms": mean_ms(t.duration.sum_seconds, t.duration.count),
                }),
            );
        }
        let by_kind: Map<String, Value> = s
            .errors
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| ((*k).to_owned(), json!(n)))
            .collect();
        for (kind, n) in &s.errors {
            if *n > 0 {
                let e = errors.entry((*kind).to_owned()).or_insert(json!(0));
                *e = json!(e.as_u64().unwrap_or(0) + n);
                total_errors += n;
            }
        }
        total_calls += invocations;
        performance.insert(
            id.to_owned(),
            json!({
                "avg_latency_ms": mean_ms(sum, count),
                "ewma_latency_ms": p.ewma_latency_us() as f64 / 1000.0,
                "cold_start_avg_s": if s.cold_start.count == 0 { 0.0 } else { s.cold_start.sum_seconds / s.cold_start.count as f64 },
            }),
        );
        providers.insert(
            id.to_owned(),
            json!({
                "state": snap.state,
                "mode": p.spec().mode.as_str(),
                "tools_count": snap.tools.len(),
                "invocations": invocations,
                "errors": failed,
                "avg_latency_ms": mean_ms(sum, count),
                "errors_by_kind": by_kind,
                "starts": s.starts,
                "start_failures": s.start_failures,
                "stops": s.stops.iter().map(|(r, n)| ((*r).to_owned(), json!(n))).collect::<Map<_, _>>(),
                "health_checks": {"success": s.health_ok, "failure": s.health_failed},
                "circuit_breaker": snap.breaker.as_str(),
                "in_flight": snap.in_flight,
                "rate_limit_hits": p.spec().rate_limit.as_ref().map(|_| p.rate_limit_hits()),
            }),
        );
    }
    let mut groups = Map::new();
    for g in registry.groups() {
        let snap = g.snapshot();
        groups.insert(
            g.id().to_owned(),
            json!({
                "state": snap.state.as_str(),
                "strategy": snap.strategy,
                "total_members": snap.members.len(),
                "healthy_members": snap.members.iter().filter(|m| m.in_rotation).count(),
                "circuit_breaker": snap.breaker,
                "rate_limit_hits": g.spec().rate_limit.as_ref().map(|_| g.rate_limit_hits()),
            }),
        );
    }
    let plugins: Map<String, Value> = registry
        .plugins()
        .slots()
        .map(|slot| {
            let st = slot.status();
            let s = &st.stats;
            (
                st.name.clone(),
                json!({
                    "kind": st.kind.as_str(),
                    "loaded": st.version.is_some(),
                    "calls": s.calls,
                    "denials": s.denials,
                    "failures": s.failures_total(),
                    "avg_latency_ms": mean_ms(s.total_latency.as_secs_f64(), s.calls),
                }),
            )
        })
        .collect();
    json!({
        "providers": providers,
        "groups": groups,
        "tool_calls": tool_calls,
        "discovery": registry.discovery().map_or(Value::Null, |d| json!({
            "sources": d.sources(),
            "held": d.held().len(),
            "registered": d.registered().len(),
        })),
        "errors": errors,
        "performance": performance,
        "plugins": plugins,
        "rate_limit": {
            "global_hits": registry.global_rate_limit().map(|_| registry.global_rate_limit_hits()),
        },
        "summary": {
            "total_providers": providers.len(),
            "total_groups": groups.len(),
            "total_tool_calls": total_calls,
            "total_errors": total_errors,
        },
        "version": env!("CARGO_PKG_VERSION"),
    })
}

fn mean_ms(sum_seconds: f64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        (sum_seconds * 1000.0 / count as f64 * 1000.0).round() / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_a_valid_descriptor() {
        let reg = crate::registry::Registry::new(
            &crate::config::parse(
                "mcp_servers:\n  a: {command: [x]}\n",
                std::path::Path::new("t.yaml"),
                &|_| None,
            )
            .expect("config"),
            crate::events::EventBus::new(),
        );
        let c = HangarCollector::new(reg);
        assert_eq!(
            c.desc().len(),
            FAMILIES.len(),
            "a family name or label is invalid"
        );
    }
}
