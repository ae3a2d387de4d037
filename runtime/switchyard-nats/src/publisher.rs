//! The worker side: sequenced KV events, load snapshots, and answers to dump requests.
//!
//! Event and dump handling run in one task so a dump's `seq` is exactly the last sequence
//! number handed out before the snapshot was taken. The snapshot function reads the cache
//! *after* that, so it reflects every event up to `seq` (and maybe a few later ones, which
//! is harmless: KV events are idempotent set operations, so replaying them onto a newer
//! state gives the same result).
//!
//! Callers must report an event after applying it to their cache (or under the same lock).
//!
//! While NATS is down messages are dropped rather than queued without bound, but their
//! sequence numbers are still used up: subscribers see the gap and resync.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use switchyard_kv::{BlockHash, KvEvent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::wire::{KvEventsMessage, LoadMessage, LoadSnapshot};
use crate::{dump, subjects, NatsConnection, Result};

/// Returns the instance's current block set (for dump replies).
pub type DumpFn = Arc<dyn Fn() -> Vec<BlockHash> + Send + Sync>;

/// At most this many events go into one message.
const MAX_BATCH: usize = 512;
/// A publish that cannot be handed to the client in this time is dropped.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

enum Cmd {
    Kv(Vec<KvEvent>),
    Load(LoadSnapshot),
}

/// Publishes one instance's events. Methods are synchronous and cheap (a channel send), so a
/// cache can call them from its hot path. Dropping the publisher stops it.
#[derive(Debug)]
pub struct Publisher {
    instance: String,
    epoch: u64,
    tx: mpsc::UnboundedSender<Cmd>,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Starts publishing as `instance`; `dump` answers resync requests.
    pub async fn start(
        conn: &NatsConnection,
        instance: impl Into<String>,
        dump: DumpFn,
    ) -> Result<Self> {
        let instance = instance.into();
        let epoch = rand::random::<u64>() | 1;
        let requests = conn.client.subscribe(subjects::kv_dump(&instance)).await?;
        // The first event makes every frontend ask for a dump: the responder must be live at
        // the server before anything is published.
        conn.settle().await;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(
            Worker {
                conn: conn.clone(),
                instance: instance.clone(),
                epoch,
                seq: 0,
                dump,
            }
            .run(rx, requests),
        );
        Ok(Self {
            instance,
            epoch,
            tx,
            task,
        })
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// This publisher's epoch (see [`KvEventsMessage::epoch`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn publish_kv(&self, event: KvEvent) {
        let _ = self.tx.send(Cmd::Kv(vec![event]));
    }

    pub fn publish_kv_batch(&self, events: Vec<KvEvent>) {
        if !events.is_empty() {
            let _ = self.tx.send(Cmd::Kv(events));
        }
    }

    pub fn publish_load(&self, load: LoadSnapshot) {
        let _ = self.tx.send(Cmd::Load(load));
    }

    /// Publishes `load()` every `interval` until the publisher is dropped. Frontends forget a
    /// load snapshot after `load_ttl` (5 s by default), so keep `interval` well under it (the
    /// mocker uses 500 ms).
    pub fn publish_load_every(
        &self,
        interval: Duration,
        load: impl Fn() -> LoadSnapshot + Send + 'static,
    ) -> JoinHandle<()> {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                if tx.send(Cmd::Load(load())).is_err() {
                    return;
                }
            }
        })
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Worker {
    conn: NatsConnection,
    instance: String,
    epoch: u64,
    seq: u64,
    dump: DumpFn,
}

impl Worker {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Cmd>,
        mut requests: async_nats::Subscriber,
    ) {
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Kv(events)) => self.kv(events, &mut rx).await,
                    Some(Cmd::Load(load)) => self.load(load).await,
                    None => return,
                },
                Some(req) = requests.next() => {
                    if let Some(reply) = req.reply {
                        // Read seq before the snapshot: see the module docs.
                        let seq = self.seq;
                        let blocks = (self.dump)();
                        let sent = dump::answer(
                            &self.conn.client, reply, &self.instance, self.epoch, seq, &blocks,
                        );
                        if let Err(e) = sent.await {
                            tracing::warn!(instance = %self.instance, error = %e, "dump reply failed");
                        }
                    }
                }
            }
        }
    }

    /// Publishes `events` plus whatever else is already queued, as one message.
    async fn kv(&mut self, mut events: Vec<KvEvent>, rx: &mut mpsc::UnboundedReceiver<Cmd>) {
        let mut loads = Vec::new();
        while events.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Cmd::Kv(more)) => events.extend(more),
                Ok(Cmd::Load(l)) => loads.push(l),
                Err(_) => break,
            }
        }
        self.seq += 1;
        let msg = KvEventsMessage {
            instance: self.instance.clone(),
            epoch: self.epoch,
            seq: self.seq,
            events,
        };
        self.send(subjects::kv(&self.instance), &msg).await;
        // Only the latest load matters.
        if let Some(l) = loads.pop() {
            self.load(l).await;
        }
    }

    async fn load(&mut self, load: LoadSnapshot) {
        let msg = LoadMessage {
            instance: self.instance.clone(),
            load,
        };
        self.send(subjects::load(&self.instance), &msg).await;
    }

    async fn send(&self, subject: String, msg: &impl serde::Serialize) {
        if !self.conn.is_connected() {
            return;
        }
        let payload = match serde_json::to_vec(msg) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "event serialisation failed");
                return;
            }
        };
        match tokio::time::timeout(
            PUBLISH_TIMEOUT,
            self.conn.client.publish(subject, payload.into()),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "event dropped"),
            Err(_) => tracing::debug!("event dropped: publish timed out"),
        }
    }
}
