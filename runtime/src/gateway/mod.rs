//! The MCP face of the hangar: one `ServerHandler` serving the management tools and every
//! provider's tools under aggregated names, over stdio or streamable HTTP.
//!
//! Tool list changes reach clients two ways: handshake-era clients get
//! `notifications/tools/list_changed` on their session; 2026-07-28 clients get it on their
//! `subscriptions/listen` stream.

// Logging, sampling, roots and `resources/subscribe` are deprecated by SEP-2577 (2026-07-28)
// but are what every handshake-era client speaks; the gateway serves them.
#![allow(deprecated)]

mod access;
mod aggregate;
mod call;
mod catalog;
mod discovery_tools;
mod management;
mod session;
pub mod stdio;

pub use catalog::{Catalog, Route, aggregated_name, is_valid_tool_name};
pub use session::Session;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, Implementation, InitializeRequestParams,
    InitializeResult, JsonObject, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ResultType, ServerCapabilities, ServerConfig, SetLevelRequestParams,
    SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, SubscriptionContext};
use rmcp::{ErrorData as McpError, ServerHandler};
use tokio::sync::broadcast;

use crate::access::Principal;
use crate::events::Event;
use crate::registry::{Invocation, Registry, closest};

/// State shared by every client session.
pub struct Gateway {
    pub registry: Arc<Registry>,
    catalog: ArcSwap<Catalog>,
    /// Sessions of handshake-era clients, for `list_changed`, logs and resource updates.
    sessions: session::Sessions,
    /// Where the names of the last resource and prompt listings lead.
    routes: Mutex<aggregate::Routes>,
    /// Fires after the catalog changed, for 2026-07-28 `subscriptions/listen` streams.
    changed: broadcast::Sender<()>,
    started: Instant,
}

impl Gateway {
    /// Builds the gateway. Tool names that would collide or be invalid with the providers'
    /// predefined tools are returned as errors, so a config that cannot be served is refused
    /// before anything starts.
    pub fn new(registry: Arc<Registry>) -> Result<Arc<Self>, Vec<String>> {
        let (catalog, problems) = Catalog::build(&registry);
        if !problems.is_empty() {
            return Err(problems);
        }
        let (changed, _) = broadcast::channel(16);
        let gw = Arc::new(Self {
            registry,
            catalog: ArcSwap::from_pointee(catalog),
            sessions: session::Sessions::default(),
            routes: Mutex::default(),
            changed,
            started: Instant::now(),
        });
        gw.clone().spawn_catalog_updater();
        gw.spawn_notice_relay();
        Ok(gw)
    }

    pub fn tools(&self) -> Arc<Vec<Tool>> {
        self.catalog.load().tools.clone()
    }

    /// The current catalog, whole (its tools, routes and encoded list).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// Rebuilds the catalog whenever a provider's tools change, and tells clients if the
    /// offered list is different.
    fn spawn_catalog_updater(self: Arc<Self>) {
        let mut rx = self.registry.bus().subscribe();
        let me = Arc::downgrade(&self);
        drop(self);
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(env) if changes_catalog(&env.event) => {}
                    Ok(_) => continue,
                    // Missed events: rebuild anyway, it is idempotent.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
                // A discovery cycle publishes one event per provider: one rebuild for all of
                // those already queued.
                while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = rx.try_recv() {}
                let Some(gw) = me.upgrade() else { break };
                gw.rebuild();
            }
        });
    }

    fn rebuild(&self) {
        let (catalog, problems) = Catalog::build(&self.registry);
        for p in &problems {
            tracing::warn!("{p}");
        }
        let old = self.catalog.load();
        let same = old.tools.len() == catalog.tools.len()
            && old
                .tools
                .iter()
                .zip(catalog.tools.iter())
                .all(|(a, b)| a == b);
        self.catalog.store(Arc::new(catalog));
        if !same {
            self.notify_list_changed();
        }
    }

    fn notify_list_changed(&self) {
        let _ = self.changed.send(());
        for peer in self.sessions.live().iter().filter_map(|s| s.peer()) {
            tokio::spawn(async move {
                if let Err(e) = peer.notify_tool_list_changed().await {
                    tracing::debug!("could not send tools/list_changed to a client: {e}");
                }
            });
        }
    }

    /// Where a name that is not offered (yet) goes: see [`catalog::route_unoffered`].
    fn route_unoffered(&self, name: &str) -> Option<Route> {
        catalog::route_unoffered(&self.registry.exposed(), name)
    }

    async fn invoke(&self, call: Invocation, principal: Option<&Principal>) -> CallToolResult {
        // The target's name, for the tool names an error may show (only with a tool list).
        let target = principal
            .filter(|p| !p.unrestricted())
            .map(|_| call.provider.clone());
        match self.registry.invoke(call).await {
            Ok(r) => self.finish_result(r),
            Err(e) => management::error_result(&match (&target, principal) {
                (Some(target), Some(p)) => access::visible_error(self, p, target, e),
                _ => e,
            }),
        }
    }

    /// The provider's own result, `isError` included, goes back unchanged — except that a
    /// handshake-era provider's result has no `resultType`, which 2026-07-28 clients require;
    /// rmcp drops it again for older clients.
    fn finish_result(&self, mut r: CallToolResult) -> CallToolResult {
        r.result_type.get_or_insert(ResultType::COMPLETE);
        r
    }
}

/// A client's `_meta` as a call carries it on, `None` when it is empty.
pub(crate) fn client_meta(meta: JsonObject) -> Option<JsonObject> {
    (!meta.is_empty()).then_some(meta)
}

/// Events after which the offered tool list may differ.
fn changes_catalog(event: &Event) -> bool {
    matches!(
        event,
        Event::ToolsChanged { .. }
            | Event::ProviderRegistered { .. }
            | Event::ProviderUpdated { .. }
            | Event::ProviderDeregistered { .. }
            | Event::GroupMemberJoined { .. }
            | Event::GroupMemberLeft { .. }
            | Event::GroupCreated { .. }
            | Event::GroupRemoved { .. }
    )
}

/// One client session's handler; all sessions share the [`Gateway`].
#[derive(Clone)]
pub struct HangarServer {
    gw: Arc<Gateway>,
    /// This connection's session id for validators and policies when the transport has none
    /// of its own (stdio: one client per connection).
    connection: Arc<str>,
    /// The client: its peer, log level and subscriptions.
    client: Arc<Session>,
}

impl HangarServer {
    pub fn new(gw: Arc<Gateway>) -> Self {
        static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
        let n = CONNECTIONS.fetch_add(1, Ordering::Relaxed) + 1;
        Self {
            gw,
            connection: Arc::from(format!("connection-{}-{n}", std::process::id())),
            client: Arc::default(),
        }
    }

    /// The client session a call belongs to: the streamable HTTP `mcp-session-id` header, else
    /// this connection.
    fn session(&self, context: &RequestContext<RoleServer>) -> String {
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| self.connection.to_string(), str::to_owned)
    }

    /// A `tools/call` to a management tool or a provider's tool, by its offered name.
    async fn route_call(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let route = self
            .gw
            .catalog
            .load()
            .routes
            .get(request.name.as_ref())
            .cloned()
            .or_else(|| self.gw.route_unoffered(&request.name));
        access::check_call(
            &self.gw,
            &context,
            &request.name,
            route.as_ref(),
            request.arguments.as_ref(),
        )?;
        let result = match route {
            Some(Route::Management(which)) => {
                let session = Some(self.session(&context));
                management::call(
                    &self.gw,
                    which,
                    &request.name,
                    request.arguments,
                    &context,
                    &self.client,
                    session,
                )
                .await?
            }
            Some(Route::Provider { provider, tool }) => {
                let caller = call::Caller {
                    session: &self.client,
                    progress_token: context.meta.get_progress_token(),
                    principal: access::principal(&context),
                };
                self.gw
                    .call(
                        Invocation {
                            provider,
                            tool,
                            arguments: request.arguments,
                            session: Some(self.session(&context)),
                            meta: client_meta(context.meta.0.0),
                            ..Default::default()
                        },
                        &caller,
                    )
                    .await
            }
            None => {
                let catalog = self.gw.catalog.load();
                // Only names the caller may call are suggested.
                let principal = access::principal(&context);
                let near = closest(
                    &request.name,
                    catalog
                        .routes
                        .keys()
                        .map(String::as_str)
                        .filter(|name| principal.as_ref().is_none_or(|p| p.may_call(name))),
                );
                return Err(McpError::invalid_params(
                    format!(
                        "unknown tool `{}`; closest offered: {}. Call tools/list for the current list, or registry_invoke to reach a provider's tool directly",
                        request.name,
                        near.join(", ")
                    ),
                    None,
                ));
            }
        };
        Ok(CallToolResponse::Complete(result))
    }
}

impl ServerHandler for HangarServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_logging()
                .enable_completions()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_resources_list_changed()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(
            Implementation::new("mcp-hangar", env!("CARGO_PKG_VERSION"))
                .with_title("MCP Hangar"),
        )
        .with_instructions(
            "MCP Hangar: a gateway to several MCP servers (providers). Their tools are offered as \
             <provider>__<tool>; registry_list shows the providers and registry_invoke calls any tool.",
        )
    }

    /// The client's link and what it offers are recorded here, not when `initialized` comes:
    /// rmcp runs that notification in a task of its own, and a call right behind it could
    /// otherwise run without the link (no progress, sampling or roots for it).
    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        context.peer.set_peer_info(request.clone());
        self.gw
            .registry
            .downstream()
            .client_offered(&request.capabilities);
        self.client.set_peer(context.peer.clone());
        self.negotiate_initialize(&request)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // A client that skipped `initialize` (none of the above ran) still gets its link.
        self.client.set_peer(context.peer);
        self.gw.sessions.add(self.client.clone());
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        self.gw.list_resources(request).await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        self.gw.list_resource_templates(request).await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        self.gw.read_resource(request).await
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.gw.subscribe(&self.client, request).await
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.gw.unsubscribe(&self.client, request).await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        self.gw.list_prompts(request).await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        self.gw.get_prompt(request).await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        self.gw.complete(request).await
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.gw.set_level(&self.client, request.level).await;
        Ok(())
    }

    async fn on_roots_list_changed(&self, _context: NotificationContext<RoleServer>) {
        // Providers that asked this hangar for roots may ask again.
        for p in self.gw.registry.providers() {
            if let Some(conn) = p.connection() {
                let _ = conn.peer.notify_roots_list_changed().await;
            }
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(access::visible(
            &context,
            &self.gw.tools(),
        )))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.gw.tools().iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // rmcp only cancels the context's token when the client sends
        // `notifications/cancelled` (or its session ends), and lets the handler run on. Dropping
        // the call instead gives back its concurrency slot, queue place and in-flight count at
        // once, and sends the provider `notifications/cancelled` in turn. rmcp sends no answer
        // to a cancelled request, so the error below reaches nobody.
        let cancelled = context.ct.clone();
        tokio::select! {
            biased;
            _ = cancelled.cancelled() => Err(McpError::invalid_request(
                "the client cancelled this call",
                None,
            )),
            // Boxed: the whole call's state nested in this future would otherwise be laid out
            // inline in every future that serves a session, past rustc's query depth limit.
            r = Box::pin(self.route_call(request, context)) => r,
        }
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::new();
        accepted.tools_list_changed = requested.tools_list_changed.filter(|b| *b);
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let mut changed = self.gw.changed.subscribe();
        loop {
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                r = changed.recv() => match r {
                    Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        if context.sink().notify_tool_list_changed().await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
            }
        }
    }
}
