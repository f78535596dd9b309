//! The one way a client's call reaches a provider, whichever path brought it (the stdio fast
//! path, rmcp's handler, `registry_invoke`): the provider's progress goes back under the
//! client's progress token, and what the provider asks of the client while serving the call
//! (sampling, elicitation, roots) and the log messages it sends meanwhile go to that client.
//!
//! Everything the provider sends back is served here, in the task of the client's request:
//! over streamable HTTP rmcp then sends a request to the client on that request's own stream.

// Sampling, roots and logging are deprecated by SEP-2577 (2026-07-28) but are what every
// handshake-era client speaks.
#![allow(deprecated)]

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResult, ProgressNotificationParam, ProgressToken};
use rmcp::service::{Peer, RoleServer, ServiceError};
use tokio::sync::mpsc;

use super::Gateway;
use super::session::Session;
use crate::access::Principal;
use crate::backend::ClientAsk;
use crate::registry::Invocation;

/// How many progress notifications of one call may wait for the client; more are dropped.
const PROGRESS_BUFFER: usize = 64;
/// How many requests and log messages of one provider call may wait for the client.
const ASK_BUFFER: usize = 16;

/// How long an answered call waits for progress the provider sent before its answer, when
/// what arrived stopped short of the total.
const LATE_PROGRESS: std::time::Duration = std::time::Duration::from_millis(100);

/// A provider's progress: (progress, total, message).
type Progress = (f64, Option<f64>, Option<String>);

/// The client side of one call: where its progress and requests go.
pub(crate) struct Caller<'a> {
    pub session: &'a Session,
    pub progress_token: Option<ProgressToken>,
    /// Who calls over HTTP with `http.auth`: errors name only tools it may call.
    pub principal: Option<Arc<Principal>>,
}

impl Gateway {
    /// Calls a provider's tool for a client, relaying the provider's progress, requests and
    /// log messages to it while the call is under way.
    pub(crate) async fn call(&self, call: Invocation, caller: &Caller<'_>) -> CallToolResult {
        relay(call, caller, |call| {
            self.invoke(call, caller.principal.as_deref())
        })
        .await
    }
}

/// Runs `run` on `call` (one attempt at the provider, however the caller wants its outcome)
/// with the provider's progress, requests and log messages relayed to the caller's client.
pub(crate) async fn relay<T, F>(
    mut call: Invocation,
    caller: &Caller<'_>,
    run: impl FnOnce(Invocation) -> F,
) -> T
where
    F: std::future::Future<Output = T>,
{
    let Some(peer) = caller.session.peer() else {
        return run(call).await;
    };
    let (progress_tx, mut progress_rx) = match &caller.progress_token {
        Some(_) => {
            let (tx, rx) = mpsc::channel::<Progress>(PROGRESS_BUFFER);
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    if let Some(tx) = progress_tx {
        call.progress = Some(Arc::new(move |p, total, message| {
            // Full: the client is not reading fast enough; this one is dropped.
            let _ = tx.try_send((p, total, message));
        }));
    }
    let (ask_tx, mut ask_rx) = mpsc::channel::<ClientAsk>(ASK_BUFFER);
    call.client = Some(ask_tx);

    let invoke = run(call);
    tokio::pin!(invoke);
    let mut asks = FuturesUnordered::new();
    // The last progress relayed: (progress, total).
    let mut last: Option<(f64, Option<f64>)> = None;
    let result = loop {
        tokio::select! {
            biased;
            result = &mut invoke => break result,
            Some(p) = recv(&mut progress_rx) => {
                last = Some((p.0, p.1));
                send_progress(&peer, caller.progress_token.as_ref(), p).await;
            }
            Some(ask) = ask_rx.recv() => match ask {
                ClientAsk::Log(params) => {
                    if caller.session.wants(params.level) {
                        let _ = peer.notify_logging_message(params).await;
                    }
                }
                ask => asks.push(serve(peer.clone(), ask)),
            },
            Some(()) = asks.next(), if !asks.is_empty() => {}
        }
    };
    // Log messages the provider sent just before its answer can still be queued when the
    // answer wins the race above: they go out before the answer. (A request still queued is
    // moot now; dropping it answers the provider that its client is gone.)
    while let Ok(ask) = ask_rx.try_recv() {
        if let ClientAsk::Log(params) = ask
            && caller.session.wants(params.level)
        {
            let _ = peer.notify_logging_message(params).await;
        }
    }
    // Progress the provider sent before its answer goes out before the answer. rmcp may
    // hand over the provider's last notifications after its answer: a call whose progress
    // stopped short of its total waits a moment for the rest.
    if let Some(rx) = &mut progress_rx {
        let late = tokio::time::Instant::now() + LATE_PROGRESS;
        loop {
            let p = match rx.try_recv() {
                Ok(p) => p,
                Err(_) if last.is_some_and(|(p, t)| t.is_some_and(|t| p < t)) => {
                    match tokio::time::timeout_at(late, rx.recv()).await {
                        Ok(Some(p)) => p,
                        _ => break,
                    }
                }
                Err(_) => break,
            };
            last = Some((p.0, p.1));
            send_progress(&peer, caller.progress_token.as_ref(), p).await;
        }
    }
    result
}

async fn recv(rx: &mut Option<mpsc::Receiver<Progress>>) -> Option<Progress> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn send_progress(peer: &Peer<RoleServer>, token: Option<&ProgressToken>, p: Progress) {
    let Some(token) = token else { return };
    let (progress, total, message) = p;
    let mut params = ProgressNotificationParam::new(token.clone(), progress);
    params.total = total;
    params.message = message;
    if let Err(e) = peer.notify_progress(params).await {
        tracing::debug!("could not relay progress to the client: {e}");
    }
}

/// Asks the client what the provider asked, and hands the answer back.
async fn serve(peer: Peer<RoleServer>, ask: ClientAsk) {
    match ask {
        ClientAsk::Sampling(params, answer) => {
            let _ = answer.send(peer.create_message(params).await.map_err(to_mcp));
        }
        ClientAsk::Elicitation(params, answer) => {
            let _ = answer.send(peer.create_elicitation(params).await.map_err(to_mcp));
        }
        ClientAsk::Roots(answer) => {
            let _ = answer.send(peer.list_roots().await.map_err(to_mcp));
        }
        ClientAsk::Log(_) => {}
    }
}

/// The client's own error goes to the provider unchanged; a failure to reach the client says so.
pub(crate) fn to_mcp(e: ServiceError) -> McpError {
    match e {
        ServiceError::McpError(e) => e,
        e => McpError::internal_error(format!("mcp-hangar could not reach the client: {e}"), None),
    }
}
