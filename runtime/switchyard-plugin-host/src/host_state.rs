//! The per-store state: the host imports (`log`, `monotonic-now`, `random`), a WASI context
//! that grants nothing for components that import WASI, and the memory limiter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use wasi_rand::SeedableRng as _;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{HostImports, LogLevel, TypesImports};

/// Longest log line kept from a plugin; the rest is cut so a plugin cannot flood the log.
const MAX_LOG_LINE: usize = 1024;

/// Data owned by one wasmtime `Store`, i.e. by one plugin instance.
pub(crate) struct HostState {
    /// Plugin name, for log lines.
    name: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    /// `monotonic-now` and WASI's clocks; its origin is shared by all instances of a host so
    /// their readings compare.
    pub(crate) clock: PluginClock,
    rng: SmallRng,
}

impl HostState {
    pub(crate) fn new(
        name: Arc<str>,
        memory_bytes: usize,
        clock_origin: Instant,
        rng_seed: u64,
    ) -> Self {
        let clock = PluginClock::new(clock_origin);
        // Nothing granted: no preopened directories, no network, no environment, no
        // arguments; stdio goes nowhere. Only what WASI needs to start a language runtime.
        // WASI's clocks read the host clock and its random numbers come from the store's seed,
        // so a plugin that reaches for them still decides the same way on replay.
        let wasi = WasiCtx::builder()
            .monotonic_clock(clock.clone())
            .wall_clock(clock.clone())
            .secure_random(wasi_rand::rngs::StdRng::seed_from_u64(
                rng_seed ^ SECURE_SALT,
            ))
            .insecure_random(wasi_rand::rngs::StdRng::seed_from_u64(
                rng_seed ^ INSECURE_SALT,
            ))
            .insecure_random_seed(u128::from(rng_seed))
            .build();
        Self {
            name,
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter::new(memory_bytes),
            clock,
            rng: SmallRng::seed_from_u64(rng_seed),
        }
    }

    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

/// Different streams from one store seed for the host import and each WASI source.
const SECURE_SALT: u64 = 0x5EC0_2E5E_ED00_0001;
const INSECURE_SALT: u64 = 0x1D5E_C02E_5EED_0002;

/// The only clock a plugin sees: nanoseconds since the host started, or, during replay, the
/// recorded time of the decision. `host.monotonic-now`, `wasi:clocks/monotonic-clock` and
/// `wasi:clocks/wall-clock` all read it (the wall clock as if the host had started at the
/// epoch: a routing decision has no use for the date, and replay needs every clock pinned).
#[derive(Clone)]
pub(crate) struct PluginClock {
    origin: Instant,
    /// The pinned reading, or [`LIVE`]. Shared with the clones WASI holds.
    fixed_ns: Arc<AtomicU64>,
}

const LIVE: u64 = u64::MAX;

impl PluginClock {
    fn new(origin: Instant) -> Self {
        Self {
            origin,
            fixed_ns: Arc::new(AtomicU64::new(LIVE)),
        }
    }

    /// Pins the clock to `now_ns` for the next call (`None`: the real clock).
    pub(crate) fn pin(&self, now_ns: Option<u64>) {
        // `u64::MAX` itself cannot be pinned; it reads as one nanosecond earlier.
        let value = now_ns.map_or(LIVE, |ns| ns.min(LIVE - 1));
        self.fixed_ns.store(value, Ordering::Relaxed);
    }

    pub(crate) fn now_ns(&self) -> u64 {
        match self.fixed_ns.load(Ordering::Relaxed) {
            LIVE => u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(LIVE - 1),
            pinned => pinned,
        }
    }
}

impl HostMonotonicClock for PluginClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.now_ns()
    }
}

impl HostWallClock for PluginClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(self.now_ns())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl TypesImports for HostState {}

impl HostImports for HostState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.write_log(level, message);
    }

    fn monotonic_now(&mut self) -> u64 {
        self.clock.now_ns()
    }

    fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }
}

// The 0.2.0 imports are the same three functions.
impl crate::bindings_v02::TypesImports for HostState {}

impl crate::bindings_v02::HostImports for HostState {
    fn log(&mut self, level: crate::bindings_v02::LogLevel, message: String) {
        use crate::bindings_v02::LogLevel as V02;
        let level = match level {
            V02::Trace => LogLevel::Trace,
            V02::Debug => LogLevel::Debug,
            V02::Info => LogLevel::Info,
            V02::Warn => LogLevel::Warn,
            V02::Error => LogLevel::Error,
        };
        self.write_log(level, message);
    }

    fn monotonic_now(&mut self) -> u64 {
        self.clock.now_ns()
    }

    fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }
}

impl HostState {
    /// `host.log`: truncated to [`MAX_LOG_LINE`], tagged with the plugin name.
    fn write_log(&mut self, level: LogLevel, message: String) {
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let plugin = &*self.name;
        match level {
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// `StoreLimits` (memory cap, trap on grow failure) plus a flag recording that the cap was
/// hit, so a memory-limit trap can be told apart from any other trap.
pub(crate) struct Limiter {
    inner: StoreLimits,
    pub(crate) limit_bytes: usize,
    pub(crate) memory_exceeded: bool,
}

impl Limiter {
    fn new(limit_bytes: usize) -> Self {
        let inner = StoreLimitsBuilder::new()
            .memory_size(limit_bytes)
            .trap_on_grow_failure(true)
            // Language runtimes (Python, JS) use a handful of core instances, tables and memories.
            .instances(256)
            .tables(256)
            .memories(32)
            .build();
        Self {
            inner,
            limit_bytes,
            memory_exceeded: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) && desired > self.limit_bytes {
            self.memory_exceeded = true;
        }
        allowed
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
