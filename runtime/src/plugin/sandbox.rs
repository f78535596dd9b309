//! One plugin instance's world: the store data (`Sandbox`), its limits, its deadline, and
//! the host side of every import — WASI with nothing in it, `host`, and the capabilities that
//! refuse unless granted.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::Invocation;
use super::bindings::v0_1_0::hangar::plugin as wit;
use super::bindings::v0_2_0::hangar::plugin as wit2;
use super::bindings::v0_2_0::lb::hangar::plugin::calls as wit2_calls;
use super::capability::{self, Capabilities};
use super::engine::Runtime;
use super::error::{MemoryCapHit, PluginError, PluginErrorKind, truncate};
use super::stats::Stats;
use crate::config::{PluginKind, PluginSpec, Preopen};

/// `host.log` lines a plugin may write per call; the rest are dropped and counted, so a plugin
/// cannot flood the hangar's log.
const LOG_LINES_PER_CALL: u32 = 32;
/// Longest `host.log` line kept; longer ones are cut.
const LOG_LINE_BYTES: usize = 2048;
/// Stderr kept per instance, to quote a panic message in the error. Writes past it fail.
const STDERR_BYTES: usize = 4096;
/// Table growth allowed to a plugin, as the pool's slots hold (engine::pooling).
const TABLE_ELEMENTS: usize = 20_000;

/// The sandbox settings of one loaded version of a plugin, shared by all its instances.
#[derive(Debug)]
pub(super) struct SandboxSpec {
    pub plugin: Arc<str>,
    pub memory_cap: usize,
    pub timeout: Duration,
    pub fuel: Option<u64>,
    /// The `docker` and `kubernetes` capabilities as granted (clients made on first use and
    /// shared by the version's instances).
    pub capabilities: Arc<Capabilities>,
    pub preopens: Vec<Preopen>,
    /// Whether a host call of the plugin can block: the docker and kubernetes capabilities
    /// (discovery sources) and WASI file reads (preopened directories). Every other import
    /// answers from memory, so a plugin without these cannot be stuck outside wasm, where the
    /// epoch deadline does not reach.
    pub may_block: bool,
}

impl SandboxSpec {
    pub fn new(spec: &PluginSpec) -> Self {
        Self {
            plugin: Arc::from(spec.name.as_str()),
            memory_cap: usize::try_from(spec.memory_bytes()).unwrap_or(usize::MAX),
            timeout: spec.timeout,
            fuel: spec.fuel,
            capabilities: Arc::new(Capabilities::new(spec)),
            preopens: spec.preopens.clone(),
            may_block: spec.kind == PluginKind::Discovery || !spec.preopens.is_empty(),
        }
    }
}

/// The data of one store: one plugin instance and everything its imports may touch.
pub(super) struct Sandbox {
    spec: Arc<SandboxSpec>,
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    /// When the current call must be over; checked at every epoch tick.
    deadline: Instant,
    logs_left: u32,
    stats: Arc<Stats>,
    stderr: MemoryOutputPipe,
    /// The call a 0.2.0 `validate` or `pick` in flight is about, read by the `calls` methods;
    /// `None` between calls.
    current: Option<Arc<Invocation>>,
    /// The ids of the members of the `pick` in flight, for `call.member-id`; empty otherwise.
    /// Cleared, not freed, between picks.
    member_ids: Vec<Arc<str>>,
}

/// A fresh store for one instance of the plugin, its deadline not yet armed.
///
/// The WASI context is empty by design: no environment, no arguments, stdin closed, stdout
/// discarded, stderr kept (bounded) only to explain a trap, no network (TCP, UDP and name
/// lookup are off), and the spec's preopens read-only. Clocks and randomness are the host's:
/// neither grants authority.
pub(super) fn new_store(
    runtime: &Runtime,
    spec: &Arc<SandboxSpec>,
    stats: &Arc<Stats>,
) -> Result<Store<Sandbox>, PluginError> {
    let stderr = MemoryOutputPipe::new(STDERR_BYTES);
    let mut wasi = WasiCtx::builder();
    wasi.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .stderr(stderr.clone());
    for preopen in &spec.preopens {
        wasi.preopened_dir(&preopen.host, &preopen.guest, FsPerms::ReadOnly)
            .map_err(|err| {
                PluginError::new(
                    &spec.plugin,
                    PluginErrorKind::Load,
                    format!(
                        "cannot open its preopened directory `{}` (seen by the plugin as `{}`): \
                         {err}",
                        preopen.host.display(),
                        preopen.guest
                    ),
                )
            })?;
    }
    let sandbox = Sandbox {
        spec: Arc::clone(spec),
        wasi: wasi.build(),
        table: ResourceTable::new(),
        limiter: Limiter {
            memory_cap: spec.memory_cap,
        },
        deadline: Instant::now() + spec.timeout,
        logs_left: LOG_LINES_PER_CALL,
        stats: Arc::clone(stats),
        stderr,
        current: None,
        member_ids: Vec::new(),
    };
    let mut store = Store::new(&runtime.engine, sandbox);
    store.limiter(|s| &mut s.limiter);
    // Every tick past the armed deadline lands here: yield to the executor (a long call
    // never holds a tokio worker for more than a tick) until the wall-clock deadline, then
    // stop the call with a trap (`Trap::Interrupt`, reported as a timeout). The wall clock
    // rather than a tick count keeps the bound right when the ticker thread runs late.
    store.epoch_deadline_callback(|ctx| {
        if Instant::now() >= ctx.data().deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    Ok(store)
}

/// Arms the store for one call: its deadline, fuel and log budget start now.
pub(super) fn arm(store: &mut Store<Sandbox>, fuel_metered: bool) -> Result<(), PluginError> {
    let spec = Arc::clone(&store.data().spec);
    store.data_mut().deadline = Instant::now() + spec.timeout;
    store.data_mut().logs_left = LOG_LINES_PER_CALL;
    store.set_epoch_deadline(1);
    if fuel_metered {
        // A metered engine traps at zero fuel: a plugin without `fuel:` gets all there is.
        let fuel = spec.fuel.unwrap_or(u64::MAX);
        store.set_fuel(fuel).map_err(|err| {
            PluginError::new(
                &spec.plugin,
                PluginErrorKind::Load,
                format!("cannot set its fuel: {err}"),
            )
        })?;
    }
    Ok(())
}

impl Sandbox {
    /// What the plugin wrote on stderr so far (at most `STDERR_BYTES`).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }

    pub fn spec(&self) -> &SandboxSpec {
        &self.spec
    }

    /// When the current call must be over.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Lends `call` (and, for a pick, the members' ids) to the plugin until `end_call`.
    pub fn begin_call(
        &mut self,
        call: &Arc<Invocation>,
        member_ids: impl Iterator<Item = Arc<str>>,
    ) {
        self.current = Some(Arc::clone(call));
        self.member_ids.clear();
        self.member_ids.extend(member_ids);
    }

    /// Takes back what `begin_call` lent, so an idle instance holds no call.
    pub fn end_call(&mut self) {
        self.current = None;
        self.member_ids.clear();
    }

    /// The call in flight. A plugin can reach it only through a `call` borrowed for the call,
    /// so outside one there is nothing to read and it sees an empty call.
    fn current(&self) -> &Invocation {
        static NONE: Invocation = Invocation {
            provider: String::new(),
            tool: String::new(),
            arguments_json: String::new(),
            session: None,
            meta: Vec::new(),
        };
        self.current.as_deref().unwrap_or(&NONE)
    }

    fn log_line(&mut self, level: tracing::Level, message: &str) {
        if self.logs_left == 0 {
            Stats::bump(&self.stats.log_lines_dropped);
            return;
        }
        self.logs_left -= 1;
        let plugin = &*self.spec.plugin;
        let line = printable(&truncate(message, LOG_LINE_BYTES));
        match level {
            tracing::Level::TRACE => tracing::trace!(plugin, "plugin `{plugin}`: {line}"),
            tracing::Level::DEBUG => tracing::debug!(plugin, "plugin `{plugin}`: {line}"),
            tracing::Level::INFO => tracing::info!(plugin, "plugin `{plugin}`: {line}"),
            tracing::Level::WARN => tracing::warn!(plugin, "plugin `{plugin}`: {line}"),
            tracing::Level::ERROR => tracing::error!(plugin, "plugin `{plugin}`: {line}"),
        }
    }

    /// The capabilities, to call outside any borrow of the store, and the call's deadline.
    fn capabilities(&self) -> (Arc<Capabilities>, Instant) {
        (Arc::clone(&self.spec.capabilities), self.deadline)
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Enforces `memory_mb` (and a table bound) per store. A refused growth traps at once with a
/// `MemoryCapHit`, so the failure is reported as a memory limit rather than as whatever the
/// guest's allocator does when `memory.grow` returns -1.
struct Limiter {
    memory_cap: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            return Err(wasmtime::Error::new(MemoryCapHit {
                cap: self.memory_cap,
                desired,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS)
    }
}

/// The imports every WIT version shares (`types`, `host`, `docker`, `kubernetes`), the same
/// for each: their generated types differ per version, what they do does not.
macro_rules! shared_imports {
    ($wit:ident) => {
        impl $wit::types::Host for Sandbox {}

        impl $wit::host::Host for Sandbox {
            fn log(&mut self, level: $wit::types::Level, message: String) {
                use $wit::types::Level;
                let level = match level {
                    Level::Trace => tracing::Level::TRACE,
                    Level::Debug => tracing::Level::DEBUG,
                    Level::Info => tracing::Level::INFO,
                    Level::Warn => tracing::Level::WARN,
                    Level::Error => tracing::Level::ERROR,
                };
                self.log_line(level, &message);
            }

            fn now_ms(&mut self) -> u64 {
                now_ms()
            }
        }

        impl $wit::docker::Host for Sandbox {
            async fn list_containers(
                &mut self,
                label_filters: Vec<String>,
            ) -> Result<Vec<$wit::types::Container>, String> {
                let (capabilities, deadline) = self.capabilities();
                let found = capabilities
                    .list_containers(label_filters, deadline)
                    .await?;
                Ok(found
                    .into_iter()
                    .map(|c: capability::Container| $wit::types::Container {
                        id: c.id,
                        names: c.names,
                        image: c.image,
                        labels: c.labels,
                        state: c.state,
                        networks: c.networks,
                    })
                    .collect())
            }
        }

        impl $wit::kubernetes::Host for Sandbox {
            async fn list_pods(
                &mut self,
                namespaces: Vec<String>,
                label_selector: Option<String>,
            ) -> Result<Vec<$wit::types::Pod>, String> {
                let (capabilities, deadline) = self.capabilities();
                let found = capabilities
                    .list_pods(namespaces, label_selector, deadline)
                    .await?;
                Ok(found
                    .into_iter()
                    .map(|p: capability::Pod| $wit::types::Pod {
                        namespace: p.namespace,
                        name: p.name,
                        labels: p.labels,
                        annotations: p.annotations,
                        phase: p.phase,
                        pod_ip: p.pod_ip,
                        ready: p.ready,
                        container_ports: p.container_ports,
                    })
                    .collect())
            }
        }
    };
}

shared_imports!(wit);
shared_imports!(wit2);

impl wit2_calls::Host for Sandbox {}

/// The parts of the call in flight, copied out only when the plugin asks. The handle is the
/// one borrow the host lends per call (rep 0); which call it means is the store's.
impl wit2_calls::HostCall for Sandbox {
    fn provider(&mut self, _: Resource<wit2_calls::Call>) -> String {
        self.current().provider.clone()
    }

    fn tool(&mut self, _: Resource<wit2_calls::Call>) -> String {
        self.current().tool.clone()
    }

    fn arguments_json(&mut self, _: Resource<wit2_calls::Call>) -> String {
        self.current().arguments_json.clone()
    }

    fn session(&mut self, _: Resource<wit2_calls::Call>) -> Option<String> {
        self.current().session.clone()
    }

    fn meta(&mut self, _: Resource<wit2_calls::Call>) -> Vec<(String, String)> {
        self.current().meta.clone()
    }

    fn member_id(&mut self, _: Resource<wit2_calls::Call>, index: u32) -> Option<String> {
        let index = usize::try_from(index).ok()?;
        self.member_ids.get(index).map(|id| id.to_string())
    }

    fn drop(&mut self, _: Resource<wit2_calls::Call>) -> wasmtime::Result<()> {
        // Only borrows are ever lent; there is no owned `call` to free.
        Ok(())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `text` with control characters escaped, so a plugin cannot forge log lines or send
/// terminal escapes.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_newlines_and_terminal_escapes() {
        assert_eq!(printable("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(printable("plain ü"), "plain ü");
    }
}
