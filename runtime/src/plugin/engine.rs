//! The process's one wasmtime `Engine`, how it is tuned and why, the epoch ticker that bounds
//! every call, and the two `Linker`s every plugin is type-checked against.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};

use super::bindings::v0_1_0::hangar::plugin as wit;
use super::bindings::v0_2_0::hangar::plugin as wit2;
use super::bindings::v0_2_0::lb::hangar::plugin::calls as wit2_calls;
use super::sandbox::Sandbox;

/// How often the epoch advances: the resolution of every plugin deadline. A call is stopped
/// at most about one tick after its deadline; 1 ms costs ~1 000 wake-ups a second of a thread
/// that does nothing else.
pub(super) const TICK: Duration = Duration::from_millis(1);

/// What the host is sized for. The defaults suit the hangar; tests use smaller pools.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// Count fuel in every call. Costs a few percent of plugin speed, so it is on only when
    /// some plugin sets `fuel:` (`HostOptions::for_plugins`). A plugin with `fuel:` cannot be
    /// loaded into a host without it.
    pub fuel: bool,
    /// Plugin instances alive at once across all plugins: each validator or discovery call in
    /// flight holds one, each lb policy holds one for its life. Past it a call fails at once
    /// with `Busy` (and `on_error` decides) instead of waiting for a slot.
    pub max_live_instances: u32,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            fuel: false,
            // A validator call lives ~10 µs; a thousand at once on a 2-core machine would
            // already be far past their deadlines. Each slot reserves address space only
            // (see `pooling`), so the number costs no memory until it is used.
            max_live_instances: 1_000,
        }
    }
}

impl HostOptions {
    /// The defaults, with fuel metering on when any of `plugins` sets `fuel:`.
    pub fn for_plugins<'a>(
        plugins: impl IntoIterator<Item = &'a crate::config::PluginSpec>,
    ) -> Self {
        Self {
            fuel: plugins.into_iter().any(|p| p.fuel.is_some()),
            ..Self::default()
        }
    }
}

/// The engine, its linkers and its ticker, shared by the host and every plugin it loaded: the
/// ticker stops only when the last of them is gone, so no call can outlive its deadline for
/// want of ticks.
pub(super) struct Runtime {
    pub engine: Engine,
    pub fuel: bool,
    /// How pooled memories are reset (depends on the kernel).
    pub reset: MemoryReset,
    /// WASI p2 (deny-by-default context, see `sandbox`), `host` and (0.2.0) `calls`: what
    /// validators and lb policies may import.
    pub plain: Linker<Sandbox>,
    /// `plain` plus `docker` and `kubernetes`, which refuse unless granted: discovery sources.
    pub discovery: Linker<Sandbox>,
    _ticker: Ticker,
}

impl Runtime {
    pub fn new(options: &HostOptions) -> wasmtime::Result<Self> {
        // Resetting memory with PAGEMAP_SCAN (Linux 6.7+) halves the cost of a fresh instance;
        // asked for as `Yes`, engine creation fails where the kernel lacks it, and the host
        // falls back to wasmtime's madvise reset.
        let (engine, reset) = match Engine::new(&engine_config(options, MemoryReset::PagemapScan)) {
            Ok(engine) => (engine, MemoryReset::PagemapScan),
            Err(_) => (
                Engine::new(&engine_config(options, MemoryReset::Madvise))?,
                MemoryReset::Madvise,
            ),
        };
        tracing::debug!(?reset, fuel = options.fuel, "plugin engine ready");
        let mut plain = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut plain)?;
        // Every supported WIT version side by side: `host@0.1.0` and `host@0.2.0` are distinct
        // names, so one linker serves plugins of either version.
        wit::host::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut plain, |s| s)?;
        wit2::host::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut plain, |s| s)?;
        let mut discovery = plain.clone();
        wit2_calls::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut plain, |s| s)?;
        wit::docker::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut discovery, |s| s)?;
        wit::kubernetes::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut discovery, |s| s)?;
        wit2::docker::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut discovery, |s| s)?;
        wit2::kubernetes::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut discovery, |s| s)?;
        let ticker = Ticker::start(engine.clone());
        Ok(Self {
            engine,
            fuel: options.fuel,
            reset,
            plain,
            discovery,
            _ticker: ticker,
        })
    }
}

/// How a pooled memory slot is made clean for its next instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MemoryReset {
    /// Ask the kernel which pages the last instance dirtied and reset only those, keeping them
    /// resident (no page faults next time). ~10 µs per validator call here.
    PagemapScan,
    /// Give the pages back with madvise; the next instance faults them in again. ~20 µs.
    Madvise,
}

fn engine_config(options: &HostOptions, reset: MemoryReset) -> Config {
    let mut config = Config::new();
    // Deadlines: every store arms an epoch deadline one tick ahead and its callback checks the
    // wall clock (sandbox::arm). Epochs cost a load and compare per loop header and call;
    // fuel costs more, hence only on demand.
    config.epoch_interruption(true);
    config.consume_fuel(options.fuel);
    config.wasm_component_model(true);
    config.cranelift_opt_level(OptLevel::Speed);
    // Compiling a plugin happens off the async threads (spawn_blocking); spreading it over
    // the cores keeps a hot swap short.
    config.parallel_compilation(true);
    // The guest stack: wasmtime's default (512 KiB) is plenty for validators; a deeper
    // recursion traps with "call stack exhausted" (PluginErrorKind::Trap).
    config.max_wasm_stack(512 << 10);
    // Every call runs on a fiber (async calls), whose stack must hold the guest stack plus
    // the host frames of WASI calls: wasmtime's default of 2 MiB, committed only as touched.
    config.async_stack_size(2 << 20);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(options, reset)));
    config
}

/// The pooling allocator: memories, tables, instances and fiber stacks come from slots
/// reserved once, so a fresh instance per validator call costs microseconds, not an mmap.
fn pooling(options: &HostOptions, reset: MemoryReset) -> PoolingAllocationConfig {
    let live = options.max_live_instances;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(live);
    // Core instances per component, measured: a Rust wasm32-wasip2 plugin instantiates 3
    // modules (the program and the shims that wire its imports), a componentize-js one 4,
    // and a componentize-py one 14, because CPython is dynamically linked from libc,
    // libpython, its runtime and the WASI adapter, each a module of its own; every native
    // extension an author bundles adds one more. 16 would leave a Python plugin room for two.
    // The cap only rejects a component at load (a count, no memory is reserved per slot:
    // metadata is bounded by `max_component_instance_size`, 1 MiB, per live instance), so it
    // is set for Python plugins with a few native extensions.
    pool.max_core_instances_per_component(64);
    // A counter too: as many as every live component at the cap, so `max_live_instances` is
    // the one limit a burst of calls meets (and `Busy` names), whatever the plugins' language.
    pool.total_core_instances(live.saturating_mul(64));
    // One linear memory per component for Rust, C, componentize-py and componentize-js
    // (measured: their modules share the one memory); two is headroom. Every live component
    // could have its memory at once.
    pool.max_memories_per_component(2);
    pool.total_memories(live);
    // The config allows `memory_mb` up to 4096, so a slot must be able to hold 4 GiB; each
    // plugin's own cap is enforced per store (sandbox::Limiter). Slots are virtual address
    // space (4 GiB + guard each, ~4 TiB for 1 000 slots of the 128 TiB a process has):
    // nothing is committed until a plugin touches its pages. An interpreter starts big:
    // componentize-py's memory image is 12.4 MiB, componentize-js's 9 MiB, so those need a
    // `memory_mb` of 16 at least (the guides say so); Rust plugins start at about 1 MiB.
    pool.max_memory_size(4 << 30);
    // Tables per component, measured: two for Rust, Python and JS plugins alike (the
    // program's function table and the shim's); four is headroom.
    pool.max_tables_per_component(4);
    pool.total_tables(live.saturating_mul(4));
    // Function tables: a Rust plugin needs under a hundred, CPython 5 672, SpiderMonkey 7 690.
    // 20 000 is wasmtime's default, costs 160 KiB of address space per slot, and leaves an
    // interpreter room for native extensions (sandbox::TABLE_ELEMENTS caps growth the same).
    pool.table_elements(20_000);
    // One fiber stack per call in flight (every call is async).
    pool.total_stacks(live);
    // Slots kept warm (their pages resident, their module's image mapped) for the next
    // instance of the same plugin. Calls in flight at once per plugin rarely exceed the
    // worker count; 32 bounds the memory kept for reuse at 32 × what a plugin dirtied
    // (at most `keep_resident` each with PAGEMAP_SCAN).
    pool.max_unused_warm_slots(32);
    match reset {
        MemoryReset::PagemapScan => {
            // Only dirtied pages are reset (memset / image copy), up to 4 MiB of each memory
            // (a Rust plugin's stack, data and working heap); anything past it is madvised.
            pool.pagemap_scan(Enabled::Yes);
            pool.linear_memory_keep_resident(4 << 20);
            pool.table_keep_resident(64 << 10);
        }
        MemoryReset::Madvise => {
            // Without PAGEMAP_SCAN, keep-resident means a memset of the whole kept region on
            // every reuse: 1 MiB of it made a validator call 35 µs instead of 20 µs here.
            pool.pagemap_scan(Enabled::No);
            pool.linear_memory_keep_resident(0);
            pool.table_keep_resident(0);
        }
    }
    pool
}

/// Increments the engine's epoch every `TICK` on a thread of its own (not a tokio task: it
/// must keep ticking when every worker is busy, which is exactly when a runaway plugin must
/// be stopped).
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        if thread.is_none() {
            tracing::error!(
                "could not start the plugin epoch thread: plugin calls will be bounded only by \
                 their async backstop timeout"
            );
        }
        Self { stop, thread }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_memory_reset_configs_make_an_engine_where_the_kernel_allows() {
        let options = HostOptions::default();
        assert!(Engine::new(&engine_config(&options, MemoryReset::Madvise)).is_ok());
        // PAGEMAP_SCAN may be missing (old kernel, not Linux): then `Runtime::new` falls back.
        let runtime = Runtime::new(&options).expect("a runtime starts either way");
        let pagemap = Engine::new(&engine_config(&options, MemoryReset::PagemapScan)).is_ok();
        assert_eq!(runtime.reset == MemoryReset::PagemapScan, pagemap);
    }
}
