//! The HTTP face: streamable HTTP MCP at `/mcp`, plus `/health` and `/ready` for orchestrators
//! and `/metrics` (Prometheus text, `observability.metrics`).

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

/// Where and for whom the HTTP face serves.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub addr: SocketAddr,
    /// Browser origins allowed on /mcp; empty: loopback origins only.
    pub allowed_origins: Vec<String>,
    /// `Host` names accepted besides loopback names and the bound address.
    pub allowed_hosts: Vec<String>,
    /// Where Prometheus text is served (`observability.metrics`); `None`: not served.
    pub metrics_path: Option<String>,
}

impl HttpOptions {
    /// Loopback, no extra origins or hosts.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            metrics_path: Some(crate::config::DEFAULT_METRICS_PATH.to_owned()),
        }
    }
}

/// Host names the MCP endpoint accepts in the `Host` header (DNS-rebinding protection).
fn allowed_hosts(addr: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if !addr.ip().is_loopback() && !addr.ip().is_unspecified() {
        hosts.push(addr.ip().to_string());
    }
    hosts.extend(extra.iter().cloned());
    hosts
}

/// Browser origins the MCP endpoint accepts: those configured, or else pages served from this
/// machine. A web page elsewhere cannot drive the hangar through a visitor's browser.
/// Requests without an `Origin` (every non-browser client) are not affected.
fn allowed_origins(configured: &[String]) -> Vec<String> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .flat_map(|host| [format!("http://{host}:*"), format!("https://{host}:*")])
        .collect()
}

/// Serves until `shutdown` is cancelled. `bound` is told the real address (port 0 → the chosen
/// port) once the listener is up.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    options: HttpOptions,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(addr, &options.allowed_hosts))
        .with_allowed_origins(allowed_origins(&options.allowed_origins))
        .enforce_origin_validation()
        .with_cancellation_token(shutdown.child_token());
    let registry = gw.registry.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(HangarServer::new(gw.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(readiness.clone())
        .nest_service("/mcp", mcp);
    if let Some(path) = &options.metrics_path {
        app = app.merge(crate::observe::router(registry, path));
    }
    readiness.set(true);
    tracing::info!("serving MCP over streamable HTTP at http://{addr}/mcp");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
