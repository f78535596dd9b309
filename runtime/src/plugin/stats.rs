//! Per-plugin counters, kept with relaxed atomics on the call path and read as a snapshot by
//! metrics. They count across hot swaps: a plugin's numbers do not reset when its file does.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::error::PluginErrorKind;

/// A snapshot of one plugin's counters since it was loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginStats {
    /// Calls made into the plugin (`validate`, `pick`, `discover`), failed ones included.
    pub calls: u64,
    /// `validate` answers that were `deny` (the plugin's own; failures are counted apart).
    pub denials: u64,
    /// `validate` answers that were `rewrite`.
    pub rewrites: u64,
    /// Failed calls, by kind: (kind, count) for every kind, in `PluginErrorKind` order.
    pub failures: Vec<(PluginErrorKind, u64)>,
    /// Failed calls whose `on_error: fail_closed` refused the call.
    pub failed_closed: u64,
    /// Failed calls whose `on_error: fail_open` let the call through (or fell back).
    pub failed_open: u64,
    /// Time spent in calls, from the caller's side (instantiation and queueing included).
    pub total_latency: Duration,
    /// Instances created: once per validator or discovery call, once per lb policy life.
    pub instances: u64,
    /// Hot swaps done, and tried but refused (the old version kept running).
    pub reloads: u64,
    pub reload_failures: u64,
    /// `host.log` lines dropped past the per-call budget.
    pub log_lines_dropped: u64,
}

impl PluginStats {
    /// Failed calls of `kind`.
    pub fn failures_of(&self, kind: PluginErrorKind) -> u64 {
        self.failures
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// Failed calls of every kind.
    pub fn failures_total(&self) -> u64 {
        self.failures.iter().map(|(_, n)| n).sum()
    }
}

#[derive(Default)]
pub(super) struct Stats {
    pub calls: AtomicU64,
    pub denials: AtomicU64,
    pub rewrites: AtomicU64,
    failures: [AtomicU64; PluginErrorKind::ALL.len()],
    pub failed_closed: AtomicU64,
    pub failed_open: AtomicU64,
    latency_ns: AtomicU64,
    pub instances: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    pub log_lines_dropped: AtomicU64,
}

impl Stats {
    pub fn call_done(&self, latency: Duration) {
        self.calls.fetch_add(1, Relaxed);
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency_ns.fetch_add(ns, Relaxed);
    }

    pub fn failure(&self, kind: PluginErrorKind) {
        self.failures[kind.index()].fetch_add(1, Relaxed);
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> PluginStats {
        PluginStats {
            calls: self.calls.load(Relaxed),
            denials: self.denials.load(Relaxed),
            rewrites: self.rewrites.load(Relaxed),
            failures: PluginErrorKind::ALL
                .iter()
                .map(|kind| (*kind, self.failures[kind.index()].load(Relaxed)))
                .collect(),
            failed_closed: self.failed_closed.load(Relaxed),
            failed_open: self.failed_open.load(Relaxed),
            total_latency: Duration::from_nanos(self.latency_ns.load(Relaxed)),
            instances: self.instances.load(Relaxed),
            reloads: self.reloads.load(Relaxed),
            reload_failures: self.reload_failures.load(Relaxed),
            log_lines_dropped: self.log_lines_dropped.load(Relaxed),
        }
    }
}
