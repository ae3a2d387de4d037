//! A sequence gap seen by a real frontend process. The test plays one worker's KV-event side
//! on NATS — raw `switchyard.kv.<id>` messages with a skipped seq, and the dump responder —
//! while a mocker without `--nats` serves that worker's HTTP. The frontend must count the gap,
//! fetch a dump, and route by what only the dump told it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use switchyard_kv::{BlockHash, KvEvent, PromptHasher, PromptKind};
use switchyard_nats::wire::KvEventsMessage;
use switchyard_nats::{dump, subjects, NatsConnection};
use switchyard_tests::services::Nats;
use switchyard_tests::{frontend, worker_flags, Proc};
use tokio::task::JoinHandle;

use super::{complete, counter, eventually, health, long_prefix, static_mockers};
use crate::MODEL;

/// What the fake worker holds and the last seq it handed out; the dump responder reads both.
#[derive(Default)]
struct State {
    blocks: BTreeSet<BlockHash>,
    seq: u64,
}

/// One worker's KV-event side, driven by the test.
struct FakeWorker {
    conn: NatsConnection,
    instance: String,
    epoch: u64,
    state: Arc<Mutex<State>>,
    responder: JoinHandle<()>,
}

impl FakeWorker {
    async fn start(nats: &Nats, instance: &str) -> Self {
        let conn = switchyard_nats::connect(&nats.url(), "fake worker")
            .await
            .unwrap();
        let mut requests = conn
            .client
            .subscribe(subjects::kv_dump(instance))
            .await
            .unwrap();
        conn.client.flush().await.unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let epoch = 77;
        let responder = {
            let (client, state, instance) =
                (conn.client.clone(), state.clone(), instance.to_owned());
            tokio::spawn(async move {
                while let Some(req) = requests.next().await {
                    let Some(reply) = req.reply else { continue };
                    let (seq, blocks) = {
                        let s = state.lock();
                        (s.seq, s.blocks.iter().copied().collect::<Vec<_>>())
                    };
                    dump::answer(&client, reply, &instance, epoch, seq, &blocks)
                        .await
                        .unwrap();
                }
            })
        };
        Self {
            conn,
            instance: instance.to_owned(),
            epoch,
            state,
            responder,
        }
    }

    /// Caches `blocks` under the next seq and reports it — or loses the report.
    async fn store(&self, blocks: &[BlockHash], deliver: bool) -> u64 {
        let seq = {
            let mut s = self.state.lock();
            s.blocks.extend(blocks);
            s.seq += 1;
            s.seq
        };
        if deliver {
            let msg = KvEventsMessage {
                instance: self.instance.clone(),
                epoch: self.epoch,
                seq,
                events: vec![KvEvent::Stored {
                    parent: None,
                    blocks: blocks.to_vec(),
                }],
            };
            let payload = serde_json::to_vec(&msg).unwrap();
            self.conn
                .client
                .publish(subjects::kv(&self.instance), payload.into())
                .await
                .unwrap();
            self.conn.client.flush().await.unwrap();
        }
        seq
    }
}

impl Drop for FakeWorker {
    fn drop(&mut self) {
        self.responder.abort();
    }
}

/// Full blocks of `prefix` as the frontend hashes a completion prompt (no tokenizer, the
/// default block size).
fn blocks_of(prefix: &str) -> Vec<BlockHash> {
    PromptHasher::bytes(16)
        .hash(prefix, PromptKind::Completion)
        .hashes
}

/// Every one of `n` completions starting with `prefix` is served by `holder`.
async fn routed_to(fe: &Proc, prefix: &str, holder: &str, n: usize) {
    for i in 0..n {
        let (served, _) = complete(fe, &format!("{prefix} tail {i}"), &[]).await;
        assert_eq!(
            served, holder,
            "request {i} of a prefix only {holder} holds"
        );
    }
}

#[tokio::test]
async fn a_sequence_gap_makes_the_frontend_resync_from_a_dump() {
    let nats = Nats::start().unwrap();
    // Three HTTP workers, none publishing; the test publishes for the middle one.
    let m = static_mockers(3, &[]).await;
    let refs: Vec<&Proc> = m.iter().collect();
    let mut args = worker_flags(MODEL, &refs);
    args.extend(["--policy", "kv", "--nats", &nats.url()].map(String::from));
    let fe = frontend(&args).await.unwrap();
    eventually(Duration::from_secs(10), "event bus connected", || async {
        (health(&fe).await["events"]["connected"] == serde_json::json!(true)).then_some(())
    })
    .await;
    let holder = format!("127.0.0.1:{}", m[1].port);
    let worker = FakeWorker::start(&nats, &holder).await;
    let (one, two, three) = (
        long_prefix("gap-one"),
        long_prefix("gap-two"),
        long_prefix("gap-three"),
    );

    // seq 1: first contact, so the frontend fetches a dump and is in sync from there.
    worker.store(&blocks_of(&one), true).await;
    eventually(Duration::from_secs(10), "the first dump", || async {
        (counter(&fe, "switchyard_kv_dumps_applied_total").await >= 1.0).then_some(())
    })
    .await;
    routed_to(&fe, &one, &holder, 4).await;
    assert_eq!(counter(&fe, "switchyard_kv_event_gaps_total").await, 0.0);

    // seq 2 is lost on the way; seq 3 arrives: a gap.
    worker.store(&blocks_of(&three), false).await;
    worker.store(&blocks_of(&two), true).await;
    eventually(Duration::from_secs(10), "the gap and its dump", || async {
        let gaps = counter(&fe, "switchyard_kv_event_gaps_total").await;
        let dumps = counter(&fe, "switchyard_kv_dumps_applied_total").await;
        (gaps >= 1.0 && dumps >= 2.0).then_some(())
    })
    .await;
    assert_eq!(counter(&fe, "switchyard_kv_event_gaps_total").await, 1.0);
    // The index now matches the worker: the prefix of the lost message is known (only the
    // dump can have said so), and so are the others. With three idle candidates an unknown
    // prefix would land on the holder one time in three.
    routed_to(&fe, &three, &holder, 5).await;
    routed_to(&fe, &two, &holder, 3).await;
    routed_to(&fe, &one, &holder, 3).await;
    let expected = worker.state.lock().blocks.len() as u64;
    assert_eq!(
        health(&fe).await["events"]["indexed_blocks"].as_u64(),
        Some(expected),
        "the index holds exactly the worker's blocks"
    );
}
