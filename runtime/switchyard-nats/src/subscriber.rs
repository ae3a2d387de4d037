//! The frontend side: KV events into the index, load snapshots into a table.
//!
//! Per instance the subscriber tracks `(epoch, last seq)`. A message continues the stream when
//! it has the same epoch and `seq = last + 1`; anything else (first contact, a skipped number,
//! a new epoch after a worker restart) starts a *resync*: request a dump, buffer the
//! instance's messages meanwhile, replace the instance's index entries with the dump, then
//! replay the buffered messages newer than the dump's `seq`. A reconnect to NATS resyncs every
//! known instance, since anything published during the outage is lost.
//!
//! While disconnected, [`Subscriber::connected`] is false: the frontend should route on load
//! only (the index may be stale), and load snapshots expire on their own.
//!
//! State is kept only for ids discovery knows ([`Subscriber::set_members`]); others get a
//! grace period and a capped number of places (see `members.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use parking_lot::RwLock;
use switchyard_kv::SharedKvIndex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::dump::{self, Dump};
use crate::inbound::{self, Reject, RejectCounters};
use crate::members::Members;
use crate::wire::{KvEventsMessage, LoadMessage, LoadSnapshot};
use crate::{subjects, NatsConnection, Result};

/// Tunables; defaults suit production, tests shorten them.
#[derive(Debug, Clone)]
pub struct SubscriberConfig {
    /// How long to wait for a complete dump.
    pub dump_timeout: Duration,
    /// After a failed dump, wait this long before asking that instance again.
    pub dump_retry: Duration,
    /// A load snapshot older than this is ignored (the worker stopped publishing).
    pub load_ttl: Duration,
    /// Messages buffered per instance during a resync before the buffer is dropped and the
    /// resync restarted (bounds memory when a worker never answers).
    pub max_buffered: usize,
    /// The same bound in payload bytes: a few huge messages weigh as much as many small ones.
    pub max_buffered_bytes: usize,
    /// How long an id that discovery does not list is tracked from its first message.
    pub stranger_grace: Duration,
    /// At most this many such ids are tracked (or remembered as ignored) at a time.
    pub max_strangers: usize,
}

impl Default for SubscriberConfig {
    fn default() -> Self {
        Self {
            dump_timeout: Duration::from_secs(3),
            dump_retry: Duration::from_secs(2),
            load_ttl: Duration::from_secs(5),
            max_buffered: 10_000,
            max_buffered_bytes: 8 << 20,
            stranger_grace: Duration::from_secs(30),
            max_strangers: 64,
        }
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Event messages applied to the index.
    pub applied: u64,
    /// Sequence gaps (and epoch changes) detected.
    pub gaps: u64,
    pub dumps_requested: u64,
    pub dumps_applied: u64,
    pub dumps_failed: u64,
    /// Resyncs of every instance after a NATS reconnect.
    pub reconnect_resyncs: u64,
    /// Messages dropped because their id is not tracked (not in discovery past its grace
    /// period, over the stranger cap) or their sequence number is unusable.
    pub ignored: u64,
    /// Messages dropped as malformed or hostile, by reason (see [`inbound`]).
    pub rejected: [(&'static str, u64); Reject::ALL.len()],
}

#[derive(Default)]
struct Counters {
    applied: AtomicU64,
    gaps: AtomicU64,
    dumps_requested: AtomicU64,
    dumps_applied: AtomicU64,
    dumps_failed: AtomicU64,
    reconnect_resyncs: AtomicU64,
    ignored: AtomicU64,
}

struct Shared {
    loads: RwLock<HashMap<String, (LoadSnapshot, Instant)>>,
    counters: Counters,
    rejected: RejectCounters,
}

enum Cmd {
    Forget(String),
    Resync(String),
    Members(HashSet<String>),
}

/// Handle to the running subscriber. Dropping it stops the subscriber.
pub struct Subscriber {
    conn: NatsConnection,
    index: SharedKvIndex,
    shared: Arc<Shared>,
    cfg: SubscriberConfig,
    cmd: mpsc::UnboundedSender<Cmd>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("connected", &self.connected())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Subscriber {
    /// Subscribes to every instance's KV events and load snapshots, feeding `index`.
    pub async fn start(
        conn: &NatsConnection,
        index: SharedKvIndex,
        cfg: SubscriberConfig,
    ) -> Result<Self> {
        let kv = conn.client.subscribe(subjects::all(subjects::KV)).await?;
        let load = conn.client.subscribe(subjects::all(subjects::LOAD)).await?;
        conn.settle().await;
        let shared = Arc::new(Shared {
            loads: RwLock::new(HashMap::new()),
            counters: Counters::default(),
            rejected: RejectCounters::default(),
        });
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(
            Worker {
                conn: conn.clone(),
                index: index.clone(),
                shared: shared.clone(),
                members: Members::new(cfg.stranger_grace, cfg.max_strangers),
                cfg: cfg.clone(),
                instances: HashMap::new(),
            }
            .run(kv, load, cmd_rx),
        );
        Ok(Self {
            conn: conn.clone(),
            index,
            shared,
            cfg,
            cmd,
            task,
        })
    }

    /// Whether events are flowing. When false, route on load only.
    pub fn connected(&self) -> bool {
        self.conn.is_connected()
    }

    pub fn index(&self) -> &SharedKvIndex {
        &self.index
    }

    /// The instance's latest load snapshot, unless older than the load TTL.
    pub fn load(&self, instance: &str) -> Option<LoadSnapshot> {
        let loads = self.shared.loads.read();
        let (load, at) = loads.get(instance)?;
        (at.elapsed() < self.cfg.load_ttl).then_some(*load)
    }

    /// Drops an instance that left discovery (index entries and load).
    pub fn forget(&self, instance: &str) {
        let _ = self.cmd.send(Cmd::Forget(instance.to_string()));
    }

    /// The instance ids discovery currently lists. Call whenever the set changes: ids that
    /// left are forgotten at once, and ids not listed are only tracked for
    /// [`SubscriberConfig::stranger_grace`]. Until the first call every id is tracked.
    pub fn set_members(&self, ids: HashSet<String>) {
        let _ = self.cmd.send(Cmd::Members(ids));
    }

    /// Asks for a dump of `instance` now (e.g. when discovery reports a new instance).
    pub fn resync(&self, instance: &str) {
        let _ = self.cmd.send(Cmd::Resync(instance.to_string()));
    }

    /// Stops processing messages (what dropping the last handle does), for owners that
    /// share the handle.
    pub fn stop(&self) {
        self.task.abort();
    }

    pub fn stats(&self) -> SubscriberStats {
        let c = &self.shared.counters;
        SubscriberStats {
            applied: c.applied.load(Ordering::Relaxed),
            gaps: c.gaps.load(Ordering::Relaxed),
            dumps_requested: c.dumps_requested.load(Ordering::Relaxed),
            dumps_applied: c.dumps_applied.load(Ordering::Relaxed),
            dumps_failed: c.dumps_failed.load(Ordering::Relaxed),
            reconnect_resyncs: c.reconnect_resyncs.load(Ordering::Relaxed),
            ignored: c.ignored.load(Ordering::Relaxed),
            rejected: self.shared.rejected.snapshot(),
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the subscriber knows about one instance's event stream.
enum Stream {
    /// Applying messages as they come.
    InSync { epoch: u64, seq: u64 },
    /// A dump is in flight; messages wait here.
    Resyncing { buffer: Buffer },
    /// The last dump failed; don't ask again before `retry_at`.
    Failed { retry_at: Instant },
}

/// Messages waiting for a dump, with their payload sizes: bounded by count and by bytes
/// ([`SubscriberConfig::max_buffered`], [`SubscriberConfig::max_buffered_bytes`]).
#[derive(Default)]
struct Buffer {
    messages: Vec<(KvEventsMessage, usize)>,
    bytes: usize,
}

impl Buffer {
    fn push(&mut self, m: KvEventsMessage, size: usize) {
        self.bytes = self.bytes.saturating_add(size);
        self.messages.push((m, size));
    }

    fn clear(&mut self) {
        self.messages.clear();
        self.bytes = 0;
    }

    fn len(&self) -> usize {
        self.messages.len()
    }
}

struct Worker {
    conn: NatsConnection,
    index: SharedKvIndex,
    shared: Arc<Shared>,
    cfg: SubscriberConfig,
    members: Members,
    instances: HashMap<String, Stream>,
}

type DumpResult = (String, Result<Dump>);

impl Worker {
    async fn run(
        mut self,
        mut kv: async_nats::Subscriber,
        mut load: async_nats::Subscriber,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
    ) {
        let (dump_tx, mut dumps) = mpsc::unbounded_channel::<DumpResult>();
        let mut state = self.conn.watch_state();
        let mut connects = state.borrow_and_update().connects;
        // Failed dumps are retried on this tick even if the instance stays silent.
        // The same tick expires strangers past their grace period.
        let period = self.cfg.dump_retry.min(self.cfg.stranger_grace);
        let mut retry = tokio::time::interval(period.max(Duration::from_millis(10)));
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = retry.tick() => {
                    for id in self.members.sweep(Instant::now()) {
                        tracing::debug!(instance = %id, "not in discovery after the grace period; dropping its KV state");
                        self.forget(&id);
                    }
                    self.retry_failed(&dump_tx);
                }
                Some(msg) = kv.next() => match inbound::kv_message(&msg.subject, &msg.payload) {
                    Ok(m) => self.on_kv(m, msg.payload.len(), &dump_tx),
                    Err(reason) => self.reject(&msg.subject, reason),
                },
                Some(msg) = load.next() => match inbound::load_message(&msg.subject, &msg.payload) {
                    Ok(m) => self.on_load(m, &dump_tx),
                    Err(reason) => self.reject(&msg.subject, reason),
                },
                Some((instance, result)) = dumps.recv() => self.on_dump(instance, result, &dump_tx),
                Some(cmd) = cmds.recv() => match cmd {
                    Cmd::Forget(id) => self.forget(&id),
                    Cmd::Resync(id) => self.start_resync(id, Buffer::default(), &dump_tx),
                    Cmd::Members(ids) => {
                        let tracked = self.tracked();
                        for id in self.members.set_members(ids, tracked, Instant::now()) {
                            self.forget(&id);
                        }
                    }
                },
                changed = state.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = *state.borrow_and_update();
                    if now.connected && now.connects != connects {
                        connects = now.connects;
                        self.resync_all(&dump_tx);
                    }
                }
                else => return,
            }
        }
    }

    /// Drops everything held for `id` (index entries, load, stream state).
    fn forget(&mut self, id: &str) {
        self.instances.remove(id);
        self.index.remove_instance(id);
        self.shared.loads.write().remove(id);
    }

    /// Every id the subscriber holds some state for.
    fn tracked(&self) -> HashSet<String> {
        let mut ids: HashSet<String> = self.instances.keys().cloned().collect();
        ids.extend(self.shared.loads.read().keys().cloned());
        ids.extend(
            self.index
                .read(|i| i.instances().map(str::to_owned).collect::<Vec<_>>()),
        );
        ids
    }

    fn reject(&self, subject: &str, reason: Reject) {
        self.shared.rejected.count(reason);
        // Subjects are bounded by the server's limits; log a bounded, escaped prefix anyway.
        let subject: String = subject.chars().take(200).collect();
        tracing::debug!(subject = ?subject, reason = reason.as_str(), "event message rejected");
    }

    /// Whether a message from `id` may touch state; counts the ones that may not.
    fn admit(&mut self, id: &str) -> bool {
        let ok = self.members.admit(id, Instant::now());
        if !ok {
            self.shared.counters.ignored.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    fn on_kv(
        &mut self,
        m: KvEventsMessage,
        size: usize,
        dump_tx: &mpsc::UnboundedSender<DumpResult>,
    ) {
        if !self.admit(&m.instance) {
            return;
        }
        // Publishers count from 1 and never reach u64::MAX (no next number after it).
        if m.seq == 0 || m.seq == u64::MAX {
            self.shared.counters.ignored.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(instance = %m.instance, seq = m.seq, "KV event message with an unusable seq");
            return;
        }
        let instance = m.instance.clone();
        match self.instances.get_mut(&instance) {
            Some(Stream::InSync { epoch, seq }) if *epoch == m.epoch && m.seq <= *seq => {
                // Already reflected (it raced a dump); nothing to do.
            }
            Some(Stream::InSync { epoch, seq })
                if *epoch == m.epoch && seq.checked_add(1) == Some(m.seq) =>
            {
                *seq = m.seq;
                self.apply(&m);
            }
            Some(Stream::Resyncing { buffer }) => {
                if buffer.len() >= self.cfg.max_buffered
                    || buffer.bytes.saturating_add(size) > self.cfg.max_buffered_bytes
                {
                    // The dump is taking too long; its reply would be stale anyway.
                    buffer.clear();
                }
                buffer.push(m, size);
            }
            Some(Stream::Failed { retry_at }) if Instant::now() < *retry_at => {}
            existing => {
                if matches!(existing, Some(Stream::InSync { .. })) {
                    self.shared.counters.gaps.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%instance, seq = m.seq, "KV event gap; resyncing");
                }
                let mut buffer = Buffer::default();
                buffer.push(m, size);
                self.start_resync(instance, buffer, dump_tx);
            }
        }
    }

    fn on_load(&mut self, m: LoadMessage, dump_tx: &mpsc::UnboundedSender<DumpResult>) {
        if !self.admit(&m.instance) {
            return;
        }
        // A load snapshot from an instance we have no KV state for: it may be idle (no
        // events to trigger a resync), so ask for its cache now.
        let due = match self.instances.get(&m.instance) {
            None => true,
            Some(Stream::Failed { retry_at }) => Instant::now() >= *retry_at,
            Some(_) => false,
        };
        if due {
            self.start_resync(m.instance.clone(), Buffer::default(), dump_tx);
        }
        self.shared
            .loads
            .write()
            .insert(m.instance, (m.load, Instant::now()));
    }

    fn apply(&self, m: &KvEventsMessage) {
        self.index.apply_all(&m.instance, &m.events);
        self.shared.counters.applied.fetch_add(1, Ordering::Relaxed);
    }

    fn start_resync(
        &mut self,
        instance: String,
        buffer: Buffer,
        dump_tx: &mpsc::UnboundedSender<DumpResult>,
    ) {
        if let Some(Stream::Resyncing { buffer: b }) = self.instances.get_mut(&instance) {
            for (m, size) in buffer.messages {
                b.push(m, size);
            }
            return;
        }
        self.shared
            .counters
            .dumps_requested
            .fetch_add(1, Ordering::Relaxed);
        self.instances
            .insert(instance.clone(), Stream::Resyncing { buffer });
        let client = self.conn.client.clone();
        let timeout = self.cfg.dump_timeout;
        let tx = dump_tx.clone();
        tokio::spawn(async move {
            let result = dump::request(&client, &instance, timeout).await;
            let _ = tx.send((instance, result));
        });
    }

    fn on_dump(
        &mut self,
        instance: String,
        result: Result<Dump>,
        dump_tx: &mpsc::UnboundedSender<DumpResult>,
    ) {
        // Only a resync in progress takes a dump; anything else (forgotten meanwhile, or a
        // duplicate answer after a reconnect already resynced) keeps its state.
        let buffer = match self.instances.get_mut(&instance) {
            Some(Stream::Resyncing { buffer }) => std::mem::take(buffer),
            _ => return,
        };
        self.instances.remove(&instance);
        let dump = match result {
            Ok(d) => d,
            Err(e) => {
                self.shared
                    .counters
                    .dumps_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%instance, error = %e, "KV dump failed; will retry");
                self.instances.insert(
                    instance,
                    Stream::Failed {
                        retry_at: Instant::now() + self.cfg.dump_retry,
                    },
                );
                return;
            }
        };
        self.index.reset_instance(&instance, dump.blocks);
        self.shared
            .counters
            .dumps_applied
            .fetch_add(1, Ordering::Relaxed);
        self.instances.insert(
            instance.clone(),
            Stream::InSync {
                epoch: dump.epoch,
                seq: dump.seq,
            },
        );
        self.replay(instance, buffer, dump_tx);
    }

    /// Replays what arrived during a resync onto the dump just applied: messages the dump
    /// already covers are skipped, the next ones applied. A hole (or a new epoch) starts
    /// another resync with an empty buffer: every buffered message was published before that
    /// new request, so the next dump covers them all. (Keeping them would let one bogus
    /// message — a seq far ahead — restart the resync forever.)
    fn replay(
        &mut self,
        instance: String,
        buffer: Buffer,
        dump_tx: &mpsc::UnboundedSender<DumpResult>,
    ) {
        for (m, _) in buffer.messages {
            let Some(Stream::InSync { epoch, seq }) = self.instances.get_mut(&instance) else {
                return;
            };
            if *epoch == m.epoch && m.seq <= *seq {
                continue;
            }
            if *epoch == m.epoch && seq.checked_add(1) == Some(m.seq) {
                *seq = m.seq;
                self.apply(&m);
                continue;
            }
            self.shared.counters.gaps.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%instance, seq = m.seq, "KV event gap during a resync; resyncing again");
            self.instances.remove(&instance);
            self.start_resync(instance, Buffer::default(), dump_tx);
            return;
        }
    }

    fn retry_failed(&mut self, dump_tx: &mpsc::UnboundedSender<DumpResult>) {
        if !self.conn.is_connected() {
            return;
        }
        let now = Instant::now();
        let due: Vec<String> = self
            .instances
            .iter()
            .filter(|(_, s)| matches!(s, Stream::Failed { retry_at } if now >= *retry_at))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.start_resync(id, Buffer::default(), dump_tx);
        }
    }

    fn resync_all(&mut self, dump_tx: &mpsc::UnboundedSender<DumpResult>) {
        self.shared
            .counters
            .reconnect_resyncs
            .fetch_add(1, Ordering::Relaxed);
        let known: Vec<String> = self.instances.keys().cloned().collect();
        tracing::info!(
            instances = known.len(),
            "NATS reconnected; resyncing KV state"
        );
        for id in known {
            // Drop any in-flight resync's claim so a fresh request goes out.
            self.instances.remove(&id);
            self.start_resync(id, Buffer::default(), dump_tx);
        }
    }
}
