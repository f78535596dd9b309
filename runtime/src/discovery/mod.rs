//! The reconcile loop: sources (discovery plugins) → desired set → diff against what discovery
//! registered before → [`Registry::apply`]; and the quarantine of what may not be registered.
//!
//! One task owns the loop and runs one cycle at a time: on the refresh interval, when a
//! watched directory changes, and when `registry_discover` asks. Between refreshes, every
//! `lifecycle.check_interval_s`, expired providers of authoritative sources are removed.
//!
//! Architecture invariants:
//! - A source that fails (error, trap, timeout) changes nothing: what it found before stays,
//!   and its TTL clock does not run out while it is failing. The error is kept per source.
//! - Static providers (the config file's) win every conflict; then kubernetes > docker >
//!   filesystem > entrypoints > operator plugins. Same source and same fingerprint: unchanged,
//!   no restart.
//! - A provider that fails a check (namespace, registration rate, health, spec) is held with
//!   its reason until an operator approves it; it is never half-registered.
//!
//! Deliberately absent: a provider found by a source never joins a group (groups are the config
//! file's), and nothing a source reports is `${VAR}`-interpolated.

mod engine;
mod health;
pub mod spec;
mod watch;

pub use engine::{CycleReport, Discovery, Held, HeldReason, SourceReport, reason_str};
