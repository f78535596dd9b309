//! The hangar's side of each provider connection: who we say we are, and what we do with the
//! requests and notifications a provider sends us.

// Sampling, roots and logging are deprecated by SEP-2577 (2026-07-28) but are what every
// handshake-era peer speaks.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    ClientConfig, CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams,
    ElicitResult, Implementation, ListRootsResult, LoggingMessageNotificationParam,
    ProgressNotificationParam, ProgressToken, ProtocolVersion, ResourceUpdatedNotificationParam,
};
use rmcp::service::{NotificationContext, RequestContext, RoleClient};
use rmcp::{ClientHandler, ErrorData as McpError};
use tokio::sync::oneshot;

use super::downstream::{Callers, ClientAsk, Downstream, Notice};

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
    downstream: Arc<Downstream>,
    callers: Callers,
}

impl ProviderClient {
    pub fn new(
        provider: impl Into<String>,
        on_tools_changed: ToolsChangedHook,
        progress: ProgressRoutes,
        downstream: Arc<Downstream>,
        callers: Callers,
    ) -> Self {
        Self {
            provider: provider.into(),
            on_tools_changed,
            progress,
            downstream,
            callers,
        }
    }

    /// Hands `ask` to the client of the call in progress and waits for its answer.
    async fn ask_client<T>(
        &self,
        what: &str,
        ask: impl FnOnce(oneshot::Sender<Result<T, McpError>>) -> ClientAsk,
    ) -> Result<T, McpError> {
        let Some(link) = self.callers.current() else {
            return Err(McpError::invalid_request(
                format!(
                    "mcp-hangar: provider `{}` sent {what} outside a tool call; the hangar forwards it only to the client whose call the provider is serving",
                    self.provider
                ),
                None,
            ));
        };
        let (tx, rx) = oneshot::channel();
        let gone = || {
            McpError::internal_error(
                format!("mcp-hangar: the client of the call ended before answering {what}"),
                None,
            )
        };
        link.send(ask(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

impl ClientHandler for ProviderClient {
    fn get_info(&self) -> ClientConfig {
        // The handshake-era `initialize` carries the newest version that still has a handshake;
        // the server answers with the one it speaks and rmcp checks we support it.
        ClientConfig::new(
            self.downstream.offered(),
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

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        self.ask_client("sampling/createMessage", |tx| {
            ClientAsk::Sampling(params, tx)
        })
        .await
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        self.ask_client("elicitation/create", |tx| {
            ClientAsk::Elicitation(params, tx)
        })
        .await
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, McpError> {
        self.ask_client("roots/list", ClientAsk::Roots).await
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        // During a call: to that call's client (dropped if it is behind by a full channel);
        // otherwise to the sessions that asked for logs.
        use tokio::sync::mpsc::error::TrySendError;
        let params = match self.callers.current() {
            Some(link) => match link.try_send(ClientAsk::Log(params)) {
                Ok(()) | Err(TrySendError::Full(_)) => return,
                Err(TrySendError::Closed(ClientAsk::Log(params))) => params,
                Err(TrySendError::Closed(_)) => return,
            },
            None => params,
        };
        self.downstream.publish(Notice::Log {
            provider: self.provider.clone(),
            params,
        });
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.downstream.publish(Notice::ResourceUpdated {
            provider: self.provider.clone(),
            uri: params.uri,
        });
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.downstream.publish(Notice::ResourcesChanged {
            provider: self.provider.clone(),
        });
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.downstream.publish(Notice::PromptsChanged {
            provider: self.provider.clone(),
        });
    }
}
