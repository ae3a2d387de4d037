//! [`LoadedPlugin`]: a compiled component, its `InstancePre`, and a pool of ready instances.
//! Every decision checks out an instance, runs under the epoch deadline, validates the
//! answer and returns the instance, unless it trapped, in which case it is dropped and the
//! next call instantiates a fresh one.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre};

use crate::exports::ExportIndices;
use crate::host_state::HostState;
use crate::instance::{classify, InstanceSpec, PluginInstance};
use crate::{
    detect, validate, Candidate, Error, Observation, PluginHost, PluginKind, PluginLimits, Request,
    Result, Topology, Verdict, WitVersion,
};

/// A plugin ready to make decisions. Cheap to clone (shared); safe to call from many threads
/// at once (each caller gets its own instance). Swapping plugins is swapping `LoadedPlugin`s:
/// calls in progress keep the one they started with.
#[derive(Clone)]
pub struct LoadedPlugin {
    inner: Arc<Shared>,
}

struct Shared {
    host: PluginHost,
    name: Arc<str>,
    sha256: String,
    kinds: Vec<PluginKind>,
    version: WitVersion,
    limits: PluginLimits,
    config_json: String,
    pre: InstancePre<HostState>,
    indices: ExportIndices,
    decision_ticks: u64,
    init_ticks: u64,
    idle: Mutex<Vec<PluginInstance>>,
    topology: RwLock<Option<CurrentTopology>>,
    /// Copy of the current topology's `seq`, so the per-call "is this instance up to date?"
    /// check is one atomic load instead of a lock.
    topology_seq: AtomicU64,
    stats: Counters,
}

struct CurrentTopology {
    /// Host-side sequence number; instances compare it with what they last saw.
    seq: u64,
    topology: Arc<Topology>,
    ids: Arc<HashSet<u32>>,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    faults: AtomicU64,
    instantiations: AtomicU64,
    discarded: AtomicU64,
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PluginStats {
    /// Decision calls made (including failed ones).
    pub calls: u64,
    /// Calls that ended in a plugin fault ([`Error::is_plugin_fault`]).
    pub faults: u64,
    /// Instances created (the first one at load included).
    pub instantiations: u64,
    /// Instances thrown away after a trap, timeout or memory-limit hit.
    pub discarded: u64,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.inner.name)
            .field("sha256", &self.inner.sha256)
            .field("kinds", &self.inner.kinds)
            .field("wit_version", &self.inner.version)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    pub(crate) fn new(
        host: PluginHost,
        name: &str,
        bytes: &[u8],
        component: Component,
        limits: PluginLimits,
        config_json: &str,
    ) -> Result<Self> {
        let (version, kinds) = detect::world_of(&host.inner.linker, &component)?;
        let pre = host
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| Error::NotAPlugin(format!("{e:#}")))?;
        let indices = ExportIndices::new(&pre, version, &kinds)?;
        let tick = host.inner.config.epoch_tick;
        let config_json = if config_json.trim().is_empty() {
            "{}"
        } else {
            config_json
        };
        let plugin = Self {
            inner: Arc::new(Shared {
                name: Arc::from(name),
                sha256: sha256_hex(bytes),
                kinds,
                version,
                decision_ticks: PluginLimits::ticks(limits.decision_budget, tick),
                init_ticks: PluginLimits::ticks(limits.init_budget, tick),
                limits,
                config_json: config_json.to_owned(),
                pre,
                indices,
                idle: Mutex::new(Vec::new()),
                topology: RwLock::new(None),
                topology_seq: AtomicU64::new(0),
                stats: Counters::default(),
                host,
            }),
        };
        // Instantiate and configure once now, so a bad component or config fails the load
        // rather than the first request; the instance then serves that first request.
        let first = plugin.instantiate()?;
        plugin.inner.idle.lock().push(first);
        Ok(plugin)
    }

    /// The name given at load (used in logs).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Lower-case hex SHA-256 of the component bytes.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// The kinds the component implements (see [`crate::detect_kinds`]).
    pub fn kinds(&self) -> &[PluginKind] {
        &self.inner.kinds
    }

    /// The WIT package version the component was built against.
    pub fn wit_version(&self) -> WitVersion {
        self.inner.version
    }

    /// Whether the component implements `kind`.
    pub fn implements(&self, kind: PluginKind) -> bool {
        self.inner.kinds.contains(&kind)
    }

    /// The limits it runs under.
    pub fn limits(&self) -> &PluginLimits {
        &self.inner.limits
    }

    /// Counters since load.
    pub fn stats(&self) -> PluginStats {
        let s = &self.inner.stats;
        PluginStats {
            calls: s.calls.load(Ordering::Relaxed),
            faults: s.faults.load(Ordering::Relaxed),
            instantiations: s.instantiations.load(Ordering::Relaxed),
            discarded: s.discarded.load(Ordering::Relaxed),
        }
    }

    /// Delivers a new instance set. One pooled instance receives it now (so a plugin that
    /// traps on it fails here); the others receive it before their next decision.
    pub fn on_topology(&self, topology: Topology) -> Result<()> {
        let ids: HashSet<u32> = topology.instances.iter().map(|i| i.id).collect();
        {
            let mut current = self.inner.topology.write();
            let seq = current.as_ref().map_or(1, |c| c.seq + 1);
            self.inner.topology_seq.store(seq, Ordering::Release);
            *current = Some(CurrentTopology {
                seq,
                topology: Arc::new(topology),
                ids: Arc::new(ids),
            });
        }
        self.with_instance(None, |_| Ok(()))
    }

    /// Runs a filter: the positions of the candidates that stay eligible (validated: in range,
    /// no duplicates; may be empty).
    pub fn filter(&self, request: &Request, candidates: &[Candidate]) -> Result<Vec<usize>> {
        self.filter_at(request, candidates, None)
    }

    /// Runs a scorer: exactly one finite score per candidate, higher is better.
    pub fn score(&self, request: &Request, candidates: &[Candidate]) -> Result<Vec<f64>> {
        self.score_at(request, candidates, None)
    }

    /// Runs a picker: candidate positions from best to worst (validated: in range, no
    /// duplicates, at least one when there are candidates; may rank only a prefix).
    pub fn pick(&self, request: &Request, candidates: &[Candidate]) -> Result<Vec<usize>> {
        self.pick_at(request, candidates, None)
    }

    /// Runs a health policy on the observations made since the last call: verdicts (at most
    /// one per instance, only for instances of the current topology when one was delivered).
    pub fn assess(&self, observations: &[Observation]) -> Result<Vec<Verdict>> {
        self.assess_at(observations, None)
    }

    pub(crate) fn filter_at(
        &self,
        request: &Request,
        candidates: &[Candidate],
        now_ns: Option<u64>,
    ) -> Result<Vec<usize>> {
        self.decide(
            PluginKind::Filter,
            now_ns,
            |inst| inst.exports.filter(&mut inst.store, request, candidates),
            |raw| validate::indices("filter", raw, candidates.len(), false),
        )
    }

    pub(crate) fn score_at(
        &self,
        request: &Request,
        candidates: &[Candidate],
        now_ns: Option<u64>,
    ) -> Result<Vec<f64>> {
        self.decide(
            PluginKind::Scorer,
            now_ns,
            |inst| inst.exports.score(&mut inst.store, request, candidates),
            |raw| validate::scores(raw, candidates.len()),
        )
    }

    pub(crate) fn pick_at(
        &self,
        request: &Request,
        candidates: &[Candidate],
        now_ns: Option<u64>,
    ) -> Result<Vec<usize>> {
        self.decide(
            PluginKind::Picker,
            now_ns,
            |inst| inst.exports.pick(&mut inst.store, request, candidates),
            |raw| validate::indices("picker", raw, candidates.len(), true),
        )
    }

    pub(crate) fn assess_at(
        &self,
        observations: &[Observation],
        now_ns: Option<u64>,
    ) -> Result<Vec<Verdict>> {
        let known = self
            .inner
            .topology
            .read()
            .as_ref()
            .map(|c| Arc::clone(&c.ids));
        self.decide(
            PluginKind::HealthPolicy,
            now_ns,
            |inst| inst.exports.assess(&mut inst.store, observations),
            |raw| validate::verdicts(raw, known.as_deref()),
        )
    }

    /// Common path of every decision: kind check, instance checkout, deadline, error
    /// classification, output validation, counters.
    fn decide<Raw, Out>(
        &self,
        kind: PluginKind,
        now_ns: Option<u64>,
        call: impl FnOnce(&mut PluginInstance) -> Result<wasmtime::Result<Raw>>,
        check: impl FnOnce(Raw) -> Result<Out>,
    ) -> Result<Out> {
        if !self.implements(kind) {
            return Err(Error::KindNotImplemented(kind));
        }
        let stats = &self.inner.stats;
        stats.calls.fetch_add(1, Ordering::Relaxed);
        let budget = self.inner.limits.decision_budget;
        let ticks = self.inner.decision_ticks;
        let result = self
            .with_instance(now_ns, |inst| {
                inst.store.set_epoch_deadline(ticks);
                match call(inst)? {
                    Ok(value) => Ok(value),
                    Err(e) => Err(classify(&inst.store, e, budget)),
                }
            })
            .and_then(check);
        if result.as_ref().is_err_and(Error::is_plugin_fault) {
            stats.faults.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Checks out an instance (creating one if none is idle), brings it up to date with the
    /// topology, runs `f`, and returns the instance to the pool unless the call poisoned it.
    fn with_instance<R>(
        &self,
        now_ns: Option<u64>,
        f: impl FnOnce(&mut PluginInstance) -> Result<R>,
    ) -> Result<R> {
        let pooled = self.inner.idle.lock().pop();
        let mut inst = match pooled {
            Some(inst) => inst,
            None => self.instantiate()?,
        };
        inst.store.data().clock.pin(now_ns);
        let result = self.sync_topology(&mut inst).and_then(|()| f(&mut inst));
        match &result {
            Err(e) if e.poisons_instance() => {
                // wasmtime will not enter a trapped instance again, and its memory may be
                // half-updated: drop it; the next call instantiates a fresh one.
                self.inner.stats.discarded.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(plugin = &*self.inner.name, error = %e, "discarding plugin instance");
            }
            _ => {
                let mut idle = self.inner.idle.lock();
                if idle.len() < self.inner.limits.max_idle_instances {
                    idle.push(inst);
                }
            }
        }
        result
    }

    fn sync_topology(&self, inst: &mut PluginInstance) -> Result<()> {
        if inst.topology_seq == self.inner.topology_seq.load(Ordering::Acquire) {
            return Ok(());
        }
        let current = {
            let guard = self.inner.topology.read();
            match guard.as_ref() {
                Some(c) if c.seq != inst.topology_seq => (c.seq, Arc::clone(&c.topology)),
                _ => return Ok(()),
            }
        };
        inst.sync_topology(
            current.0,
            &current.1,
            self.inner.init_ticks,
            self.inner.limits.init_budget,
        )
    }

    fn instantiate(&self) -> Result<PluginInstance> {
        let s = &self.inner;
        let host = &s.host.inner;
        let spec = InstanceSpec {
            pre: &s.pre,
            indices: &s.indices,
            name: Arc::clone(&s.name),
            memory_bytes: usize::try_from(s.limits.memory_bytes).unwrap_or(usize::MAX),
            init_budget: s.limits.init_budget,
            init_ticks: s.init_ticks,
            config_json: &s.config_json,
            seed: s.host.next_seed(),
            clock_origin: host.clock_origin,
        };
        s.stats.instantiations.fetch_add(1, Ordering::Relaxed);
        PluginInstance::create(&spec)
    }

    /// Creates, configures and drops one instance without touching the pool: what a fault
    /// costs the next call. For benchmarks and health checks.
    pub fn instantiate_fresh(&self) -> Result<()> {
        self.instantiate().map(drop)
    }

    /// Number of idle pooled instances (for tests and the admin view).
    pub fn idle_instances(&self) -> usize {
        self.inner.idle.lock().len()
    }

    /// Budget per decision, for callers that report it.
    pub fn decision_budget(&self) -> Duration {
        self.inner.limits.decision_budget
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
