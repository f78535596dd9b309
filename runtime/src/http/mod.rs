//! The HTTP face: streamable HTTP MCP at `/mcp`, plus `/health` and `/ready` for orchestrators
//! and `/metrics` (Prometheus text, `observability.metrics`).
//!
//! Security (`http:` in the config, `config/http.rs`): rmcp checks `Origin` and `Host`;
//! `auth` checks credentials on /mcp (and /metrics unless `protect_metrics: false`) and serves
//! the RFC 9728 metadata document; `bounds` limits connections, slow headers and sessions.
//! `/health`, `/ready` and the metadata document are always open: they say nothing secret and
//! orchestrators and clients need them before they have credentials.

mod auth;
mod bounds;
mod jwt;

pub use auth::METADATA_PATH;
pub use bounds::{HttpStats, Rejection};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use self::auth::Authenticator;
use crate::config::HttpServeSpec;
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
    /// The config's `http:` section (origins, hosts, auth, bounds).
    pub spec: HttpServeSpec,
    /// `--allowed-origin`: added to `http.allowed_origins`.
    pub allowed_origins: Vec<String>,
    /// `--allowed-host`: added to `http.allowed_hosts`.
    pub allowed_hosts: Vec<String>,
    /// Where Prometheus text is served (`observability.metrics`); `None`: not served.
    pub metrics_path: Option<String>,
}

impl HttpOptions {
    /// Loopback, no extra origins or hosts, no authentication, default bounds.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            spec: HttpServeSpec::default(),
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

/// How long open connections get to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// JSON-RPC error code of an `initialize` refused because `max_sessions` are open.
const TOO_MANY_SESSIONS: i64 = -32030;

/// What every request to /mcp passes before rmcp sees it.
struct McpGate {
    auth: Option<Arc<Authenticator>>,
    sessions: Arc<LocalSessionManager>,
    /// `initialize` requests admitted and not yet answered: their sessions may not be in
    /// `sessions` yet, so they count against `max_sessions` too.
    opening: Openings,
    max_sessions: u32,
    idle: Duration,
    body_limit: usize,
    stats: Arc<HttpStats>,
}

/// How long an `initialize` that finds the sessions full waits for others being opened at the
/// same time to be answered (their count may be an overcount, see [`McpGate::admit_session`]).
const OPENING_WAIT: Duration = Duration::from_secs(5);

/// The `initialize` requests being answered, and a signal each time one is.
#[derive(Default)]
struct Openings {
    count: AtomicUsize,
    answered: tokio::sync::Notify,
}

/// An admitted `initialize`'s place in [`McpGate::opening`], given back when it is answered
/// (or its client goes away).
struct Opening<'a>(&'a Openings);

impl<'a> Opening<'a> {
    /// Takes a place; returns it with the number of places taken before it.
    fn take(openings: &'a Openings) -> (Self, usize) {
        let before = openings.count.fetch_add(1, Ordering::AcqRel);
        (Self(openings), before)
    }

    /// Gives the place back without waking anyone: it was only taken to count.
    fn withdraw(self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        std::mem::forget(self);
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.answered.notify_waiters();
    }
}

impl McpGate {
    /// A place for a new session, or (sessions open, others opening) when `max_sessions` are.
    ///
    /// Sessions open plus `initialize`s taken before this one is never an undercount, so a
    /// place is given when it is below the bound. It can be an overcount: a session rmcp has
    /// just put in its table whose `initialize` is not yet answered is counted twice. So a
    /// refusal is made only on a count with no other `initialize` in flight; until then (up to
    /// [`OPENING_WAIT`]) this waits for one to be answered or refused and counts again.
    async fn admit_session(&self) -> Result<Opening<'_>, (usize, usize)> {
        let deadline = tokio::time::Instant::now() + OPENING_WAIT;
        loop {
            let (place, before) = Opening::take(&self.opening);
            let open = self.sessions.sessions.read().await.len();
            if open + before < self.max_sessions as usize {
                return Ok(place);
            }
            if before == 0 {
                // Exact; dropping the place wakes those waiting to count again.
                return Err((open, 0));
            }
            place.withdraw();
            let answered = self.opening.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            if self.opening.count.load(Ordering::Acquire) == 0 {
                continue;
            }
            if tokio::time::timeout_at(deadline, answered).await.is_err() {
                return Err((open, before));
            }
        }
    }
}

/// The `method` of a JSON-RPC message, read without building the rest.
#[derive(serde::Deserialize)]
struct MethodOnly<'a> {
    #[serde(borrow)]
    method: Option<std::borrow::Cow<'a, str>>,
}

/// Credentials and rate limit (with `http.auth`), then the session bound, then rmcp; a 403
/// from rmcp (foreign `Origin`, unknown `Host`) is counted.
///
/// The session bound is exact under simultaneous `initialize`s: each one takes a place in
/// `opening` before it looks at the count of sessions open plus opening, and keeps it until
/// rmcp has answered (by then its session is in the table); see [`McpGate::admit_session`].
async fn mcp_gate(
    State(gate): State<Arc<McpGate>>,
    mut request: Request<Body>,
    next: Next,
) -> Response {
    if let Some(auth) = &gate.auth
        && let Err(refused) = auth.admit(&mut request, true).await
    {
        return refused;
    }
    let mut _opening = None;
    if request.method() == Method::POST && !request.headers().contains_key("mcp-session-id") {
        // Only an `initialize` makes a session (a 2026-07-28 request is served without one),
        // so the body decides.
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, gate.body_limit).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
        };
        let initialize = serde_json::from_slice::<MethodOnly>(&bytes)
            .is_ok_and(|m| m.method.as_deref() == Some("initialize"));
        if initialize {
            match gate.admit_session().await {
                Ok(place) => _opening = Some(place),
                Err((open, opening)) => {
                    gate.stats.reject(Rejection::MaxSessions);
                    tracing::warn!(
                        "refused a new session: {open} open, {opening} opening (http.max_sessions)"
                    );
                    let id = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .map(|m| m["id"].clone())
                        .unwrap_or_default();
                    return too_many_sessions(&id, gate.max_sessions, gate.idle);
                }
            }
        }
        request = Request::from_parts(parts, Body::from(bytes));
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::FORBIDDEN {
        gate.stats.reject(Rejection::OriginOrHost);
    }
    response
}

fn too_many_sessions(id: &serde_json::Value, max: u32, idle: Duration) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": TOO_MANY_SESSIONS,
            "message": format!(
                "too many sessions: this hangar holds at most {max} (http.max_sessions); end \
                 unused ones (DELETE /mcp with their mcp-session-id) or retry later: idle \
                 sessions close after {:.0} s",
                idle.as_secs_f64()
            ),
        },
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// Credentials on /metrics (no rate limit: scrapes are periodic by nature).
async fn metrics_gate(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request<Body>,
    next: Next,
) -> Response {
    match auth.admit(&mut request, false).await {
        Ok(()) => next.run(request).await,
        Err(refused) => refused,
    }
}

async fn metadata(State(auth): State<Arc<Authenticator>>, headers: HeaderMap) -> Response {
    axum::Json(auth.metadata(&headers)).into_response()
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    options: HttpOptions,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let spec = &options.spec;
    let mut hosts = spec.allowed_hosts.clone();
    hosts.extend(options.allowed_hosts.iter().cloned());
    let mut origins = spec.allowed_origins.clone();
    origins.extend(options.allowed_origins.iter().cloned());
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(addr, &hosts))
        .with_allowed_origins(allowed_origins(&origins))
        .enforce_origin_validation()
        .with_cancellation_token(shutdown.child_token());
    let body_limit = config.max_request_body_bytes;
    let registry = gw.registry.clone();
    let stats = registry.http_stats().clone();
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(spec.session_idle_timeout);
    let sessions = Arc::new(sessions);
    stats.watch_sessions(sessions.clone());
    let mcp = StreamableHttpService::new(
        move || Ok(HangarServer::new(gw.clone())),
        sessions.clone(),
        config,
    );
    let auth = spec
        .auth
        .as_ref()
        .map(|a| Authenticator::new(a, stats.clone()));
    let gate = Arc::new(McpGate {
        auth: auth.clone(),
        sessions,
        opening: Openings::default(),
        max_sessions: spec.max_sessions,
        idle: spec.session_idle_timeout,
        body_limit,
        stats: stats.clone(),
    });
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(readiness.clone())
        .merge(
            Router::new()
                .nest_service("/mcp", mcp)
                .layer(middleware::from_fn_with_state(gate, mcp_gate)),
        );
    if let Some(auth) = &auth {
        app = app.merge(
            Router::new()
                .route(METADATA_PATH, get(metadata))
                .route(&format!("{METADATA_PATH}/mcp"), get(metadata))
                .with_state(auth.clone()),
        );
    }
    if let Some(path) = &options.metrics_path {
        let metrics = crate::observe::router(registry, path);
        app = app.merge(match &auth {
            Some(auth) if spec.auth.as_ref().is_some_and(|a| a.protect_metrics) => {
                metrics.layer(middleware::from_fn_with_state(auth.clone(), metrics_gate))
            }
            _ => metrics,
        });
    }
    if let Some(auth) = &auth {
        auth.warm().await;
    }
    readiness.set(true);
    // The address ends the line: tests and scripts read it from there.
    tracing::info!(
        "{}; serving MCP over streamable HTTP at http://{addr}/mcp",
        if auth.is_some() {
            "credentials required"
        } else {
            "no authentication"
        }
    );
    bounds::serve_connections(
        listener,
        app,
        spec.max_connections,
        spec.header_read_timeout,
        stats,
        shutdown,
        SHUTDOWN_GRACE,
    )
    .await
}
