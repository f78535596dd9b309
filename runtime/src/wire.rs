//! Newline-delimited JSON-RPC on a pipe, shared between rmcp and the hangar's own fast path.
//!
//! rmcp's service loop costs a tools/call several task hops and a full typed decode and encode
//! on each side of the hangar — most of what a gateway adds. A [`TapTransport`] puts a
//! [`Tap`] in front of rmcp: it sees every incoming line first and may take it (a plain
//! `tools/call` from the client, a provider's answer to a call the hangar sent itself); every
//! other line goes to rmcp's own line transport unchanged, so the protocol (handshake, errors
//! for bad input, line limits, notifications) stays rmcp's. Outgoing lines of both go through
//! one [`SharedWriter`], a line at a time.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use rmcp::service::{RxJsonRpcMessage, ServiceRole, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::async_rw::{AsyncRwTransport, DEFAULT_MAX_LINE_LENGTH};
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio_util::sync::CancellationToken;

/// How much of the rmcp side's input may wait in memory before the tap waits for rmcp.
const INNER_BUFFER: usize = 256 * 1024;

/// A pipe written a whole line at a time by several tasks.
pub struct SharedWriter {
    inner: tokio::sync::Mutex<Option<Box<dyn AsyncWrite + Send + Unpin>>>,
}

impl SharedWriter {
    pub fn new(w: impl AsyncWrite + Send + Unpin + 'static) -> Arc<Self> {
        Arc::new(Self {
            inner: tokio::sync::Mutex::new(Some(Box::new(w))),
        })
    }

    /// Writes `line`, which must end with a newline, as one unit.
    pub async fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        let mut guard = self.inner.lock().await;
        let w = guard.as_mut().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotConnected, "the pipe is closed")
        })?;
        w.write_all(line).await?;
        w.flush().await
    }

    /// Closes the pipe (the peer reads EOF); later writes fail.
    pub async fn close(&self) {
        if let Some(mut w) = self.inner.lock().await.take() {
            let _ = w.shutdown().await;
        }
    }
}

/// Decodes JSON text. The text is checked to be UTF-8 once, as a whole: serde_json, given
/// bytes, would check every string and key on its own, which costs more on short lines.
pub fn from_json<'a, T: serde::Deserialize<'a>>(text: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(text) {
        Ok(text) => serde_json::from_str(text),
        Err(e) => Err(serde::de::Error::custom(format_args!(
            "the text is not UTF-8: {e}"
        ))),
    }
}

/// What a [`Tap`] did with a line.
pub enum Tapped {
    /// Not the tap's: rmcp gets it.
    Pass(Vec<u8>),
    /// The tap's; the reader runs the future, if any, before it reads the next line.
    Taken(Option<BoxFuture<'static, ()>>),
}

/// Sees each incoming line (without its newline) before rmcp does.
pub trait Tap: Send + 'static {
    fn intercept(&mut self, line: Vec<u8>) -> Tapped;
    /// The input ended (EOF, a read error, or the session was cancelled).
    fn closed(&mut self) {}
}

/// Looks at each message rmcp sends, before it is written.
type OnSend<R> = Box<dyn Fn(&TxJsonRpcMessage<R>) + Send + Sync>;

/// An rmcp [`Transport`] whose input passes a [`Tap`] first and whose output shares a
/// [`SharedWriter`] with the tap's own answers.
pub struct TapTransport<R: ServiceRole> {
    inner:
        AsyncRwTransport<R, tokio::io::ReadHalf<DuplexStream>, tokio::io::WriteHalf<DuplexStream>>,
    out: Arc<SharedWriter>,
    on_send: Option<OnSend<R>>,
    _role: PhantomData<fn() -> R>,
}

impl<R: ServiceRole> TapTransport<R> {
    /// Starts reading `input`; lines the tap passes reach rmcp through this transport. The
    /// reader stops at EOF or when `ct` is cancelled.
    pub fn new(
        input: impl AsyncRead + Send + Unpin + 'static,
        out: Arc<SharedWriter>,
        tap: impl Tap,
        ct: CancellationToken,
    ) -> Self {
        let (feed, inner_side) = tokio::io::duplex(INNER_BUFFER);
        let (inner_read, inner_write) = tokio::io::split(inner_side);
        let (feed_read, feed_write) = tokio::io::split(feed);
        tokio::spawn(read_lines(input, tap, feed_write, ct));
        // What rmcp's line transport writes itself (its answer to a malformed request) goes
        // out through the shared writer too.
        tokio::spawn(relay_inner_output(feed_read, out.clone()));
        Self {
            inner: AsyncRwTransport::new(inner_read, inner_write),
            out,
            on_send: None,
            _role: PhantomData,
        }
    }

    /// Runs `f` on every message rmcp sends, before it is written.
    pub fn on_send(mut self, f: impl Fn(&TxJsonRpcMessage<R>) + Send + Sync + 'static) -> Self {
        self.on_send = Some(Box::new(f));
        self
    }
}

impl<R: ServiceRole> Transport<R> for TapTransport<R> {
    type Error = std::io::Error;

    fn name() -> Cow<'static, str> {
        "tap".into()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<R>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        if let Some(f) = &self.on_send {
            f(&item);
        }
        let line = serde_json::to_vec(&item).map(|mut v| {
            v.push(b'\n');
            v
        });
        let out = self.out.clone();
        async move { out.write_line(&line.map_err(std::io::Error::other)?).await }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<R>>> + Send {
        self.inner.receive()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        let _ = self.inner.close().await;
        self.out.close().await;
        Ok(())
    }
}

/// Reads lines of `input`, offers each to the tap, and feeds the rest to rmcp. A line longer
/// than rmcp's limit is not held in memory: it streams to rmcp, which discards it and says so.
async fn read_lines(
    input: impl AsyncRead + Send + Unpin,
    mut tap: impl Tap,
    mut feed: tokio::io::WriteHalf<DuplexStream>,
    ct: CancellationToken,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::new();
    let mut streaming = false;
    // Made once: a fresh one per line would register with the token again for every line.
    let mut cancelled = std::pin::pin!(ct.cancelled());
    loop {
        let chunk = tokio::select! {
            biased;
            _ = &mut cancelled => break,
            r = reader.fill_buf() => match r {
                Ok([]) | Err(_) => break,
                Ok(chunk) => chunk,
            },
        };
        let newline = memchr::memchr(b'\n', chunk);
        let take = newline.map_or(chunk.len(), |i| i + 1);
        if streaming {
            let ok = feed.write_all(&chunk[..take]).await.is_ok();
            reader.consume(take);
            streaming = newline.is_none();
            if !ok {
                break;
            }
            continue;
        }
        line.extend_from_slice(&chunk[..take]);
        reader.consume(take);
        if newline.is_none() {
            if line.len() > DEFAULT_MAX_LINE_LENGTH {
                if feed.write_all(&line).await.is_err() {
                    break;
                }
                line.clear();
                streaming = true;
            }
            continue;
        }
        let mut whole = std::mem::take(&mut line);
        whole.pop();
        if whole.last() == Some(&b'\r') {
            whole.pop();
        }
        match tap.intercept(whole) {
            Tapped::Taken(None) => {}
            Tapped::Taken(Some(work)) => work.await,
            Tapped::Pass(mut whole) => {
                whole.push(b'\n');
                if feed.write_all(&whole).await.is_err() {
                    break;
                }
            }
        }
    }
    tap.closed();
    let _ = feed.shutdown().await;
}

async fn relay_inner_output(from: tokio::io::ReadHalf<DuplexStream>, out: Arc<SharedWriter>) {
    let mut lines = BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if out.write_line(&line).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The answer to one client request, sendable once, from wherever the result arrives first.
pub struct Reply {
    out: Arc<SharedWriter>,
    id: Box<RawValue>,
    sent: AtomicBool,
}

impl Reply {
    pub fn new(out: Arc<SharedWriter>, id: Box<RawValue>) -> Arc<Self> {
        Arc::new(Self {
            out,
            id,
            sent: AtomicBool::new(false),
        })
    }

    /// Whether an answer went out.
    pub fn sent(&self) -> bool {
        self.sent.load(Ordering::Acquire)
    }

    /// Sends `result`, the JSON text of a result object, as the answer, unless one was sent
    /// already.
    pub async fn result(&self, result: &[u8]) -> bool {
        if self.sent.swap(true, Ordering::AcqRel) {
            return false;
        }
        let id = self.id.get().as_bytes();
        let mut line = Vec::with_capacity(result.len() + id.len() + 40);
        line.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        line.extend_from_slice(id);
        line.extend_from_slice(b",\"result\":");
        line.extend_from_slice(result);
        line.extend_from_slice(b"}\n");
        if let Err(e) = self.out.write_line(&line).await {
            tracing::debug!("could not send an answer: {e}");
        }
        true
    }
}
