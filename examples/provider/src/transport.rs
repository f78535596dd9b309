//! How the provider reaches its client: MCP over stdio (the default), streamable HTTP
//! (`--http`), or not at all (`--hang-on-initialize`).

use std::{
    io::Write,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use anyhow::Context as _;
use rmcp::{
    ServiceExt,
    service::ServerInitializeError,
    transport::{
        StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_server::session::local::LocalSessionManager,
    },
};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::provider::Provider;

/// Serves MCP on stdin/stdout until stdin reaches EOF.
pub async fn serve_stdio(
    provider: Provider,
    stdin_closed: CancellationToken,
) -> anyhow::Result<()> {
    // The pipe transport keeps reads on the IO reactor instead of a blocking thread per read,
    // which matters to the benchmarks; it falls back to plain stdio when stdin is no pipe.
    let (stdin, stdout) = rmcp::transport::stdio_pipes();
    let stdin = EofSignallingReader {
        inner: stdin,
        eof: stdin_closed,
    };
    let running = match provider.serve((stdin, stdout)).await {
        Ok(running) => running,
        // The client went away before initializing: nothing to serve, nothing wrong.
        Err(ServerInitializeError::ConnectionClosed(_)) => return Ok(()),
        Err(error) => return Err(error).context("MCP session over stdio did not start"),
    };
    let quit_reason = running
        .waiting()
        .await
        .context("MCP service task over stdio failed")?;
    tracing::info!(?quit_reason, "stdio session ended");
    Ok(())
}

/// Reads stdin to EOF and answers nothing: a server that hangs in its handshake.
pub async fn hang_until_eof() -> anyhow::Result<()> {
    tokio::io::copy(&mut tokio::io::stdin(), &mut tokio::io::sink())
        .await
        .context("reading stdin while hanging")?;
    Ok(())
}

/// Serves streamable HTTP at `/mcp` until interrupted.
///
/// The first stdout line is `listening on http://HOST:PORT/mcp` with the bound port, so a
/// test can bind port 0 and read where to connect.
pub async fn serve_http(
    provider: Provider,
    addr: SocketAddr,
    required: Vec<RequiredHeader>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (from --http)"))?;
    let local = listener
        .local_addr()
        .context("cannot read the bound HTTP address")?;
    let shutdown = CancellationToken::new();
    let mut config =
        StreamableHttpServerConfig::default().with_cancellation_token(shutdown.child_token());
    // rmcp admits only loopback Host headers by default (DNS rebinding protection); an
    // explicit non-loopback --http address means clients will use that address, and an
    // unspecified one (0.0.0.0, in a container) any address of the host, so no Host check.
    if local.ip().is_unspecified() {
        config = config.disable_allowed_hosts();
    } else {
        let bound_host = local.ip().to_string();
        if !config.allowed_hosts.contains(&bound_host) {
            config.allowed_hosts.push(bound_host);
        }
    }
    let service = StreamableHttpService::new(
        move || Ok(provider.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let required = Arc::new(required);
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(move |request, next| {
            require_headers(required.clone(), request, next)
        }));

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{local}/mcp")
        .and_then(|()| stdout.flush())
        .context("cannot announce the HTTP address on stdout")?;
    drop(stdout);

    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::warn!(%error, "cannot wait for Ctrl-C; serving until killed");
                std::future::pending::<()>().await;
            }
            shutdown.cancel();
        })
        .await
        .context("HTTP server failed")
}

/// A header every HTTP request must carry (`--require-header`).
#[derive(Clone, Debug)]
pub struct RequiredHeader {
    name: axum::http::HeaderName,
    value: String,
}

/// Parses `NAME: VALUE`.
pub fn parse_required_header(text: &str) -> Result<RequiredHeader, String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not `NAME: VALUE`"))?;
    let name = axum::http::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|e| format!("`{}` is not a header name: {e}", name.trim()))?;
    Ok(RequiredHeader {
        name,
        value: value.trim().to_string(),
    })
}

/// Answers 401 unless every required header is present with its value.
async fn require_headers(
    required: Arc<Vec<RequiredHeader>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let missing = required.iter().find(|want| {
        request
            .headers()
            .get(&want.name)
            .and_then(|v| v.to_str().ok())
            != Some(want.value.as_str())
    });
    let Some(missing) = missing else {
        return next.run(request).await;
    };
    let body = axum::Json(serde_json::json!({
        "error": "unauthorized",
        "detail": format!("header `{}` is missing or wrong", missing.name),
    }));
    let mut response = (axum::http::StatusCode::UNAUTHORIZED, body).into_response();
    if missing.name == axum::http::header::AUTHORIZATION && missing.value.starts_with("Bearer ") {
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"example-provider\""),
        );
    }
    response
}

/// Passes reads through and cancels `eof` when the stream ends or breaks, so work that
/// outlives the client can stop.
struct EofSignallingReader<R> {
    inner: R,
    eof: CancellationToken,
}

impl<R: AsyncRead + Unpin> AsyncRead for EofSignallingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let filled_before = buf.filled().len();
        let had_room = buf.remaining() > 0;
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let ended = match &poll {
            Poll::Ready(Ok(())) => had_room && buf.filled().len() == filled_before,
            Poll::Ready(Err(_)) => true,
            Poll::Pending => false,
        };
        if ended {
            self.eof.cancel();
        }
        poll
    }
}
