//! The HTTP face: streamable HTTP MCP at `/mcp`, plus `/health` and `/ready` for orchestrators.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::gateway::{Gateway, HangarServer};

/// Whether `/ready` answers 200: set once the config is loaded and the listener is up, cleared
/// when shutdown begins so load balancers stop sending traffic before providers are stopped.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

async fn health() -> (StatusCode, axum::Json<serde_json::Value>) {
    (StatusCode::OK, axum::Json(json!({"status": "ok"})))
}

async fn ready(State(r): State<Readiness>) -> (StatusCode, axum::Json<serde_json::Value>) {
    if r.get() {
        (StatusCode::OK, axum::Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not ready"})),
        )
    }
}

/// Host names the MCP endpoint accepts in the `Host` header (DNS-rebinding protection).
fn allowed_hosts(addr: SocketAddr) -> Vec<String> {
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if !addr.ip().is_loopback() && !addr.ip().is_unspecified() {
        hosts.push(addr.ip().to_string());
    }
    hosts
}

/// Serves until `shutdown` is cancelled. `bound` is told the real address (port 0 → the chosen
/// port) once the listener is up.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(addr))
        .with_cancellation_token(shutdown.child_token());
    let mcp = StreamableHttpService::new(
        move || Ok(HangarServer::new(gw.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(readiness.clone())
        .nest_service("/mcp", mcp);
    readiness.set(true);
    tracing::info!("serving MCP over streamable HTTP at http://{addr}/mcp");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
