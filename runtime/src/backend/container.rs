//! Providers that run in a Docker or Podman container, speaking MCP on the container's attached
//! stdin/stdout. (Being built: see the container backend work in progress.)

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Exit, Pipes, StartError, StderrTail};
use crate::config::ProviderSpec;

/// A started container.
pub(crate) struct Container {
    id: String,
    exit: Exit,
}

/// Creates and starts the container `spec` describes, attached, and returns its MCP byte
/// stream. Its stderr lines go to `stderr`.
pub(crate) async fn launch(
    spec: &ProviderSpec,
    _instance: &str,
    _stderr: StderrTail,
    _cancel: &CancellationToken,
) -> Result<(Container, Pipes), StartError> {
    Err(StartError::new(format!(
        "provider `{}`: the container backend is not available in this build",
        spec.id
    )))
}

impl Container {
    pub(crate) fn exit(&self) -> &Exit {
        &self.exit
    }

    pub(crate) fn location(&self) -> String {
        format!("container {}", &self.id[..self.id.len().min(12)])
    }

    pub(crate) async fn stop(&self, _timeout: Duration) {}
}

/// Removes every container this process started and has not removed yet.
pub(crate) async fn remove_all_started() -> usize {
    0
}
