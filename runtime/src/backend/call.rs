//! `tools/call` on a connection, whatever is behind it: the raw fast path where the backend is
//! a byte stream and the caller wants no progress, rmcp's typed path otherwise.

use std::sync::Arc;
use std::time::Duration;

use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, MetaObject, RequestId,
    RequestMetaObject,
};
use rmcp::service::{Peer, PeerRequestOptions, ServiceError};

use super::raw::{CallArguments, into_call_result};
use super::{ClientLink, Connection, ProgressSink};
use crate::wire::Reply;

/// Sends `notifications/cancelled` for a request whose caller stopped waiting (deadline, client
/// gone), unless the answer arrived.
struct CancelOnDrop {
    peer: Option<Peer<RoleClient>>,
    id: RequestId,
    reason: String,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(peer) = self.peer.take() {
            let params = rmcp::model::CancelledNotificationParam::new(
                Some(self.id.clone()),
                Some(std::mem::take(&mut self.reason)),
            );
            tokio::spawn(async move {
                let _ = peer.notify_cancelled(params).await;
            });
        }
    }
}

impl Connection {
    /// Sends one tools/call and runs `sent` with the arguments' JSON text (on the raw path once
    /// the request is written, on rmcp's just before it is handed over). A call goes on the raw
    /// path where the backend has one (stdio), otherwise through rmcp; either relays the
    /// provider's progress to `progress`. `reply` lets the raw path hand the result
    /// to the client the moment it arrives. `client` is where the provider's requests to the
    /// client (sampling, elicitation, roots) go while the call is under way. If this future is
    /// dropped before the answer (deadline, caller gone), the provider is sent
    /// `notifications/cancelled`.
    #[allow(clippy::too_many_arguments)]
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: CallArguments,
        progress: Option<ProgressSink>,
        reply: Option<Arc<Reply>>,
        client: Option<ClientLink>,
        sent: impl FnOnce(&[u8]),
        limit: Duration,
    ) -> Result<CallToolResult, ServiceError> {
        let _caller = client.map(|link| self.callers.register(link));
        let reason = || format!("timed out after {:.1}s in mcp-hangar", limit.as_secs_f64());
        if let Some(raw) = &self.raw {
            return raw
                .call(&self.peer, tool, &arguments, progress, reply, sent, reason)
                .await;
        }
        // rmcp takes the object; this path (no byte stream: remote providers) encodes it once
        // more for the `requested` event.
        sent(&serde_json::to_vec(&arguments.object).unwrap_or_default());
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = Some(arguments.object);
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let mut options = PeerRequestOptions::no_options();
        if let Some(meta) = arguments.meta.into_object() {
            options = options.with_meta(RequestMetaObject(MetaObject(meta)));
        }
        let handle = self.peer.send_request_with_option(request, options).await?;
        let _route =
            progress.map(|sink| self.progress.register(handle.progress_token.clone(), sink));
        let mut guard = CancelOnDrop {
            peer: Some(self.peer.clone()),
            id: handle.id.clone(),
            reason: reason(),
        };
        let response = handle.await_response().await;
        guard.peer = None;
        into_call_result(response?)
    }
}
