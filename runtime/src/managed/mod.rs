//! One provider as the registry and its groups run it: its connection and lifecycle
//! ([`Provider`]), the limits on its calls, which of its tools are offered, its statistics and
//! the errors a call to it can end with.
//!
//! Architecture invariant: this module knows nothing of the registry or of groups. Both build
//! on it (`registry` → `group` → `managed`), so a group's members and the registry's providers
//! are the same [`Provider`] values without the two modules importing each other.

mod error;
mod exposure;
mod limits;
mod provider;
mod stats;

pub use error::{InvokeError, closest};
pub use exposure::{Hidden, ToolExposure};
pub use limits::{RateLimit, SlotError, Slots};
pub use provider::{
    GroupValidators, LastError, Provider, ProviderCall, RecoveryState, Snapshot, tool_from_spec,
};
pub use stats::{CallStatus, HistogramSnapshot, ProviderStats, StatsSnapshot, ToolSnapshot};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::backend;
use crate::config::RecoverySpec;
use crate::events::EventBus;
use crate::plugin::PluginSet;
use crate::validate::SchemaCache;

/// Default deadline of a tool call when neither the caller nor the provider's config set one.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest anything waits for a start that is already under way.
pub(crate) const START_DEADLINE_CAP: Duration = backend::START_TIMEOUT;

/// What every provider of one registry shares.
pub struct Shared {
    pub bus: EventBus,
    pub(crate) shutting_down: AtomicBool,
    pub schemas: SchemaCache,
    /// The plugins providers (validators) and groups (policies) name.
    pub plugins: Arc<PluginSet>,
    /// Labels what this hangar starts outside its own process tree (containers), so that a
    /// later run of the same config can find what a killed run left behind.
    pub instance: String,
    /// The clients' side of every provider connection (their capabilities, log level,
    /// notices).
    pub downstream: Arc<backend::Downstream>,
}

impl Shared {
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// The delay before restart attempt `attempt` (1-based): exponential from `base_delay`, with
/// jitter, never above `max_delay`.
pub(crate) fn backoff_delay(policy: &RecoverySpec, attempt: u32) -> Duration {
    use backon::BackoffBuilder;
    let nth = backon::ExponentialBuilder::default()
        .with_min_delay(policy.base_delay)
        .with_max_delay(policy.max_delay)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempt.saturating_sub(1) as usize);
    nth.unwrap_or(policy.max_delay).min(policy.max_delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_stays_under_the_cap() {
        let policy = RecoverySpec {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retries: 10,
        };
        for _ in 0..50 {
            let d1 = backoff_delay(&policy, 1);
            let d3 = backoff_delay(&policy, 3);
            let d9 = backoff_delay(&policy, 9);
            assert!(
                d1 >= Duration::from_millis(100) && d1 < Duration::from_millis(200),
                "{d1:?}"
            );
            assert!(
                d3 >= Duration::from_millis(400) && d3 < Duration::from_millis(800),
                "{d3:?}"
            );
            assert!(d9 <= Duration::from_secs(1), "{d9:?}");
        }
    }
}
