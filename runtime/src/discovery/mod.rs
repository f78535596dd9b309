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
//! - A provider whose spec names a `group` (docker label `mcp.hangar.group`, kubernetes
//!   annotation `mcp-hangar.io/group`, a filesystem file's `group:`) is a member of that group,
//!   with the weight of `hangar.weight` (1–100, default 1), and offers its tools only through
//!   it. A config group of that id takes it as one more member; otherwise a group is made with
//!   the defaults a config group with only `members:` gets, and it goes when its last
//!   discovered member does. Membership changes swap a new group snapshot in with the rest of
//!   the registry (see `registry::live`): members that stay keep their state.
//! - Provider ids and group ids stay apart: a provider whose id is a group's is quarantined
//!   (`failed_source`), and so is one whose group is a provider (`failed_schema`).
//!
//! Deliberately absent: discovery never removes a member the config file lists nor changes a
//! config group's settings (strategy, limits, policy); a group it makes cannot be given a
//! strategy other than the default (define the group in the config file for that); and nothing
//! a source reports is `${VAR}`-interpolated.

mod engine;
mod health;
pub mod spec;
mod watch;

pub use engine::{CycleReport, Discovery, Held, HeldReason, SourceReport, reason_str};
