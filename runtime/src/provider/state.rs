//! Provider states and the one table of allowed transitions.

use std::fmt;

use serde::Serialize;

/// Where a provider is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderState {
    /// Configured, not running. Predefined tools are offered.
    Cold,
    /// Being started: process spawned, MCP handshake and tool listing under way.
    Initializing,
    /// Running and answering.
    Ready,
    /// Running but failing health checks or calls.
    Degraded,
    /// Failed to start or exited on its own; `reason` says why.
    Dead,
}

impl ProviderState {
    pub const ALL: [ProviderState; 5] = [
        ProviderState::Cold,
        ProviderState::Initializing,
        ProviderState::Ready,
        ProviderState::Degraded,
        ProviderState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderState::Cold => "cold",
            ProviderState::Initializing => "initializing",
            ProviderState::Ready => "ready",
            ProviderState::Degraded => "degraded",
            ProviderState::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// Whether a process (or connection) is up in this state.
    pub fn is_running(self) -> bool {
        matches!(self, ProviderState::Ready | ProviderState::Degraded)
    }
}

impl fmt::Display for ProviderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: ProviderState,
    pub to: ProviderState,
    pub reason: Option<String>,
}

/// A transition the table does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid provider state transition {from} -> {to}")]
pub struct InvalidTransition {
    pub from: ProviderState,
    pub to: ProviderState,
}

/// The transition table. Anything not listed is refused. DEGRADED -> READY is how a provider
/// that failed checks or calls comes back once one succeeds.
pub(super) fn check(from: ProviderState, to: ProviderState) -> Result<(), InvalidTransition> {
    use ProviderState::*;
    let allowed = match from {
        Cold => matches!(to, Initializing),
        Initializing => matches!(to, Ready | Degraded | Dead),
        Ready => matches!(to, Cold | Degraded | Dead),
        Degraded => matches!(to, Ready | Initializing | Cold | Dead),
        Dead => matches!(to, Initializing | Cold),
    };
    if allowed {
        Ok(())
    } else {
        Err(InvalidTransition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::ProviderState::*;
    use super::*;

    /// The table from the design, written out edge by edge so a change to `check` that is not
    /// also made here fails.
    const ALLOWED: &[(ProviderState, ProviderState)] = &[
        (Cold, Initializing),
        (Initializing, Ready),
        (Initializing, Degraded),
        (Initializing, Dead),
        (Ready, Cold),
        (Ready, Degraded),
        (Ready, Dead),
        (Degraded, Ready),
        (Degraded, Initializing),
        (Degraded, Cold),
        (Degraded, Dead),
        (Dead, Initializing),
        (Dead, Cold),
    ];

    #[test]
    fn every_pair_of_states_is_allowed_exactly_when_the_table_lists_it() {
        for from in ProviderState::ALL {
            for to in ProviderState::ALL {
                let expected = ALLOWED.contains(&(from, to));
                assert_eq!(
                    check(from, to).is_ok(),
                    expected,
                    "{from} -> {to} should be {}",
                    if expected { "allowed" } else { "refused" }
                );
            }
        }
    }

    #[test]
    fn no_state_transitions_to_itself() {
        for s in ProviderState::ALL {
            assert_eq!(check(s, s), Err(InvalidTransition { from: s, to: s }));
        }
    }

    #[test]
    fn states_parse_from_their_names_case_insensitively() {
        for s in ProviderState::ALL {
            assert_eq!(ProviderState::parse(&s.as_str().to_uppercase()), Some(s));
        }
        assert_eq!(ProviderState::parse("warm"), None);
    }
}
