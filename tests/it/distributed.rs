//! The distributed runtime end to end: real `etcd` and `nats-server` processes, mockers that
//! register themselves (`--etcd`) and publish KV/load events (`--nats`), frontends with
//! `--discovery etcd`, `--nats`, the `kv` policy and replica sync. Every wait is bounded.
//!
//! This file holds the shared helpers; the tests are in `distributed/`: `etcd` (registration,
//! leases, fail-static and resync, key prefixes), `events` (KV-aware routing over NATS, a NATS
//! outage, replica sync), `gap` (a sequence gap seen by a real frontend) and `plugin_inputs`
//! (what Wasm plugins receive from the event-driven index), `shared_decisions` (frontends
//! sharing their routing decisions over NATS).

mod etcd;
mod etcd_apis;
mod etcd_lora;
mod etcd_untrusted;
mod events;
mod gap;
mod plugin_inputs;
mod shared_decisions;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::http::{metric, post_json};
use switchyard_tests::services::Etcd;
use switchyard_tests::{frontend, mocker, Proc};

use crate::MODEL;

/// The admin token the tests in this module give their frontends.
pub(crate) const TOKEN: &str = "distributed-admin-token";

/// Polls `check` every 50 ms until it returns `Some`, or fails with `what` after `within`.
pub(crate) async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn health(fe: &Proc) -> Value {
    match reqwest::get(format!("{}/health", fe.url())).await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// One non-streamed chat request: (status, serving instance id).
pub(crate) async fn ask(fe: &Proc, content: &str) -> (u16, Option<String>) {
    let body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 2,
    });
    match post_json(&format!("{}/v1/chat/completions", fe.url()), &body, &[]).await {
        Ok((status, h, _)) => (
            status,
            h.get("x-switchyard-instance")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ),
        Err(_) => (0, None),
    }
}

/// One non-streamed completion (the prompt is hashed as it is, no template): the instance
/// that served it.
pub(crate) async fn complete(
    fe: &Proc,
    prompt: &str,
    headers: &[(&str, &str)],
) -> (String, String) {
    let body = json!({"model": MODEL, "prompt": prompt, "max_tokens": 2});
    let (status, h, _) = post_json(&format!("{}/v1/completions", fe.url()), &body, headers)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let header = |name: &str| h[name].to_str().unwrap().to_owned();
    (header("x-switchyard-instance"), header("x-request-id"))
}

/// Instances the frontend currently knows (from `/health`).
pub(crate) async fn instance_count(fe: &Proc) -> u64 {
    health(fe).await["instances"].as_u64().unwrap_or(u64::MAX)
}

/// Ids of the instances the frontend currently knows (from `/admin/instances`; the frontend
/// needs `--admin-token TOKEN`).
pub(crate) async fn instance_ids(fe: &Proc) -> BTreeSet<String> {
    let Ok(resp) = reqwest::Client::new()
        .get(format!("{}/admin/instances", fe.admin_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
    else {
        return BTreeSet::new();
    };
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    v["instances"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn ids(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

pub(crate) async fn registered_mocker(etcd: &Etcd, id: &str, ttl: &str, extra: &[&str]) -> Proc {
    let url = etcd.url();
    let mut args: Vec<&str> = vec![
        "--etcd",
        url.as_str(),
        "--instance-id",
        id,
        "--etcd-ttl",
        ttl,
    ];
    args.extend_from_slice(extra);
    mocker(&args).await.unwrap()
}

pub(crate) async fn etcd_frontend(etcd: &Etcd, extra: &[&str]) -> Proc {
    let mut args = vec![
        "--discovery".to_owned(),
        "etcd".to_owned(),
        "--etcd".to_owned(),
        etcd.url(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    frontend(&args).await.unwrap()
}

/// Sends the prompt `prefix + tail` and returns the instance that served it.
pub(crate) async fn ask_prefixed(fe: &Proc, prefix: &str, tail: &str) -> String {
    let (status, id) = ask(fe, &format!("{prefix} {tail}")).await;
    assert_eq!(status, 200);
    id.unwrap()
}

/// A long shared prefix (~40 KV blocks of 16 tokens × 4 bytes).
pub(crate) fn long_prefix(tag: &str) -> String {
    (0..160)
        .map(|i| format!("{tag}-{i:03} "))
        .collect::<String>()
}

pub(crate) async fn static_mockers(n: usize, extra: &[&str]) -> Vec<Proc> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(mocker(extra).await.unwrap());
    }
    v
}

/// How the frontend learns what an instance caches: from the workers' KV events (wait for
/// the first turn's event to be applied before the next turn), or from its own routing
/// decisions (known at once).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Learns {
    FromEvents,
    FromDecisions,
}

/// Checks that each prefix keeps going to the instance that served it first.
pub(crate) async fn prefixes_stick(fe: &Proc, learns: Learns) -> HashMap<String, String> {
    let mut holders = HashMap::new();
    for tag in ["alpha", "bravo", "charlie", "delta"] {
        let prefix = long_prefix(tag);
        let indexed = metric(&fe.url(), "switchyard_kv_index_blocks").await;
        let first = ask_prefixed(fe, &prefix, "turn 0").await;
        if learns == Learns::FromEvents {
            // The holder's event for the first turn's blocks reaches the index (applied as
            // an event, or through the dump a first message's sequence gap asks for).
            eventually(
                Duration::from_secs(10),
                "the first turn's KV event",
                || async {
                    (metric(&fe.url(), "switchyard_kv_index_blocks").await > indexed).then_some(())
                },
            )
            .await;
        }
        for turn in 1..6 {
            let id = ask_prefixed(fe, &prefix, &format!("turn {turn}")).await;
            assert_eq!(id, first, "prefix {tag} turn {turn} left its holder");
        }
        holders.insert(tag.to_owned(), first);
    }
    holders
}

/// A Prometheus counter or gauge of `fe`.
pub(crate) async fn counter(fe: &Proc, name: &str) -> f64 {
    metric(&fe.url(), name).await
}
