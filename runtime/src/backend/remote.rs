//! Providers reached over HTTP: streamable HTTP (rmcp's client transport on the hangar's
//! reqwest client, `streamable`), or the legacy HTTP+SSE transport (`sse`, written here: rmcp
//! 3.11 has no client for it). Both share one reqwest client per provider built from its
//! `RemoteSpec` (`wire`), and both end in the same rmcp client session as a subprocess does.
//!
//! A remote provider is "gone" (its [`Exit`] resolves, the registry marks it DEAD and recovery
//! reconnects with backoff) when it cannot be reached after `http.max_retries`, when its
//! expired session cannot be re-created, or, for SSE, when its stream ends. Anything else — a
//! 401, a garbage answer, a timeout — fails the one call and counts toward health and the
//! breaker, as a subprocess's failed call does.
//!
//! Protocol generations: streamable HTTP starts with rmcp's `Auto` lifecycle (probe
//! `server/discover`, fall back to `initialize`). Handshake-era servers reject the probe
//! quickly (a JSON-RPC error, or HTTP 400/404 without a session), so there is no 10 s stall;
//! a server that answers the probe with something that is not a discover result is treated as
//! handshake-era too ([`Watched`]). The SSE transport predates the stateless revision and
//! always uses `initialize`.

mod sse;
mod streamable;
mod wire;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rmcp::RoleClient;
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ErrorCode, ErrorData, ProtocolVersion, RequestId,
    ServerJsonRpcMessage, ServerResult,
};
use rmcp::service::ClientLifecycleMode;
use rmcp::transport::Transport;
use rmcp::transport::common::client_side_sse::ExponentialBackoff;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransport, StreamableHttpClientTransportConfig, StreamableHttpError,
};
use tokio_util::sync::CancellationToken;

use super::{Connection, Established, Exit, Launch, Runtime, StartError, StderrTail, establish};
use crate::config::RemoteTransport;

pub(crate) use wire::RemoteError;

/// How often in a row rmcp may fail to re-open a dropped SSE stream of a streamable HTTP
/// session before giving that stream up (requests keep working without it).
const STREAM_RECONNECTS: usize = 5;
/// The longest wait between two of those attempts.
const STREAM_RECONNECT_MAX_DELAY: Duration = Duration::from_secs(10);

/// A remote provider's session: where it is and how it ended.
pub(crate) struct Remote {
    shown: String,
    exit: Exit,
}

/// Connects to `launch.spec`'s endpoint and completes the MCP handshake.
pub(crate) async fn connect(launch: &Launch<'_>) -> Result<Connection, StartError> {
    let spec = launch.spec;
    let remote = spec.remote.as_ref().ok_or_else(|| {
        StartError::new(format!(
            "remote provider `{}` has no `endpoint` to connect to",
            spec.id
        ))
    })?;
    let (exit_tx, exit) = Exit::channel();
    let wire = Arc::new(wire::Wire::new(spec, remote, exit_tx)?);
    let parts = Established {
        runtime: Runtime::Remote(Remote {
            shown: wire.shown.clone(),
            exit,
        }),
        stderr: StderrTail::default(),
        raw: None,
        session_ct: CancellationToken::new(),
    };
    let started = match remote.transport {
        RemoteTransport::StreamableHttp => {
            let mut config = StreamableHttpClientTransportConfig::with_uri(wire.endpoint.as_str());
            let mut backoff = ExponentialBackoff::default();
            backoff.max_times = Some(STREAM_RECONNECTS);
            backoff.max_delay = Some(STREAM_RECONNECT_MAX_DELAY);
            config.retry_config = Arc::new(backoff);
            config.reinit_on_expired_session = true;
            let transport = StreamableHttpClientTransport::with_client(
                streamable::Observed::new(wire.clone()),
                config,
            );
            let lifecycle = ClientLifecycleMode::Auto {
                preferred_versions: vec![ProtocolVersion::LATEST],
                legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
            };
            establish(
                launch,
                parts,
                Watched::new(transport, wire.clone()),
                lifecycle,
            )
            .await
        }
        RemoteTransport::Sse => {
            let opened = tokio::select! {
                opened = sse::open(wire.clone()) => opened,
                _ = launch.cancel.cancelled() => {
                    return Err(StartError::new(format!(
                        "provider `{}` failed to start: start cancelled: the provider was stopped while starting",
                        spec.id
                    )));
                }
            };
            let transport = opened.map_err(|e| {
                StartError::new(format!("provider `{}` failed to start: {e}", spec.id))
            })?;
            establish(
                launch,
                parts,
                Watched::new(transport, wire.clone()),
                ClientLifecycleMode::Initialize,
            )
            .await
        }
    };
    // The handshake's own words ("MCP initialization failed: Transport … error …") are less
    // use to a person than what the wire saw first (refused, TLS, 401, not MCP).
    started.map_err(|mut e| {
        if let Some(seen) = wire.diagnosis() {
            e.message = format!("provider `{}` failed to start: {seen}", spec.id);
        }
        e
    })
}

impl Remote {
    pub(crate) fn exit(&self) -> &Exit {
        &self.exit
    }

    pub(crate) fn location(&self) -> String {
        self.shown.clone()
    }

    /// Waits, within `timeout`, for the session to be closed (for streamable HTTP that includes
    /// the DELETE that ends it on the server). Nothing runs on this host to stop.
    pub(crate) async fn stop(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.exit.wait()).await;
    }
}

/// Names a transport in rmcp's error messages (`Transport [streamable HTTP] error: …`).
pub(crate) trait Named {
    const NAME: &'static str;
}

impl<C: rmcp::transport::streamable_http_client::StreamableHttpClient> Named
    for StreamableHttpClientTransport<C>
{
    const NAME: &'static str = "streamable HTTP";
}

impl Named for sse::SseTransport {
    const NAME: &'static str = "HTTP+SSE";
}

/// A remote transport as the MCP service sees it: errors worded by [`RemoteError`], the
/// provider's end reported when the transport ends, and a `server/discover` probe answered with
/// something other than a discover result turned into the "not supported" error that makes
/// rmcp fall back to `initialize` on the same connection (the conformance suite's handshake-era
/// servers answer every unknown method with an empty result).
pub(crate) struct Watched<T> {
    inner: T,
    wire: Arc<wire::Wire>,
    discover: Option<RequestId>,
}

impl<T> Watched<T> {
    fn new(inner: T, wire: Arc<wire::Wire>) -> Self {
        Self {
            inner,
            wire,
            discover: None,
        }
    }

    /// Turns an answer to our `server/discover` probe that shows a handshake-era server into
    /// the "method not found" rmcp's `Auto` lifecycle falls back to `initialize` on.
    fn check_discover_answer(&mut self, message: ServerJsonRpcMessage) -> ServerJsonRpcMessage {
        let id = match &message {
            ServerJsonRpcMessage::Response(response) => Some(&response.id),
            ServerJsonRpcMessage::Error(error) => error.id.as_ref(),
            _ => None,
        };
        let Some(id) = id.filter(|id| self.discover.as_ref() == Some(*id)).cloned() else {
            return message;
        };
        self.discover = None;
        if !handshake_era_answer(&message) {
            return message;
        }
        tracing::debug!(
            endpoint = %self.wire.shown,
            "server/discover showed a handshake-era server; falling back to initialize"
        );
        ServerJsonRpcMessage::error(
            ErrorData::method_not_found::<rmcp::model::DiscoverRequestMethod>(),
            Some(id),
        )
    }
}

/// Whether an answer to `server/discover` shows a server that speaks only revisions with an
/// `initialize` handshake: a result that is not a discover result (servers that answer every
/// unknown method with `{}`), a discover result listing only handshake-era versions, or an
/// "unsupported protocol version" error whose supported list holds only those. rmcp's `Auto`
/// would give up on the last two; `initialize` works with all three.
fn handshake_era_answer(message: &ServerJsonRpcMessage) -> bool {
    let only_handshake_era =
        |versions: &[ProtocolVersion]| versions.iter().all(ProtocolVersion::has_initialize);
    match message {
        ServerJsonRpcMessage::Response(response) => match &response.result {
            ServerResult::DiscoverResult(result) => only_handshake_era(&result.supported_versions),
            _ => true,
        },
        ServerJsonRpcMessage::Error(error)
            if error.error.code == ErrorCode::UNSUPPORTED_PROTOCOL_VERSION =>
        {
            let supported: Vec<ProtocolVersion> = error
                .error
                .data
                .as_ref()
                .and_then(|data| data.get("supported"))
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            !supported.is_empty() && only_handshake_era(&supported)
        }
        _ => false,
    }
}

impl<T> Transport<RoleClient> for Watched<T>
where
    T: Transport<RoleClient> + Named,
    RemoteError: From<T::Error>,
{
    type Error = RemoteError;

    fn name() -> Cow<'static, str> {
        T::NAME.into()
    }

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        if let ClientJsonRpcMessage::Request(request) = &item
            && matches!(request.request, ClientRequest::DiscoverRequest(_))
        {
            self.discover = Some(request.id.clone());
        }
        let sent = self.inner.send(item);
        async move { sent.await.map_err(RemoteError::from) }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        match self.inner.receive().await {
            Some(message) => Some(self.check_discover_answer(message)),
            None => {
                let how = match self.wire.diagnosis() {
                    Some(seen) => format!("{} session ended: {seen}", T::NAME),
                    None => format!("{} session ended", T::NAME),
                };
                self.wire.gone(how);
                None
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        let closed = self.inner.close().await.map_err(RemoteError::from);
        self.wire.gone("session closed by the hangar".to_owned());
        closed
    }
}

impl<T> Drop for Watched<T> {
    fn drop(&mut self) {
        // A session dropped without `close` (a failed handshake) is over all the same.
        if !self.wire.has_ended() {
            self.wire.gone("session closed by the hangar".to_owned());
        }
    }
}

impl From<StreamableHttpError<RemoteError>> for RemoteError {
    fn from(e: StreamableHttpError<RemoteError>) -> Self {
        match e {
            StreamableHttpError::Client(e) => e,
            other => RemoteError::Other(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{DiscoverResult, NumberOrString, ServerConfig, ServerResult};

    use super::*;

    fn answer(result: ServerResult) -> ServerJsonRpcMessage {
        ServerJsonRpcMessage::response(result, NumberOrString::Number(1))
    }

    fn discover(versions: &[ProtocolVersion]) -> ServerJsonRpcMessage {
        answer(ServerResult::DiscoverResult(
            DiscoverResult::from_server_info(versions.to_vec(), ServerConfig::default()),
        ))
    }

    fn refusal(error: ErrorData) -> ServerJsonRpcMessage {
        ServerJsonRpcMessage::error(error, Some(NumberOrString::Number(1)))
    }

    #[test]
    fn discover_answers_that_show_a_handshake_era_server_fall_back_to_initialize() {
        // An empty result to an unknown method (the conformance suite's test servers).
        assert!(handshake_era_answer(&answer(ServerResult::empty(()))));
        // Discover works, but the server lists only revisions with a handshake.
        assert!(handshake_era_answer(&discover(
            ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25)
        )));
        // rmcp servers limited to those revisions refuse the probe's version instead.
        assert!(handshake_era_answer(&refusal(
            ErrorData::unsupported_protocol_version(
                ProtocolVersion::V_2026_07_28,
                ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_06_18),
            )
        )));
    }

    #[test]
    fn discover_answers_of_a_stateless_server_or_real_failures_are_left_alone() {
        assert!(!handshake_era_answer(&discover(
            ProtocolVersion::KNOWN_VERSIONS
        )));
        // Method not found already makes rmcp fall back; other errors are the server's to say.
        assert!(!handshake_era_answer(&refusal(
            ErrorData::method_not_found::<rmcp::model::DiscoverRequestMethod>()
        )));
        assert!(!handshake_era_answer(&refusal(ErrorData::internal_error(
            "boom", None
        ))));
        // A version refusal that lists a stateless revision is a real negotiation failure.
        assert!(!handshake_era_answer(&refusal(
            ErrorData::unsupported_protocol_version(
                ProtocolVersion::V_2025_06_18,
                &[ProtocolVersion::V_2026_07_28],
            )
        )));
    }
}
