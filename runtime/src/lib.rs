//! MCP Hangar: a hot-load registry and gateway for MCP servers.
//!
//! Module map (the README has the full one): `config` (file → validated form), `provider` (the
//! pure lifecycle state machine and circuit breaker), `backend` (how a provider runs and is
//! reached), `registry` (the live set and the call path), `group` (strategies, rotation,
//! failover), `recovery` (restarts and rotation, driven by events), `validate` (argument
//! checks), `gateway` (the MCP server clients talk to), `access` (who calls, and which tools they may
//! use), `http` (streamable HTTP, its authentication and bounds, and health endpoints), `events` (the bus everything else listens to), `observe` (Prometheus metrics and the log),
//! `serve` (wiring for the CLI).

pub mod access;
pub mod backend;
pub mod bundled;
pub mod config;
pub mod discovery;
pub mod events;
pub mod gateway;
pub mod group;
pub mod http;
pub mod managed;
pub mod observe;
pub mod plugin;
pub mod provider;
pub mod recovery;
pub mod registry;
pub mod serve;
pub mod validate;
pub mod wire;
