//! What a provider sends towards the hangar's clients: requests that need the client of a call
//! (`sampling/createMessage`, `elicitation/create`, `roots/list`) and notifications
//! (`notifications/message`, resource updates, list changes).
//!
//! A provider connection is shared by every client session, so a request from the provider is
//! answered by the client whose call it is serving: each call that can reach its client brings
//! a [`ClientLink`], registered on the connection ([`Callers`]) while the call is under way. The
//! provider's request goes to the newest call in progress on that connection (a provider
//! serving one call at a time, the common case, is answered exactly). Notifications outside a
//! call go on the [`Downstream`] channel, which the gateway relays to the sessions that asked.

// Logging, sampling and roots are deprecated by SEP-2577 (2026-07-28) but are what every
// handshake-era client speaks.
#![allow(deprecated)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rmcp::ErrorData as McpError;
use rmcp::model::{
    ClientCapabilities, CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams,
    ElicitResult, ListRootsResult, LoggingLevel, LoggingMessageNotificationParam,
};
use tokio::sync::{broadcast, mpsc, oneshot};

/// A provider's request that only the calling client can answer.
#[derive(Debug)]
pub enum ClientAsk {
    Sampling(
        CreateMessageRequestParams,
        oneshot::Sender<Result<CreateMessageResult, McpError>>,
    ),
    Elicitation(
        ElicitRequestParams,
        oneshot::Sender<Result<ElicitResult, McpError>>,
    ),
    Roots(oneshot::Sender<Result<ListRootsResult, McpError>>),
    /// A log message the provider sent while serving the call.
    Log(LoggingMessageNotificationParam),
}

/// The way from a provider back to the client of one call: the gateway serves what arrives on
/// it in the task of the client's request (so that over streamable HTTP the request rides that
/// request's stream).
pub type ClientLink = mpsc::Sender<ClientAsk>;

/// The calls in progress on one connection that can reach their client, newest last.
#[derive(Debug, Clone, Default)]
pub struct Callers(Arc<Mutex<Vec<(u64, ClientLink)>>>);

/// Removes a call's link when the call ends, however it ends.
pub struct CallerGuard {
    callers: Callers,
    id: u64,
}

impl Drop for CallerGuard {
    fn drop(&mut self) {
        self.callers.lock().retain(|(id, _)| *id != self.id);
    }
}

impl Callers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, ClientLink)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(&self, link: ClientLink) -> CallerGuard {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, link));
        CallerGuard {
            callers: self.clone(),
            id,
        }
    }

    /// The link of the newest call still waiting for its answer.
    pub fn current(&self) -> Option<ClientLink> {
        let mut calls = self.lock();
        calls.retain(|(_, link)| !link.is_closed());
        calls.last().map(|(_, link)| link.clone())
    }
}

/// A provider's notification for the clients, outside any call.
#[derive(Debug, Clone)]
pub enum Notice {
    Log {
        provider: String,
        params: LoggingMessageNotificationParam,
    },
    ResourceUpdated {
        provider: String,
        uri: String,
    },
    ResourcesChanged {
        provider: String,
    },
    PromptsChanged {
        provider: String,
    },
}

/// What every provider connection shares about the clients: what they offered at their
/// handshake (told to providers at theirs), the log level they asked for, and the channel of
/// notices.
pub struct Downstream {
    offered: ArcSwap<ClientCapabilities>,
    level: Mutex<Option<LoggingLevel>>,
    notices: broadcast::Sender<Notice>,
}

impl std::fmt::Debug for Downstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downstream").finish_non_exhaustive()
    }
}

impl Default for Downstream {
    fn default() -> Self {
        Self {
            offered: ArcSwap::from_pointee(ClientCapabilities::default()),
            level: Mutex::new(None),
            notices: broadcast::channel(256).0,
        }
    }
}

impl Downstream {
    /// The capabilities a provider started now is offered: sampling, elicitation and roots as
    /// some client of this hangar offered them, nothing else.
    pub fn offered(&self) -> ClientCapabilities {
        let seen = self.offered.load();
        let mut caps = ClientCapabilities::default();
        caps.sampling = seen.sampling.clone();
        caps.elicitation = seen.elicitation.clone();
        caps.roots = seen.roots.clone();
        caps
    }

    /// A client finished its handshake offering `caps`: what later providers are offered grows
    /// to include it.
    pub fn client_offered(&self, caps: &ClientCapabilities) {
        self.offered.rcu(|seen| {
            let mut next = (**seen).clone();
            if next.sampling.is_none() {
                next.sampling = caps.sampling.clone();
            }
            if next.elicitation.is_none() {
                next.elicitation = caps.elicitation.clone();
            }
            if next.roots.is_none() {
                next.roots = caps.roots.clone();
            }
            next
        });
    }

    /// The most verbose level a client asked for, which providers started later are set to.
    pub fn level(&self) -> Option<LoggingLevel> {
        *self.level.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_level(&self, level: LoggingLevel) {
        *self.level.lock().unwrap_or_else(|e| e.into_inner()) = Some(level);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    pub fn publish(&self, notice: Notice) {
        // No receiver: no client session to tell.
        let _ = self.notices.send(notice);
    }
}

/// Severity order of MCP log levels (RFC 5424's, most verbose first).
pub fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_goes_to_the_newest_call_still_waiting() {
        let callers = Callers::default();
        assert!(callers.current().is_none());
        let (first, _rx1) = mpsc::channel(1);
        let (second, rx2) = mpsc::channel(1);
        let _g1 = callers.register(first.clone());
        let g2 = callers.register(second.clone());
        assert!(callers.current().expect("a caller").same_channel(&second));
        drop(g2);
        assert!(callers.current().expect("a caller").same_channel(&first));
        // A call whose handler is gone (its receiver dropped) is skipped even before its guard
        // is dropped.
        let (third, rx3) = mpsc::channel(1);
        let _g3 = callers.register(third);
        drop(rx3);
        drop(rx2);
        assert!(callers.current().expect("a caller").same_channel(&first));
    }

    #[test]
    fn providers_are_offered_what_some_client_offered_and_nothing_else() {
        let down = Downstream::default();
        assert!(down.offered().sampling.is_none());
        let mut caps = ClientCapabilities::default();
        caps.sampling = Some(Default::default());
        caps.experimental = Some(Default::default());
        down.client_offered(&caps);
        let offered = down.offered();
        assert!(offered.sampling.is_some());
        assert!(offered.experimental.is_none());
        assert!(offered.elicitation.is_none());
    }

    #[test]
    fn severity_orders_levels() {
        assert!(severity(LoggingLevel::Debug) < severity(LoggingLevel::Warning));
        assert!(severity(LoggingLevel::Error) < severity(LoggingLevel::Emergency));
    }
}
