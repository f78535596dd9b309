//! How much of the machine the HTTP face may take: connections (an accept loop with a
//! semaphore), the time a client gets to send its headers (hyper's `header_read_timeout`), and
//! sessions (rmcp's `LocalSessionManager`, counted before a new one is made). Each refusal is
//! an HTTP status with a message that says what to do, and a count in [`HttpStats`].
//!
//! Deliberately not `axum::serve`: it offers neither a header-read timeout nor a connection
//! limit, so connections are served here with hyper-util's builder, which axum uses inside.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Why the HTTP face turned a request or connection away (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No credentials on a protected path (401).
    Unauthenticated,
    /// Credentials given but not valid (401 `invalid_token`).
    InvalidToken,
    /// A principal's rate limit (429).
    RateLimited,
    /// `max_sessions` reached (503).
    MaxSessions,
    /// `max_connections` reached (503, then closed).
    MaxConnections,
    /// Headers not complete within `header_read_timeout_s` (408, then closed).
    HeaderTimeout,
    /// rmcp refused a foreign `Origin` or an unknown `Host` (403).
    OriginOrHost,
}

impl Rejection {
    pub const ALL: [Rejection; 7] = [
        Self::Unauthenticated,
        Self::InvalidToken,
        Self::RateLimited,
        Self::MaxSessions,
        Self::MaxConnections,
        Self::HeaderTimeout,
        Self::OriginOrHost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidToken => "invalid_token",
            Self::RateLimited => "rate_limited",
            Self::MaxSessions => "max_sessions",
            Self::MaxConnections => "max_connections",
            Self::HeaderTimeout => "header_timeout",
            Self::OriginOrHost => "origin_or_host",
        }
    }
}

/// What the HTTP face counts, read by `/metrics` when scraped (relaxed atomics; nothing on the
/// call path but an increment when something is refused).
#[derive(Default)]
pub struct HttpStats {
    rejections: [AtomicU64; 7],
    connections: AtomicU64,
    sessions: OnceLock<Arc<LocalSessionManager>>,
}

impl HttpStats {
    pub fn reject(&self, why: Rejection) {
        self.rejections[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejections(&self, why: Rejection) -> u64 {
        self.rejections[why as usize].load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub(super) fn watch_sessions(&self, sessions: Arc<LocalSessionManager>) {
        let _ = self.sessions.set(sessions);
    }

    /// Whether an HTTP face is serving (its counters mean something).
    pub fn serving(&self) -> bool {
        self.sessions.get().is_some()
    }

    /// Sessions open now; `None` while the session table is being changed (a scrape does not
    /// wait for it).
    pub fn sessions(&self) -> Option<usize> {
        let manager = self.sessions.get()?;
        manager.sessions.try_read().ok().map(|s| s.len())
    }
}

/// A connection's socket, shared so that the accept loop can still answer on it once hyper
/// gives up on a client too slow with its headers (hyper closes without a response).
struct SharedStream {
    socket: Arc<TcpStream>,
    /// Bytes came in since the last response went out: a timeout now cuts a request short,
    /// not an idle keep-alive connection.
    partial: Arc<AtomicBool>,
}

impl AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.socket.poll_read_ready(cx))?;
            match self.socket.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    if n > 0 {
                        self.partial.store(true, Ordering::Relaxed);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.socket.poll_write_ready(cx))?;
            match self.socket.try_write(data) {
                Ok(n) => {
                    self.partial.store(false, Ordering::Relaxed);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    // The socket closes when the last handle drops; a half-close changes nothing for a client.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A plain HTTP/1.1 answer on a connection hyper is not serving (refused, or given up on),
/// then the connection closes. Best effort, within a second.
async fn answer_and_close(socket: &TcpStream, status: &str, retry_after: Option<u64>, body: &str) {
    let retry = retry_after
        .map(|s| format!("Retry-After: {s}\r\n"))
        .unwrap_or_default();
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            socket.writable().await?;
            match socket.try_write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// Accepts and serves connections with `app` until `shutdown`, at most `max_connections` at
/// once, each given `header_read_timeout` to send a request's headers. On shutdown, stops
/// accepting and gives open connections `grace` to finish.
pub(super) async fn serve_connections(
    listener: TcpListener,
    app: Router,
    max_connections: u32,
    header_read_timeout: Duration,
    stats: Arc<HttpStats>,
    shutdown: CancellationToken,
    grace: Duration,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(max_connections.max(1) as usize));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(e) => {
                    tracing::warn!("accepting an HTTP connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            stats.reject(Rejection::MaxConnections);
            tracing::warn!(
                "refused a connection from {peer}: {max_connections} open already (http.max_connections)"
            );
            tokio::spawn(async move {
                answer_and_close(
                    &socket,
                    "503 Service Unavailable",
                    Some(1),
                    &format!(
                        "too many connections: this hangar serves at most {max_connections} at once \
                         (http.max_connections); retry shortly, or reuse a connection\n"
                    ),
                )
                .await;
            });
            continue;
        };
        let _ = socket.set_nodelay(true);
        let socket = Arc::new(socket);
        let partial = Arc::new(AtomicBool::new(false));
        let io = TokioIo::new(SharedStream {
            socket: socket.clone(),
            partial: partial.clone(),
        });
        let service = TowerToHyperService::new(app.clone());
        let stats = stats.clone();
        let connection = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let connection = graceful.watch(connection);
        stats.connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let served = connection.await;
            if let Err(e) = served {
                let timed_out = e
                    .downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_timeout);
                if timed_out && partial.load(Ordering::Relaxed) {
                    stats.reject(Rejection::HeaderTimeout);
                    tracing::info!(
                        "cut off {peer}: its request headers took longer than {:.1} s",
                        header_read_timeout.as_secs_f64()
                    );
                    answer_and_close(
                        &socket,
                        "408 Request Timeout",
                        None,
                        &format!(
                            "request headers not complete within {:.1} s (http.header_read_timeout_s)\n",
                            header_read_timeout.as_secs_f64()
                        ),
                    )
                    .await;
                } else if !timed_out {
                    tracing::debug!("HTTP connection from {peer} ended: {e}");
                }
            }
            stats.connections.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("HTTP connections still open after {grace:?}; closing them");
    }
    Ok(())
}
