//! One client session as the gateway keeps it: its peer (for notifications and requests to it),
//! the log level it asked for, and the resources it subscribed to.

// Logging is deprecated by SEP-2577 (2026-07-28) but is what every handshake-era client speaks.
#![allow(deprecated)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use rmcp::model::LoggingLevel;
use rmcp::service::{Peer, RoleServer};

use crate::backend::downstream::severity;

#[derive(Debug, Default)]
pub struct Session {
    peer: OnceLock<Peer<RoleServer>>,
    level: Mutex<Option<LoggingLevel>>,
    subscribed: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Session {
    /// The client, once its handshake is done (never for a 2026-07-28 session, which has none
    /// and takes no requests from servers).
    pub fn peer(&self) -> Option<Peer<RoleServer>> {
        self.peer.get().cloned()
    }

    pub fn set_peer(&self, peer: Peer<RoleServer>) {
        let _ = self.peer.set(peer);
    }

    pub fn is_closed(&self) -> bool {
        self.peer.get().is_some_and(Peer::is_transport_closed)
    }

    pub fn set_level(&self, level: LoggingLevel) {
        *lock(&self.level) = Some(level);
    }

    pub fn level(&self) -> Option<LoggingLevel> {
        *lock(&self.level)
    }

    /// Whether a message at `level` goes to this client during its own call: all do until it
    /// sets a level.
    pub fn wants(&self, level: LoggingLevel) -> bool {
        self.level()
            .is_none_or(|wanted| severity(level) >= severity(wanted))
    }

    /// Whether a message at `level` sent outside any call goes to this client: only to clients
    /// that asked for logs with `logging/setLevel`.
    pub fn wants_unsolicited(&self, level: LoggingLevel) -> bool {
        self.level()
            .is_some_and(|wanted| severity(level) >= severity(wanted))
    }

    /// Subscribes; `true` if it was new.
    pub fn subscribe(&self, uri: &str) -> bool {
        lock(&self.subscribed).insert(uri.to_string())
    }

    /// Unsubscribes; `true` if it was subscribed.
    pub fn unsubscribe(&self, uri: &str) -> bool {
        lock(&self.subscribed).remove(uri)
    }

    pub fn is_subscribed(&self, uri: &str) -> bool {
        lock(&self.subscribed).contains(uri)
    }
}

/// Every live session of the gateway.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<Vec<Arc<Session>>>);

impl Sessions {
    pub fn add(&self, session: Arc<Session>) {
        let mut all = lock(&self.0);
        all.retain(|s| !s.is_closed());
        all.push(session);
    }

    /// The sessions whose client is still connected.
    pub fn live(&self) -> Vec<Arc<Session>> {
        let mut all = lock(&self.0);
        all.retain(|s| !s.is_closed());
        all.iter()
            .filter(|s| s.peer.get().is_some())
            .cloned()
            .collect()
    }

    /// The most verbose level any live session asked for.
    pub fn most_verbose(&self) -> Option<LoggingLevel> {
        self.live()
            .iter()
            .filter_map(|s| s.level())
            .min_by_key(|l| severity(*l))
    }

    /// Whether any other live session is subscribed to `uri`.
    pub fn anyone_subscribed(&self, uri: &str) -> bool {
        self.live().iter().any(|s| s.is_subscribed(uri))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_logs_at_or_above_its_level_and_unsolicited_ones_only_once_it_asked() {
        let s = Session::default();
        assert!(s.wants(LoggingLevel::Debug));
        assert!(!s.wants_unsolicited(LoggingLevel::Emergency));
        s.set_level(LoggingLevel::Warning);
        assert!(!s.wants(LoggingLevel::Info));
        assert!(s.wants(LoggingLevel::Error));
        assert!(s.wants_unsolicited(LoggingLevel::Warning));
        assert!(!s.wants_unsolicited(LoggingLevel::Notice));
    }

    #[test]
    fn subscriptions_are_per_session() {
        let s = Session::default();
        assert!(s.subscribe("file:///a"));
        assert!(!s.subscribe("file:///a"));
        assert!(s.is_subscribed("file:///a"));
        assert!(s.unsubscribe("file:///a"));
        assert!(!s.is_subscribed("file:///a"));
    }
}
