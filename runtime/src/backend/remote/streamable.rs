//! Streamable HTTP through rmcp's own client transport, with the hangar's reqwest client under
//! it. rmcp runs the protocol (sessions, the GET stream, SSE resumption with `Last-Event-ID`,
//! re-initializing once after an HTTP 404, DELETE at close); this layer only watches it:
//! retries connects, bounds each request by `http.read_timeout`, words failures for a person,
//! and reports the provider gone when it cannot be reached or its expired session cannot be
//! re-created.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;

use super::wire::{RemoteError, Wire};

type Failure = StreamableHttpError<RemoteError>;

/// rmcp's [`StreamableHttpClient`] on the provider's reqwest client, observed.
#[derive(Clone)]
pub(crate) struct Observed {
    wire: Arc<Wire>,
}

impl Observed {
    pub fn new(wire: Arc<Wire>) -> Self {
        Self { wire }
    }

    /// rmcp's error with the client error worded, and the cases a person must act on moved
    /// into [`RemoteError`]. The variants rmcp's worker branches on keep their identity.
    fn convert(&self, e: StreamableHttpError<reqwest::Error>) -> Failure {
        use StreamableHttpError as E;
        let wire = &self.wire;
        let shown = || wire.shown.clone();
        let failure = match e {
            E::Client(e) => E::Client(wire.describe(&e)),
            E::AuthRequired(_) => {
                E::Client(wire.status_error(reqwest::StatusCode::UNAUTHORIZED, String::new()))
            }
            E::InsufficientScope(_) => {
                E::Client(wire.status_error(reqwest::StatusCode::FORBIDDEN, String::new()))
            }
            // rmcp words an unchallenged 401/403 and every other unusable status this way.
            E::UnexpectedServerResponse(text) => match status_of(&text) {
                Some(status @ (401 | 403)) => E::Client(
                    wire.status_error(
                        reqwest::StatusCode::from_u16(status)
                            .unwrap_or(reqwest::StatusCode::UNAUTHORIZED),
                        String::new(),
                    ),
                ),
                Some(_) => E::UnexpectedServerResponse(Cow::Owned(format!("{}: {text}", shown()))),
                None => E::Client(RemoteError::NotMcp {
                    endpoint: shown(),
                    detail: text.into_owned(),
                }),
            },
            E::UnexpectedContentType(content_type) => E::Client(RemoteError::NotMcp {
                endpoint: shown(),
                detail: format!(
                    "it answered with content type {}",
                    content_type.as_deref().unwrap_or("(none)")
                ),
            }),
            E::Deserialize(e) => E::Client(RemoteError::NotMcp {
                endpoint: shown(),
                detail: e.to_string(),
            }),
            E::SessionExpired => E::SessionExpired,
            E::ServerDoesNotSupportSse => E::ServerDoesNotSupportSse,
            E::ServerDoesNotSupportDeleteSession => E::ServerDoesNotSupportDeleteSession,
            E::HttpStatus(status) => E::HttpStatus(status),
            E::Sse(e) => E::Sse(e),
            E::Io(e) => E::Io(e),
            E::ResponseBodyTooLarge { max_size } => E::ResponseBodyTooLarge { max_size },
            E::UnexpectedEndOfStream => E::UnexpectedEndOfStream,
            E::TokioJoinError(e) => E::TokioJoinError(e),
            E::TransportChannelClosed => E::TransportChannelClosed,
            E::MissingSessionIdInResponse => E::MissingSessionIdInResponse,
            E::ReservedHeaderConflict(name) => E::ReservedHeaderConflict(name),
            E::SessionRecoveryTimeout => E::SessionRecoveryTimeout,
            E::ReinitializationFailed(error) => E::ReinitializationFailed(error),
            E::ControlRequestTimeout => E::ControlRequestTimeout,
            other => E::Client(RemoteError::Other(format!("{}: {other}", shown()))),
        };
        if let E::Client(error) = &failure {
            self.wire.note(error);
        }
        failure
    }

    /// `attempt` for rmcp's reqwest client: connect failures retried, the rest converted.
    async fn send<T, F, Fut>(&self, send: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StreamableHttpError<reqwest::Error>>>,
    {
        let outcome = self
            .wire
            .attempt(
                send,
                |e| matches!(e, StreamableHttpError::Client(e) if e.is_connect()),
            )
            .await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.convert(e)),
            Err(timeout) => {
                self.wire.note(&timeout);
                Err(StreamableHttpError::Client(timeout))
            }
        }
    }
}

impl StreamableHttpClient for Observed {
    type Error = RemoteError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, Failure> {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default(),
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, Failure> {
        let initialize = matches!(
            &message,
            ClientJsonRpcMessage::Request(r) if matches!(r.request, ClientRequest::InitializeRequest(_))
        );
        let reinitializing = initialize && session_id.is_none() && self.wire.take_expired();
        let outcome = self
            .send(|| {
                self.wire.client.post_message_with_response_limits(
                    uri.clone(),
                    message.clone(),
                    session_id.clone(),
                    auth_header.clone(),
                    custom_headers.clone(),
                    limits,
                )
            })
            .await;
        if matches!(outcome, Err(StreamableHttpError::SessionExpired)) {
            self.wire.mark_expired();
        }
        if reinitializing {
            // rmcp re-creates an expired session once; if the server will not give us a new
            // one, the provider we knew is gone and recovery starts it afresh.
            let refused = match &outcome {
                Err(e) => Some(e.to_string()),
                Ok(StreamableHttpPostResponse::Json(ServerJsonRpcMessage::Error(e), _)) => {
                    Some(e.error.message.to_string())
                }
                Ok(_) => None,
            };
            match refused {
                Some(why) => self.wire.gone(format!(
                    "session expired (HTTP 404) and re-initializing failed: {why}"
                )),
                None => {
                    tracing::info!(endpoint = %self.wire.shown, "session re-created after it expired")
                }
            }
        }
        outcome
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), Failure> {
        self.send(|| {
            self.wire.client.delete_session(
                uri.clone(),
                session_id.clone(),
                auth_header.clone(),
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, Failure> {
        self.get_stream_with_max_sse_event_size(
            uri,
            session_id,
            last_event_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default().max_sse_event_size,
        )
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, Failure> {
        self.send(|| {
            self.wire.client.get_stream_with_max_sse_event_size(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                auth_header.clone(),
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }
}

/// The status rmcp put at the front of an unexpected response (`HTTP 401 Unauthorized: …`).
fn status_of(text: &str) -> Option<u16> {
    text.strip_prefix("HTTP ")?.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::status_of;

    #[test]
    fn status_of_reads_rmcps_unexpected_response_prefix() {
        assert_eq!(status_of("HTTP 401 Unauthorized: nope"), Some(401));
        assert_eq!(status_of("HTTP 502 Bad Gateway: "), Some(502));
        assert_eq!(status_of("could not parse JSON response"), None);
    }
}
