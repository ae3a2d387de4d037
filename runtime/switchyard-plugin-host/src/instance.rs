//! One live plugin instance: a wasmtime `Store` plus handles to the exports it implements
//! (`exports.rs`). Creating one (from the plugin's `InstancePre`) and turning wasmtime errors
//! into typed [`Error`]s live here.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap};

use crate::exports::{ExportIndices, Exports};
use crate::host_state::HostState;
use crate::{Error, Result, Topology};

/// A ready instance: configured, and up to date with topology `topology_seq`.
pub(crate) struct PluginInstance {
    pub(crate) store: Store<HostState>,
    pub(crate) exports: Exports,
    pub(crate) topology_seq: u64,
}

/// What [`PluginInstance::create`] needs from the plugin.
pub(crate) struct InstanceSpec<'a> {
    pub(crate) pre: &'a InstancePre<HostState>,
    pub(crate) indices: &'a ExportIndices,
    pub(crate) name: Arc<str>,
    pub(crate) memory_bytes: usize,
    pub(crate) init_budget: Duration,
    pub(crate) init_ticks: u64,
    pub(crate) config_json: &'a str,
    pub(crate) seed: u64,
    pub(crate) clock_origin: std::time::Instant,
}

impl PluginInstance {
    /// Instantiates, then calls `configure`. Any failure is [`Error::Instantiate`] except a
    /// refused configuration ([`Error::ConfigRejected`]).
    pub(crate) fn create(spec: &InstanceSpec<'_>) -> Result<Self> {
        let state = HostState::new(
            Arc::clone(&spec.name),
            spec.memory_bytes,
            spec.clock_origin,
            spec.seed,
        );
        let mut store = Store::new(spec.pre.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(spec.init_ticks);
        let failed = |store: &Store<HostState>, e: wasmtime::Error| {
            Error::Instantiate(classify(store, e, spec.init_budget).to_string())
        };
        let instance = match spec.pre.instantiate(&mut store) {
            Ok(instance) => instance,
            Err(e) => return Err(failed(&store, e)),
        };
        let loaded = spec.indices.load(&mut store, &instance);
        let exports = match loaded {
            Ok(exports) => exports,
            Err(e) => return Err(failed(&store, e)),
        };
        store.set_epoch_deadline(spec.init_ticks);
        match exports.configure(&mut store, spec.config_json) {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(Error::ConfigRejected(message)),
            Err(e) => return Err(failed(&store, e)),
        }
        Ok(Self {
            store,
            exports,
            topology_seq: 0,
        })
    }

    /// Delivers `topology` if this instance has not seen sequence number `seq` yet.
    pub(crate) fn sync_topology(
        &mut self,
        seq: u64,
        topology: &Topology,
        ticks: u64,
        budget: Duration,
    ) -> Result<()> {
        if self.topology_seq == seq {
            return Ok(());
        }
        self.store.set_epoch_deadline(ticks);
        self.exports
            .on_topology(&mut self.store, topology)
            .map_err(|e| classify(&self.store, e, budget))?;
        self.topology_seq = seq;
        Ok(())
    }
}

/// Turns a wasmtime error from a call into the matching typed error.
pub(crate) fn classify(store: &Store<HostState>, e: wasmtime::Error, budget: Duration) -> Error {
    let limiter = &store.data().limiter;
    if limiter.memory_exceeded {
        return Error::MemoryLimit {
            limit_bytes: limiter.limit_bytes,
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Error::Timeout { budget },
        Some(trap) => Error::Trap(trap.to_string()),
        None => {
            // Not a wasm trap (e.g. a host-side error): keep the whole chain but bound it.
            let mut message = format!("{e:#}");
            message.truncate(message.floor_char_boundary(512));
            Error::Trap(message)
        }
    }
}
