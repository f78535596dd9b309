//! Recovery, driven by events: a provider that goes DEAD or DEGRADED is restarted with
//! exponential backoff (the bookkeeping lives with the provider), and group members move in and
//! out of their group's rotation as their health checks and starts succeed or fail.
//!
//! Nothing here sits in the call path; it listens to the bus like any other subscriber.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;

use crate::events::Event;
use crate::provider::ProviderState;
use crate::registry::Registry;

pub fn spawn(registry: &Arc<Registry>) -> tokio::task::JoinHandle<()> {
    let mut rx = registry.bus().subscribe();
    let weak = Arc::downgrade(registry);
    tokio::spawn(async move {
        loop {
            let env = match rx.recv().await {
                Ok(env) => env,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!("recovery fell behind the event bus by {n} events");
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            let Some(reg) = weak.upgrade() else { break };
            if reg.is_shutting_down() {
                break;
            }
            match env.event {
                Event::StateChanged {
                    provider, from, to, ..
                } => {
                    if matches!(to, ProviderState::Dead | ProviderState::Degraded)
                        && let Some(p) = reg.provider(&provider)
                    {
                        p.schedule_recovery();
                    }
                    let member_outcome = match (from, to) {
                        (_, ProviderState::Dead | ProviderState::Degraded) => Some(false),
                        (
                            ProviderState::Initializing | ProviderState::Degraded,
                            ProviderState::Ready,
                        ) => Some(true),
                        _ => None,
                    };
                    if let Some(ok) = member_outcome {
                        for g in reg.groups().filter(|g| g.has_member(&provider)) {
                            g.record(&provider, ok);
                        }
                    }
                }
                Event::HealthChecked { provider, ok } => {
                    for g in reg.groups().filter(|g| g.has_member(&provider)) {
                        g.record(&provider, ok);
                    }
                }
                _ => {}
            }
        }
    })
}
