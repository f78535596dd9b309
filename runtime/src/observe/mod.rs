//! What the hangar shows of itself: Prometheus metrics (`metrics`), its log (`logging`) and
//! traces (`trace`: OpenTelemetry over OTLP, Langfuse).
//!
//! Architecture invariant: observing never steers and never slows a call. Metrics are read from
//! the registry's own state when scraped; the only cost on the call path is the providers'
//! relaxed atomic counters (`registry::ProviderStats`); spans are handed to a batch exporter
//! that sends them off the call path.

pub mod logging;
pub mod metrics;
mod span_export;
pub mod trace;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;

async fn scrape(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&registry),
    )
}

/// A router answering `GET path` with the registry's metrics in Prometheus text.
pub fn router(registry: Arc<Registry>, path: &str) -> Router {
    Router::new().route(path, get(scrape)).with_state(registry)
}

/// Binds the metrics listener of its own (`observability.metrics.listen`).
///
/// # Errors
///
/// The address cannot be bound (taken, not local), said so with the config key to change.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        format!(
            "could not listen for metrics on {addr} (observability.metrics.listen): {e}; choose \
             another port, or remove `listen`"
        )
    })
}

/// Serves `GET path` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    registry: Arc<Registry>,
    listener: tokio::net::TcpListener,
    path: String,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!("serving Prometheus metrics at http://{addr}{path}");
    axum::serve(listener, router(registry, &path))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
