//! Resources, prompts, completions and logging of every provider through the one gateway.
//!
//! Lists are gathered from the providers that are running (a listing never starts one: a
//! hangar of lazy providers stays cold); a provider's resources and prompts appear once it has
//! started, and clients are told with `list_changed`. Prompt names carry the provider's prefix
//! like tool names (`<prefix>__<prompt>`); resource URIs are the provider's own, routed back by
//! the last listing (or a template's fixed prefix). A `prompts/get` or `resources/read` for a
//! provider that is not running starts it.
//!
//! The hangar lists with cursors in pages of [`PAGE`], and follows each provider's cursors to
//! the end of its list.

// Logging and `resources/subscribe` are deprecated for 2026-07-28 but are what every
// handshake-era client speaks.
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Duration;

use foldhash::HashMap;
use futures::future::join_all;
use rmcp::ErrorData as McpError;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, Cursor, GetPromptRequestParams, GetPromptResponse,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, LoggingLevel,
    PaginatedRequestParams, Prompt, ReadResourceRequestParams, ReadResourceResponse, Reference,
    Resource, ResourceTemplate, ServerCapabilities, SetLevelRequestParams, SubscribeRequestParams,
    UnsubscribeRequestParams,
};
use rmcp::service::ServiceError;

use super::Gateway;
use super::catalog::aggregated_name;
use super::session::Session;
use crate::backend::{Connection, Notice};
use crate::events::Event;
use crate::registry::Target;

/// Items per page of an aggregated list.
pub const PAGE: usize = 1000;

/// How long one provider may take to answer a listing before it is left out of it.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the names of the last listings lead.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    /// Resource URI → the provider (or group) that listed it.
    resources: HashMap<String, String>,
    /// (fixed prefix of a URI template, template, provider or group), longest prefix first.
    templates: Vec<(String, String, String)>,
    /// Offered prompt name → (provider or group, the provider's own name).
    prompts: HashMap<String, (String, String)>,
}

/// A running provider (or a running member of a group) to list from, by the id clients see.
struct Source {
    id: String,
    prefix: Option<String>,
    conn: Arc<Connection>,
}

/// One page of `items` from the offset in `cursor`.
fn page<T>(
    mut items: Vec<T>,
    request: Option<PaginatedRequestParams>,
) -> Result<(Vec<T>, Option<Cursor>), McpError> {
    let start = match request.and_then(|r| r.cursor) {
        None => 0,
        Some(c) => c.parse::<usize>().map_err(|_| {
            McpError::invalid_params(
                format!("invalid cursor `{c}`: pass the nextCursor of the previous page"),
                None,
            )
        })?,
    };
    if start > items.len() {
        return Err(McpError::invalid_params(
            format!(
                "cursor `{start}` is past the end of the list ({} items); list again from the start",
                items.len()
            ),
            None,
        ));
    }
    let end = (start + PAGE).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    items.truncate(end);
    items.drain(..start);
    Ok((items, next))
}

/// The fixed part of a URI template before its first expression.
fn template_prefix(template: &str) -> &str {
    template.split('{').next().unwrap_or(template)
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> McpError {
    McpError::internal_error(format!("{what}: {e}"), None)
}

fn from_provider(id: &str, e: ServiceError) -> McpError {
    match e {
        ServiceError::McpError(e) => e,
        e => unavailable(&format!("provider `{id}` did not answer"), e),
    }
}

impl Gateway {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running providers clients can reach, each with what it serves.
    fn sources(&self, wants: impl Fn(&ServerCapabilities) -> bool) -> Vec<Source> {
        self.registry
            .exposed()
            .into_iter()
            .filter_map(|(id, prefix, _)| {
                let conn = match self.registry.target(&id).ok()? {
                    Target::Provider(p) => p.connection(),
                    Target::Group(g) => g.members().iter().find_map(|m| m.provider.connection()),
                }?;
                conn.capabilities()
                    .is_some_and(|c| wants(&c))
                    .then_some(Source { id, prefix, conn })
            })
            .collect()
    }

    /// A connection to `id`, starting the provider (or a group's first member) if none runs.
    async fn connect(&self, id: &str) -> Result<Arc<Connection>, McpError> {
        let provider = match self.registry.target(id) {
            Ok(Target::Provider(p)) => p,
            Ok(Target::Group(g)) => {
                if let Some(conn) = g.members().iter().find_map(|m| m.provider.connection()) {
                    return Ok(conn);
                }
                match g.members().first() {
                    Some(m) => m.provider.clone(),
                    None => return Err(unavailable(&format!("group `{id}`"), "has no members")),
                }
            }
            Err(e) => return Err(McpError::invalid_params(e.to_string(), None)),
        };
        provider
            .ensure_started(true)
            .await
            .map_err(|e| unavailable(&format!("provider `{id}` could not be started"), e))
    }

    /// Runs `list` on every source at once; a source that fails or is slow is left out and
    /// logged, never failing the whole list.
    async fn gather<T, F, Fut>(
        &self,
        wants: fn(&ServerCapabilities) -> bool,
        list: F,
    ) -> Vec<(Source, Vec<T>)>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, ServiceError>>,
    {
        let sources = self.sources(wants);
        let lists = join_all(sources.iter().map(|s| {
            let listing = list(s.conn.clone());
            async move { tokio::time::timeout(LIST_TIMEOUT, listing).await }
        }))
        .await;
        sources
            .into_iter()
            .zip(lists)
            .filter_map(|(source, listed)| match listed {
                Ok(Ok(items)) => Some((source, items)),
                Ok(Err(e)) => {
                    tracing::warn!(provider = %source.id, "listing failed, left out: {e}");
                    None
                }
                Err(_) => {
                    tracing::warn!(provider = %source.id, "listing took over {}s, left out", LIST_TIMEOUT.as_secs());
                    None
                }
            })
            .collect()
    }

    async fn all_resources(&self) -> Vec<Resource> {
        let listed = self
            .gather(
                |c| c.resources.is_some(),
                |c| async move { c.peer.list_all_resources().await },
            )
            .await;
        let mut routes = HashMap::default();
        let mut all = Vec::new();
        for (source, resources) in listed {
            for r in resources {
                if let Some(first) = routes.get(&r.uri) {
                    tracing::warn!(
                        "resource `{}` of provider `{}` is also offered by `{first}`; reads go to `{first}`",
                        r.uri,
                        source.id
                    );
                    continue;
                }
                routes.insert(r.uri.clone(), source.id.clone());
                all.push(r);
            }
        }
        self.routes().resources = routes;
        all
    }

    async fn all_templates(&self) -> Vec<ResourceTemplate> {
        let listed = self
            .gather(
                |c| c.resources.is_some(),
                |c| async move { c.peer.list_all_resource_templates().await },
            )
            .await;
        let mut routes = Vec::new();
        let mut all = Vec::new();
        for (source, templates) in listed {
            for t in templates {
                routes.push((
                    template_prefix(&t.uri_template).to_string(),
                    t.uri_template.clone(),
                    source.id.clone(),
                ));
                all.push(t);
            }
        }
        routes.sort_by_key(|(prefix, _, _)| std::cmp::Reverse(prefix.len()));
        self.routes().templates = routes;
        all
    }

    async fn all_prompts(&self) -> Vec<Prompt> {
        let listed = self
            .gather(
                |c| c.prompts.is_some(),
                |c| async move { c.peer.list_all_prompts().await },
            )
            .await;
        let mut routes = HashMap::default();
        let mut all = Vec::new();
        for (source, prompts) in listed {
            for mut p in prompts {
                let name = aggregated_name(&source.id, source.prefix.as_deref(), &p.name);
                if routes.contains_key(&name) {
                    tracing::warn!(
                        "prompt `{}` of provider `{}` would be offered as `{name}`, which is taken; set a different tool_prefix",
                        p.name,
                        source.id
                    );
                    continue;
                }
                routes.insert(
                    name.clone(),
                    (source.id.clone(), std::mem::replace(&mut p.name, name)),
                );
                all.push(p);
            }
        }
        self.routes().prompts = routes;
        all
    }

    /// The provider (or group) serving `uri`: the one that listed it, else the one whose
    /// template's fixed prefix is the longest match. Lists first if nothing was listed yet.
    async fn resource_owner(&self, uri: &str) -> Result<String, McpError> {
        for attempt in 0..2 {
            {
                let routes = self.routes();
                if let Some(id) = routes.resources.get(uri) {
                    return Ok(id.clone());
                }
                if let Some((_, _, id)) = routes
                    .templates
                    .iter()
                    .find(|(prefix, _, _)| !prefix.is_empty() && uri.starts_with(prefix.as_str()))
                {
                    return Ok(id.clone());
                }
            }
            if attempt == 0 {
                self.all_resources().await;
                self.all_templates().await;
            }
        }
        Err(McpError::resource_not_found(
            format!(
                "no running provider offers resource `{uri}`; call resources/list (a provider's resources are listed once it runs: registry_start or a call starts it)"
            ),
            None,
        ))
    }

    /// The provider (or group) and own name behind an offered prompt name. Lists first if the
    /// last listing did not have it: a client may complete or get a prompt it never listed.
    async fn prompt_owner(&self, name: &str) -> Result<(String, String), McpError> {
        for attempt in 0..2 {
            {
                if let Some(route) = self.routes().prompts.get(name) {
                    return Ok(route.clone());
                }
            }
            if attempt == 0 {
                self.all_prompts().await;
            }
        }
        // Not listed (yet): a name with a provider's prefix goes to that provider, which is
        // then started and says whether it has the prompt.
        match self.route_unoffered(name) {
            Some(super::Route::Provider { provider, tool }) => Ok((provider, tool)),
            _ => Err(McpError::invalid_params(
                format!(
                    "unknown prompt `{name}`; call prompts/list for the offered names (<provider>__<prompt>)"
                ),
                None,
            )),
        }
    }

    pub(crate) async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
    ) -> Result<ListResourcesResult, McpError> {
        let (items, next) = page(self.all_resources().await, request)?;
        let mut result = ListResourcesResult::with_all_items(items);
        result.next_cursor = next;
        Ok(result)
    }

    pub(crate) async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let (items, next) = page(self.all_templates().await, request)?;
        let mut result = ListResourceTemplatesResult::with_all_items(items);
        result.next_cursor = next;
        Ok(result)
    }

    pub(crate) async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
    ) -> Result<ReadResourceResponse, McpError> {
        let id = self.resource_owner(&request.uri).await?;
        let conn = self.connect(&id).await?;
        conn.peer
            .read_resource_once(request)
            .await
            .map_err(|e| from_provider(&id, e))
    }

    pub(crate) async fn subscribe(
        &self,
        session: &Session,
        request: SubscribeRequestParams,
    ) -> Result<(), McpError> {
        let id = self.resource_owner(&request.uri).await?;
        let conn = self.connect(&id).await?;
        if !conn
            .capabilities()
            .and_then(|c| c.resources)
            .and_then(|r| r.subscribe)
            .unwrap_or(false)
        {
            return Err(McpError::invalid_params(
                format!("provider `{id}` does not support resource subscriptions"),
                None,
            ));
        }
        if session.subscribe(&request.uri) {
            conn.peer
                .subscribe(request)
                .await
                .map_err(|e| from_provider(&id, e))?;
        }
        Ok(())
    }

    pub(crate) async fn unsubscribe(
        &self,
        session: &Session,
        request: UnsubscribeRequestParams,
    ) -> Result<(), McpError> {
        if !session.unsubscribe(&request.uri) || self.sessions.anyone_subscribed(&request.uri) {
            return Ok(());
        }
        let id = self.resource_owner(&request.uri).await?;
        let registry_conn = match self.registry.target(&id) {
            Ok(Target::Provider(p)) => p.connection(),
            Ok(Target::Group(g)) => g.members().iter().find_map(|m| m.provider.connection()),
            Err(_) => None,
        };
        // A provider that is not running has no subscription left to end.
        if let Some(conn) = registry_conn {
            conn.peer
                .unsubscribe(request)
                .await
                .map_err(|e| from_provider(&id, e))?;
        }
        Ok(())
    }

    pub(crate) async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
    ) -> Result<ListPromptsResult, McpError> {
        let (items, next) = page(self.all_prompts().await, request)?;
        let mut result = ListPromptsResult::with_all_items(items);
        result.next_cursor = next;
        Ok(result)
    }

    pub(crate) async fn get_prompt(
        &self,
        mut request: GetPromptRequestParams,
    ) -> Result<GetPromptResponse, McpError> {
        let (id, own) = self.prompt_owner(&request.name).await?;
        let conn = self.connect(&id).await?;
        request.name = own;
        conn.peer
            .get_prompt_once(request)
            .await
            .map_err(|e| from_provider(&id, e))
    }

    pub(crate) async fn complete(
        &self,
        mut request: CompleteRequestParams,
    ) -> Result<CompleteResult, McpError> {
        let id = match &mut request.r#ref {
            Reference::Prompt(p) => {
                let (id, own) = self.prompt_owner(&p.name).await?;
                p.name = own;
                id
            }
            Reference::Resource(r) => {
                let owner = {
                    let routes = self.routes();
                    routes
                        .templates
                        .iter()
                        .find(|(_, template, _)| *template == r.uri)
                        .map(|(_, _, id)| id.clone())
                        .or_else(|| routes.resources.get(&r.uri).cloned())
                };
                match owner {
                    Some(id) => id,
                    None => self.resource_owner(&r.uri).await?,
                }
            }
            other => {
                return Err(McpError::invalid_params(
                    format!("completion for {other:?} is not supported"),
                    None,
                ));
            }
        };
        let conn = self.connect(&id).await?;
        if conn.capabilities().is_none_or(|c| c.completions.is_none()) {
            // Nothing to suggest is a valid answer, not an error.
            return Ok(CompleteResult::default());
        }
        conn.peer
            .complete(request)
            .await
            .map_err(|e| from_provider(&id, e))
    }

    /// A client's `logging/setLevel`: kept for its session, and the most verbose level any
    /// client asked for is set on every running provider that logs (and on those started later).
    pub(crate) async fn set_level(&self, session: &Session, level: LoggingLevel) {
        session.set_level(level);
        let Some(level) = self.sessions.most_verbose() else {
            return;
        };
        self.registry.downstream().set_level(level);
        let sources = self.sources(|c| c.logging.is_some());
        join_all(sources.iter().map(|s| async move {
            if let Err(e) = s
                .conn
                .peer
                .set_level(SetLevelRequestParams::new(level))
                .await
            {
                tracing::debug!(provider = %s.id, "logging/setLevel failed: {e}");
            }
        }))
        .await;
    }

    /// Relays what providers send outside calls to the sessions it concerns, and tells every
    /// session when the resources or prompts on offer change (a provider started, stopped,
    /// registered, left, or said its list changed).
    pub(crate) fn spawn_notice_relay(self: &Arc<Self>) {
        let mut notices = self.registry.downstream().subscribe();
        let mut events = self.registry.bus().subscribe();
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let notice = tokio::select! {
                    n = notices.recv() => match n {
                        Ok(n) => n,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => break,
                    },
                    e = events.recv() => match e {
                        Ok(env) if changes_offer(&env.event) => Notice::ResourcesChanged { provider: String::new() },
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => break,
                    },
                };
                let Some(gw) = me.upgrade() else { break };
                gw.relay(notice).await;
            }
        });
    }

    async fn relay(&self, notice: Notice) {
        let sessions = self.sessions.live();
        match notice {
            Notice::Log {
                provider,
                mut params,
            } => {
                params.logger = Some(match params.logger.take() {
                    Some(logger) => format!("{provider}/{logger}"),
                    None => provider,
                });
                for s in sessions
                    .iter()
                    .filter(|s| s.wants_unsolicited(params.level))
                {
                    if let Some(peer) = s.peer() {
                        let _ = peer.notify_logging_message(params.clone()).await;
                    }
                }
            }
            Notice::ResourceUpdated { uri, .. } => {
                for s in sessions.iter().filter(|s| s.is_subscribed(&uri)) {
                    if let Some(peer) = s.peer() {
                        let params =
                            rmcp::model::ResourceUpdatedNotificationParam::new(uri.clone());
                        let _ = peer.notify_resource_updated(params).await;
                    }
                }
            }
            Notice::ResourcesChanged { provider } => {
                for s in &sessions {
                    if let Some(peer) = s.peer() {
                        let _ = peer.notify_resource_list_changed().await;
                        // Start, stop and registration change both lists.
                        if provider.is_empty() {
                            let _ = peer.notify_prompt_list_changed().await;
                        }
                    }
                }
            }
            Notice::PromptsChanged { .. } => {
                for s in &sessions {
                    if let Some(peer) = s.peer() {
                        let _ = peer.notify_prompt_list_changed().await;
                    }
                }
            }
        }
    }
}

/// Events after which the offered resources and prompts may differ.
fn changes_offer(event: &Event) -> bool {
    matches!(
        event,
        Event::ProviderStarted { .. }
            | Event::ProviderStopped { .. }
            | Event::ProviderRegistered { .. }
            | Event::ProviderDeregistered { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_cursor_to_the_end() {
        let items: Vec<usize> = (0..PAGE * 2 + 5).collect();
        let (first, next) = page(items.clone(), None).expect("page");
        assert_eq!(first.len(), PAGE);
        let cursor = next.expect("more");
        let params = |c: String| Some(PaginatedRequestParams::default().with_cursor(Some(c)));
        let (second, next) = page(items.clone(), params(cursor)).expect("page");
        assert_eq!(second[0], PAGE);
        let (last, next) = page(items.clone(), params(next.expect("more"))).expect("page");
        assert_eq!(last, (PAGE * 2..PAGE * 2 + 5).collect::<Vec<_>>());
        assert!(next.is_none());
        assert!(page(items.clone(), params("x".into())).is_err());
        assert!(page(items, params("999999".into())).is_err());
    }

    #[test]
    fn a_template_routes_by_its_fixed_prefix() {
        assert_eq!(template_prefix("file:///logs/{name}"), "file:///logs/");
        assert_eq!(template_prefix("db://{table}/{id}"), "db://");
        assert_eq!(template_prefix("plain://x"), "plain://x");
    }
}
