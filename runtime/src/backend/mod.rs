//! How a provider runs and is reached. Every backend ends in an rmcp client [`Peer`]; the registry
//! never knows whether a process, a container or a URL is behind it.

mod client;
mod groups;
pub mod raw;
pub mod subprocess;

pub use client::{ProgressRoute, ProgressRoutes, ProgressSink, ProviderClient};
pub use groups::kill_all_process_groups;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::Tool;
use rmcp::service::{Peer, RoleClient};

/// How long a provider may take from spawn to answering `tools/list`. Generous because real
/// servers (`npx …`, `uvx …`) may install themselves on first start.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How many of a provider's last stderr lines are kept for error messages.
const STDERR_TAIL_LINES: usize = 20;

/// The last lines a provider wrote to stderr.
#[derive(Debug, Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    pub fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The tail as one string for an error message, or a note that there was none.
    pub fn render(&self) -> String {
        let lines = self.lines();
        if lines.is_empty() {
            "(the provider wrote nothing to stderr)".to_string()
        } else {
            lines.join("\n")
        }
    }
}

/// Why a provider could not be started.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StartError {
    pub message: String,
    pub stderr_tail: Vec<String>,
}

/// A started provider: the MCP peer to call, what it offered at start, and how to stop it.
pub struct Connection {
    pub peer: Peer<RoleClient>,
    pub tools: Vec<Tool>,
    pub protocol_version: String,
    pub server_name: String,
    pub pid: Option<u32>,
    pub stderr: StderrTail,
    /// Routes the provider's progress notifications to the callers waiting for them.
    pub progress: ProgressRoutes,
    /// `tools/call` written and answered on the pipes directly, past rmcp's service loop.
    pub raw: Arc<raw::RawCalls>,
    process: subprocess::Process,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("pid", &self.pid)
            .field("protocol_version", &self.protocol_version)
            .field("tools", &self.tools.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Resolves when the provider is gone (process exited), with a description of how it ended.
    pub async fn exited(&self) -> String {
        self.process.exited().await
    }

    /// Stops the provider: MCP close, then SIGTERM to its process group, SIGKILL after `timeout`.
    pub async fn shutdown(&self, timeout: Duration) {
        self.process.shutdown(timeout).await
    }
}
