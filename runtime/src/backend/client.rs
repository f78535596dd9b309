//! The hangar's side of each provider connection: who we say we are, and what we do with the
//! notifications a provider sends us.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::ClientHandler;
use rmcp::model::{
    ClientCapabilities, ClientConfig, Implementation, ProgressNotificationParam, ProgressToken,
    ProtocolVersion,
};
use rmcp::service::{NotificationContext, RoleClient};

/// Called when the provider says its tool list changed.
pub type ToolsChangedHook = Arc<dyn Fn() + Send + Sync>;

/// Receives a provider's progress for one call: (progress, total, message).
pub type ProgressSink = Arc<dyn Fn(f64, Option<f64>, Option<String>) + Send + Sync>;

/// Which caller each in-flight progress token belongs to.
#[derive(Clone, Default)]
pub struct ProgressRoutes(Arc<Mutex<HashMap<ProgressToken, ProgressSink>>>);

/// Removes its route when the call ends, however it ends.
pub struct ProgressRoute {
    routes: ProgressRoutes,
    token: ProgressToken,
}

/// How long a route outlives its call. rmcp hands notifications and responses to different
/// tasks, so the provider's last progress, sent before its answer, may be dispatched after it.
const ROUTE_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

impl Drop for ProgressRoute {
    fn drop(&mut self) {
        let routes = self.routes.clone();
        let token = self.token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ROUTE_GRACE).await;
            routes.lock().remove(&token);
        });
    }
}

impl ProgressRoutes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProgressToken, ProgressSink>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(&self, token: ProgressToken, sink: ProgressSink) -> ProgressRoute {
        self.lock().insert(token.clone(), sink);
        ProgressRoute {
            routes: self.clone(),
            token,
        }
    }

    fn dispatch(&self, p: ProgressNotificationParam) {
        let sink = self.lock().get(&p.progress_token).cloned();
        if let Some(sink) = sink {
            sink(p.progress, p.total, p.message);
        }
    }
}

#[derive(Clone)]
pub struct ProviderClient {
    provider: String,
    on_tools_changed: ToolsChangedHook,
    progress: ProgressRoutes,
}

impl ProviderClient {
    pub fn new(
        provider: impl Into<String>,
        on_tools_changed: ToolsChangedHook,
        progress: ProgressRoutes,
    ) -> Self {
        Self {
            provider: provider.into(),
            on_tools_changed,
            progress,
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

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.dispatch(params);
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        tracing::debug!(provider = %self.provider, "provider reported tools/list_changed");
        (self.on_tools_changed)();
    }
}
