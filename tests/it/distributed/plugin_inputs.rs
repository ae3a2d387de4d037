//! What Wasm plugins see of the event-driven KV index: `cached-prefix-blocks` is filled from
//! the workers' NATS events. The `prefix-affinity` scorer (load weight 0) scores
//! cached / prompt blocks, and the explain endpoint shows both the candidate records the
//! plugin received and its scores.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::services::Nats;
use switchyard_tests::{frontend_with_config, worker_flags, Proc};

use super::{complete, eventually, health, long_prefix, static_mockers, TOKEN};

const EXPLAIN: &str = "distributed-explain-token";
use crate::MODEL;

fn wasm(name: &str) -> String {
    let path = format!(
        "{}/../plugins/target/wasm/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    assert!(
        std::path::Path::new(&path).is_file(),
        "{path} is missing: run `scripts/build-plugins.sh` (make test does)"
    );
    path
}

async fn explanation(fe: &Proc, request_id: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}/admin/explain/{request_id}", fe.admin_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn plugins_receive_cached_prefix_blocks_from_nats_events() {
    let nats = Nats::start().unwrap();
    let m = static_mockers(3, &["--nats", &nats.url()]).await;
    let refs: Vec<&Proc> = m.iter().collect();
    let yaml = format!(
        "plugins:\n  - name: affinity\n    kind: scorer\n    path: {}\n    config: {{load_weight: 0}}\n",
        wasm("prefix-affinity")
    );
    let mut args = worker_flags(MODEL, &refs);
    args.extend(
        [
            "--nats",
            &nats.url(),
            "--admin-token",
            TOKEN,
            "--explain-token",
            EXPLAIN,
        ]
        .map(String::from),
    );
    let (fe, _dir) = frontend_with_config(&yaml, &args).await.unwrap();
    eventually(Duration::from_secs(10), "event bus connected", || async {
        (health(&fe).await["events"]["connected"] == json!(true)).then_some(())
    })
    .await;

    let prefix = long_prefix("plugin");
    let explain = [("x-switchyard-explain", EXPLAIN)];
    // Nothing cached yet: every candidate reaches the plugin with zero cached blocks.
    let (holder, id) = complete(&fe, &format!("{prefix} turn 0"), &explain).await;
    let e = explanation(&fe, &id).await;
    let cached: Vec<u64> = e["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cached_prefix_blocks"].as_u64().unwrap())
        .collect();
    assert_eq!(cached, vec![0, 0, 0], "{e}");

    // The holder's cache reaches the index over NATS (its KV event, or the dump that a first
    // message from an instance triggers)…
    let prefix_blocks = (prefix.len() / 64) as u64;
    eventually(
        Duration::from_secs(10),
        "the holder's blocks indexed",
        || async {
            let blocks = health(&fe).await["events"]["indexed_blocks"]
                .as_u64()
                .unwrap_or(0);
            (blocks >= prefix_blocks).then_some(())
        },
    )
    .await;
    // …and the next turn's candidate records carry them, which the plugin scores.
    let (served, id) = complete(&fe, &format!("{prefix} turn 1"), &explain).await;
    assert_eq!(served, holder);
    let e = explanation(&fe, &id).await;
    for c in e["candidates"].as_array().unwrap() {
        let n = c["cached_prefix_blocks"].as_u64().unwrap();
        if c["instance"] == json!(holder) {
            assert!(
                n >= prefix_blocks,
                "holder has the prefix's {prefix_blocks} blocks: {e}"
            );
        } else {
            assert_eq!(n, 0, "{e}");
        }
    }
    let scores = e["stages"][0]["scores"].as_array().unwrap();
    assert_eq!(e["stages"][0]["plugin"], "affinity", "{e}");
    for s in scores {
        let (instance, score) = (s[0].as_str().unwrap(), s[1].as_f64().unwrap());
        if instance == holder {
            assert!(score > 0.9, "the holder's cached share: {e}");
        } else {
            assert_eq!(score, 0.0, "{e}");
        }
    }
    assert_eq!(e["pick"][0], json!(holder), "{e}");
}
