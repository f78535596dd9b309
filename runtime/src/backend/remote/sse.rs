//! The legacy HTTP+SSE transport (MCP 2024-11-05), which rmcp 3.11 no longer has a client for:
//! GET the SSE endpoint, wait for its `endpoint` event naming where to POST, then POST each
//! JSON-RPC message there; everything the server says arrives as `message` events on the one
//! SSE stream.
//!
//! The session lives exactly as long as that stream: there is no resumption in this revision,
//! so a stream that ends, or a POST the server answers 404, ends the provider (its `Exit`), and
//! recovery starts a new session. Closing the transport drops the stream, which is how a client
//! ends an SSE session.

use std::sync::Arc;

use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use sse_stream::SseStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::wire::{RemoteError, Wire, chain};

/// Messages read ahead of the MCP service; the reader waits (and TCP pushes back) beyond it.
const INBOX: usize = 64;

/// Largest SSE event accepted: a server that streams without ever ending an event cannot grow
/// the hangar's memory.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// A connected HTTP+SSE session.
pub(crate) struct SseTransport {
    wire: Arc<Wire>,
    /// Where messages are POSTed, from the server's `endpoint` event.
    post_to: Url,
    inbox: mpsc::Receiver<ServerJsonRpcMessage>,
    reader: JoinHandle<()>,
}

/// Opens the SSE stream and waits for the `endpoint` event, within `http.read_timeout`.
pub(crate) async fn open(wire: Arc<Wire>) -> Result<SseTransport, RemoteError> {
    let response = wire
        .attempt(
            || {
                wire.client
                    .get(wire.endpoint.clone())
                    .header(ACCEPT, "text/event-stream")
                    .send()
            },
            reqwest::Error::is_connect,
        )
        .await?
        .map_err(|e| wire.describe(&e))?;
    let status = response.status();
    if !status.is_success() {
        let body = preview(response).await;
        return Err(wire.status_error(status, body));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_owned();
    if !content_type.starts_with("text/event-stream") {
        return Err(RemoteError::NotMcp {
            endpoint: wire.shown.clone(),
            detail: format!(
                "the SSE endpoint answered with content type {content_type}, not text/event-stream"
            ),
        });
    }
    let mut events = SseStream::from_bytes_stream(bounded(response.bytes_stream())).boxed();

    let endpoint_event = async {
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| RemoteError::NotMcp {
                endpoint: wire.shown.clone(),
                detail: format!("unreadable SSE stream: {e}"),
            })?;
            if event.event.as_deref() == Some("endpoint") {
                return Ok(event.data.unwrap_or_default());
            }
        }
        Err(RemoteError::NotMcp {
            endpoint: wire.shown.clone(),
            detail: "the SSE stream ended before its `endpoint` event".to_owned(),
        })
    };
    let named = tokio::time::timeout(wire.read_timeout, endpoint_event)
        .await
        .map_err(|_| RemoteError::NotMcp {
            endpoint: wire.shown.clone(),
            detail: format!(
                "no `endpoint` event within {}s (`http.read_timeout`); is this a legacy SSE server?",
                wire.read_timeout.as_secs_f64()
            ),
        })??;
    let post_to =
        message_url(&wire.endpoint, named.trim()).map_err(|detail| RemoteError::NotMcp {
            endpoint: wire.shown.clone(),
            detail,
        })?;

    let (tx, inbox) = mpsc::channel(INBOX);
    let reader = tokio::spawn(read_messages(events, tx, wire.clone()));
    Ok(SseTransport {
        wire,
        post_to,
        inbox,
        reader,
    })
}

/// Resolves the `endpoint` event's URL against the SSE URL. It must stay on the same origin:
/// the credentials go with every POST, and a server must not be able to send them elsewhere.
fn message_url(sse: &Url, named: &str) -> Result<Url, String> {
    let url = sse
        .join(named)
        .map_err(|e| format!("its `endpoint` event is not a URL ({e})"))?;
    if url.origin() != sse.origin() {
        return Err(format!(
            "its `endpoint` event points to another origin ({}); the hangar posts only to the SSE endpoint's origin",
            url.origin().ascii_serialization()
        ));
    }
    Ok(url)
}

/// Hands every `message` event to the MCP service; the end of the stream ends the provider.
async fn read_messages(
    mut events: futures::stream::BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>,
    tx: mpsc::Sender<ServerJsonRpcMessage>,
    wire: Arc<Wire>,
) {
    let how = loop {
        let Some(event) = events.next().await else {
            break "the server closed the SSE stream".to_owned();
        };
        let event = match event {
            Ok(event) => event,
            Err(e) => break format!("the SSE stream broke: {e}"),
        };
        if !matches!(event.event.as_deref(), None | Some("") | Some("message")) {
            continue;
        }
        let Some(data) = event.data.filter(|d| !d.trim().is_empty()) else {
            continue;
        };
        match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
            Ok(message) => {
                if tx.send(message).await.is_err() {
                    return; // the session was closed on our side
                }
            }
            Err(e) => tracing::warn!(
                endpoint = %wire.shown,
                "ignoring an SSE message that is not JSON-RPC: {e}"
            ),
        }
    };
    wire.gone(how);
}

impl SseTransport {
    async fn post(wire: Arc<Wire>, url: Url, body: Vec<u8>) -> Result<(), RemoteError> {
        let response = wire
            .attempt(
                || {
                    wire.client
                        .post(url.clone())
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.clone())
                        .send()
                },
                reqwest::Error::is_connect,
            )
            .await
            .inspect_err(|e| wire.note(e))?
            .map_err(|e| {
                let error = wire.describe(&e);
                wire.note(&error);
                error
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::NOT_FOUND {
            let error = RemoteError::SessionLost {
                endpoint: wire.shown.clone(),
            };
            wire.gone(error.to_string());
            return Err(error);
        }
        let error = wire.status_error(status, preview(response).await);
        wire.note(&error);
        Err(error)
    }
}

impl Transport<RoleClient> for SseTransport {
    type Error = RemoteError;

    fn name() -> std::borrow::Cow<'static, str> {
        "HTTP+SSE".into()
    }

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let wire = self.wire.clone();
        let url = self.post_to.clone();
        let body = serde_json::to_vec(&item);
        async move {
            let body =
                body.map_err(|e| RemoteError::Other(format!("cannot encode a message: {e}")))?;
            Self::post(wire, url, body).await
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<ServerJsonRpcMessage>> + Send {
        self.inbox.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        // Dropping the response body closes the connection: the server's end of the session.
        self.reader.abort();
        self.inbox.close();
        Ok(())
    }
}

impl Drop for SseTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A short, lossy preview of an error body, for messages.
async fn preview(response: reqwest::Response) -> String {
    const PREVIEW: usize = 200;
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk);
        if body.len() >= PREVIEW {
            break;
        }
    }
    body.truncate(PREVIEW);
    String::from_utf8_lossy(&body).trim().to_owned()
}

/// Fails the byte stream once more than [`MAX_EVENT_BYTES`] arrive without a blank line (the
/// end of an SSE event).
fn bounded(
    bytes: impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    let mut since_event = 0usize;
    let mut last = 0u8;
    bytes.map(move |chunk| {
        let chunk = chunk.map_err(|e| std::io::Error::other(chain(&e)))?;
        for &b in chunk.iter() {
            match b {
                b'\r' => continue,
                b'\n' if last == b'\n' => since_event = 0,
                _ => since_event += 1,
            }
            last = b;
        }
        if since_event > MAX_EVENT_BYTES {
            return Err(std::io::Error::other(format!(
                "an SSE event exceeded {MAX_EVENT_BYTES} bytes"
            )));
        }
        Ok(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_url_resolves_relative_paths_and_refuses_other_origins() {
        let sse = Url::parse("http://127.0.0.1:3001/sse").unwrap_or_else(|e| panic!("{e}"));
        let ok = message_url(&sse, "/message?sessionId=abc").map(|u| u.to_string());
        assert_eq!(
            ok.as_deref(),
            Ok("http://127.0.0.1:3001/message?sessionId=abc")
        );
        let absolute = message_url(&sse, "http://127.0.0.1:3001/m?s=1").map(|u| u.to_string());
        assert_eq!(absolute.as_deref(), Ok("http://127.0.0.1:3001/m?s=1"));
        let elsewhere = message_url(&sse, "http://evil.example/m").unwrap_err();
        assert!(elsewhere.contains("another origin"), "{elsewhere}");
    }
}
