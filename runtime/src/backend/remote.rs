//! Providers reached over HTTP: streamable HTTP, or the legacy HTTP+SSE transport.
//! (Being built: see the remote backend work in progress.)

use super::{Connection, Exit, Launch, StartError};

/// A remote provider's session.
pub(crate) struct Remote {
    endpoint: String,
    exit: Exit,
}

/// Connects to `launch.spec`'s endpoint and completes the MCP handshake.
pub(crate) async fn connect(launch: &Launch<'_>) -> Result<Connection, StartError> {
    Err(StartError::new(format!(
        "provider `{}`: the remote backend is not available in this build",
        launch.spec.id
    )))
}

impl Remote {
    pub(crate) fn exit(&self) -> &Exit {
        &self.exit
    }

    pub(crate) fn location(&self) -> String {
        self.endpoint.clone()
    }

    pub(crate) fn stop(&self) {}
}
