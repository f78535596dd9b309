//! The gateway on stdio, with a fast path for `tools/call`.
//!
//! rmcp serves the session as usual; a [`FrontTap`] in front of it takes the plain calls of
//! offered provider tools (all but task-augmented ones) once a
//! handshake-era client has initialized. Such a call runs the same registry path as any other
//! (limits, breaker, start, schema check, validators, events), and the provider's answer is
//! written to the client the moment it arrives, without a typed decode and encode in between.
//! Everything else — the handshake, management tools, task-augmented calls,
//! unknown names, 2026-07-28 sessions — is rmcp's.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use futures::FutureExt;
use memchr::memmem::Finder;
use rmcp::model::{JsonObject, JsonRpcMessage, ProgressToken, ServerResult};
use rmcp::service::{RoleServer, RunningService, ServerInitializeError};
use rmcp::{ServiceExt, transport};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::{Gateway, HangarServer, Route};
use crate::registry::Invocation;
use crate::wire::{Reply, SharedWriter, Tap, TapTransport, Tapped};

/// Serves one client on the process's stdin and stdout.
pub async fn serve(
    gw: Arc<Gateway>,
) -> Result<RunningService<RoleServer, HangarServer>, ServerInitializeError> {
    let (input, output) = transport::stdio_pipes();
    let out = SharedWriter::new(output);
    let server = HangarServer::new(gw.clone());
    let fast = Arc::new(AtomicBool::new(false));
    let tap = FrontTap {
        gw,
        out: out.clone(),
        session: server.connection.clone(),
        client: server.client.clone(),
        fast: fast.clone(),
        calls: Arc::default(),
    };
    let transport = TapTransport::<RoleServer>::new(input, out, tap, CancellationToken::new())
        .on_send(move |msg| {
            if let JsonRpcMessage::Response(r) = msg
                && let ServerResult::InitializeResult(init) = &r.result
            {
                // A 2026-07-28 session has no `initialize`; rmcp shapes its results.
                fast.store(
                    init.protocol_version.has_initialize() && fast_path_enabled(),
                    Ordering::Release,
                );
            }
        });
    server.serve(transport).await
}

/// `MCP_HANGAR_STDIO_FAST_PATH=0` leaves every request to rmcp: for comparing the two paths
/// (the end-to-end suite runs with it on and off) and as a way out should the fast path ever
/// misbehave.
fn fast_path_enabled() -> bool {
    std::env::var_os("MCP_HANGAR_STDIO_FAST_PATH").is_none_or(|v| v != "0")
}

// Searchers built once: building one costs more than searching a short line.
static TOOLS_CALL: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("tools/call"));
static TOOLS_LIST: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("tools/list"));
static CANCELLED: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new("notifications/cancelled"));

/// Calls under way on the fast path, by the client's request id (its JSON text), so that
/// `notifications/cancelled` reaches them.
type Calls = Arc<Mutex<foldhash::HashMap<Box<str>, AbortHandle>>>;

struct FrontTap {
    gw: Arc<Gateway>,
    out: Arc<SharedWriter>,
    session: Arc<str>,
    /// The client, for the provider's progress, requests and logs during a call.
    client: Arc<super::Session>,
    /// Set once a handshake-era session is initialized.
    fast: Arc<AtomicBool>,
    calls: Calls,
}

/// A request as the fast path reads it: one pass over the line, nothing kept that it does not
/// use. `_meta` goes on to the provider as on rmcp's path; its progress token says where the
/// provider's progress goes.
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    arguments: Option<JsonObject>,
    /// A task-augmented call is rmcp's.
    task: Option<serde::de::IgnoredAny>,
    /// For `notifications/cancelled`.
    #[serde(borrow, rename = "requestId")]
    request_id: Option<&'a RawValue>,
    /// Trace context and other keys, carried to the provider as on rmcp's path.
    #[serde(rename = "_meta")]
    meta: Option<JsonObject>,
}

fn lock(calls: &Calls) -> std::sync::MutexGuard<'_, foldhash::HashMap<Box<str>, AbortHandle>> {
    calls.lock().unwrap_or_else(|e| e.into_inner())
}

impl FrontTap {
    /// The invocation a call asks for, if the fast path takes it.
    fn fast_call(
        &self,
        id: Option<&RawValue>,
        params: Option<Params>,
    ) -> Option<(Box<RawValue>, Invocation, Option<ProgressToken>)> {
        let (id, params) = (id?, params?);
        if params.task.is_some() {
            return None;
        }
        let Some(Route::Provider { provider, tool }) = self
            .gw
            .catalog
            .load()
            .routes
            .get(params.name?.as_ref())
            .cloned()
        else {
            return None;
        };
        let progress = params
            .meta
            .as_ref()
            .and_then(|m| m.get("progressToken"))
            .and_then(|t| ProgressToken::deserialize(t).ok());
        let invocation = Invocation {
            provider,
            tool,
            arguments: params.arguments,
            session: Some(String::from(&*self.session)),
            meta: params.meta.and_then(super::client_meta),
            ..Default::default()
        };
        Some((id.to_owned(), invocation, progress))
    }

    fn cancel(&self, params: Option<Params>) {
        if let Some(id) = params.and_then(|p| p.request_id)
            && let Some(call) = lock(&self.calls).remove(id.get())
        {
            call.abort();
        }
    }
}

impl Tap for FrontTap {
    fn intercept(&mut self, line: Vec<u8>) -> Tapped {
        // Only calls and cancellations are parsed here; rmcp parses the rest.
        if !self.fast.load(Ordering::Acquire)
            || (TOOLS_CALL.find(&line).is_none()
                && CANCELLED.find(&line).is_none()
                && TOOLS_LIST.find(&line).is_none())
        {
            return Tapped::Pass(line);
        }
        let Ok(req) = crate::wire::from_json::<Request>(&line) else {
            return Tapped::Pass(line);
        };
        // Every tool in one page (as rmcp's handler answers, cursor or not), in the bytes the
        // catalog encoded once: a list of 10,000 tools costs a copy, not an encoding.
        if req.method.as_deref() == Some("tools/list")
            && let Some(id) = req.id
        {
            let catalog = self.gw.catalog.load_full();
            let reply = Reply::new(self.out.clone(), id.to_owned());
            return Tapped::Taken(Some(
                async move {
                    reply.result(catalog.legacy_list_result()).await;
                }
                .boxed(),
            ));
        }
        let call = match req.method.as_deref() {
            Some("tools/call") => self.fast_call(req.id, req.params),
            Some("notifications/cancelled") => {
                // rmcp gets it too: it may be about a request of its own.
                self.cancel(req.params);
                None
            }
            _ => None,
        };
        let Some((id, mut invocation, progress_token)) = call else {
            return Tapped::Pass(line);
        };
        let key: Box<str> = id.get().into();
        let reply = Reply::new(self.out.clone(), id);
        invocation.reply = Some(reply.clone());
        let gw = self.gw.clone();
        let client = self.client.clone();
        let calls = self.calls.clone();
        let forget = key.clone();
        let mut call = Box::pin(async move {
            let caller = super::call::Caller {
                session: &client,
                progress_token,
                principal: None,
            };
            let mut result = gw.call(invocation, &caller).await;
            lock(&calls).remove(&forget);
            if !reply.sent() {
                // A handshake-era client: no `resultType` (as rmcp strips it).
                result.result_type = None;
                match serde_json::to_vec(&result) {
                    Ok(body) => {
                        reply.result(&body).await;
                    }
                    Err(e) => tracing::error!("could not encode a tools/call result: {e}"),
                }
            }
        });
        let calls = self.calls.clone();
        // The call runs here until it first waits (for the provider's answer, usually), so its
        // request is on its way before the next line is read; then it goes on as a task.
        Tapped::Taken(Some(
            async move {
                if futures::poll!(call.as_mut()).is_ready() {
                    return;
                }
                // Held while spawning, so the call cannot finish (and forget itself) before
                // it is known.
                let mut running = lock(&calls);
                let task = tokio::spawn(call);
                running.insert(key, task.abort_handle());
            }
            .boxed(),
        ))
    }
}
