//! The per-store state: the host imports (`log`, `monotonic-now`, `random`), an empty WASI
//! context for components that import WASI, and the memory limiter.

use std::sync::Arc;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

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
    /// Origin of `monotonic-now`: shared by all instances of a host so readings compare.
    clock_origin: Instant,
    /// During replay, the recorded time; `monotonic-now` returns it instead of the clock.
    pub(crate) fixed_now_ns: Option<u64>,
    rng: SmallRng,
}

impl HostState {
    pub(crate) fn new(
        name: Arc<str>,
        memory_bytes: usize,
        clock_origin: Instant,
        rng_seed: u64,
    ) -> Self {
        // Nothing granted: no preopened directories, no network, no environment, no
        // arguments; stdio goes nowhere. Only what WASI needs to start a language runtime.
        let wasi = WasiCtx::builder().build();
        Self {
            name,
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter::new(memory_bytes),
            clock_origin,
            fixed_now_ns: None,
            rng: SmallRng::seed_from_u64(rng_seed),
        }
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

    fn monotonic_now(&mut self) -> u64 {
        match self.fixed_now_ns {
            Some(ns) => ns,
            None => u64::try_from(self.clock_origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
        }
    }

    fn random(&mut self) -> u64 {
        self.rng.next_u64()
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
