//! The hangar's side of each provider connection: who we say we are, and what we do with the
//! notifications a provider sends us.

use std::sync::Arc;

use rmcp::ClientHandler;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{NotificationContext, RoleClient};

/// Called when the provider says its tool list changed.
pub type ToolsChangedHook = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
pub struct ProviderClient {
    provider: String,
    on_tools_changed: ToolsChangedHook,
}

impl ProviderClient {
    pub fn new(provider: impl Into<String>, on_tools_changed: ToolsChangedHook) -> Self {
        Self {
            provider: provider.into(),
            on_tools_changed,
        }
    }
}

impl ClientHandler for ProviderClient {
    fn get_info(&self) -> ClientConfig {
        // The handshake-era `initialize` carries the newest version that still has a handshake;
        // the server answers with the one it speaks and rmcp checks we support it.
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcp-hangar", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        tracing::debug!(provider = %self.provider, "provider reported tools/list_changed");
        (self.on_tools_changed)();
    }
}
