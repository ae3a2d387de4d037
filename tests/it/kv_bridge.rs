//! `switchyard kv-bridge` as a real process: a ZMQ publisher in the test speaks vLLM's KV-event
//! format (msgpack, array-like `KVEventBatch`), the bridge re-hashes the token ids and
//! publishes on NATS as one instance, and a frontend hashing prompts with the same tokenizer
//! routes that prompt's prefix to the instance.

use std::time::{Duration, Instant};

use rmpv::Value;
use serde_json::json;
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::services::Nats;
use switchyard_tests::{free_port, frontend, worker_flags, Proc};
use zeromq::{PubSocket, Socket, SocketSend, ZmqMessage};

use crate::distributed::{eventually, health, static_mockers};
use crate::tokenizer::write_char_tokenizer;
use crate::MODEL;

/// The frontend's default `kv.block_size`, used by the bridge and the events too.
const BLOCK: usize = 16;

/// One ZMQ message as vLLM's publisher sends it: `[topic, seq (u64 BE), msgpack batch]`.
fn vllm_message(seq: u64, events: Vec<Value>) -> ZmqMessage {
    let batch = Value::Array(vec![Value::F64(0.0), Value::Array(events), Value::Nil]);
    let mut payload = Vec::new();
    rmpv::encode::write_value(&mut payload, &batch).unwrap();
    let mut msg = ZmqMessage::from(b"kv-events".to_vec());
    msg.push_back(seq.to_be_bytes().to_vec().into());
    msg.push_back(payload.into());
    msg
}

/// `BlockStored` in vLLM's array-like layout: hashes, parent, token ids, block size, lora,
/// medium.
fn block_stored(hashes: &[u64], parent: Option<u64>, tokens: &[u32]) -> Value {
    Value::Array(vec![
        Value::from("BlockStored"),
        Value::Array(hashes.iter().map(|h| Value::from(*h)).collect()),
        parent.map_or(Value::Nil, Value::from),
        Value::Array(tokens.iter().map(|t| Value::from(*t)).collect()),
        Value::from(BLOCK as u64),
        Value::Nil,
        Value::from("GPU"),
    ])
}

/// One completion request: the serving instance.
async fn complete(fe: &Proc, prompt: &str) -> String {
    let body = json!({"model": MODEL, "prompt": prompt, "max_tokens": 2});
    let (status, headers, _) = post_json(&format!("{}/v1/completions", fe.url()), &body, &[])
        .await
        .unwrap();
    assert_eq!(status, 200);
    headers["x-switchyard-instance"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// A vLLM engine's KV-event side: the ZMQ publisher the test writes to and the
/// `switchyard kv-bridge` process republishing it on NATS as `instance`.
struct Engine {
    publisher: PubSocket,
    bridge: Proc,
    seq: u64,
}

impl Engine {
    async fn start(instance: &str, nats: &Nats) -> Self {
        let endpoint = format!("tcp://127.0.0.1:{}", free_port());
        let mut publisher = PubSocket::new();
        publisher.bind(&endpoint).await.unwrap();
        let args: Vec<String> = [
            "kv-bridge",
            "--zmq",
            &endpoint,
            "--topic",
            "kv-events",
            "--instance",
            instance,
            "--block-size",
            &BLOCK.to_string(),
            "--nats",
            &nats.url(),
        ]
        .map(String::from)
        .to_vec();
        let bridge = Proc::spawn("kv-bridge", &args, 0).unwrap();
        Self {
            publisher,
            bridge,
            seq: 0,
        }
    }

    /// Publishes `events` until the frontend has applied more KV-event messages than before.
    /// ZMQ PUB drops messages until the bridge's subscription reaches it, so this repeats
    /// (stores are idempotent), then sends once more for messages still on their way.
    async fn publish_until_applied(&mut self, fe: &Proc, events: impl Fn() -> Vec<Value>) {
        let applied = || metric_at(fe);
        let before = applied().await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.seq += 1;
            let msg = vllm_message(self.seq, events());
            self.publisher.send(msg).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            if applied().await > before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "bridged events never reached the frontend; bridge log:\n{}",
                self.bridge.log_text()
            );
        }
        self.seq += 1;
        let msg = vllm_message(self.seq, events());
        let sent_before = applied().await;
        self.publisher.send(msg).await.unwrap();
        // Applied when the frontend counts one more bridged message.
        while applied().await <= sent_before {
            assert!(
                Instant::now() < deadline,
                "the last bridged message never reached the frontend; bridge log:\n{}",
                self.bridge.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn metric_at(fe: &Proc) -> f64 {
    metric(&fe.url(), "switchyard_kv_event_messages_total").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridged_vllm_events_route_the_prefix_to_that_instance() {
    let nats = Nats::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = write_char_tokenizer(dir.path()).unwrap();
    let tokenizer = tokenizer.to_str().unwrap();
    // Two idle workers that publish nothing themselves: all the overlap the frontend sees
    // comes through the bridges.
    let m = static_mockers(2, &[]).await;
    let (short, long) = (
        format!("127.0.0.1:{}", m[0].port),
        format!("127.0.0.1:{}", m[1].port),
    );
    let refs: Vec<&Proc> = m.iter().collect();
    let mut args = worker_flags(MODEL, &refs);
    let nats_url = nats.url();
    args.extend(
        [
            "--policy",
            "kv",
            "--nats",
            &nats_url,
            "--tokenizer",
            tokenizer,
        ]
        .map(String::from),
    );
    let fe = frontend(&args).await.unwrap();
    eventually(Duration::from_secs(10), "event bus connected", || async {
        (health(&fe).await["events"]["connected"] == json!(true)).then_some(())
    })
    .await;

    // The char tokenizer gives one token per byte, and a completion prompt gets no special
    // tokens from it: an engine's blocks are the prompt's bytes, 16 at a time.
    let prefix: String = (0..12)
        .map(|i| format!("shared context {i:02}; "))
        .collect();
    let ids: Vec<u32> = prefix.bytes().map(u32::from).collect();
    let blocks = ids.len() / BLOCK;
    assert!(blocks >= 8, "{blocks} blocks");
    let split = blocks / 2;
    let head = &ids[..split * BLOCK];
    let tail = &ids[split * BLOCK..blocks * BLOCK];

    // Engine `short` caches the first half of the prefix.
    let mut short_engine = Engine::start(&short, &nats).await;
    let a: Vec<u64> = (100..100 + split as u64).collect();
    short_engine
        .publish_until_applied(&fe, || vec![block_stored(&a, None, head)])
        .await;
    // Engine `long` caches all of it in two events, the second carrying only the new
    // blocks' tokens and naming its parent block (as vLLM does). Only if the bridge continues
    // the chain from that parent does `long` hold more than `short`; otherwise they tie and
    // every turn is a coin flip.
    let mut long_engine = Engine::start(&long, &nats).await;
    let b1: Vec<u64> = (1000..1000 + split as u64).collect();
    let b2: Vec<u64> = (2000..2000 + (blocks - split) as u64).collect();
    long_engine
        .publish_until_applied(&fe, || {
            vec![
                block_stored(&b1, None, head),
                block_stored(&b2, b1.last().copied(), tail),
            ]
        })
        .await;

    for turn in 0..8 {
        let id = complete(&fe, &format!("{prefix}question {turn}")).await;
        assert_eq!(
            id, long,
            "turn {turn} did not go to the longest bridged prefix"
        );
    }
    // The frontend hashes with the same tokenizer: a prompt sharing only the first half
    // finds it on both engines (tied overlap), so nothing here is pinned to `long` alone.
    let half: String = head.iter().map(|&t| char::from(t as u8)).collect();
    let mut seen = std::collections::HashSet::new();
    for turn in 0..12 {
        seen.insert(complete(&fe, &format!("{half}!! other {turn}")).await);
    }
    assert_eq!(
        seen.len(),
        2,
        "a tie between the engines is broken at random: {seen:?}"
    );
}
