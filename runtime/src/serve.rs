//! Wiring for the CLI: load the config, build the registry and gateway, serve on stdio or HTTP,
//! and shut everything down on a signal or when the stdio client goes away.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::backend;
use crate::config::{self, Config};
use crate::events::{self, EventBus};
use crate::gateway::{Catalog, Gateway};
use crate::http::{self, Readiness};
use crate::plugin::PluginSet;
use crate::registry::Registry;

pub enum Listen {
    Stdio,
    /// Boxed: the options (with the `http:` spec) are large beside `Stdio`.
    Http(Box<crate::http::HttpOptions>),
}

pub struct ServeOptions {
    /// The loaded config: loaded before serving so that its `logging:` is in force first
    /// (see [`load_for_serving`]).
    pub config: Config,
    pub listen: Listen,
}

/// Logs go to stderr only: on stdio, stdout is the MCP channel. `MCP_HANGAR_LOG` (or `RUST_LOG`)
/// sets the filter; `info` by default.
pub fn init_logging() {
    let filter = std::env::var("MCP_HANGAR_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

fn load(path: &Path) -> Result<Config, String> {
    let config = config::load(path).map_err(|e| e.to_string())?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    Ok(config)
}

/// `serve`'s first step: loads the config, installs the log its `logging:` asks for, then logs
/// the config's warnings there. A config error comes back as text (nothing is logged yet).
pub fn load_for_serving(path: &Path) -> Result<Config, String> {
    let config = config::load(path).map_err(|e| e.to_string())?;
    crate::observe::logging::init(&config.logging)?;
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    Ok(config)
}

/// `mcp-hangar check`: validate, including the aggregated tool names, and print the normalised
/// config with secrets redacted.
pub fn check(path: &Path) -> Result<(), String> {
    let config = load(path)?;
    let registry = Registry::new(&config, EventBus::new());
    let (_, mut problems) = Catalog::build(&registry);
    problems.extend(plugin_problems(path, &config)?);
    if !problems.is_empty() {
        return Err(format!("{}: {}", path.display(), problems.join("\n")));
    }
    print!("{}", config.to_redacted_yaml());
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// Loads every plugin of `config` as `serve` would, and says where and why each that fails
/// does (`FILE:LINE:COL: plugins.NAME: …`).
fn plugin_problems(path: &Path, config: &Config) -> Result<Vec<String>, String> {
    if config.plugins.is_empty() {
        return Ok(Vec::new());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime to load the plugins: {e}"))?;
    let plugins = runtime.block_on(PluginSet::load(config));
    Ok(plugins
        .slots()
        .filter_map(|slot| {
            let error = slot.status().last_error?;
            let at = config.plugins[slot.name()]
                .defined_at
                .map(|at| format!("{}:{at}: ", path.display()))
                .unwrap_or_default();
            Some(format!("{at}plugins.{}: {error}", slot.name()))
        })
        .collect())
}

pub async fn run(opts: ServeOptions) -> Result<(), String> {
    let config = opts.config;
    // Before anything can start: containers of this config that a hangar killed with SIGKILL
    // left behind would otherwise run on, unowned.
    let swept =
        backend::container::sweep_orphans(&backend::instance_label(&config.path), &config).await;
    if swept > 0 {
        tracing::info!("removed {swept} container(s) left behind by an earlier run of this config");
    }
    let traces = crate::observe::trace::install(config.tracing.as_ref(), config.langfuse.as_ref())?;
    if let Some(t) = &config.tracing
        && t.enabled
    {
        tracing::info!(
            "exporting traces over OTLP ({}) to {}",
            t.protocol.as_str(),
            t.endpoint
        );
    }
    let bus = EventBus::new();
    events::spawn_log_subscriber(&bus);
    // Subscribed before anything publishes, so the trail starts with the config and plugins.
    let store = events::store::start(&config.event_store, &bus);
    bus.publish(events::Event::ConfigLoaded {
        path: config.path.display().to_string(),
        providers: config.providers.len(),
        plugins: config.plugins.len(),
        warnings: config.warnings.len(),
    });
    let plugins = PluginSet::spawn_load(&config, &bus);
    if let Err(e) = plugins.watch() {
        tracing::warn!("{e}; plugins are not reloaded when their files change");
    }
    let registry = Registry::with_plugins(&config, bus.clone(), plugins);
    let gateway = Gateway::new(registry.clone())
        .map_err(|problems| format!("{}: {}", config.path.display(), problems.join("\n")))?;
    registry.spawn_idle_collector();
    crate::recovery::spawn(&registry);
    crate::discovery::Discovery::spawn(&config, &registry, registry.plugins().clone());
    for p in registry.providers().filter(|p| p.spec().auto_start) {
        let p = p.clone();
        tokio::spawn(async move {
            if let Err(e) = p.ensure_started(false).await {
                tracing::warn!("auto_start of `{}` failed: {e}", p.id());
            }
        });
    }
    tracing::info!(
        "mcp-hangar {} serving {} provider(s) from {}",
        env!("CARGO_PKG_VERSION"),
        config.providers.len(),
        config.path.display()
    );

    let shutdown = CancellationToken::new();
    let metrics = &config.observability.metrics;
    if let Some(addr) = metrics.own_listener() {
        let listener = crate::observe::bind(addr).await?;
        tokio::spawn(crate::observe::serve(
            registry.clone(),
            listener,
            metrics.path.clone(),
            shutdown.clone(),
        ));
    }
    let readiness = Readiness::default();
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;

    let outcome = match opts.listen {
        Listen::Stdio => {
            let server = crate::gateway::stdio::serve(gateway.clone()).await;
            match server {
                Ok(running) => {
                    let ct = running.cancellation_token();
                    // Kept alive outside the select: dropping the service when a signal comes
                    // would cancel every call under way before the drain lets it finish.
                    let waiting = running.waiting();
                    tokio::pin!(waiting);
                    let reason = tokio::select! {
                        r = &mut waiting => {
                            tracing::info!("stdio client went away ({r:?}); shutting down");
                            "stdio client went away"
                        }
                        _ = sigterm.recv() => { tracing::info!("SIGTERM; shutting down"); drain(&registry).await; ct.cancel(); "SIGTERM" }
                        _ = sigint.recv() => { tracing::info!("SIGINT; shutting down"); drain(&registry).await; ct.cancel(); "SIGINT" }
                    };
                    shutdown.cancel();
                    Ok(reason)
                }
                // The client left (or spoke nonsense) before the handshake finished: not the
                // hangar's failure, but worth a line in the log.
                Err(e) => {
                    tracing::warn!("stdio MCP session ended before it was established: {e}");
                    Ok("stdio session ended before it was established")
                }
            }
        }
        Listen::Http(mut options) => {
            options.metrics_path = metrics.http_path().map(str::to_owned);
            options.spec = config.http.clone();
            let addr = options.addr;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("could not listen on {addr}: {e}"))?;
            let server = tokio::spawn(http::serve(
                gateway.clone(),
                listener,
                *options,
                readiness.clone(),
                shutdown.clone(),
            ));
            let reason = tokio::select! {
                _ = sigterm.recv() => { tracing::info!("SIGTERM; shutting down"); "SIGTERM" }
                _ = sigint.recv() => { tracing::info!("SIGINT; shutting down"); "SIGINT" }
            };
            readiness.set(false);
            drain(&registry).await;
            stop_providers(&registry).await;
            shutdown.cancel();
            match tokio::time::timeout(Duration::from_secs(5), server).await {
                Ok(Ok(Err(e))) => Err(format!("HTTP server failed: {e}")),
                _ => Ok(reason),
            }
        }
    };
    stop_providers(&registry).await;
    bus.publish(events::Event::HangarStopped {
        reason: match &outcome {
            Ok(reason) => (*reason).to_owned(),
            Err(e) => e.clone(),
        },
    });
    if let Some(store) = store {
        // The last events (stops, hangar_stopped) are committed before the process exits.
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
    if let Some(traces) = traces {
        // The exporters' last batch: a blocking flush, so off the async threads.
        let _ = tokio::task::spawn_blocking(move || traces.shutdown(TRACE_FLUSH)).await;
    }
    outcome.map(|_| ())
}

/// How long the last spans get to reach the collector at shutdown.
const TRACE_FLUSH: Duration = Duration::from_secs(5);

/// How long a signalled hangar lets calls in flight finish before it stops their providers.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the last answers get to be written once the registry has none in flight.
const ANSWER_GRACE: Duration = Duration::from_millis(100);

/// Lets the calls in flight be answered (new ones are refused) before providers stop.
async fn drain(registry: &Registry) {
    let left = registry.drain(DRAIN_TIMEOUT).await;
    // A call leaves the registry's count just before the gateway writes its answer (rmcp
    // writes it after the handler returns): give those last answers a moment to go out.
    tokio::time::sleep(ANSWER_GRACE).await;
    if left > 0 {
        tracing::warn!(
            "{left} call(s) still in flight after {}s; stopping their providers",
            DRAIN_TIMEOUT.as_secs()
        );
    }
}

async fn stop_providers(registry: &Arc<Registry>) {
    registry.shutdown().await;
}
