//! The MCP server behind `example-provider`: its tools, the tool catalog that `add_tool`
//! grows at run time, and the fault injection (`--fail-every`) the hangar's tests turn on.
//!
//! Answers depend only on the arguments, the environment and the calls made so far, so
//! tests can assert exact texts. State belongs to the process and is shared by all of its
//! clients (the one stdio peer, or every HTTP session): the catalog and the call counter.

use std::{
    borrow::Cow,
    collections::{HashMap, VecDeque},
    num::{NonZeroU64, NonZeroUsize},
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rmcp::{
    ErrorData as McpError, Json, RoleServer, ServerHandler,
    handler::server::{
        router::tool::{ToolRoute, ToolRouter},
        tool::ToolCallContext,
        wrapper::Parameters,
    },
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        JsonObject, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
        ProtocolVersion, ServerCapabilities, ServerConfig, SubscriptionFilter, Tool,
    },
    service::{RequestContext, SubscriptionContext, SubscriptionSendError, SubscriptionSink},
    tool, tool_router,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};
use tokio_util::sync::CancellationToken;

/// Exit code of the `crash` tool when the caller gives none.
const DEFAULT_CRASH_CODE: i32 = 3;

/// What the command line decides about the server's behaviour.
#[derive(Debug)]
pub struct Settings {
    /// `serverInfo.name`.
    pub name: String,
    /// Tools per `tools/list` page; `None` answers with a single page.
    pub page_size: Option<NonZeroUsize>,
    /// Every Nth `tools/call` answers `injected failure <k>` instead of running the tool.
    pub fail_every: Option<NonZeroU64>,
    /// Every Nth tools/call makes the process exit (status 3) without answering.
    pub crash_every: Option<NonZeroU64>,
    /// How many generated `tool_<i>` echo tools to offer besides the built-in ones.
    pub extra_tools: usize,
    /// Offer only the revisions that have an `initialize` handshake.
    pub handshake_only: bool,
}

/// The MCP server. Cheap to clone: clones share one catalog, counter and listener set.
#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    /// Number of `tools/call` requests received so far, the injected ones included.
    calls: AtomicU64,
    /// Replaced wholesale (copy on write) when a tool is added, so a call or a listing works
    /// on one consistent snapshot without holding the lock across an `await`.
    catalog: RwLock<Arc<Catalog>>,
    /// `subscriptions/listen` streams (protocol 2026-07-28) that asked for
    /// `notifications/tools/list_changed`, keyed by a private id so a stream can remove
    /// itself: request ids are not unique across HTTP sessions.
    listeners: Mutex<HashMap<u64, SubscriptionSink>>,
    next_listener: AtomicU64,
    /// Catalog generations seen when `subscriptions/listen` requests were accepted, oldest
    /// first. rmcp acknowledges a subscription before `listen` runs, so a tool added in
    /// between would reach no one; `listen` compares against this and catches up.
    accepted_listens: Mutex<VecDeque<u64>>,
    /// Cancelled when stdin reaches EOF. rmcp lets in-flight handlers run for up to five
    /// seconds after EOF; long `sleep`/`progress` calls and `listen` streams stop at once
    /// instead, so the process exits promptly when its client goes away.
    stdin_closed: CancellationToken,
}

/// The tools on offer, with the listing precomputed: `tools/list` is called far more
/// often than the catalog changes, and pages are plain slices of `listed`.
struct Catalog {
    router: ToolRouter<Provider>,
    /// Every tool, sorted by name (the order of `ToolRouter::list_all`).
    listed: Vec<Tool>,
    /// How many times the catalog changed since start.
    generation: u64,
}

impl Catalog {
    fn new(router: ToolRouter<Provider>) -> Self {
        let listed = router.list_all();
        Self {
            router,
            listed,
            generation: 0,
        }
    }

    fn with_route(&self, route: ToolRoute<Provider>) -> Self {
        let mut router = self.router.clone();
        router.add_route(route);
        Self {
            generation: self.generation + 1,
            ..Self::new(router)
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddArgs {
    /// First addend.
    a: Number,
    /// Second addend.
    b: Number,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AddOutput {
    /// `a + b`; an integer when both addends are integers and the sum fits in 64 bits.
    result: Number,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoArgs {
    /// Returned unchanged as the only text content.
    text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SleepArgs {
    /// How long to sleep, in milliseconds.
    ms: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FailArgs {
    /// The text of the error result.
    message: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CrashArgs {
    /// Process exit code (default 3).
    #[serde(default)]
    code: Option<i32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EnvArgs {
    /// Name of the environment variable to read.
    name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ProgressArgs {
    /// Number of progress notifications to send.
    steps: u64,
    /// Pause before each step, in milliseconds (default 0).
    #[serde(default)]
    delay_ms: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddToolArgs {
    /// Name of the tool to register; it must not exist yet.
    name: String,
}

impl Provider {
    pub fn new(settings: Settings, stdin_closed: CancellationToken) -> Self {
        let mut router = Self::builtin_tools();
        for index in 0..settings.extra_tools {
            router.add_route(echo_arguments_route(
                format!("tool_{index}"),
                format!("Generated tool {index}: echoes its arguments back as JSON text"),
            ));
        }
        Self {
            inner: Arc::new(Inner {
                settings,
                calls: AtomicU64::new(0),
                catalog: RwLock::new(Arc::new(Catalog::new(router))),
                listeners: Mutex::new(HashMap::new()),
                next_listener: AtomicU64::new(0),
                accepted_listens: Mutex::new(VecDeque::new()),
                stdin_closed,
            }),
        }
    }

    fn catalog(&self) -> Arc<Catalog> {
        // A poisoned lock still holds a complete snapshot: writers only swap the Arc.
        Arc::clone(
            &self
                .inner
                .catalog
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Waits for `duration`, or returns why it stopped early.
    async fn pause(&self, duration: Duration, request: &CancellationToken) -> Result<(), String> {
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(()),
            () = request.cancelled() => {
                // On stderr so a gateway's log shows the cancellation arrived.
                crate::stderr_line(format_args!("example-provider: request cancelled by the client"));
                Err("cancelled by the client".to_owned())
            }
            () = self.inner.stdin_closed.cancelled() => Err("stdin closed".to_owned()),
        }
    }

    /// Sends `notifications/tools/list_changed` to everyone who can receive it: the caller
    /// when it uses an `initialize` session, and every `subscriptions/listen` stream.
    async fn announce_tool_list_changed(&self, context: &RequestContext<RoleServer>) {
        // Clients that skipped `initialize` (the 2026-07-28 `server/discover` lifecycle)
        // get no unsolicited list_changed; they subscribe with `subscriptions/listen`.
        let initialize_session = context.peer.peer_info().is_some();
        if initialize_session && let Err(error) = context.peer.notify_tool_list_changed().await {
            tracing::warn!(%error, "could not send notifications/tools/list_changed");
        }
        let listeners: Vec<(u64, SubscriptionSink)> = self
            .inner
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(key, sink)| (*key, sink.clone()))
            .collect();
        for (key, sink) in listeners {
            match sink.notify_tool_list_changed().await {
                Ok(()) => {}
                Err(SubscriptionSendError::SubscriptionClosed) => {
                    self.inner
                        .listeners
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&key);
                }
                Err(error) => {
                    tracing::warn!(%error, "could not send tools/list_changed to a subscription");
                }
            }
        }
    }
}

#[tool_router(router = builtin_tools)]
impl Provider {
    #[tool(
        description = "Adds two numbers. Returns {\"result\": a + b} as structured content \
            and as JSON text; integers stay integers."
    )]
    fn add(
        &self,
        Parameters(AddArgs { a, b }): Parameters<AddArgs>,
    ) -> Result<Json<AddOutput>, String> {
        add_numbers(&a, &b).map(|result| Json(AddOutput { result }))
    }

    #[tool(description = "Returns `text` unchanged.")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(
        description = "Sleeps `ms` milliseconds, then returns `slept <ms> ms`. Stops early \
            when the request is cancelled."
    )]
    async fn sleep(
        &self,
        Parameters(SleepArgs { ms }): Parameters<SleepArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<String, String> {
        self.pause(Duration::from_millis(ms), &context.ct)
            .await
            .map_err(|why| format!("sleep of {ms} ms interrupted: {why}"))?;
        Ok(format!("slept {ms} ms"))
    }

    #[tool(description = "Returns a tool error (isError: true) whose text is `message`.")]
    fn fail(&self, Parameters(FailArgs { message }): Parameters<FailArgs>) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(message)])
    }

    #[tool(description = "Exits the process at once with `code` (default 3), without answering.")]
    fn crash(&self, Parameters(CrashArgs { code }): Parameters<CrashArgs>) -> String {
        let code = code.unwrap_or(DEFAULT_CRASH_CODE);
        crate::stderr_line(format_args!("crash tool: exiting with code {code}"));
        std::process::exit(code)
    }

    #[tool(
        description = "Returns the request's `_meta` as JSON text (W3C trace context, vendor \
            keys): what a gateway passed on."
    )]
    fn meta(&self, context: RequestContext<RoleServer>) -> String {
        serde_json::to_string(&context.meta.0.0).unwrap_or_default()
    }

    #[tool(description = "Returns the id of this provider process.")]
    fn pid(&self) -> String {
        std::process::id().to_string()
    }

    #[tool(
        description = "Returns the value of the environment variable `name`; a tool error \
            when it is unset."
    )]
    fn env(&self, Parameters(EnvArgs { name }): Parameters<EnvArgs>) -> Result<String, String> {
        std::env::var(&name).map_err(|error| match error {
            std::env::VarError::NotPresent => format!("environment variable {name} is not set"),
            std::env::VarError::NotUnicode(_) => {
                format!("environment variable {name} is not valid Unicode")
            }
        })
    }

    #[tool(
        description = "Sends `steps` progress notifications (with the request's progress \
            token, if any), pausing `delay_ms` before each, then returns \
            `done <steps>`."
    )]
    async fn progress(
        &self,
        Parameters(ProgressArgs { steps, delay_ms }): Parameters<ProgressArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<String, String> {
        // Progress notifications must name a token the client supplied; without one
        // there is nobody to report to, and the steps are only paced.
        let token = context.meta.get_progress_token();
        let delay = Duration::from_millis(delay_ms.unwrap_or(0));
        for step in 1..=steps {
            self.pause(delay, &context.ct)
                .await
                .map_err(|why| format!("progress stopped before step {step} of {steps}: {why}"))?;
            if let Some(token) = &token {
                // f64 is exact for any step count a test could wait for (< 2^53).
                let notification = ProgressNotificationParam::new(token.clone(), step as f64)
                    .with_total(steps as f64)
                    .with_message(format!("step {step} of {steps}"));
                context
                    .peer
                    .notify_progress(notification)
                    .await
                    .map_err(|error| {
                        format!("could not send progress step {step} of {steps}: {error}")
                    })?;
            }
        }
        Ok(format!("done {steps}"))
    }

    #[tool(
        description = "Registers a tool `name` that echoes its arguments back as JSON text, \
            announces it with notifications/tools/list_changed and returns \
            `added <name>`."
    )]
    async fn add_tool(
        &self,
        Parameters(AddToolArgs { name }): Parameters<AddToolArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<String, String> {
        if name.is_empty() {
            return Err("add_tool needs a non-empty name".to_owned());
        }
        {
            let mut catalog = self
                .inner
                .catalog
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if catalog.router.has_route(&name) {
                return Err(format!("a tool named {name} already exists"));
            }
            let route = echo_arguments_route(
                name.clone(),
                "Added at run time: echoes its arguments back as JSON text".to_owned(),
            );
            *catalog = Arc::new(catalog.with_route(route));
        }
        // Announced before answering, so a client sees the notification first.
        self.announce_tool_list_changed(&context).await;
        Ok(format!("added {name}"))
    }
}

impl ServerHandler for Provider {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new(
            self.inner.settings.name.clone(),
            env!("CARGO_PKG_VERSION"),
        ))
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        if self.inner.settings.handshake_only {
            Cow::Borrowed(ProtocolVersion::known_up_to(
                &ProtocolVersion::LATEST_WITH_INITIALIZE,
            ))
        } else {
            Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let catalog = self.catalog();
        let total = catalog.listed.len();
        let start = match request.and_then(|request| request.cursor) {
            None => 0,
            Some(cursor) => parse_cursor(&cursor, total)?,
        };
        let end = match self.inner.settings.page_size {
            Some(page_size) => start.saturating_add(page_size.get()).min(total),
            None => total,
        };
        let mut result = ListToolsResult::with_all_items(catalog.listed[start..end].to_vec());
        result.next_cursor = (end < total).then(|| end.to_string());
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let ordinal = self.inner.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(every) = self.inner.settings.crash_every
            && ordinal.is_multiple_of(every.get())
        {
            crate::stderr_line(format_args!(
                "example-provider: crashing on call {ordinal} (--crash-every)"
            ));
            std::process::exit(3);
        }
        if let Some(every) = self.inner.settings.fail_every
            && ordinal.is_multiple_of(every.get())
        {
            return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "injected failure {ordinal}"
            ))])
            .into());
        }
        let catalog = self.catalog();
        if !catalog.router.has_route(&request.name) {
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool {:?}: call tools/list for the tools this provider offers",
                    request.name
                ),
                None,
            ));
        }
        catalog
            .router
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.catalog().router.get(name).cloned()
    }

    fn accepted_subscription_filter(
        &self,
        _requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // rmcp calls `listen` next, unless acknowledging fails; then the stale entry costs
        // at most one superfluous list_changed to a later subscriber.
        let generation = self.catalog().generation;
        self.inner
            .accepted_listens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(generation);
        // rmcp narrows this to what the client asked for.
        Some(SubscriptionFilter::builder().tools_list_changed().build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let accepted_generation = self
            .inner
            .accepted_listens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        if context.accepted().tools_list_changed != Some(true) {
            tokio::select! {
                () = context.cancelled() => {}
                () = self.inner.stdin_closed.cancelled() => {}
            }
            return Ok(());
        }
        let key = self.inner.next_listener.fetch_add(1, Ordering::Relaxed);
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, context.sink().clone());
        // Removes the listener even when rmcp drops this future instead of finishing it.
        let _registration = ListenerRegistration {
            provider: self,
            key,
        };
        // Registered first, compared second: a tool added concurrently is announced by
        // `add_tool` or here, possibly by both (a spare list_changed is harmless).
        if accepted_generation.is_some_and(|generation| generation != self.catalog().generation)
            && let Err(error) = context.sink().notify_tool_list_changed().await
        {
            tracing::warn!(%error, "could not send tools/list_changed to a new subscription");
        }
        tokio::select! {
            () = context.cancelled() => {}
            () = self.inner.stdin_closed.cancelled() => {}
        }
        Ok(())
    }
}

struct ListenerRegistration<'a> {
    provider: &'a Provider,
    key: u64,
}

impl Drop for ListenerRegistration<'_> {
    fn drop(&mut self) {
        self.provider
            .inner
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// `a + b`, exact for integers: JSON `2 + 3` must read back as `5`, not `5.0`.
fn add_numbers(a: &Number, b: &Number) -> Result<Number, String> {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64())
        && let Some(sum) = a.checked_add(b)
    {
        return Ok(sum.into());
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64())
        && let Some(sum) = a.checked_add(b)
    {
        return Ok(sum.into());
    }
    let (Some(a), Some(b)) = (a.as_f64(), b.as_f64()) else {
        return Err(format!("cannot add {a} and {b} as numbers"));
    };
    Number::from_f64(a + b).ok_or_else(|| format!("{a} + {b} is not a finite number"))
}

/// Reads a `tools/list` cursor: the offset of the page's first tool, as this server wrote
/// it into `nextCursor`.
fn parse_cursor(cursor: &str, total: usize) -> Result<usize, McpError> {
    cursor
        .parse::<usize>()
        .ok()
        .filter(|offset| *offset <= total)
        .ok_or_else(|| {
            McpError::invalid_params(
                format!(
                    "invalid tools/list cursor {cursor:?}: expected an offset from 0 to {total} \
                     as returned in nextCursor"
                ),
                None,
            )
        })
}

/// A tool that answers with its arguments as JSON text (the `tool_<i>` and `add_tool` tools).
fn echo_arguments_route(name: String, description: String) -> ToolRoute<Provider> {
    let mut input_schema = JsonObject::new();
    input_schema.insert("type".to_owned(), Value::from("object"));
    input_schema.insert("additionalProperties".to_owned(), Value::Bool(true));
    ToolRoute::new(Tool::new(name, description, input_schema), echo_arguments)
}

fn echo_arguments(arguments: JsonObject) -> String {
    sort_keys(Value::Object(arguments)).to_string()
}

/// Orders object keys at every depth, so the echo text is the same whether or not some
/// crate in the build turns on serde_json's `preserve_order`.
fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut entries: Vec<(String, Value)> = object.into_iter().collect();
            entries.sort_by(|(left, _), (right, _)| left.cmp(right));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key, sort_keys(value)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(value: Value) -> Number {
        match value {
            Value::Number(number) => number,
            other => panic!("not a number: {other}"),
        }
    }

    #[test]
    fn add_keeps_integer_sums_integral() {
        let sum = add_numbers(&number(2.into()), &number(3.into()));
        assert_eq!(sum.map(Value::Number), Ok(Value::from(5)));
    }

    #[test]
    fn add_handles_mixed_and_fractional_numbers() {
        let sum = add_numbers(&number(1.5.into()), &number(2.into()));
        assert_eq!(sum.map(Value::Number), Ok(Value::from(3.5)));
        let sum = add_numbers(&number(u64::MAX.into()), &number(1.into()));
        assert_eq!(
            sum.map(Value::Number),
            Ok(Value::from(u64::MAX as f64 + 1.0))
        );
        let sum = add_numbers(&number((-4).into()), &number(u64::MAX.into()));
        assert_eq!(
            sum.map(Value::Number),
            Ok(Value::from(u64::MAX as f64 - 4.0))
        );
    }

    #[test]
    fn add_reports_overflow_to_infinity() {
        let sum = add_numbers(&number(f64::MAX.into()), &number(f64::MAX.into()));
        assert!(sum.is_err_and(|message| message.contains("not a finite number")));
    }

    #[test]
    fn echoed_arguments_have_sorted_keys_at_every_depth() {
        let arguments = serde_json::json!({"b": [{"z": 1, "a": 2}], "a": {"y": null, "x": true}});
        let Value::Object(arguments) = arguments else {
            unreachable!("json! object literal")
        };
        assert_eq!(
            echo_arguments(arguments),
            r#"{"a":{"x":true,"y":null},"b":[{"a":2,"z":1}]}"#
        );
    }

    #[test]
    fn cursor_must_be_an_offset_within_the_list() {
        assert_eq!(parse_cursor("0", 3), Ok(0));
        assert_eq!(parse_cursor("3", 3), Ok(3));
        assert!(parse_cursor("4", 3).is_err());
        assert!(parse_cursor("abc", 3).is_err());
    }
}
