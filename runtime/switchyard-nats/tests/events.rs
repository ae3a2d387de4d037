//! KV events, load, gap resync, reconnect and replica sync against a real nats-server.
// Test helpers outside `#[test]` fns: a failed setup step should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use switchyard_kv::{BlockHash, KvEvent, SharedKvIndex};
use switchyard_nats::wire::KvEventsMessage;
use switchyard_nats::{
    connect, dump, subjects, DumpFn, LoadSnapshot, NatsConnection, Publisher, ReplicaSync,
    ReplicaSyncConfig, Subscriber, SubscriberConfig,
};

use support::{eventually, free_port, Nats};

const SETTLE: Duration = Duration::from_secs(20);

fn test_cfg() -> SubscriberConfig {
    SubscriberConfig {
        dump_timeout: Duration::from_secs(1),
        dump_retry: Duration::from_millis(300),
        ..SubscriberConfig::default()
    }
}

async fn connected(nats: &Nats, name: &str) -> NatsConnection {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let c = connect(&nats.url(), name).await.unwrap();
    eventually(SETTLE, "NATS connection", || c.is_connected()).await;
    c
}

/// A worker's cache as the test drives it: mutate, then report (as the contract requires).
#[derive(Clone, Default)]
struct Cache(Arc<Mutex<BTreeSet<BlockHash>>>);

impl Cache {
    fn dump_fn(&self) -> DumpFn {
        let c = self.0.clone();
        Arc::new(move || c.lock().iter().copied().collect())
    }

    fn store(&self, p: &Publisher, blocks: &[BlockHash]) {
        self.0.lock().extend(blocks);
        p.publish_kv(KvEvent::Stored {
            parent: None,
            blocks: blocks.to_vec(),
        });
    }

    fn remove(&self, p: &Publisher, blocks: &[BlockHash]) {
        for b in blocks {
            self.0.lock().remove(b);
        }
        p.publish_kv(KvEvent::Removed {
            blocks: blocks.to_vec(),
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_events_and_load_reach_the_frontend() {
    let nats = Nats::start().unwrap();
    let (worker, frontend) = (connected(&nats, "w").await, connected(&nats, "f").await);
    let index = SharedKvIndex::new();
    let sub = Subscriber::start(&frontend, index.clone(), test_cfg())
        .await
        .unwrap();
    let cache = Cache::default();
    let publisher = Publisher::start(&worker, "w1.local:8000", cache.dump_fn())
        .await
        .unwrap();
    // Core NATS drops what is published before the server has registered a subscription, and
    // the worker and frontend use different connections: wait until a load snapshot gets
    // through before relying on the first KV event (in production the next event's sequence
    // gap would trigger a dump instead).
    let warm = LoadSnapshot {
        running: 0,
        waiting: 0,
        kv_usage: 0.0,
    };
    eventually(SETTLE, "subscription live", || {
        publisher.publish_load(warm);
        sub.load("w1.local:8000") == Some(warm)
    })
    .await;

    cache.store(&publisher, &[1, 2, 3]);
    eventually(SETTLE, "blocks indexed", || {
        index.overlap(&[1, 2, 3]).get("w1.local:8000") == 3
    })
    .await;
    cache.remove(&publisher, &[3]);
    publisher.publish_kv(KvEvent::Stored {
        parent: Some(2),
        blocks: vec![],
    });
    eventually(SETTLE, "removal applied", || {
        index.overlap(&[1, 2, 3]).get("w1.local:8000") == 2
    })
    .await;

    let load = LoadSnapshot {
        running: 3,
        waiting: 1,
        kv_usage: 0.25,
    };
    publisher.publish_load(load);
    eventually(SETTLE, "load snapshot", || {
        sub.load("w1.local:8000") == Some(load)
    })
    .await;
    assert!(sub.connected());
    assert_eq!(sub.stats().gaps, 0);

    sub.forget("w1.local:8000");
    eventually(SETTLE, "forgotten", || {
        index.instance_blocks("w1.local:8000") == 0
    })
    .await;
}

/// A hand-driven worker, so the test can lose a message on purpose.
struct FakeWorker {
    conn: NatsConnection,
    id: &'static str,
    epoch: u64,
    state: Arc<Mutex<(u64, BTreeSet<BlockHash>)>>,
    /// Dump replies still to be sent with `seq = u64::MAX` (a broken worker).
    bogus_dumps: Arc<Mutex<usize>>,
}

impl FakeWorker {
    async fn start(conn: NatsConnection, id: &'static str) -> Self {
        let state = Arc::new(Mutex::new((0u64, BTreeSet::new())));
        let bogus_dumps = Arc::new(Mutex::new(0));
        let mut requests = conn.client.subscribe(subjects::kv_dump(id)).await.unwrap();
        conn.settle().await;
        let (client, s, bogus) = (conn.client.clone(), state.clone(), bogus_dumps.clone());
        tokio::spawn(async move {
            while let Some(req) = requests.next().await {
                let (mut seq, blocks) = {
                    let g = s.lock();
                    (g.0, g.1.iter().copied().collect::<Vec<_>>())
                };
                {
                    let mut b = bogus.lock();
                    if *b > 0 {
                        *b -= 1;
                        seq = u64::MAX;
                    }
                }
                let reply = req.reply.unwrap();
                dump::answer(&client, reply, id, 42, seq, &blocks)
                    .await
                    .unwrap();
            }
        });
        Self {
            conn,
            id,
            epoch: 42,
            state,
            bogus_dumps,
        }
    }

    /// Stores `blocks`; publishes the message only if `deliver`.
    async fn store(&self, blocks: &[BlockHash], deliver: bool) {
        let seq = {
            let mut g = self.state.lock();
            g.0 += 1;
            g.1.extend(blocks);
            g.0
        };
        if deliver {
            let m = KvEventsMessage {
                instance: self.id.into(),
                epoch: self.epoch,
                seq,
                events: vec![KvEvent::Stored {
                    parent: None,
                    blocks: blocks.to_vec(),
                }],
            };
            let payload = serde_json::to_vec(&m).unwrap();
            self.conn
                .client
                .publish(subjects::kv(self.id), payload.into())
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_gap_triggers_a_dump_and_the_index_matches_it() {
    let nats = Nats::start().unwrap();
    let (worker, frontend) = (connected(&nats, "w").await, connected(&nats, "f").await);
    let index = SharedKvIndex::new();
    let sub = Subscriber::start(&frontend, index.clone(), test_cfg())
        .await
        .unwrap();
    let fake = FakeWorker::start(worker, "gappy").await;

    fake.store(&[10], true).await; // first contact: resync from a dump
    eventually(SETTLE, "initial dump", || sub.stats().dumps_applied == 1).await;
    fake.store(&[11], true).await;
    eventually(SETTLE, "seq 2 applied", || {
        index.overlap(&[10, 11]).get("gappy") == 2
    })
    .await;
    assert_eq!(sub.stats().gaps, 0);

    fake.store(&[12], false).await; // seq 3 is lost
    fake.store(&[13], true).await; // seq 4 reveals the gap
    eventually(SETTLE, "gap resync", || sub.stats().dumps_applied == 2).await;
    assert_eq!(sub.stats().gaps, 1);
    // Block 12 was only in the lost message: the dump must have restored it.
    eventually(SETTLE, "index consistent", || {
        index.overlap(&[10, 11, 12, 13]).get("gappy") == 4
    })
    .await;
    assert_eq!(index.instance_blocks("gappy"), 4);
}

/// A dump claiming `seq = u64::MAX` could never be continued (every later message would look
/// already applied): it is refused like a failed dump, and the retry gets the instance in sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_at_the_last_sequence_number_is_refused_and_retried() {
    let nats = Nats::start().unwrap();
    let (worker, frontend) = (connected(&nats, "w").await, connected(&nats, "f").await);
    let index = SharedKvIndex::new();
    let sub = Subscriber::start(&frontend, index.clone(), test_cfg())
        .await
        .unwrap();
    let fake = FakeWorker::start(worker, "maxed").await;
    *fake.bogus_dumps.lock() = 1;

    fake.store(&[20], true).await; // first contact: the dump says u64::MAX
    eventually(SETTLE, "the bogus dump refused", || {
        sub.stats().dumps_failed == 1
    })
    .await;
    eventually(SETTLE, "the retry applied", || {
        sub.stats().dumps_applied == 1
    })
    .await;
    // In sync at the real seq: later messages apply.
    fake.store(&[21], true).await;
    fake.store(&[22], true).await;
    eventually(SETTLE, "later events applied", || {
        index.overlap(&[20, 21, 22]).get("maxed") == 3
    })
    .await;
    assert_eq!(sub.stats().gaps, 0);
}

/// Publishes until `sub` has seen one load snapshot from `p` (its subscription is live).
async fn warm(sub: &Subscriber, p: &Publisher) {
    let idle = LoadSnapshot::default();
    eventually(SETTLE, "subscription live", || {
        p.publish_load(idle);
        sub.load(p.instance()) == Some(idle)
    })
    .await;
}

/// Ids discovery does not list get a grace period and a capped number of places; an id that
/// discovery lists later is tracked again from its next message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_not_in_discovery_expire_after_a_grace_period_and_are_capped() {
    let nats = Nats::start().unwrap();
    let (worker, frontend) = (connected(&nats, "w").await, connected(&nats, "f").await);
    let index = SharedKvIndex::new();
    let cfg = SubscriberConfig {
        stranger_grace: Duration::from_secs(3),
        max_strangers: 1,
        ..test_cfg()
    };
    let sub = Subscriber::start(&frontend, index.clone(), cfg)
        .await
        .unwrap();
    sub.set_members(["member".to_owned()].into());
    let (member, a, b) = (Cache::default(), Cache::default(), Cache::default());
    let pm = Publisher::start(&worker, "member", member.dump_fn())
        .await
        .unwrap();
    warm(&sub, &pm).await;
    member.store(&pm, &[1, 2]);
    eventually(SETTLE, "member indexed", || {
        index.instance_blocks("member") == 2
    })
    .await;

    // A stranger is tracked at first (it may just not be registered yet)…
    let pa = Publisher::start(&worker, "stranger-a", a.dump_fn())
        .await
        .unwrap();
    a.store(&pa, &[5, 6]);
    eventually(SETTLE, "stranger-a tracked", || {
        index.instance_blocks("stranger-a") == 2
    })
    .await;
    // …but only one at a time here: a second one is ignored at once.
    let pb = Publisher::start(&worker, "stranger-b", b.dump_fn())
        .await
        .unwrap();
    let ignored = sub.stats().ignored;
    b.store(&pb, &[7]);
    eventually(SETTLE, "stranger-b ignored", || {
        sub.stats().ignored > ignored
    })
    .await;
    assert_eq!(index.instance_blocks("stranger-b"), 0);

    // After the grace period stranger-a's state goes and its messages are ignored.
    eventually(SETTLE, "stranger-a dropped", || {
        index.instance_blocks("stranger-a") == 0
    })
    .await;
    let ignored = sub.stats().ignored;
    a.store(&pa, &[8]);
    eventually(SETTLE, "stranger-a ignored", || {
        sub.stats().ignored > ignored
    })
    .await;
    assert_eq!(index.instance_blocks("stranger-a"), 0);
    assert_eq!(index.instance_blocks("member"), 2, "members are untouched");

    // Discovery lists it: its next message starts a resync with its whole cache.
    sub.set_members(["member".to_owned(), "stranger-a".to_owned()].into());
    a.store(&pa, &[9]);
    eventually(SETTLE, "stranger-a is a member now", || {
        index.instance_blocks("stranger-a") == 4
    })
    .await;
    // A member that leaves discovery is dropped at once.
    sub.set_members(["stranger-a".to_owned()].into());
    eventually(SETTLE, "member forgotten", || {
        index.instance_blocks("member") == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_resubscribes_and_resyncs() {
    let mut nats = Nats::start().unwrap();
    let (worker, frontend) = (connected(&nats, "w").await, connected(&nats, "f").await);
    let index = SharedKvIndex::new();
    let sub = Subscriber::start(&frontend, index.clone(), test_cfg())
        .await
        .unwrap();
    let cache = Cache::default();
    let publisher = Publisher::start(&worker, "w1", cache.dump_fn())
        .await
        .unwrap();
    cache.store(&publisher, &[1, 2]);
    eventually(SETTLE, "synced", || index.overlap(&[1, 2]).get("w1") == 2).await;

    nats.kill();
    eventually(SETTLE, "subscriber sees the outage", || !sub.connected()).await;
    // The cache changes while NATS is down; this event is lost.
    cache.store(&publisher, &[3]);
    // Routing state is still readable (the frontend degrades, it does not fail).
    assert_eq!(index.overlap(&[1, 2, 3]).get("w1"), 2);

    nats.restart().unwrap();
    eventually(SETTLE, "reconnected", || {
        sub.connected() && worker.is_connected()
    })
    .await;
    eventually(SETTLE, "resynced after reconnect", || {
        index.overlap(&[1, 2, 3]).get("w1") == 3
    })
    .await;
    assert!(sub.stats().reconnect_resyncs >= 1);

    // Subscriptions resumed: a fresh event flows without another resync.
    cache.store(&publisher, &[4]);
    eventually(SETTLE, "new events after reconnect", || {
        index.overlap(&[1, 2, 3, 4]).get("w1") == 4
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_sync_peers_share_in_flight_counts() {
    let nats = Nats::start().unwrap();
    let (ca, cb) = (connected(&nats, "fa").await, connected(&nats, "fb").await);
    let cfg = ReplicaSyncConfig {
        interval: Duration::from_millis(100),
        min_gap: Duration::from_millis(5),
        ttl: Duration::from_millis(600),
    };
    let a_counts = Arc::new(Mutex::new(vec![("w1".to_string(), 3u32)]));
    let a_local = a_counts.clone();
    let a = ReplicaSync::start(
        &ca,
        "front-a",
        Arc::new(move || a_local.lock().clone()),
        cfg.clone(),
    )
    .await
    .unwrap();
    let b = ReplicaSync::start(
        &cb,
        "front-b",
        Arc::new(|| vec![("w1".to_string(), 1), ("w2".to_string(), 5)]),
        cfg.clone(),
    )
    .await
    .unwrap();

    eventually(SETTLE, "both see each other", || {
        a.remote_in_flight("w1") == 1
            && a.remote_in_flight("w2") == 5
            && b.remote_in_flight("w1") == 3
            && b.remote_in_flight("w2") == 0
    })
    .await;
    assert_eq!((a.peers(), b.peers()), (1, 1));

    *a_counts.lock() = vec![("w1".to_string(), 7)];
    a.notify();
    eventually(SETTLE, "change propagates", || {
        b.remote_in_flight("w1") == 7
    })
    .await;

    a.shutdown().await;
    eventually(SETTLE, "clean shutdown clears at once", || {
        b.remote_in_flight("w1") == 0 && b.peers() == 0
    })
    .await;

    // A peer that just stops (crash) expires after its TTL.
    let c = ReplicaSync::start(
        &ca,
        "front-c",
        Arc::new(|| vec![("w9".to_string(), 2)]),
        cfg,
    )
    .await
    .unwrap();
    eventually(SETTLE, "c visible", || b.remote_in_flight("w9") == 2).await;
    drop(c);
    eventually(SETTLE, "c expired", || b.remote_in_flight("w9") == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frontend_started_before_nats_connects_when_it_appears() {
    let port = free_port();
    // No server yet: connect still returns, and the subscriber starts (load-only routing).
    let frontend = connect(&format!("nats://127.0.0.1:{port}"), "f")
        .await
        .unwrap();
    assert!(!frontend.is_connected());
    let index = SharedKvIndex::new();
    let sub = Subscriber::start(&frontend, index.clone(), test_cfg())
        .await
        .unwrap();
    assert!(!sub.connected());

    let nats = Nats::start_on(port).unwrap();
    eventually(SETTLE, "late connect", || sub.connected()).await;
    let worker = connected(&nats, "w").await;
    let cache = Cache::default();
    let publisher = Publisher::start(&worker, "late", cache.dump_fn())
        .await
        .unwrap();
    cache.store(&publisher, &[7, 8]);
    eventually(SETTLE, "events after a late connect", || {
        index.overlap(&[7, 8]).get("late") == 2
    })
    .await;
}
