//! The kv-bridge end to end: a ZMQ PUB emitting vLLM-format messages → bridge → NATS →
//! subscriber → index entries under Switchyard's own block hashes.
// Test helpers outside `#[test]` fns: a failed setup step should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use rmpv::Value;
use switchyard_kv::{BlockHasher, SharedKvIndex};
use switchyard_nats::bridge::{run_bridge, BridgeConfig};
use switchyard_nats::{connect, Subscriber, SubscriberConfig};
use zeromq::{PubSocket, Socket, SocketSend, ZmqMessage};

use support::{eventually, free_port, Nats};

const SETTLE: Duration = Duration::from_secs(20);
const BLOCK: usize = 4;

/// A vLLM `KVEventBatch` in the array-like msgpack form, as one 3-frame ZMQ message.
fn vllm_message(seq: u64, events: Vec<Value>) -> ZmqMessage {
    let batch = Value::Array(vec![
        Value::F64(1.0),
        Value::Array(events),
        Value::from(0u64),
    ]);
    let mut payload = Vec::new();
    rmpv::encode::write_value(&mut payload, &batch).unwrap();
    let mut msg = ZmqMessage::from(b"kv-events".to_vec());
    msg.push_back(seq.to_be_bytes().to_vec().into());
    msg.push_back(payload.into());
    msg
}

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

fn block_removed(hashes: &[u64]) -> Value {
    Value::Array(vec![
        Value::from("BlockRemoved"),
        Value::Array(hashes.iter().map(|h| Value::from(*h)).collect()),
        Value::from("GPU"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_events_become_index_entries() {
    let nats = Nats::start().unwrap();
    let frontend = connect(&nats.url(), "frontend").await.unwrap();
    let bridge_conn = connect(&nats.url(), "bridge").await.unwrap();
    eventually(SETTLE, "NATS", || {
        frontend.is_connected() && bridge_conn.is_connected()
    })
    .await;
    let index = SharedKvIndex::new();
    let _sub = Subscriber::start(&frontend, index.clone(), SubscriberConfig::default())
        .await
        .unwrap();

    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let mut vllm = PubSocket::new();
    vllm.bind(&endpoint).await.unwrap();

    let cfg = BridgeConfig {
        zmq_endpoint: endpoint,
        topic: String::new(),
        instance_id: "vllm-0".into(),
        block_size: BLOCK,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let bridge = tokio::spawn(async move {
        run_bridge(&bridge_conn, cfg, async {
            let _ = stopped.await;
        })
        .await
    });

    // A 3-block prompt, stored by vLLM as two events (the second continues the first).
    let tokens: Vec<u32> = (1000..1012).collect();
    let ours = BlockHasher::new(BLOCK).hash_tokens(&tokens);
    let first = vllm_message(0, vec![block_stored(&[501, 502], None, &tokens[..8])]);
    // PUB/SUB drops messages until the subscription has propagated: repeat the first
    // (idempotent) message until the bridge has clearly received it.
    let deadline = Instant::now() + SETTLE;
    while index.overlap(&ours).get("vllm-0") < 2 {
        assert!(
            Instant::now() < deadline,
            "bridge never indexed the first blocks"
        );
        vllm.send(first.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    vllm.send(vllm_message(
        1,
        vec![block_stored(&[503], Some(502), &tokens[8..])],
    ))
    .await
    .unwrap();
    eventually(SETTLE, "continuation chained onto the parent", || {
        index.overlap(&ours).get("vllm-0") == 3
    })
    .await;

    vllm.send(vllm_message(2, vec![block_removed(&[503])]))
        .await
        .unwrap();
    eventually(SETTLE, "removal translated", || {
        index.overlap(&ours).get("vllm-0") == 2
    })
    .await;

    vllm.send(vllm_message(
        3,
        vec![Value::Array(vec![Value::from("AllBlocksCleared")])],
    ))
    .await
    .unwrap();
    eventually(SETTLE, "cleared", || index.instance_blocks("vllm-0") == 0).await;

    stop.send(()).unwrap();
    tokio::time::timeout(SETTLE, bridge)
        .await
        .expect("bridge stops")
        .unwrap()
        .unwrap();
}
