//! `security.require_health_check`: a discovered provider is started once, on its own, and
//! must list its tools before it is registered.
//!
//! The check runs in a registry of its own with a private event bus, so the provider's id and
//! its events never meet the hangar's (no `list_changed`, no state in `registry_list`), and it
//! is stopped (not the whole private registry shut down: that would reap the hangar's
//! processes too) before the answer is returned.

use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;

use crate::config::event_store::EventStoreSpec;
use crate::config::{Config, Limits, ProviderSpec};
use crate::config::{LoggingSpec, ObservabilitySpec};
use crate::events::EventBus;
use crate::registry::Registry;

/// Longest a health check's start and tool listing may take.
pub const HEALTH_DEADLINE: Duration = Duration::from_secs(30);

/// Starts `spec`, lists its tools, stops it. `Ok(n)`: it answered with `n` tools.
pub async fn check(spec: &ProviderSpec, config_path: &Path) -> Result<usize, String> {
    let id = spec.id.clone();
    let config = Config {
        path: config_path.with_extension("discovery-health"),
        providers: IndexMap::from([(id.clone(), spec.clone())]),
        rate_limit: None,
        limits: Limits::default(),
        plugins: IndexMap::new(),
        discovery: None,
        tracing: None,
        langfuse: None,
        logging: LoggingSpec::default(),
        // No metrics listener of its own: the check's registry is not scraped.
        observability: ObservabilitySpec::default(),
        http: Default::default(),
        // The check's own registry records nothing: the hangar's store has the discovery events.
        event_store: EventStoreSpec {
            enabled: false,
            ..EventStoreSpec::default()
        },
        warnings: Vec::new(),
    };
    let registry = Registry::new(&config, EventBus::new());
    let provider = registry
        .provider(&id)
        .ok_or_else(|| format!("`{id}` did not build"))?;
    let started = tokio::time::timeout(HEALTH_DEADLINE, provider.ensure_started(true)).await;
    let outcome = match started {
        Err(_) => Err(format!(
            "did not start within {}s",
            HEALTH_DEADLINE.as_secs()
        )),
        Ok(Err(e)) => Err(format!("failed to start: {e}")),
        Ok(Ok(_)) => Ok(provider.tools().len()),
    };
    provider.stop("discovery health check done").await;
    outcome
}
